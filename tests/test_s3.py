"""A lake under `s3://bucket/prefix` behaves like a local one, over a real S3 server."""

from __future__ import annotations

import json
import pickle
import time
from datetime import UTC, datetime, timedelta
from pathlib import PurePath

import boto3
import duckdb
import pytest

from emulator import Emulator, FleetSpec
from pipeline.bi import write_views_database
from pipeline.compact import data_files, sweep
from pipeline.config import RunConfig
from pipeline.errors import ConfigError, LakeBusyError
from pipeline.extract import AwsSettings
from pipeline.ingest import run_local
from pipeline.lake import Lake, is_compacted
from pipeline.purge import purge
from pipeline.query import run_query
from pipeline.schema import COMMAND_PLUGINS, INVOCATIONS
from pipeline.views import connect
from tests.truth import key, view_rows

START = datetime(2026, 2, 27, 6, 0, tzinfo=UTC)
REGIONS = ("us-east-1", "eu-west-1")
ACCOUNT = "123456789012"
VIEWS = ("invocations", "command_plugins", "commands", "managed_instances")


@pytest.fixture
def emulator():
    spec = FleetSpec(
        seed=29, now=START, regions=REGIONS, instances_per_region=6, account_id=ACCOUNT
    )
    with Emulator(spec) as running:
        yield running


def _night(emulator: Emulator, lake: str, grace_seconds: float = 0) -> None:
    config = RunConfig(lake=lake, regions=REGIONS, grace_seconds=grace_seconds)
    summary = run_local(config, AwsSettings(endpoint_url=emulator.url))
    assert summary.exit_code == 0, summary.render()


def _keys(lake: str) -> list[str]:
    bucket, prefix = lake.removeprefix("s3://").split("/", 1)
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    found = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return sorted(k.removeprefix(prefix + "/") for k in found if k.startswith(prefix + "/"))


def _clean_partitions(lake: Lake) -> set[bool]:
    return {clean for (clean,) in connect(lake).sql("SELECT clean FROM lake_files").fetchall()}


def _partition_files(lake: Lake) -> list[list[str]]:
    """Data files per invocation/plugin month partition."""
    storage = lake.storage
    months = sorted(
        {
            f.parent
            for table in (INVOCATIONS, COMMAND_PLUGINS)
            for f in storage.walk(lake.table_dir(table))
            if "_none" not in str(f)
        }
    )
    return [[f.name for f in data_files(month, storage)] for month in months]


def _views(lake: str) -> dict[str, list[tuple]]:
    """Every row of each view in VIEWS, lineage dropped, on one connection."""
    con = connect(Lake.open(lake))
    return {
        view: sorted(
            con.sql(f"SELECT * EXCLUDE (run_id, ingested_at) FROM {view}").fetchall(), key=repr
        )
        for view in VIEWS
    }


def test_a_night_on_s3_equals_the_same_night_on_disk(emulator, s3_lake, tmp_path):
    local = str(tmp_path / "lake")
    _night(emulator, local)
    _night(emulator, s3_lake)
    on_s3, on_disk = _views(s3_lake), _views(local)
    for view in VIEWS:
        assert on_s3[view] == on_disk[view], view
    assert len(on_s3["invocations"]) > 20 and on_s3["managed_instances"]
    keys = _keys(s3_lake)
    assert "lake.json" in keys and "_lock.json" not in keys
    assert not [k for k in keys if k.startswith("_staging/") or k.endswith("/")]
    lake = pickle.loads(pickle.dumps(Lake.open(s3_lake)))  # as a Dask worker receives it
    assert lake.location == s3_lake and lake.glob(INVOCATIONS).startswith(s3_lake + "/")
    assert lake.storage.exists(lake.root / "lake.json")


def test_two_nights_compact_and_retire_after_the_grace(emulator, s3_lake):
    _night(emulator, s3_lake)  # no grace: the run leaves nothing retired behind
    lake = Lake.open(s3_lake)
    # A first backfill's months are clean as committed: one file per slice, no rewrite.
    assert all(
        files and all(is_compacted(PurePath(f)) for f in files) for files in _partition_files(lake)
    )
    assert _clean_partitions(lake) == {True}
    first = {k for k in _keys(s3_lake) if k.endswith(".parquet")}
    first_names = {PurePath(k).name for k in first}
    emulator.clock.advance(timedelta(days=1))
    _night(emulator, s3_lake, grace_seconds=3600)

    inv = sorted(view_rows(s3_lake, "invocations"), key=key)
    assert len({key(r) for r in inv}) == len(inv), "no duplicates while old files linger"
    manifests = [k for k in _keys(s3_lake) if k.startswith("_trash/")]
    assert manifests
    retired = {
        name
        for m in manifests
        for name in json.loads(lake.storage.read_text(lake.root / m))["files"]
    }
    assert retired & first and retired <= set(_keys(s3_lake))
    assert sweep(lake, grace_seconds=3600) == 0

    assert sweep(lake, grace_seconds=3600, now=time.time() + 3600) == len(retired)
    keys = set(_keys(s3_lake))
    assert not retired & keys
    assert [k for k in keys if k.startswith("_trash/")] == ["_trash/_empty.json"]
    assert _clean_partitions(lake) == {True}
    touched = [
        files for files in _partition_files(lake) if any(f not in first_names for f in files)
    ]
    assert touched and all(len(files) == 1 for files in touched)
    assert sorted(view_rows(s3_lake, "invocations"), key=key) == inv

    with lake.lock():
        result = purge(lake, older_than_days=0, run_id="purge-1", now=START + timedelta(days=90))
        assert sweep(lake, grace_seconds=0) == result.files > 0
    assert view_rows(s3_lake, "invocations") == []


