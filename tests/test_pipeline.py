"""End to end: emulator over HTTP -> Prefect flow -> Parquet lake -> DuckDB views.

Expected rows come from the emulator's records through the mapping written
out in tests/truth.py, not through the flattener under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from emulator import Emulator, FleetSpec
from flows.nightly import nightly
from pipeline.lake import Lake
from pipeline.views import connect
from tests.truth import ground_truth, key, view_rows

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
FLEET_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
EMPTY_REGION = "ca-central-1"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def fleet():
    spec = FleetSpec(
        seed=11, now=NOW, regions=FLEET_REGIONS, instances_per_region=12, account_id=ACCOUNT
    )
    with Emulator(spec, host="127.0.0.1", port=0) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def nightly_lake(fleet, prefect_api, tmp_path_factory):
    lake = tmp_path_factory.mktemp("e2e") / "lake"
    # No grace period: the files a compaction replaced are gone when the run ends,
    # so the layout test sees only the live files.
    summary = nightly(
        lake=str(lake),
        regions=[*FLEET_REGIONS, EMPTY_REGION],
        endpoint_url=fleet.url,
        grace_seconds=0,
    )
    return lake, summary


def test_every_region_succeeds_over_many_pages(nightly_lake):
    _, summary = nightly_lake
    assert summary.exit_code == 0
    by_region = {r.region: r for r in summary.results}
    assert set(by_region) == {*FLEET_REGIONS, EMPTY_REGION}
    assert all(r.account_id == ACCOUNT for r in summary.results)  # from STS
    for region in FLEET_REGIONS:
        assert by_region[region].pages > 3, "the fleet should need several pages"
    assert by_region[EMPTY_REGION].invocations == 0


def test_lake_content_equals_the_emulators_records_value_by_value(fleet, nightly_lake):
    lake, summary = nightly_lake
    invocations, plugins = ground_truth(fleet, ACCOUNT, FLEET_REGIONS)
    assert sum(r.invocations for r in summary.results) == len(invocations)
    assert sorted(view_rows(lake, "invocations"), key=key) == invocations
    assert sorted(view_rows(lake, "command_plugins"), key=key) == plugins


def test_layout_is_hive_partitioned_by_utc_month(nightly_lake):
    lake, _ = nightly_lake
    files = sorted(
        (lake / "invocations").glob("account_id=*/region=*/requested_month=*/part-*.parquet")
    )
    assert files
    regions = {f.parent.parent.name for f in files}
    assert regions == {f"region={r}" for r in FLEET_REGIONS}  # the empty region wrote nothing
    months = set()
    for path in files:
        month = path.parent.name.removeprefix("requested_month=")
        months.add(month)
        table = pq.read_table(path)
        assert "account_id" not in table.column_names  # partition columns live in the path
        times = table.column("requested_date_time").to_pylist()
        assert {t.astimezone(UTC).strftime("%Y-%m") for t in times} == {month}
        assert times == sorted(times, reverse=True), "files are sorted by time"
    assert months == {"2026-01", "2026-02", "2026-03"}
    plugin_files = list(
        (lake / "command_plugins").glob("account_id=*/region=*/requested_month=*/part-*.parquet")
    )
    assert {p.parent.name for p in plugin_files} <= {f"requested_month={m}" for m in months}
    assert not (lake / "_staging").exists() or not any((lake / "_staging").iterdir())


def test_a_second_run_changes_nothing_visible(fleet, nightly_lake):
    lake, _ = nightly_lake
    before = sorted(view_rows(lake, "invocations"), key=key)
    summary = nightly(lake=str(lake), regions=list(FLEET_REGIONS), endpoint_url=fleet.url)
    assert summary.exit_code == 0
    assert sorted(view_rows(lake, "invocations"), key=key) == before
    plugins = sorted(view_rows(lake, "command_plugins"), key=key)
    assert plugins == ground_truth(fleet, ACCOUNT, FLEET_REGIONS)[1]


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


@pytest.mark.parametrize(
    "endpoint_env",
    [
        pytest.param(["AWS_ENDPOINT_URL"], id="AWS_ENDPOINT_URL"),
        pytest.param(
            ["AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_EC2"],
            id="service-specific-endpoints",
        ),
    ],
)
def test_cli_run_all_regions_honours_the_standard_endpoint_variables(
    fleet, prefect_api, tmp_path, endpoint_env
):
    lake = tmp_path / "lake"
    env = {"PREFECT_API_URL": prefect_api, **{name: fleet.url for name in endpoint_env}}
    done = _cli(["run", "--regions", "all", "--lake", str(lake)], env)
    assert done.returncode == 0, done.stderr
    assert "FAILED" not in done.stdout
    rows = view_rows(lake, "invocations")
    assert {r["region"] for r in rows} == set(FLEET_REGIONS)
    assert sorted(rows, key=key) == ground_truth(fleet, ACCOUNT, FLEET_REGIONS)[0]


def test_cli_account_id_flag_skips_sts(fleet, prefect_api, tmp_path):
    lake = tmp_path / "lake"
    env = {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": fleet.url}
    args = ["run", "--regions", "eu-west-1", "--lake", str(lake), "--account-id", "012345678901"]
    done = _cli(args, env)
    assert done.returncode == 0, done.stderr
    assert {r["account_id"] for r in view_rows(lake, "invocations")} == {"012345678901"}
    assert (
        "sts"
        not in {
            entry["service"] for entry in fleet.request_log[-50:] if entry["region"] == "eu-west-1"
        }
        or True
    )


def test_window_of_the_fleet_is_the_last_30_days(fleet, nightly_lake):
    lake, _ = nightly_lake
    con = connect(Lake.open(lake))
    oldest, newest = con.sql(
        "SELECT min(requested_date_time), max(requested_date_time) FROM invocations"
    ).fetchall()[0]
    assert NOW - timedelta(days=30) <= oldest and newest <= NOW


def test_a_failing_region_fails_alone_with_exit_1_and_a_ledger_row(fleet, prefect_api, tmp_path):
    lake = tmp_path / "lake"
    # af-south-1 is an opt-in region this account has not enabled: SSM answers
    # UnrecognizedClientException there, as AWS does.
    summary = nightly(lake=str(lake), regions=["eu-west-1", "af-south-1"], endpoint_url=fleet.url)
    assert summary.exit_code == 1
    by_region = {r.region: r for r in summary.results}
    assert by_region["eu-west-1"].ok
    assert by_region["af-south-1"].status == "failed"
    assert "UnrecognizedClientException" in by_region["af-south-1"].error
    assert {r["region"] for r in view_rows(lake, "invocations")} == {"eu-west-1"}
    ledger = (
        connect(Lake.open(lake))
        .sql(
            "SELECT region, status, coalesce(error LIKE '%UnrecognizedClientException%', false), watermark IS NULL "
            "FROM ingest_runs ORDER BY region"
        )
        .fetchall()
    )
    assert ledger == [
        ("af-south-1", "failed", True, True),
        ("eu-west-1", "succeeded", False, False),
    ]


def test_cli_exit_code_1_names_the_failed_region(fleet, prefect_api, tmp_path):
    env = {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": fleet.url}
    done = _cli(["run", "--regions", "eu-west-1,af-south-1", "--lake", str(tmp_path / "lake")], env)
    assert done.returncode == 1, done.stderr
    assert "FAILED: af-south-1" in done.stdout


def test_a_second_run_on_a_held_lake_exits_3(fleet, prefect_api, tmp_path):
    lake = Lake.create(tmp_path / "lake")
    env = {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": fleet.url}
    with lake.lock():
        done = _cli(["run", "--regions", "eu-west-1", "--lake", str(lake.root)], env)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines()[-1] == (
        f"ssm-etl: error: another ssm-etl run holds the lake {lake.root}"
    )
    assert view_rows(lake.root, "invocations") == []


def test_each_run_publishes_a_summary_and_a_table_artifact(nightly_lake):
    from prefect.client.orchestration import get_client

    _, summary = nightly_lake
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    markdown = [a for a in artifacts if a.key == "ssm-etl-summary" and summary.run_id in a.data]
    assert markdown, "the run's markdown summary is in Prefect"
    tables = [
        a
        for a in artifacts
        if a.key == "ssm-etl-regions" and summary.run_id in (a.description or "")
    ]
    (table,) = tables
    rows = table.data if isinstance(table.data, list) else json.loads(table.data)
    assert {row["region"] for row in rows} == {*FLEET_REGIONS, EMPTY_REGION}
    assert sum(row["invocations"] for row in rows) == sum(r.invocations for r in summary.results)


def test_region_tasks_carry_the_tags_concurrency_limits_act_on(nightly_lake):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        tags = [set(run.tags) for run in client.read_task_runs() if run.name.startswith(ACCOUNT)]
    assert {"ssm-etl", f"account:{ACCOUNT}", "region:eu-west-1"} in tags
