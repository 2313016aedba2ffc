"""The lake's history (`ssm-etl history`) and reading the lake as it stood (`--as-of`)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from emulator import Emulator
from pipeline.config import RunConfig
from pipeline.errors import ConfigError
from pipeline.extract import AwsSettings
from pipeline.history import history
from pipeline.lake import AsOf, Lake
from pipeline.night import ThreadRunner, run_night
from pipeline.query import run_query
from pipeline.schema import INGEST_RUNS, INVOCATIONS
from tests.conftest_emulator import EMULATOR_ACCOUNT, EMULATOR_REGIONS, EMULATOR_SPEC
from tests.lakes import ACCOUNT, REGION, at, ingest, invocation, plugin, record_run

WHERE = f"{ACCOUNT}/{REGION}"
PLUGINS_BY_INVOCATION = (
    "SELECT command_id, count(*)::INT FROM command_plugins GROUP BY ALL ORDER BY ALL"
)


def _ledger(lake: Lake, run_id: str, invocations: int) -> None:
    moment = at("2024-06-01T00:00:00")
    record_run(
        lake,
        {
            "run_id": run_id,
            "account_id": ACCOUNT,
            "region": REGION,
            "started_at": moment,
            "finished_at": moment,
            "pages": 1,
            "invocations": invocations,
            "plugins": 0,
            "quarantined": 0,
            "status": "succeeded",
        },
    )


def _pause() -> datetime:
    """A moment strictly between two commits (Delta stamps commits in milliseconds)."""
    time.sleep(0.02)
    moment = datetime.now(UTC)
    time.sleep(0.02)
    return moment


def _two_runs(root: Path) -> tuple[Lake, datetime]:
    """run-1: c-1 (two plugins) and c-2; run-2 re-fetches c-1 with one plugin and adds c-3.

    Returns the lake and a moment between the two runs.
    """
    lake = Lake.create(root)
    day = at("2024-05-31T10:00:00")
    steps = [plugin("a", "Success", 0), plugin("b", "Success", 0)]
    ingest(
        lake,
        [
            invocation("c-1", "i-1", day, "Success", plugins=steps),
            invocation("c-2", "i-1", day, "Success", plugins=steps[:1]),
        ],
        run_id="run-1",
    )
    _ledger(lake, "run-1", 2)
    between = _pause()
    ingest(
        lake,
        [
            invocation("c-1", "i-1", day, "Failed", plugins=[plugin("a", "Failed", 1)]),
            invocation("c-3", "i-2", day, "Success", plugins=steps[:1]),
        ],
        run_id="run-2",
        ingested_at=datetime(2024, 6, 2, tzinfo=UTC),
    )
    _ledger(lake, "run-2", 2)
    return lake, between


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    return _two_runs(tmp_path_factory.mktemp("history") / "lake")


COLUMNS = ["table_name", "version", "operation", "run_id", "accounts", "regions"]
COUNTS = ["rows_added", "rows_updated", "rows_deleted"]


def test_history_lists_every_commit_newest_first(two_runs):
    lake, _ = two_runs
    table = history(lake)
    rows = table.to_pylist()
    times = [r["committed_at"] for r in rows]
    assert times == sorted(times, reverse=True)
    got = [tuple(r[c] for c in COLUMNS + COUNTS) for r in rows]
    ingests = [row for row in got if row[2] != "create table"]
    assert ingests == [
        # table, version, operation, run, accounts, regions, added, updated, deleted
        ("ingest_runs", 2, "ingest", "run-2", 1, WHERE, 1, None, None),
        # c-3 new; c-1 re-fetched
        ("invocations", 2, "ingest", "run-2", 1, WHERE, 1, 1, 0),
        # c-3's plugin new; c-1's first plugin replaced, its second one gone
        ("command_plugins", 2, "ingest", "run-2", 1, WHERE, 1, 1, 1),
        ("ingest_runs", 1, "ingest", "run-1", 1, WHERE, 1, None, None),
        ("invocations", 1, "ingest", "run-1", 1, WHERE, 2, 0, 0),
        ("command_plugins", 1, "ingest", "run-1", 1, WHERE, 3, 0, 0),
    ]
    created = sorted(row[:4] for row in got if row[2] == "create table")
    assert created == [
        ("command_plugins", 0, "create table", None),
        ("commands", 0, "create table", None),
        ("ingest_runs", 0, "create table", None),
        ("invocations", 0, "create table", None),
        ("managed_instances", 0, "create table", None),
        ("plugin_outputs", 0, "create table", None),
        ("quarantine", 0, "create table", None),
    ]
    assert got[-7:] == [row for row in got if row[2] == "create table"], "the oldest last"


def test_history_limit_is_the_newest_commits_of_each_table(two_runs):
    lake, _ = two_runs
    newest = [(r["table_name"], r["version"]) for r in history(lake, limit=1).to_pylist()]
    assert sorted(newest) == [
        ("command_plugins", 2),
        ("commands", 0),
        ("ingest_runs", 2),
        ("invocations", 2),
        ("managed_instances", 0),
        ("plugin_outputs", 0),
        ("quarantine", 0),
    ]


def _state(lake: Lake, as_of: AsOf | None) -> tuple[list, int]:
    plugins = run_query(lake, PLUGINS_BY_INVOCATION, as_of=as_of).to_pylist()
    runs = run_query(lake, "SELECT count(*)::INT AS n FROM ingest_runs", as_of=as_of)
    return [tuple(p.values()) for p in plugins], runs.to_pylist()[0]["n"]


AFTER_RUN_1 = ([("c-1", 2), ("c-2", 1)], 1)
NOW = ([("c-1", 1), ("c-2", 1), ("c-3", 1)], 2)


def test_the_latest_state(two_runs):
    lake, _ = two_runs
    assert _state(lake, None) == NOW


def test_as_of_a_run_id_is_the_lake_after_that_runs_last_commit(two_runs):
    lake, _ = two_runs
    assert _state(lake, AsOf.parse("run-1")) == AFTER_RUN_1
    assert _state(lake, AsOf.parse("run-2")) == NOW


def test_as_of_a_time(two_runs):
    lake, between = two_runs
    assert _state(lake, AsOf(moment_value=between)) == AFTER_RUN_1
    naive = between.replace(tzinfo=None).isoformat()  # no zone: UTC
    assert _state(lake, AsOf.parse(naive)) == AFTER_RUN_1
    assert _state(lake, AsOf.parse(naive + "Z")) == AFTER_RUN_1
    elsewhere = between.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    assert _state(lake, AsOf.parse(elsewhere)) == AFTER_RUN_1


def test_as_of_a_version_of_invocations_reads_every_table_at_that_instant(two_runs):
    """Version 1 of invocations is run-1's data commit: its plugins were committed just
    before it, its ledger row just after (so not yet)."""
    lake, _ = two_runs
    assert _state(lake, AsOf.parse("1")) == (AFTER_RUN_1[0], 0)
    assert _state(lake, AsOf.parse("2")) == (NOW[0], 1)
    invocations = run_query(
        lake, "SELECT count(*)::INT AS n FROM invocations", as_of=AsOf(version=1)
    )
    assert invocations.to_pylist() == [{"n": 2}]


@pytest.mark.parametrize(
    ("text", "spec", "version", "expected"),
    [
        pytest.param("run-1", INGEST_RUNS, 1, (*AFTER_RUN_1, 2), id="run-id"),
        pytest.param("1", INVOCATIONS, 1, (AFTER_RUN_1[0], 0, 2), id="version"),
    ],
)
def test_as_of_includes_the_named_commit_when_its_log_file_was_stamped_later(
    tmp_path, text, spec, version, expected
):
    """A log file's modification time is not the writer's clock: on S3 it is the server's
    Last-Modified, and even locally it is often a millisecond or more after the commit's
    own timestamp (about 1 commit in 100 here). Moving it 50 ms later, as a slow upload
    would, must not move what `--as-of` names."""
    lake, _ = _two_runs(tmp_path / "lake")
    log = Path(lake.table_uri(spec)) / "_delta_log" / f"{version:020d}.json"
    stamp = log.stat().st_mtime_ns + 50_000_000
    os.utime(log, ns=(stamp, stamp))
    as_of = AsOf.parse(text)
    invocations = run_query(lake, "SELECT count(*)::INT AS n FROM invocations", as_of=as_of)
    assert (*_state(lake, as_of), invocations.to_pylist()[0]["n"]) == expected


def test_as_of_resolves_once_to_a_time(two_runs):
    lake, _ = two_runs
    resolved = AsOf.parse("run-1").resolved(lake)
    assert resolved.run_id is None and resolved.version is None
    assert _state(lake, resolved) == AFTER_RUN_1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("run-9", "--as-of run-9: not a time, a version or a run id", id="unknown-run"),
        pytest.param("2024-13-01", "--as-of 2024-13-01: not a time", id="bad-date"),
        pytest.param("7", "--as-of 7: invocations has no version 7", id="unknown-version"),
        pytest.param("  ", "--as-of is empty", id="empty"),
    ],
)
def test_an_unknown_point_is_a_one_line_config_error(two_runs, text, message):
    lake, _ = two_runs
    with pytest.raises(ConfigError) as error:
        run_query(lake, "SELECT 1", as_of=AsOf.parse(text))
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
    assert f"ssm-etl history --lake {lake.location}" in str(error.value) or text.isspace()


def test_a_lake_before_its_first_run_has_an_empty_history(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    assert history(lake).num_rows == 0


@pytest.mark.parametrize("text", ["run-1", "0", "2024-06-01T00:00:00Z"])
def test_as_of_on_a_lake_before_its_first_run(tmp_path, text):
    """A run id or a version names nothing yet (a one-line ConfigError); a time reads the
    lake as empty, as it then was."""
    lake = Lake.create(tmp_path / "lake")
    as_of = AsOf.parse(text)
    if as_of.moment_value is not None:
        assert _state(lake, as_of) == ([], 0)
        return
    with pytest.raises(ConfigError, match="has no history yet") as error:
        as_of.moment(lake)
    assert "\n" not in str(error.value)


def _night(emulator: Emulator, lake, keep_days: float):
    config = RunConfig(lake=str(lake), regions=EMULATOR_REGIONS, slices=1, keep_days=keep_days)
    runner = ThreadRunner(2)
    try:
        summary = run_night(config, AwsSettings(endpoint_url=emulator.url), runner)
    finally:
        runner.close()
    assert summary.exit_code == 0, summary.render()
    return summary


def _count(lake: Lake, as_of: AsOf | None = None) -> int:
    table = run_query(lake, "SELECT count(*)::INT AS n FROM invocations", as_of=as_of)
    return table.to_pylist()[0]["n"]


def test_two_nights_over_the_emulator(tmp_path):
    """Real nights: ingest commits name the run and its regions, and count the rows they
    added and updated; maintenance commits (optimize, and vacuum with
    --keep-days 0) carry the run id; --as-of reaches back only as far as --keep-days."""
    regions = ", ".join(f"{EMULATOR_ACCOUNT}/{r}" for r in sorted(EMULATOR_REGIONS))
    with Emulator(EMULATOR_SPEC) as emulator:
        first = _night(emulator, tmp_path / "lake", keep_days=7)
        lake = Lake.open(tmp_path / "lake")
        after_first = _count(lake)
        emulator.clock.advance(timedelta(days=1))
        second = _night(emulator, tmp_path / "lake", keep_days=7)
        after_second = _count(lake)
        assert _count(lake, AsOf.parse(first.run_id)) == after_first < after_second
        emulator.clock.advance(timedelta(days=1))
        third = _night(emulator, tmp_path / "lake", keep_days=0)
    rows = history(lake).to_pylist()
    ingests = {
        (r["run_id"], r["table_name"]): r
        for r in rows
        if r["operation"] == "ingest" and r["table_name"] == "invocations"
    }
    first_commit = ingests[(first.run_id, "invocations")]
    second_commit = ingests[(second.run_id, "invocations")]
    for commit in (first_commit, second_commit):
        assert (commit["accounts"], commit["regions"]) == (1, regions)
        assert commit["rows_deleted"] == 0
    read = sum(r.invocations for r in first.results)
    assert (first_commit["rows_added"], first_commit["rows_updated"]) == (read, 0)
    assert second_commit["rows_added"] == after_second - after_first
    # The lookback re-reads what night one stored; open commands are re-read whole.
    read = sum(r.invocations for r in second.results)
    assert second_commit["rows_added"] + second_commit["rows_updated"] >= read
    assert second_commit["rows_updated"] > 0
    operations = {(r["run_id"], r["operation"]) for r in rows if r["run_id"] is not None}
    assert (second.run_id, "optimize") in operations  # each ledger partition has two files
    assert (first.run_id, "vacuum") not in operations  # nothing older than 7 days
    assert (second.run_id, "vacuum") not in operations
    assert (third.run_id, "vacuum") in operations
    vacuumed = {r["table_name"] for r in rows if r["operation"] == "vacuum"}
    assert {"invocations", "command_plugins"} <= vacuumed
    with pytest.raises(ConfigError):  # the files it read are gone with --keep-days 0
        _count(lake, AsOf.parse(first.run_id))