def test_a_fresh_lease_refuses_a_second_run_and_a_stale_one_is_taken_over(emulator, s3_lake):
    lake = Lake.create(s3_lake)
    with lake.lock():
        assert "_lock.json" in _keys(s3_lake)
        with pytest.raises(LakeBusyError, match=f"holds the lake {s3_lake}"):
            _night(emulator, s3_lake)
    assert "_lock.json" not in _keys(s3_lake)
    assert view_rows(s3_lake, "invocations") == []

    stale = {"owner": "crashed-host:1:dead", "expires": time.time() - 1}
    lake.storage.write_text(lake.root / "_lock.json", json.dumps(stale))
    lake.storage.write_text(lake.root / "_staging" / "crashed" / "x.parquet", "half")
    _night(emulator, s3_lake)
    assert view_rows(s3_lake, "invocations")
    assert not [k for k in _keys(s3_lake) if k.startswith(("_staging/", "_lock"))]


def test_sql_and_a_views_database_over_the_s3_lake(emulator, s3_lake, tmp_path):
    _night(emulator, s3_lake)
    lake = Lake.open(s3_lake)
    sql = "SELECT region, count(*) AS n FROM invocations GROUP BY region ORDER BY region"
    table = run_query(lake, sql)
    counts: dict[str, int] = {}
    for row in view_rows(s3_lake, "invocations"):
        counts[row["region"]] = counts.get(row["region"], 0) + 1
    assert table.to_pylist() == [{"region": r, "n": n} for r, n in sorted(counts.items())]

    database = write_views_database(lake, tmp_path / "views.duckdb")
    con = duckdb.connect(str(database), read_only=True)
    lake.storage.register(con)  # a BI tool would load httpfs instead
    assert con.sql(sql).fetchall() == [tuple(r.values()) for r in table.to_pylist()]


def test_sse_kms_key_encrypts_every_object_the_lake_writes(s3_lake):
    key_id = "alias/ssm-etl-lake"
    lake = Lake.create(s3_lake, sse_kms_key_id=key_id)
    bucket, prefix = s3_lake.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3")
    for name in _keys(s3_lake):
        head = client.head_object(Bucket=bucket, Key=f"{prefix}/{name}")
        assert head.get("ServerSideEncryption") == "aws:kms", name
        assert head.get("SSEKMSKeyId", "").endswith(key_id), name
    assert lake.storage.exists(lake.root / "lake.json")


def test_a_prefix_holding_something_else_is_refused(s3_lake):
    bucket, prefix = s3_lake.removeprefix("s3://").split("/", 1)
    boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/notes.txt", Body=b"x")
    with pytest.raises(ConfigError, match="not empty and is not a lake"):
        Lake.create(s3_lake)
    with pytest.raises(ConfigError, match="no lake.json"):
        Lake.open(s3_lake)


def test_the_cli_runs_queries_and_reports_on_an_s3_lake(emulator, s3_lake, prefect_api, tmp_path):
    """The commands as a user types them, with the standard endpoint variables."""
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "AWS_ENDPOINT_URL_SSM": emulator.url,
        "AWS_ENDPOINT_URL_STS": emulator.url,
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "flows.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    region = emulator.spec.regions[0]
    done = cli("run", "--regions", region, "--lake", s3_lake)
    assert done.returncode == 0, done.stderr[-2000:]
    done = cli(
        "sql", "--lake", s3_lake, "--format", "json", "SELECT count(*) AS n FROM invocations"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"n": len(emulator.ground_truth(emulator.spec.account_id, region))}
    ]
    report = tmp_path / "report.html"
    assert cli("report", "--lake", s3_lake, "--out", str(report)).returncode == 0
    assert s3_lake in report.read_text()
    assert cli("status", "--lake", s3_lake).returncode == 0
