"""End to end: emulator over HTTP -> Prefect flow -> Parquet lake -> DuckDB views.

The expected rows are derived here, field by field from the emulator's records,
with a mapping written out in this file rather than by the flattener under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.nightly import nightly
from pipeline.emulator import Emulator, FleetSpec
from pipeline.lake import Lake
from pipeline.views import connect

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


def _ms(value):
    return None if value is None else round(value * 1000)


def expected_invocation(record: dict, account: str, region: str) -> dict:
    notification = record.get("NotificationConfig") or {}
    cloud_watch = record.get("CloudWatchOutputConfig") or {}
    requested = _ms(record["RequestedDateTime"])
    return {
        "account_id": account,
        "region": region,
        "command_id": record["CommandId"],
        "instance_id": record["InstanceId"],
        "instance_name": record.get("InstanceName"),
        "comment": record.get("Comment"),
        "document_name": record.get("DocumentName"),
        "document_version": record.get("DocumentVersion"),
        "requested_date_time": requested,
        "requested_date": datetime.fromtimestamp(requested / 1000, UTC).date().isoformat(),
        "requested_month": datetime.fromtimestamp(requested / 1000, UTC).strftime("%Y-%m"),
        "status": record.get("Status"),
        "status_details": record.get("StatusDetails"),
        "trace_output": record.get("TraceOutput"),
        "standard_output_url": record.get("StandardOutputUrl"),
        "standard_error_url": record.get("StandardErrorUrl"),
        "service_role": record.get("ServiceRole"),
        "notification_arn": notification.get("NotificationArn"),
        "notification_events": notification.get("NotificationEvents"),
        "notification_type": notification.get("NotificationType"),
        "cloud_watch_log_group_name": cloud_watch.get("CloudWatchLogGroupName"),
        "cloud_watch_output_enabled": cloud_watch.get("CloudWatchOutputEnabled"),
    }


def expected_plugins(record: dict, account: str, region: str) -> list[dict]:
    requested = _ms(record["RequestedDateTime"])
    day = datetime.fromtimestamp(requested / 1000, UTC)
    return [
        {
            "account_id": account,
            "region": region,
            "command_id": record["CommandId"],
            "instance_id": record["InstanceId"],
            "requested_date": day.date().isoformat(),
            "requested_month": day.strftime("%Y-%m"),
            "plugin_index": index,
            "name": plugin.get("Name"),
            "status": plugin.get("Status"),
            "status_details": plugin.get("StatusDetails"),
            "response_code": plugin.get("ResponseCode"),
            "response_start_date_time": _ms(plugin.get("ResponseStartDateTime")),
            "response_finish_date_time": _ms(plugin.get("ResponseFinishDateTime")),
            "output": plugin.get("Output"),
            "standard_output_url": plugin.get("StandardOutputUrl"),
            "standard_error_url": plugin.get("StandardErrorUrl"),
            "output_s3_region": plugin.get("OutputS3Region"),
            "output_s3_bucket_name": plugin.get("OutputS3BucketName"),
            "output_s3_key_prefix": plugin.get("OutputS3KeyPrefix"),
        }
        for index, plugin in enumerate(record.get("CommandPlugins") or [])
    ]


def view_rows(lake: Path, view: str) -> list[dict]:
    """A view's rows with timestamps as epoch ms and dates as ISO text, lineage dropped."""
    con = connect(Lake.open(lake))
    table = con.sql(f"SELECT * EXCLUDE (run_id, ingested_at) FROM {view}").to_arrow_table()
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        elif pa.types.is_date(column.type):
            column = column.cast(pa.string())
        columns[name] = column
    return pa.table(columns).to_pylist()


def _key(row: dict) -> tuple:
    return (row["region"], row["command_id"], row["instance_id"], row.get("plugin_index", -1))


def ground_truth(emulator, regions=FLEET_REGIONS) -> tuple[list[dict], list[dict]]:
    invocations, plugins = [], []
    for region in regions:
        for record in emulator.ground_truth(ACCOUNT, region):
            invocations.append(expected_invocation(record, ACCOUNT, region))
            plugins.extend(expected_plugins(record, ACCOUNT, region))
    return sorted(invocations, key=_key), sorted(plugins, key=_key)


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
    invocations, plugins = ground_truth(fleet)
    assert sum(r.invocations for r in summary.results) == len(invocations)
    assert sorted(view_rows(lake, "invocations"), key=_key) == invocations
    assert sorted(view_rows(lake, "command_plugins"), key=_key) == plugins


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
    before = sorted(view_rows(lake, "invocations"), key=_key)
    summary = nightly(lake=str(lake), regions=list(FLEET_REGIONS), endpoint_url=fleet.url)
    assert summary.exit_code == 0
    assert sorted(view_rows(lake, "invocations"), key=_key) == before
    plugins = sorted(view_rows(lake, "command_plugins"), key=_key)
    assert plugins == ground_truth(fleet)[1]


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
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
    assert sorted(rows, key=_key) == ground_truth(fleet)[0]


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
