"""`region_status`: is every account and region being ingested? Golden expectations."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipeline.lake import Lake
from pipeline.status import RegionStatus, region_status
from tests.lakes import ACCOUNT, at, ingest, invocation, record_run

NOW = at("2024-06-10T12:00:00")
OTHER = "210987654321"


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def run(
    lake: Lake,
    run_id: str,
    region: str,
    finished: datetime,
    status: str = "succeeded",
    *,
    account: str = ACCOUNT,
    error: str | None = None,
    purged_months: list[str] | None = None,
) -> None:
    """One ledger row, written the way a run (or a purge) writes it."""
    record_run(
        lake,
        {
            "run_id": run_id,
            "account_id": account,
            "region": region,
            "started_at": finished - timedelta(minutes=5),
            "finished_at": finished,
            "pages": 1,
            "invocations": 0,
            "plugins": 0,
            "quarantined": 0,
            "status": status,
            "error": error,
            "purged_months": purged_months,
        },
    )


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """One region per case the status must tell apart."""
    lake = Lake.create(tmp_path / "lake")
    # healthy: succeeded 2 h ago, with data
    ingest(lake, [invocation("c1", "i-1", hours_ago(30), "Success")], region="us-east-1")
    run(lake, "run-a", "us-east-1", hours_ago(26))
    run(lake, "run-b", "us-east-1", hours_ago(2))
    # the last run failed (an older success does not make it healthy); a purge
    # after it is not a run
    ingest(lake, [invocation("c2", "i-2", hours_ago(12), "Failed")], region="eu-west-1")
    run(lake, "run-a", "eu-west-1", hours_ago(26))
    run(lake, "run-b", "eu-west-1", hours_ago(2), "failed", error="AccessDeniedException: no")
    run(lake, "purge-1", "eu-west-1", hours_ago(1), "purged", purged_months=["2024-01"])
    # stale: the last run succeeded, 40 h ago
    ingest(lake, [invocation("c3", "i-3", hours_ago(50), "Success")], region="ap-south-1")
    run(lake, "run-a", "ap-south-1", hours_ago(40))
    # a quiet region: a successful run, no invocations ever (another account)
    run(lake, "run-b", "sa-east-1", hours_ago(3), account=OTHER)
    # data but no run in the ledger (e.g. copied in by hand)
    ingest(lake, [invocation("c4", "i-4", hours_ago(5), "Success")], region="ca-central-1")
    return lake


EXPECTED = [
    RegionStatus(
        account_id=ACCOUNT,
        region="ap-south-1",
        last_run_id="run-a",
        last_run_finished_at=hours_ago(40),
        last_run_status="succeeded",
        last_run_error=None,
        last_success_at=hours_ago(40),
        newest_invocation_at=hours_ago(50),
        healthy=False,
        problem="last success 40.0 h ago",
    ),
    RegionStatus(
        account_id=ACCOUNT,
        region="ca-central-1",
        last_run_id=None,
        last_run_finished_at=None,
        last_run_status=None,
        last_run_error=None,
        last_success_at=None,
        newest_invocation_at=hours_ago(5),
        healthy=False,
        problem="no run recorded",
    ),
    RegionStatus(
        account_id=ACCOUNT,
        region="eu-west-1",
        last_run_id="run-b",
        last_run_finished_at=hours_ago(2),
        last_run_status="failed",
        last_run_error="AccessDeniedException: no",
        last_success_at=hours_ago(26),
        newest_invocation_at=hours_ago(12),
        healthy=False,
        problem="last run failed",
    ),
    RegionStatus(
        account_id=ACCOUNT,
        region="us-east-1",
        last_run_id="run-b",
        last_run_finished_at=hours_ago(2),
        last_run_status="succeeded",
        last_run_error=None,
        last_success_at=hours_ago(2),
        newest_invocation_at=hours_ago(30),
        healthy=True,
        problem=None,
    ),
    RegionStatus(
        account_id=OTHER,
        region="sa-east-1",
        last_run_id="run-b",
        last_run_finished_at=hours_ago(3),
        last_run_status="succeeded",
        last_run_error=None,
        last_success_at=hours_ago(3),
        newest_invocation_at=None,
        healthy=True,
        problem=None,
    ),
]


def test_every_region_is_judged(lake: Lake) -> None:
    report = region_status(lake, max_age_hours=36, now=NOW)
    assert report.regions == EXPECTED
    assert report.exit_code == 1


def test_max_age_decides_staleness(lake: Lake) -> None:
    report = region_status(lake, max_age_hours=48, now=NOW)
    by_region = {r.region: (r.healthy, r.problem) for r in report.regions}
    assert by_region["ap-south-1"] == (True, None)
    assert by_region["eu-west-1"] == (False, "last run failed")


def test_all_healthy_exits_zero(tmp_path: Path) -> None:
    lake = Lake.create(tmp_path / "lake")
    ingest(lake, [invocation("c1", "i-1", hours_ago(30), "Success")], region="us-east-1")
    run(lake, "run-a", "us-east-1", hours_ago(2))
    run(lake, "run-a", "sa-east-1", hours_ago(2))  # no invocations: still healthy
    report = region_status(lake, now=NOW)
    assert [(r.region, r.healthy) for r in report.regions] == [
        ("sa-east-1", True),
        ("us-east-1", True),
    ]
    assert report.exit_code == 0


def test_empty_lake_is_not_healthy(tmp_path: Path) -> None:
    report = region_status(Lake.create(tmp_path / "lake"), now=NOW)
    assert report.regions == []
    assert report.exit_code == 1
    assert report.render() == "no runs recorded yet: nothing has been ingested into this lake"


def test_render_is_an_aligned_table(lake: Lake) -> None:
    assert region_status(lake, now=NOW).render().splitlines() == [
        "account       region        health  last run  status     finished              last success          newest invocation     problem",
        "------------  ------------  ------  --------  ---------  --------------------  --------------------  --------------------  ------------------------------------------",
        "012345678901  ap-south-1    FAIL    run-a     succeeded  2024-06-08 20:00:00Z  2024-06-08 20:00:00Z  2024-06-08 10:00:00Z  last success 40.0 h ago",
        "012345678901  ca-central-1  FAIL    -         -          -                     -                     2024-06-10 07:00:00Z  no run recorded",
        "012345678901  eu-west-1     FAIL    run-b     failed     2024-06-10 10:00:00Z  2024-06-09 10:00:00Z  2024-06-10 00:00:00Z  last run failed: AccessDeniedException: no",
        "012345678901  us-east-1     ok      run-b     succeeded  2024-06-10 10:00:00Z  2024-06-10 10:00:00Z  2024-06-09 06:00:00Z",
        "210987654321  sa-east-1     ok      run-b     succeeded  2024-06-10 09:00:00Z  2024-06-10 09:00:00Z  -",
        "2 of 5 regions healthy (last success within 36 h of 2024-06-10 12:00:00Z)",
    ]
