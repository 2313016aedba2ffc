"""The command line: help everywhere, one-line errors with the right exit codes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.cli import build_parser, main
from pipeline.lake import Lake
from pipeline.schema import TABLES
from tests.lakes import ACCOUNT, REGION, at, ingest, invocation, record_run


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    actions = build_parser()._actions
    return next(a for a in actions if isinstance(a, argparse._SubParsersAction)).choices


COMMANDS = sorted(_subparsers())


def test_the_commands_are_the_documented_ones():
    assert COMMANDS == [
        "ddl",
        "demo",
        "deploy",
        "emulator",
        "history",
        "output",
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
        pytest.param(
            ["--regions", "us-east-1", "--output-cap", "100"], "--output-cap", id="tiny-cap"
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


def test_a_run_checks_and_imports_with_the_collector_paused(capsys, monkeypatch, tmp_path):
    """`flows.startup`: the collector is paused while a run loads, and resumed after, even
    when the configuration is refused."""
    import gc

    from flows import cli
    from pipeline.errors import ConfigError

    seen: list[bool] = []

    def refused(args: argparse.Namespace) -> None:
        seen.append(gc.isenabled())
        raise ConfigError("refused here")

    monkeypatch.setattr(cli, "_run_config", refused)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # no server is started
    lake = str(tmp_path / "lake")
    err = _one_line_error(capsys, ["run", "--lake", lake, "--regions", "us-east-1"])
    assert "refused here" in err
    assert seen == [False] and gc.isenabled()


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
    Lake.create(tmp_path / "lake")
    return tmp_path / "lake"


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


def _options(command: str) -> list[argparse.Action]:
    return [a for a in _subparsers()[command]._actions if not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_every_command_has_help(command):
    for action in _options(command):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"ssm-etl {command} {name} has no help"


def _help_entries(command: str, capsys) -> dict[str, str]:
    """Each option's entry in `ssm-etl COMMAND --help`, keyed by its first flag, on one line."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    entries: dict[str, str] = {}
    current = None
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif current and line.startswith("    "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return {flag: " ".join(text.split()) for flag, text in entries.items()}


@pytest.mark.parametrize("command", COMMANDS)
def test_an_option_with_a_default_shows_it_in_help(command, capsys):
    entries = _help_entries(command, capsys)
    for action in _options(command):
        if not action.option_strings or action.default in (None, False, [], argparse.SUPPRESS):
            continue
        flag = action.option_strings[0]
        assert f"(default: {action.default})" in entries[flag], entries[flag]


@pytest.mark.parametrize(
    ("command", "flag", "shown"),
    [
        ("run", "--keep-days", "7.0"),
        ("run", "--lookback", "48.0"),
        ("run", "--concurrency", "8"),
        ("run", "--slices", "8"),
        ("run", "--task-runner", "threads"),
        ("deploy", "--cron", "0 2 * * *"),
        ("deploy", "--keep-days", "7.0"),
        ("purge", "--keep-days", "7.0"),
        ("status", "--max-age", "36.0"),
        ("report", "--days", "30"),
        ("history", "--format", "table"),
        ("sql", "--format", "table"),
        ("ddl", "--engine", "athena"),
        ("ddl", "--database", "ssm_etl"),
        ("demo", "--lake", "./demo-lake"),
    ],
)
def test_defaults_in_help_golden(command, flag, shown, capsys):
    assert f"(default: {shown})" in _help_entries(command, capsys)[flag]


@pytest.mark.parametrize("command", ["sql", "report", "status"])
def test_as_of_is_offered_where_the_lake_is_read(command, capsys):
    assert "--as-of" in _help_entries(command, capsys)


@pytest.mark.parametrize("command", ["run", "deploy", "purge"])
def test_grace_minutes_is_gone(command, tmp_path, capsys):
    argv = [command, "--lake", str(tmp_path / "lake"), "--grace-minutes", "5"]
    argv += ["--older-than", "30"] if command == "purge" else ["--regions", "us-east-1"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "ssm-etl: error: unrecognized arguments: --grace-minutes 5 (see --help)"
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize("days", ["-1", "3651", "nan"])
def test_run_rejects_a_bad_keep_days(capsys, tmp_path, days):
    lake = tmp_path / "lake"
    argv = ["run", "--lake", str(lake), "--regions", "us-east-1", "--keep-days", days]
    err = _one_line_error(capsys, argv)
    assert "--keep-days must be between 0 and 3650" in err
    assert not lake.exists()


@pytest.fixture
def two_runs(tmp_path) -> Path:
    """A lake with two ingests and their ledger rows: run-1 stored c-1, run-2 added c-2."""
    root = tmp_path / "lake"
    lake = Lake.create(root)
    for run_id, command in [("run-1", "c-1"), ("run-2", "c-2")]:
        moment = at("2024-05-31T10:00:00")
        ingest(lake, [invocation(command, "i-1", moment, "Success")], run_id=run_id)
        record_run(
            lake,
            {
                "run_id": run_id,
                "account_id": ACCOUNT,
                "region": REGION,
                "started_at": datetime.now(UTC),
                "finished_at": datetime.now(UTC),  # healthy for `status`
                "pages": 1,
                "invocations": 1,
                "plugins": 0,
                "quarantined": 0,
                "status": "succeeded",
            },
        )
    return root


COUNT = "SELECT count(*) AS n FROM invocations"


def test_sql_as_of_a_run_reads_the_lake_as_it_stood(capsys, two_runs):
    for as_of, count in [([], 2), (["--as-of", "run-2"], 2), (["--as-of", "run-1"], 1)]:
        assert main(["sql", "--lake", str(two_runs), "--format", "json", *as_of, COUNT]) == 0
        assert json.loads(capsys.readouterr().out) == [{"n": count}]


def test_status_as_of_a_run(capsys, two_runs):
    assert main(["status", "--lake", str(two_runs), "--as-of", "run-1"]) == 0
    out = capsys.readouterr().out
    assert " run-1 " in out and "run-2" not in out


@pytest.mark.parametrize("command", ["sql", "report", "status"])
@pytest.mark.parametrize(
    ("as_of", "fragment"),
    [
        pytest.param("run-9", "--as-of run-9: not a time, a version or a run id", id="unknown-run"),
        pytest.param("99", "--as-of 99: invocations has no version 99", id="unknown-version"),
        pytest.param("2024-02-30", "--as-of 2024-02-30: not a time", id="impossible-date"),
        pytest.param(" ", "--as-of is empty", id="empty"),
    ],
)
def test_a_bad_as_of_is_one_line_exit_2(capsys, tmp_path, two_runs, command, as_of, fragment):
    argv = [command, "--lake", str(two_runs), "--as-of", as_of]
    argv += {"sql": [COUNT], "report": ["--out", str(tmp_path / "r.html")], "status": []}[command]
    err = _one_line_error(capsys, argv)
    assert err.startswith(f"ssm-etl: error: {fragment}")
    assert capsys.readouterr().out == ""
    assert not (tmp_path / "r.html").exists()


def test_history_lists_the_runs(capsys, two_runs):
    assert main(["history", "--lake", str(two_runs), "--format", "json", "--limit", "1"]) == 0
    rows = {r["table_name"]: r for r in json.loads(capsys.readouterr().out)}
    assert sorted(rows) == sorted(spec.name for spec in TABLES)
    assert (rows["invocations"]["operation"], rows["invocations"]["run_id"]) == ("ingest", "run-2")
    assert rows["invocations"]["regions"] == f"{ACCOUNT}/{REGION}"
    assert rows["invocations"]["rows_added"] == 1


def test_history_table_format(capsys, two_runs):
    assert main(["history", "--lake", str(two_runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "committed_at",
        "table_name",
        "version",
        "operation",
        "run_id",
        "accounts",
        "regions",
        "rows_added",
        "rows_updated",
        "rows_deleted",
    ]
    assert lines[-1] == "(11 rows)"  # 7 tables created, then 2 runs x (invocations, ledger)


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        pytest.param(["--limit", "0"], "--limit must be at least 1", id="limit-zero"),
        pytest.param(["--limit", "-3"], "--limit must be at least 1", id="limit-negative"),
    ],
)
def test_history_rejects_bad_input_in_one_line(capsys, two_runs, flags, fragment):
    err = _one_line_error(capsys, ["history", "--lake", str(two_runs), *flags])
    assert fragment in err


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        pytest.param(["--limit", "many"], "argument --limit: invalid int value", id="limit-text"),
        pytest.param(["--format", "xml"], "argument --format: invalid choice", id="format"),
        pytest.param(["--as-of", "run-1"], "unrecognized arguments: --as-of", id="as-of"),
    ],
)
def test_history_usage_errors_are_one_line_exit_2(capsys, two_runs, flags, fragment):
    with pytest.raises(SystemExit) as exit_info:
        main(["history", "--lake", str(two_runs), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ssm-etl: error: ") and fragment in err[-1]


def test_history_of_a_folder_that_is_not_a_lake(capsys, tmp_path):
    err = _one_line_error(capsys, ["history", "--lake", str(tmp_path)])
    assert "not an ssm-etl lake" in err


def test_history_of_a_lake_before_its_first_run_is_empty(capsys, empty_lake):
    assert main(["history", "--lake", str(empty_lake)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(0 rows)"


def test_as_of_a_run_before_the_first_run_is_one_line_exit_2(capsys, empty_lake):
    err = _one_line_error(capsys, ["sql", "--lake", str(empty_lake), "--as-of", "run-1", COUNT])
    assert "has no history yet" in err


def test_report_as_of_a_time_in_another_zone_ends_on_its_utc_date(capsys, tmp_path, two_runs):
    """The report covers UTC days: an --as-of written with a far offset still ends on the
    UTC date of that instant, not on the date the offset shows."""
    moment = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)  # after the runs
    offset = "+14:00" if moment.hour >= 10 else "-12:00"  # a date other than UTC's
    hours = 14 if offset == "+14:00" else -12
    shown = (moment + timedelta(hours=hours)).replace(tzinfo=None).isoformat() + offset
    out = tmp_path / "report.html"
    argv = ["report", "--lake", str(two_runs), "--as-of", shown, "--days", "1", "--out", str(out)]
    assert main(argv) == 0
    day = moment.date().isoformat()
    assert f"SSM Run Command report, {day} to {day}" in out.read_text()
