"""Many accounts: assumed roles, Organizations, one broken account failing alone,
credentials refreshed mid-run, and the same night on a Dask cluster."""

from __future__ import annotations

import pytest

from emulator import Emulator, FleetSpec
from emulator.orgs import OrgAccount
from flows.nightly import with_runner
from pipeline.accounts import organization_accounts, organizations_region
from pipeline.extract import AssumedRole, AwsSettings
from pipeline.history import history
from pipeline.lake import Lake
from pipeline.views import connect
from tests.conftest_emulator import EMULATOR_NOW
from tests.truth import expected_invocation, key, view_rows

MANAGEMENT = "123456789012"
MEMBERS = ["210987654321", "222222222222", "333333333333", "444444444444", "555555555555"]
BROKEN = "666666666666"
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
ORGANIZATION = (
    OrgAccount(MANAGEMENT, state="ACTIVE"),
    *(OrgAccount(a, state="ACTIVE") for a in MEMBERS),
    OrgAccount(BROKEN, state="ACTIVE"),
    OrgAccount("777777777777", state="SUSPENDED"),
    OrgAccount("888888888888", state="PENDING_CLOSURE"),
    OrgAccount("999999999999", status="SUSPENDED", state="CLOSED"),
)


@pytest.fixture(scope="module")
def organization():
    spec = FleetSpec(
        seed=17,
        now=EMULATOR_NOW,
        regions=REGIONS,
        instances_per_region=4,
        account_id=MANAGEMENT,
        organization=ORGANIZATION,
        deny_assume_role=(BROKEN,),
        credential_seconds=3,  # shorter than a run: the role is re-assumed along the way
    )
    with Emulator(spec) as emulator:
        yield emulator


def _truth(emulator, accounts) -> list[dict]:
    rows = [
        expected_invocation(record, account, region)
        for account in accounts
        for region in REGIONS
        for record in emulator.ground_truth(account, region)
    ]
    return sorted(rows, key=lambda r: (r["account_id"], *key(r)))


def _night(emulator, lake, runner: str = "threads", **accounts):
    flow = with_runner(runner, None, 4)
    return flow(
        lake=str(lake),
        regions=list(REGIONS),
        endpoint_url=emulator.url,
        role_name="SsmEtlReader",
        slices=2,
        **accounts,
    )


def _check(emulator, lake, summary, accounts) -> None:
    assert summary.exit_code == 1
    failed = {(r.account_id, r.region) for r in summary.results if not r.ok}
    assert failed == {(BROKEN, region) for region in REGIONS}
    assert all("AccessDenied" in r.error for r in summary.results if not r.ok)
    rows = sorted(view_rows(lake, "invocations"), key=lambda r: (r["account_id"], *key(r)))
    assert rows == _truth(emulator, accounts)
    ledger = (
        connect(Lake.open(lake))
        .sql(
            "SELECT account_id, count(*) FILTER (WHERE status = 'failed') FROM ingest_runs GROUP BY 1 ORDER BY 1"
        )
        .fetchall()
    )
    assert dict(ledger)[BROKEN] == len(REGIONS)
    # One committer per run: many account x regions share each transaction.
    commits = [
        r
        for r in history(Lake.open(lake)).to_pylist()
        if r["run_id"] == summary.run_id and r["table_name"] == "invocations"
    ]
    assert {r["operation"] for r in commits} <= {"ingest", "optimize", "vacuum"}
    ingests = [r for r in commits if r["operation"] == "ingest"]
    assert 1 <= len(ingests) < sum(r.ok for r in summary.results)
    assert max(r["accounts"] for r in ingests) > 1


def test_accounts_by_role_one_broken_account_fails_alone(organization, prefect_api, tmp_path):
    lake = tmp_path / "lake"
    summary = _night(organization, lake, accounts=[*MEMBERS, BROKEN])
    _check(organization, lake, summary, MEMBERS)
    assert {r.account_id for r in summary.results if r.ok} == set(MEMBERS)


def test_organization_takes_active_accounts_only(organization, prefect_api, tmp_path):
    lake = tmp_path / "lake"
    summary = _night(organization, lake, organization=True)
    active = [MANAGEMENT, *MEMBERS]
    _check(organization, lake, summary, active)
    reached = {r.account_id for r in summary.results}
    assert reached == {*active, BROKEN}, "suspended, closing and closed accounts are skipped"


def test_the_same_night_on_a_dask_cluster_equals_the_threaded_one(
    organization, prefect_api, tmp_path
):
    lake = tmp_path / "lake"
    summary = _night(organization, lake, "dask", accounts=[*MEMBERS, BROKEN])
    _check(organization, lake, summary, MEMBERS)


def test_a_dask_night_into_an_s3_lake_equals_ground_truth(organization, prefect_api, s3_lake):
    """Workers share nothing but the S3 lake: five accounts x three regions, one broken role."""
    summary = _night(organization, s3_lake, "dask", accounts=[*MEMBERS, BROKEN])
    _check(organization, s3_lake, summary, MEMBERS)
    assert len({r.account_id for r in summary.results if r.ok}) == 5


@pytest.mark.parametrize(
    ("partition", "region"),
    [("aws", "us-east-1"), ("aws-cn", "cn-northwest-1"), ("aws-us-gov", "us-gov-west-1")],
)
def test_organizations_is_called_in_the_partitions_own_region(partition, region):
    assert organizations_region(partition) == region


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_organization_accounts_signs_for_the_callers_partition(organization, partition):
    settings = AwsSettings(endpoint_url=organization.url)
    before = len(organization.request_log)
    found = organization_accounts(settings, settings.session(), partition)
    assert set(found.active) == {MANAGEMENT, *MEMBERS, BROKEN}
    calls = [e for e in organization.request_log[before:] if e["service"] == "organizations"]
    assert {e["region"] for e in calls} == {organizations_region(partition)}


def test_an_assumed_role_comes_from_the_chain_and_is_refreshed(organization):
    """The role's provider is first in the session's chain; its credentials (three seconds
    long here) are fetched again by botocore before they expire, call after call."""
    member = MEMBERS[0]
    settings = AwsSettings(endpoint_url=organization.url).assuming(
        f"arn:aws:iam::{member}:role/SsmEtlReader", external_id="x-1"
    )
    session = settings.session()
    assert session.get_credentials().method == AssumedRole.METHOD
    sts = settings.client(session, "sts", "us-east-1")
    before = len(organization.request_log)
    accounts = {sts.get_caller_identity()["Account"] for _ in range(3)}
    assert accounts == {member}
    assumed = [e for e in organization.request_log[before:] if e["operation"] == "AssumeRole"]
    assert len(assumed) >= 2, "refreshed before expiry"
    assert {e["params"]["ExternalId"] for e in assumed} == {"x-1"}
