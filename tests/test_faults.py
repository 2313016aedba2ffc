"""Every fault the emulator injects, and what the nightly flow makes of it.

Each test runs the Prefect flow and ends by comparing the lake with the
emulator's ground truth exactly.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from emulator import Emulator, FleetSpec
from emulator.faults import FaultSpec, RegionFaults
from pipeline.decode import flatten_page
from pipeline.errors import AwsError
from pipeline.flatten import Lineage
from pipeline.ingest import WALK_RESTARTS
from pipeline.lake import Lake
from pipeline.schema import QUARANTINE
from pipeline.views import connect
from pipeline.walk import walk_region
from tests.nights import night
from tests.truth import expected_invocation, expected_plugins, key, view_rows

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
FAULTY, CLEAN = "eu-west-1", "us-east-1"
REGIONS = (FAULTY, CLEAN)
ACCOUNT = "123456789012"


def _spec(**overrides) -> FleetSpec:
    options = dict(seed=31, now=NOW, regions=REGIONS, instances_per_region=6, account_id=ACCOUNT)
    return FleetSpec(**{**options, **overrides})


def _faults(seed: int = 1, **region_faults) -> FaultSpec:
    return FaultSpec(seed=seed, regions={FAULTY: RegionFaults(**region_faults)})


def _run(emulator, lake, *, regions=REGIONS, slices=4, **options):
    """One night of the flow; the caller judges the exit code."""
    return night(emulator, lake, regions=regions, slices=slices, expect=None, **options)


class Truth:
    """Every valid record served, latest state, as expected lake rows."""

    def __init__(self) -> None:
        self.invocations: dict[tuple, dict] = {}
        self.plugins: dict[tuple, list[dict]] = {}

    def observe(
        self, emulator, regions=REGIONS, skip=frozenset(), since_ms: int | None = None
    ) -> None:
        """Records a run read: in its window (from `since_ms`), not sent malformed."""
        for region in regions:
            for record in emulator.ground_truth(ACCOUNT, region):
                if (record["CommandId"], record["InstanceId"]) in skip:
                    continue
                if since_ms is not None and round(record["RequestedDateTime"] * 1000) < since_ms:
                    continue
                row = expected_invocation(record, ACCOUNT, region)
                self.invocations[key(row)] = row
                self.plugins[key(row)] = expected_plugins(record, ACCOUNT, region)

    def assert_lake(self, lake) -> None:
        plugins = sorted((p for group in self.plugins.values() for p in group), key=key)
        assert sorted(view_rows(lake, "invocations"), key=key) == sorted(
            self.invocations.values(), key=key
        )
        assert sorted(view_rows(lake, "command_plugins"), key=key) == plugins


def _fault_count(emulator, fault: str) -> int:
    return sum(1 for entry in emulator.request_log if entry.get("fault") == fault)


@pytest.mark.parametrize(
    ("faults", "logged", "settings"),
    [
        pytest.param(dict(throttle_rate=25.0, throttle_burst=2), "throttle", {}, id="throttling"),
        pytest.param(dict(error_rate=0.3), "error", {}, id="http-500"),
        pytest.param(dict(reset_rate=0.25), "reset", {}, id="connection-reset"),
        pytest.param(
            dict(slow_rate=0.2, slow_seconds=1.5), "slow", {"read_timeout": 0.5}, id="read-timeout"
        ),
        pytest.param(dict(empty_pages=0.4), "empty_page", {}, id="empty-pages-with-token"),
        pytest.param(
            dict(invalid_token_once=True), "invalid_token", {}, id="invalid-next-token-mid-walk"
        ),
    ],
)
def test_transient_faults_lose_nothing_and_duplicate_nothing(
    tmp_path, faults, logged, settings, prefect_api
):
    lake = tmp_path / "lake"
    truth = Truth()
    with Emulator(_spec(faults=_faults(**faults))) as emulator:
        summary = _run(emulator, lake, **settings)
        assert summary.exit_code == 0, summary.render()
        assert _fault_count(emulator, logged) > 0, "the fault was injected"
        truth.observe(emulator)
    truth.assert_lake(lake)
    stored = connect(Lake.open(lake)).sql("SELECT count(*) FROM invocations").fetchall()[0][0]
    assert stored == sum(r.invocations for r in summary.results)  # no page counted twice


class _TokensExpire:
    """walk_region, but the listed slices' tokens expire, one slice per attempt."""

    def __init__(self, failing: list[int]) -> None:
        self.failing = failing
        self.attempts = 0

    def __call__(self, *args, **kwargs):
        self.attempts += 1
        if self.failing:
            message = "InvalidNextToken: The specified token is not valid."  # as extract words it
            error = AwsError(message, code="InvalidNextToken")
            error.slice = self.failing.pop(0)
            raise error
        return walk_region(*args, **kwargs)


