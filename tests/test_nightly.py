"""Nightly semantics over simulated nights on the emulator's clock, through the Prefect flow.

After every night the views must equal the ground truth: every invocation the
API ever returned, in its latest state, including those SSM has since expired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from emulator import Emulator
from pipeline.history import history
from pipeline.lake import AsOf, Lake
from pipeline.query import run_query
from pipeline.schema import COMMAND_PLUGINS, INVOCATIONS, TABLES
from pipeline.views import connect
from tests.nights import ACCOUNT, Truth, assert_views_equal, night, spec

DAY = timedelta(days=1)


def _invoked_after(request: dict) -> str | None:
    for item in (request["params"] or {}).get("Filters", []):
        if item["key"] == "InvokedAfter":
            return item["value"]
    return None


def test_nights_match_ground_truth_every_night(tmp_path, prefect_api):
    lake = tmp_path / "lake"
    truth = Truth()
    with Emulator(spec()) as emulator:
        for number in range(6):
            if number:
                emulator.clock.advance(DAY)
            first_request = len(emulator.request_log)
            night(emulator, lake)
            truth.observe(emulator)
            assert_views_equal(lake, truth)
            windows = {
                _invoked_after(r)
                for r in emulator.request_log[first_request:]
                if r["operation"] == "ListCommandInvocations" and "CommandId" not in r["params"]
            }
            if number == 0:
                assert None in windows, "the first night backfills everything"
            else:
                assert None not in windows, "later nights read only a window"
    ledger = (
        connect(Lake.open(lake))
        .sql("SELECT count(*), count(DISTINCT run_id), min(status), max(status) FROM ingest_runs")
        .fetchall()
    )
    assert ledger == [(12, 6, "succeeded", "succeeded")]


def test_second_night_asks_for_watermark_minus_lookback(tmp_path, prefect_api):
    lake = tmp_path / "lake"
    with Emulator(spec()) as emulator:
        night(emulator, lake)
        (watermark,) = (
            connect(Lake.open(lake))
            .sql("SELECT max(requested_date_time) FROM invocations WHERE region = 'eu-west-1'")
            .fetchall()[0]
        )
        emulator.clock.advance(DAY)
        first_request = len(emulator.request_log)
        night(emulator, lake, lookback_hours=30)
        asked = {
            _invoked_after(r)
            for r in emulator.request_log[first_request:]
            if r["region"] == "eu-west-1"
            and r["operation"] == "ListCommandInvocations"
            and "CommandId" not in r["params"]
        }
    start = (watermark - timedelta(hours=30)).astimezone(UTC)
    oldest = datetime.fromisoformat(min(a for a in asked if a).replace("Z", "+00:00"))
    # The oldest slice starts there, or a second before it (slices overlap at their edges).
    assert timedelta(0) <= start - oldest <= timedelta(seconds=1)


def test_a_status_change_is_picked_up(tmp_path, prefect_api):
    lake = tmp_path / "lake"
    query = (
        "SELECT region, command_id, instance_id, status FROM invocations "
        "WHERE status IN ('Pending', 'InProgress', 'Delayed', 'Cancelling')"
    )
    with Emulator(spec()) as emulator:
        night(emulator, lake)
        open_before = connect(Lake.open(lake)).sql(query).fetchall()
        assert open_before, "the fleet should have open invocations at run time"
        emulator.clock.advance(DAY)
        night(emulator, lake)
        api = {
            (region, r["CommandId"], r["InstanceId"]): r["Status"]
            for region in ("us-east-1", "eu-west-1")
            for r in emulator.ground_truth(ACCOUNT, region)
        }
    after = {
        (r, c, i): s
        for r, c, i, s in connect(Lake.open(lake))
        .sql("SELECT region, command_id, instance_id, status FROM invocations")
        .fetchall()
    }
    changed = [(r, c, i) for r, c, i, s in open_before if api[(r, c, i)] != s]
    assert changed, "some open invocation ended during the day"
    assert all(after[(r, c, i)] == api[(r, c, i)] for r, c, i, _ in open_before)


def _active(lake) -> dict[str, tuple[int, int]]:
    """Per table: (rows, data files) in its current version."""
    found = {}
    for spec_ in (INVOCATIONS, COMMAND_PLUGINS):
        actions = pa.table(Lake.open(lake).table(spec_).get_add_actions(flatten=True))
        found[spec_.name] = (sum(actions.column("num_records").to_pylist()), actions.num_rows)
    return found


def test_repeated_runs_change_no_row_and_do_not_grow_the_tables(tmp_path, prefect_api):
    lake = tmp_path / "lake"
    truth = Truth()
    with Emulator(spec()) as emulator:
        night(emulator, lake)
        truth.observe(emulator)
        emulator.clock.advance(DAY)
        night(emulator, lake)
        truth.observe(emulator)
        stored = _active(lake)
        for options in ({}, {}, {"full_refresh": True}):
            night(emulator, lake, **options)
            assert_views_equal(lake, truth)
            assert _active(lake) == stored
    views = connect(Lake.open(lake)).sql("SELECT count(*) FROM invocations").fetchall()[0][0]
    assert stored["invocations"][0] == views, "the table holds each invocation once"


def test_since_sets_the_window_for_one_run(tmp_path, prefect_api):
    lake = tmp_path / "lake"
    with Emulator(spec()) as emulator:
        night(emulator, lake)
        first_request = len(emulator.request_log)
        night(emulator, lake, since=datetime(2026, 2, 1, tzinfo=UTC))
        asked = {
            _invoked_after(r)
            for r in emulator.request_log[first_request:]
            if r["operation"] == "ListCommandInvocations" and "CommandId" not in r["params"]
        }
    oldest = datetime.fromisoformat(min(a for a in asked if a).replace("Z", "+00:00"))
    assert timedelta(0) <= datetime(2026, 2, 1, tzinfo=UTC) - oldest <= timedelta(seconds=1)


def test_as_of_answers_as_the_lake_stood_and_history_lists_both_runs(tmp_path, prefect_api):
    lake_dir = tmp_path / "lake"
    count = "SELECT status, count(*) AS n FROM invocations GROUP BY ALL ORDER BY ALL"
    with Emulator(spec()) as emulator:
        first = night(emulator, lake_dir)
        lake = Lake.open(lake_dir)
        after_first = run_query(lake, count).to_pylist()
        between = datetime.now(UTC)
        emulator.clock.advance(DAY)
        second = night(emulator, lake_dir)
    after_second = run_query(lake, count).to_pylist()
    assert after_second != after_first, "the second night changed something"
    for point in (AsOf(moment_value=between), AsOf(run_id=first.run_id)):
        assert run_query(lake, count, as_of=point.resolved(lake)).to_pylist() == after_first
    assert run_query(lake, count, as_of=AsOf(run_id=second.run_id)).to_pylist() == after_second

    commits = history(lake).to_pylist()
    ingests = {(c["run_id"], c["table_name"]) for c in commits if c["operation"] == "ingest"}
    for run in (first.run_id, second.run_id):
        # Nothing was quarantined, and no full output was asked for (--full-output).
        written = {t.name for t in TABLES} - {"quarantine", "plugin_outputs"}
        assert {(run, name) for name in written} <= ingests, run
    ledger = [
        c for c in commits if c["table_name"] == "ingest_runs" and c["run_id"] == first.run_id
    ]
    assert ledger[0]["regions"] == f"{ACCOUNT}/eu-west-1, {ACCOUNT}/us-east-1"
    assert ledger[0]["rows_added"] == 2
    assert [c["committed_at"] for c in commits] == sorted(
        (c["committed_at"] for c in commits), reverse=True
    )
