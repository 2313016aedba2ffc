"""Nightly semantics over simulated nights on the emulator's clock.

After every night the views must equal the ground truth: every invocation the
API ever returned, in its latest state, including those SSM has since expired.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from emulator import Emulator, FleetSpec
from pipeline.compact import data_files
from pipeline.config import RunConfig
from pipeline.extract import AwsSettings
from pipeline.ingest import run_local
from pipeline.lake import Lake
from pipeline.schema import COMMAND_PLUGINS, INVOCATIONS
from pipeline.views import connect
from tests.truth import expected_invocation, expected_plugins, key, view_rows

START = datetime(2026, 2, 20, 6, 0, tzinfo=UTC)
REGIONS = ("us-east-1", "eu-west-1")
ACCOUNT = "123456789012"
DAY = timedelta(days=1)


def _spec(**overrides) -> FleetSpec:
    options = dict(seed=23, now=START, regions=REGIONS, instances_per_region=8, account_id=ACCOUNT)
    return FleetSpec(**{**options, **overrides})


class Truth:
    """Every invocation ever served, in its latest state, as expected lake rows."""

    def __init__(self) -> None:
        self.invocations: dict[tuple, dict] = {}
        self.plugins: dict[tuple, list[dict]] = {}

    def observe(self, emulator: Emulator) -> None:
        for region in REGIONS:
            for record in emulator.ground_truth(ACCOUNT, region):
                row = expected_invocation(record, ACCOUNT, region)
                self.invocations[key(row)] = row
                self.plugins[key(row)] = expected_plugins(record, ACCOUNT, region)

    def rows(self) -> tuple[list[dict], list[dict]]:
        plugins = [p for group in self.plugins.values() for p in group]
        return sorted(self.invocations.values(), key=key), sorted(plugins, key=key)


def _night(emulator: Emulator, lake, **options) -> None:
    config = RunConfig(lake=str(lake), regions=REGIONS, grace_seconds=0, **options)
    summary = run_local(config, AwsSettings(endpoint_url=emulator.url))
    assert summary.exit_code == 0, summary.render()


def _assert_views_equal(lake, truth: Truth) -> None:
    invocations, plugins = truth.rows()
    assert sorted(view_rows(lake, "invocations"), key=key) == invocations
    assert sorted(view_rows(lake, "command_plugins"), key=key) == plugins


def _stored_rows(lake) -> tuple[int, int]:
    con = connect(Lake.open(lake))
    counts = []
    for table in (INVOCATIONS, COMMAND_PLUGINS):
        files = [
            str(f) for d in Lake.open(lake).table_dir(table).glob("*/*/*") for f in data_files(d)
        ]
        counts.append(
            con.sql("SELECT count(*) FROM read_parquet($f)", params={"f": files}).fetchall()[0][0]
            if files
            else 0
        )
    return counts[0], counts[1]


def test_ten_nights_match_ground_truth_every_night(tmp_path):
    lake = tmp_path / "lake"
    truth = Truth()
    with Emulator(_spec()) as emulator:
        for night in range(12):
            if night:
                emulator.clock.advance(DAY)
            first_request = len(emulator.request_log)
            _night(emulator, lake)
            truth.observe(emulator)
            _assert_views_equal(lake, truth)
            requests = emulator.request_log[first_request:]
            windows = {
                _invoked_after(r) for r in requests if r["operation"] == "ListCommandInvocations"
            }
            if night == 0:
                assert None in windows, "the first night backfills everything"
            else:
                assert None not in windows, "later nights read only a window"
        expired = [
            row for row in truth.invocations.values()
            if row["requested_date_time"] < (emulator.clock.now() - timedelta(days=30)).timestamp() * 1000
        ]  # fmt: skip
        assert expired, "some invocations have left SSM's retention"
    ledger = (
        connect(Lake.open(lake))
        .sql("SELECT count(*), count(DISTINCT run_id), min(status), max(status) FROM ingest_runs")
        .fetchall()
    )
    assert ledger == [(24, 12, "succeeded", "succeeded")]


def _invoked_after(request: dict) -> str | None:
    for item in (request["params"] or {}).get("Filters", []):
        if item["key"] == "InvokedAfter":
            return item["value"]
    return None


def test_second_night_asks_for_watermark_minus_lookback(tmp_path):
    lake = tmp_path / "lake"
    with Emulator(_spec()) as emulator:
        _night(emulator, lake)
        (watermark,) = (
            connect(Lake.open(lake))
            .sql("SELECT max(requested_date_time) FROM invocations WHERE region = 'eu-west-1'")
            .fetchall()[0]
        )
        emulator.clock.advance(DAY)
        first_request = len(emulator.request_log)
        _night(emulator, lake, lookback_hours=30)
        asked = {
            _invoked_after(r)
            for r in emulator.request_log[first_request:]
            if r["region"] == "eu-west-1" and r["operation"] == "ListCommandInvocations"
        }
    expected = (watermark - timedelta(hours=30)).astimezone(UTC)
    # The oldest slice starts exactly there; newer slices start later (ISO text sorts by time).
    assert min(asked) == (
        expected.strftime("%Y-%m-%dT%H:%M:%S.") + f"{expected.microsecond // 1000:03d}Z"
    )


def test_a_status_change_is_picked_up(tmp_path):
    lake = tmp_path / "lake"
    with Emulator(_spec()) as emulator:
        _night(emulator, lake)
        query = "SELECT command_id, instance_id, status FROM invocations WHERE status IN ('Pending', 'InProgress')"
        in_flight = connect(Lake.open(lake)).sql(query).fetchall()
        assert in_flight, "the fleet should have in-flight invocations at run time"
        emulator.clock.advance(DAY)
        _night(emulator, lake)
        con = connect(Lake.open(lake))
        after = {
            (c, i): s
            for c, i, s in con.sql(
                "SELECT command_id, instance_id, status FROM invocations"
            ).fetchall()
        }
    assert all(after[(c, i)] not in ("Pending", "InProgress") for c, i, _ in in_flight)


def test_repeated_runs_are_no_ops_for_views_and_storage(tmp_path):
    lake = tmp_path / "lake"
    truth = Truth()
    with Emulator(_spec()) as emulator:
        _night(emulator, lake)
        truth.observe(emulator)
        emulator.clock.advance(DAY)
        _night(emulator, lake)
        truth.observe(emulator)
        stored = _stored_rows(lake)
        for _ in range(3):
            _night(emulator, lake)
            _assert_views_equal(lake, truth)
            assert _stored_rows(lake) == stored
        _night(emulator, lake, full_refresh=True)
        _assert_views_equal(lake, truth)
        assert _stored_rows(lake) == stored


def test_since_sets_the_window_for_one_run(tmp_path):
    lake = tmp_path / "lake"
    with Emulator(_spec()) as emulator:
        _night(emulator, lake)
        first_request = len(emulator.request_log)
        _night(emulator, lake, since=datetime(2026, 2, 1, tzinfo=UTC))
        asked = {
            _invoked_after(r)
            for r in emulator.request_log[first_request:]
            if r["operation"] == "ListCommandInvocations"
        }
    assert min(asked) == "2026-02-01T00:00:00.000Z"


KILL_SCRIPT = """
import sys
from pipeline.config import RunConfig
from pipeline.extract import AwsSettings
from pipeline.ingest import run_local
config = RunConfig(lake=sys.argv[1], regions=("us-east-1", "eu-west-1"), grace_seconds=0)
run_local(config, AwsSettings(endpoint_url=sys.argv[2]), workers=2)
"""


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_run_killed_at_a_random_point_leaves_a_readable_lake_and_the_next_converges(
    tmp_path, seed
):
    lake = tmp_path / "lake"
    truth = Truth()
    chance = random.Random(seed)
    with Emulator(_spec(page_delay=0.02)) as emulator:
        _night(emulator, lake)
        truth.observe(emulator)
        emulator.clock.advance(DAY)
        for _ in range(2):
            process = subprocess.Popen(
                [sys.executable, "-c", KILL_SCRIPT, str(lake), emulator.url], env=os.environ.copy()
            )
            time.sleep(chance.uniform(0.5, 3.0))
            process.send_signal(signal.SIGKILL)
            process.wait()
            # Readable, and every visible invocation exactly once.
            con = connect(Lake.open(lake))
            total, distinct = con.sql(
                "SELECT count(*), count(DISTINCT (region, command_id, instance_id)) FROM invocations"
            ).fetchall()[0]
            assert total == distinct
            con.sql("SELECT count(*) FROM command_plugins").fetchall()
        _night(emulator, lake)
        truth.observe(emulator)
        _assert_views_equal(lake, truth)