def test_each_slice_may_meet_an_expired_token_in_its_own_attempt(
    tmp_path, monkeypatch, prefect_api
):
    """Four slices, each failing in a separate attempt: more restarts than any one slice's budget.

    The walk stops every slice at the first failure, so slices whose tokens
    expire independently can meet it one attempt at a time.
    """
    walk = _TokensExpire([0, 1, 2, 3])
    monkeypatch.setattr("pipeline.ingest.walk_region", walk)
    truth = Truth()
    with Emulator(_spec()) as emulator:
        summary = _run(emulator, tmp_path / "lake", slices=4)
        truth.observe(emulator)
    assert summary.exit_code == 0, summary.render()
    assert walk.attempts == 4 + 2  # the faulty region's four restarts, and the clean region
    truth.assert_lake(tmp_path / "lake")


def test_one_slice_that_keeps_failing_fails_the_region(tmp_path, monkeypatch, prefect_api):
    walk = _TokensExpire([2] * (WALK_RESTARTS + 1))
    monkeypatch.setattr("pipeline.ingest.walk_region", walk)
    with Emulator(_spec(regions=(FAULTY,))) as emulator:
        summary = _run(emulator, tmp_path / "lake", regions=(FAULTY,))
    assert summary.exit_code == 1
    assert "InvalidNextToken" in summary.results[0].error
    assert walk.attempts == WALK_RESTARTS + 1


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        pytest.param(dict(repeat_token=True), "same NextToken", id="endless-next-token"),
        pytest.param(dict(access_denied=True), "AccessDeniedException", id="access-denied"),
        pytest.param(
            dict(unrecognized_client=True),
            "UnrecognizedClientException",
            id="disabled-opt-in-region",
        ),
    ],
)
def test_a_region_that_fails_for_good_fails_alone(tmp_path, faults, message, prefect_api):
    lake = tmp_path / "lake"
    truth = Truth()
    with Emulator(_spec()) as emulator:
        assert _run(emulator, lake).exit_code == 0  # a first, clean night
        truth.observe(emulator)
        (watermark_before,) = _watermarks(lake)[FAULTY]
        emulator.clock.advance(timedelta(days=1))
        emulator.set_faults(_faults(**faults))
        # One slice: a night window in four slices would not need a second page,
        # and the endless-token bug only shows from the second page on.
        summary = _run(emulator, lake, slices=1)
        truth.observe(emulator, regions=(CLEAN,))
        by_region = {r.region: r for r in summary.results}
        assert summary.exit_code == 1
        assert by_region[CLEAN].ok and not by_region[FAULTY].ok
        assert message in by_region[FAULTY].error
        assert f"FAILED: {FAULTY}" in summary.render()
        truth.assert_lake(lake)  # the clean region's new night is in; the faulty one's is not
        assert _watermarks(lake)[FAULTY] == [watermark_before, watermark_before]
        ledger = (
            connect(Lake.open(lake))
            .sql(
                "SELECT status, error FROM ingest_runs WHERE region = ? ORDER BY started_at",
                params=[FAULTY],
            )
            .fetchall()
        )
        assert [s for s, _ in ledger] == ["succeeded", "failed"] and message in ledger[1][1]
        # The next clean night catches up from the old watermark.
        emulator.set_faults(None)
        assert _run(emulator, lake).exit_code == 0
        truth.observe(emulator)
    truth.assert_lake(lake)


