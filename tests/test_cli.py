"""The command line: help everywhere, one-line errors with the right exit codes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import build_parser, main
from pipeline.lake import Lake

COMMANDS = sorted(
    next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
)


def test_the_commands_are_the_documented_ones():
    assert COMMANDS == [
        "ddl",
        "demo",
        "deploy",
        "emulator",
        "purge",
        "report",
        "run",
        "sql",
        "status",
        "upgrade",
        "views",
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"ssm-etl {command}" in text
    assert len(text.splitlines()) > 4


def test_console_script_help_runs_in_a_fresh_process():
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    for command in COMMANDS:
        assert command in done.stdout


def _one_line_error(capsys, argv: list[str], code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("ssm-etl: error: ")
    return err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        pytest.param(["--regions", "us-east-1,moon-base-9"], "moon-base-9", id="unknown-region"),
        pytest.param(["--regions", "../../etc"], "../../etc", id="region-escaping-lake"),
        pytest.param(["--regions", " , "], "--regions is empty", id="empty-regions"),
        pytest.param(
            ["--regions", "us-east-1", "--account-id", "12345"], "12 digits", id="short-account"
        ),
        pytest.param(
            ["--regions", "us-east-1", "--account-id", "../123456789"],
            "12 digits",
            id="account-escaping-lake",
        ),
    ],
)
def test_run_rejects_bad_input_and_writes_nothing(capsys, tmp_path, argv, fragment):
    lake = tmp_path / "lake"
    err = _one_line_error(capsys, ["run", "--lake", str(lake), *argv])
    assert fragment in err
    assert not lake.exists()


def test_run_rejects_a_lake_path_that_is_a_file(capsys, tmp_path):
    target = tmp_path / "lake"
    target.write_text("not a lake")
    err = _one_line_error(capsys, ["run", "--lake", str(target), "--regions", "us-east-1"])
    assert "not a directory" in err
    assert target.read_text() == "not a lake"


def test_run_refuses_a_non_empty_directory_that_is_not_a_lake(capsys, tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    err = _one_line_error(capsys, ["run", "--lake", str(tmp_path), "--regions", "us-east-1"])
    assert "not a lake" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_usage_errors_are_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--lake", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ssm-etl: error: the following arguments are required: --regions")


def test_sql_on_a_directory_that_is_not_a_lake(capsys, tmp_path):
    err = _one_line_error(capsys, ["sql", "--lake", str(tmp_path), "SELECT 1"])
    assert "not an ssm-etl lake" in err


@pytest.fixture
def empty_lake(tmp_path) -> Path:
    return Lake.create(tmp_path / "lake").root


def test_bad_sql_is_one_line_with_duckdbs_message(capsys, empty_lake):
    err = _one_line_error(capsys, ["sql", "--lake", str(empty_lake), "SELEC oops"])
    assert "syntax error" in err.lower()


def test_sql_on_an_empty_lake_returns_zero_rows(capsys, empty_lake):
    assert (
        main(["sql", "--lake", str(empty_lake), "--format", "json", "SELECT * FROM invocations"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == []


SAMPLE = """
SELECT TIMESTAMPTZ '2026-02-28 23:59:59.999+00' AS at,
       DATE '2026-03-01' AS day,
       '012345678901' AS account_id,
       ['Success', 'Failed'] AS events,
       NULL::VARCHAR AS missing,
       42 AS n
"""


def test_sql_json_gives_objects_with_iso_utc_timestamps(capsys, empty_lake):
    assert main(["sql", "--lake", str(empty_lake), "--format", "json", SAMPLE]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {
            "at": "2026-02-28T23:59:59.999Z",
            "day": "2026-03-01",
            "account_id": "012345678901",
            "events": ["Success", "Failed"],
            "missing": None,
            "n": 42,
        }
    ]


def test_sql_csv(capsys, empty_lake):
    assert main(["sql", "--lake", str(empty_lake), "--format", "csv", SAMPLE]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "at,day,account_id,events,missing,n",
        '2026-02-28T23:59:59.999Z,2026-03-01,012345678901,"[""Success"", ""Failed""]",,42',
    ]


def test_sql_table(capsys, empty_lake):
    assert main(["sql", "--lake", str(empty_lake), SAMPLE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["at", "day", "account_id", "events", "missing", "n"]
    assert lines[2].split() == [
        "2026-02-28T23:59:59.999Z",
        "2026-03-01",
        "012345678901",
        '["Success",',
        '"Failed"]',
        "NULL",
        "42",
    ]
    assert lines[-1] == "(1 row)"


def test_run_rejects_a_lake_path_inside_a_file(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    err = _one_line_error(
        capsys, ["run", "--lake", str(tmp_path / "notes.txt" / "lake"), "--regions", "us-east-1"]
    )
    assert "inside a file" in err


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        pytest.param(["--lookback", "two days"], "--lookback must be a number", id="lookback-text"),
        pytest.param(["--lookback", "-1"], "--lookback must be between", id="lookback-negative"),
        pytest.param(
            ["--since", "last tuesday"], "--since must be an ISO-8601", id="since-malformed"
        ),
        pytest.param(["--redact", "(oops"], "bad redaction pattern", id="redact-pattern"),
    ],
)
def test_run_rejects_bad_window_options(capsys, tmp_path, flags, fragment):
    lake = tmp_path / "lake"
    err = _one_line_error(capsys, ["run", "--lake", str(lake), "--regions", "us-east-1", *flags])
    assert fragment in err
    assert not lake.exists()


def test_since_and_full_refresh_are_exclusive(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "run",
                "--lake",
                str(tmp_path),
                "--regions",
                "us-east-1",
                "--since",
                "2026-01-01",
                "--full-refresh",
            ]
        )
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        pytest.param(["--accounts", "111111111111", "--role-name", "r", "--account-id", "222222222222"],
                     "--account-id cannot be combined", id="account-id-with-accounts"),
        pytest.param(["--organization", "--role-name", "r", "--account-id", "222222222222"],
                     "--account-id cannot be combined", id="account-id-with-organization"),
        pytest.param(["--accounts", "111111111111"], "need --role-name", id="accounts-without-role"),
        pytest.param(["--accounts", "111111111111,12"], "12 digits", id="bad-account-in-list"),
        pytest.param(["--accounts", "111111111111", "--organization", "--role-name", "r"],
                     "do not go together", id="accounts-and-organization"),
        pytest.param(["--accounts", "111111111111", "--role-name", "no spaces"], "IAM role name", id="bad-role"),
    ],
)  # fmt: skip
def test_run_rejects_bad_account_options(capsys, tmp_path, flags, fragment):
    lake = tmp_path / "lake"
    err = _one_line_error(capsys, ["run", "--lake", str(lake), "--regions", "us-east-1", *flags])
    assert fragment in err
    assert not lake.exists()
