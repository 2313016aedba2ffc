"""End to end: emulator over HTTP -> Prefect flow -> Delta lake -> DuckDB views.

Expected rows come from the emulator's records through the mapping written
out in tests/truth.py, not through the flattener under test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from emulator import Emulator, FleetSpec
from flows.nightly import nightly
from pipeline.lake import Lake
from pipeline.schema import TABLES, TableSpec
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
    summary = nightly(
        lake=str(lake), regions=[*FLEET_REGIONS, EMPTY_REGION], endpoint_url=fleet.url
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


FILE_NAME = re.compile(r"part-\d{5}-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-c000\.zstd\.parquet")


def _adds(lake: Lake, spec: TableSpec, version: int | None = None) -> list[dict]:
    """The add actions of the table's version: each live data file and its partition."""
    table = DeltaTable(lake.table_uri(spec), version=version)
    return pa.table(table.get_add_actions(flatten=True)).to_pylist()


def _month(value) -> str:
    return (value.astimezone(UTC) if isinstance(value, datetime) else value).strftime("%Y-%m")


def test_layout_is_delta_tables_hive_partitioned_by_utc_month(nightly_lake):
    root, _ = nightly_lake
    lake = Lake.open(root)
    partitions = {}
    for spec in TABLES:
        adds = _adds(lake, spec)
        partitions[spec.name] = set()
        for add in adds:
            values = tuple(add[f"partition.{column}"] for column in spec.partition_by)
            partitions[spec.name].add(values)
            folder, name = add["path"].rsplit("/", 1)
            assert folder == "/".join(
                f"{column}={value}" for column, value in zip(spec.partition_by, values, strict=True)
            )
            assert FILE_NAME.fullmatch(name), name
            data = pq.read_table(root / spec.name / add["path"])
            assert data.num_rows == add["num_records"] > 0
            assert not set(spec.partition_by) & set(data.column_names), "in the path only"
            if spec.month_from is not None:
                months = {_month(v) for v in data.column(spec.month_from).to_pylist()}
                assert months == {values[2]}, (spec.name, add["path"])
        # Every data file is one a commit added (none written beside the log), and every
        # file the current version reads is there.
        added = {
            a["path"] for v in range(lake.table(spec).version() + 1) for a in _adds(lake, spec, v)
        }
        on_disk = {
            p.relative_to(root / spec.name).as_posix()
            for p in (root / spec.name).rglob("*.parquet")
            if "_delta_log" not in p.parts
        }
        assert {a["path"] for a in adds} <= on_disk <= added
    months = {"2026-01", "2026-02", "2026-03"}
    fleet = {(ACCOUNT, region) for region in FLEET_REGIONS}
    assert partitions["invocations"] == {(*r, m) for r in fleet for m in months}, "UTC months"
    assert {p[:2] for p in partitions["command_plugins"]} == fleet
    assert {p[2] for p in partitions["command_plugins"]} <= months
    assert partitions["managed_instances"] == fleet  # the empty region has no inventory
    assert partitions["ingest_runs"] == {*fleet, (ACCOUNT, EMPTY_REGION)}  # but its ledger row
    assert not [p for p in (root / "_spool").rglob("*") if p.is_file()], "spool left"


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
    start = len(fleet.request_log)
    done = _cli(args, env)
    assert done.returncode == 0, done.stderr
    assert {r["account_id"] for r in view_rows(lake, "invocations")} == {"012345678901"}
    services = {entry["service"] for entry in fleet.request_log[start:]}
    assert "ssm" in services and "sts" not in services


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
    root = tmp_path / "lake"
    lake = Lake.create(root)
    env = {"PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": fleet.url}
    with lake.lock():
        done = _cli(["run", "--regions", "eu-west-1", "--lake", str(root)], env)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines()[-1] == (
        f"ssm-etl: error: another ssm-etl run holds the lake {root}"
    )
    assert view_rows(root, "invocations") == []


def test_each_run_publishes_a_summary_and_a_table_artifact(nightly_lake):
    from prefect.client.orchestration import get_client

    _, summary = nightly_lake
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    keys = ArtifactFilter(key=ArtifactFilterKey(any_=["ssm-etl-summary", "ssm-etl-regions"]))
    with get_client(sync_client=True) as client:  # newest first: the session's server has many
        artifacts = client.read_artifacts(artifact_filter=keys, sort=ArtifactSort.CREATED_DESC)
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


def test_region_tasks_carry_the_tags_a_concurrency_limit_names_and_no_other(
    fleet, prefect_api, tmp_path
):
    """Prefect takes a slot for every tag of a starting task, a database write that
    collides on its SQLite server when regions start together: only tags with a limit."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag="region:eu-west-1", concurrency_limit=50)
        try:
            state = nightly(
                lake=str(tmp_path / "lake"), regions=["eu-west-1", "us-east-1"],
                endpoint_url=fleet.url, return_state=True,
            )  # fmt: skip
        finally:
            client.delete_concurrency_limit_by_tag("region:eu-west-1")
        flow_run = state.state_details.flow_run_id
        runs = [run for run in client.read_task_runs() if run.flow_run_id == flow_run]
    assert state.result().exit_code == 0
    tags = {run.name: set(run.tags) for run in runs}
    assert tags == {f"{ACCOUNT}/eu-west-1": {"region:eu-west-1"}, f"{ACCOUNT}/us-east-1": set()}


def test_the_limited_tags_are_read_across_pages_of_limits(prefect_api, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    import flows.nightly

    monkeypatch.setattr(flows.nightly, "LIMITS_PAGE", 2)
    tags = [f"account:{n:012d}" for n in range(4)]
    with get_client(sync_client=True) as client:
        try:
            for tag in tags:
                client.create_concurrency_limit(tag=tag, concurrency_limit=2)
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name="nightly", limit=1)
            )
            limited = flows.nightly.limited_tags()
        finally:
            for tag in tags:
                client.delete_concurrency_limit_by_tag(tag)
            client.delete_global_concurrency_limit_by_name("nightly")
    assert set(tags) <= limited and "nightly" not in limited