def _watermarks(lake) -> dict[str, list]:
    rows = (
        connect(Lake.open(lake))
        .sql("SELECT region, watermark FROM ingest_runs ORDER BY started_at")
        .fetchall()
    )
    out: dict[str, list] = {}
    for region, watermark in rows:
        out.setdefault(region, []).append(watermark)
    return out


def test_malformed_records_are_quarantined_and_the_rest_kept(tmp_path, prefect_api):
    lake = tmp_path / "lake"
    truth = Truth()
    with Emulator(_spec(faults=_faults(malformed_rate=0.05))) as emulator:
        bad = emulator.malformed_keys(ACCOUNT, FAULTY)
        assert bad, "some records are malformed"
        for _ in range(2):  # twice, re-reading everything: quarantine must not pile up copies
            summary = _run(emulator, lake, full_refresh=True)
            assert summary.exit_code == 0
            assert sum(r.quarantined for r in summary.results) == len(bad)
        truth.observe(emulator, skip=bad)
    truth.assert_lake(lake)
    con = connect(Lake.open(lake))
    quarantined = con.sql("SELECT region, reason, raw_json FROM quarantine").fetchall()
    assert len(quarantined) == len(bad)
    assert {region for region, _, _ in quarantined} == {FAULTY}
    reasons = {reason.split(" ")[0] for _, reason, _ in quarantined}
    assert reasons <= {"CommandId", "ResponseCode", "RequestedDateTime"}
    stored = Lake.open(lake).table(QUARANTINE).to_pyarrow_table().num_rows
    assert stored == len(bad), "the table holds each bad record once"


def test_soak_twenty_nights_of_random_faults(tmp_path, prefect_api):
    """Random faults every night (fixed seed); the views end equal to the ground truth."""
    lake = tmp_path / "lake"
    truth = Truth()
    dice = random.Random(2026)
    menu = [
        dict(error_rate=0.2),
        dict(reset_rate=0.15),
        dict(empty_pages=0.3),
        dict(invalid_token_once=True),
        dict(throttle_rate=30.0, throttle_burst=3),
        dict(malformed_rate=0.03),
        dict(access_denied=True),
        dict(repeat_token=True),
        {},
    ]
    failed_nights = 0
    with Emulator(_spec()) as emulator:
        for night in range(20):
            if night:
                emulator.clock.advance(timedelta(days=1))
            chosen = {region: dice.choice(menu) for region in REGIONS}
            emulator.set_faults(
                FaultSpec(seed=night, regions={r: RegionFaults(**f) for r, f in chosen.items()})
            )
            summary = _run(emulator, lake)
            for result in summary.results:
                if not result.ok:
                    failed_nights += 1
                    continue
                skip = emulator.malformed_keys(ACCOUNT, result.region)
                truth.observe(emulator, (result.region,), skip, since_ms=result.window_start_ms)
        # A last, clean full refresh: everything the API still has is caught up.
        emulator.clock.advance(timedelta(days=1))
        emulator.set_faults(None)
        assert _run(emulator, lake, full_refresh=True).exit_code == 0
        truth.observe(emulator)
    assert failed_nights > 0, "the soak included regions failing for good"
    truth.assert_lake(lake)
    # Nothing valid is left in quarantine: every quarantined record is really malformed.
    raws = connect(Lake.open(lake)).sql("SELECT raw_json FROM quarantine").fetchall()
    lineage = Lineage(ACCOUNT, FAULTY, "check", 0)
    assert all(flatten_page([json.loads(raw)], lineage).rejected for (raw,) in raws)
