"""A lake under `s3://bucket/prefix` behaves like a local one, over a real S3 server (moto)."""

from __future__ import annotations

import json
import pickle
import time
from datetime import timedelta

import boto3
import duckdb
import pytest

from emulator import Emulator
from pipeline.bi import write_views_database
from pipeline.commit import Committer, Pending
from pipeline.decode import flatten_page
from pipeline.errors import ConfigError, LakeBusyError
from pipeline.flatten import Lineage
from pipeline.lake import AsOf, Lake
from pipeline.purge import purge
from pipeline.query import run_query
from pipeline.schema import INVOCATIONS, TABLES
from pipeline.spool import RegionWriter
from pipeline.storage import LEASE_MARGIN, LEASE_SECONDS
from pipeline.views import connect
from tests.lakes import ACCOUNT, at, ingest, invocation
from tests.nights import Truth, assert_views_equal, night, spec

VIEWS = ("invocations", "command_plugins", "commands", "managed_instances")
LINEAGE = Lineage(ACCOUNT, "eu-west-1", "run-1", 1_772_323_300_000)


@pytest.fixture
def fleet():
    with Emulator(spec(instances_per_region=6)) as running:
        yield running


def _keys(lake: str) -> list[str]:
    bucket, prefix = lake.removeprefix("s3://").split("/", 1)
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    found = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return sorted(k.removeprefix(prefix + "/") for k in found if k.startswith(prefix + "/"))


def _views(lake: str) -> dict[str, list[tuple]]:
    """Every row of each view in VIEWS, lineage dropped, on one connection."""
    con = connect(Lake.open(lake))
    return {
        view: sorted(
            con.sql(f"SELECT * EXCLUDE (run_id, ingested_at) FROM {view}").fetchall(), key=repr
        )
        for view in VIEWS
    }


def test_a_night_on_s3_equals_the_same_night_on_disk(fleet, s3_lake, tmp_path, prefect_api):
    night(fleet, tmp_path / "lake")
    night(fleet, s3_lake)
    on_s3, on_disk = _views(s3_lake), _views(str(tmp_path / "lake"))
    for view in VIEWS:
        assert on_s3[view] == on_disk[view], view
    assert len(on_s3["invocations"]) > 20 and on_s3["managed_instances"]
    keys = _keys(s3_lake)
    assert "lake.json" in keys and "_lock.json" not in keys
    assert not [k for k in keys if k.startswith("_spool/") or k.endswith("/")]
    for table in TABLES:
        assert f"{table.name}/_delta_log/00000000000000000000.json" in keys
    lake = pickle.loads(pickle.dumps(Lake.open(s3_lake)))  # as a Dask worker receives it
    assert lake.location == s3_lake and lake.table_uri(TABLES[0]) == f"{s3_lake}/invocations"
    assert lake.storage.exists("lake.json")


def test_two_nights_time_travel_and_a_purge_on_s3(fleet, s3_lake, prefect_api):
    truth = Truth()
    first = night(fleet, s3_lake)
    truth.observe(fleet)
    count = "SELECT count(*) AS n FROM invocations"
    after_first = run_query(Lake.open(s3_lake), count).to_pylist()
    fleet.clock.advance(timedelta(days=1))
    night(fleet, s3_lake)
    truth.observe(fleet)
    assert_views_equal(s3_lake, truth)
    lake = Lake.open(s3_lake)
    assert run_query(lake, count, as_of=AsOf(run_id=first.run_id)).to_pylist() == after_first

    with lake.lock() as lease:
        result = purge(lake, 0, "purge-1", lease, keep_days=0, now=at("2026-06-01T00:00:00"))
    assert result.rows["invocations"] == len(truth.invocations)
    assert run_query(lake, count).to_pylist() == [{"n": 0}]
    live = {
        key for key in _keys(s3_lake) if key.startswith("invocations/") and key.endswith(".parquet")
    }
    assert not live, "vacuum with no retention deleted the purged files"


def test_a_fresh_lease_refuses_a_second_run_and_a_stale_one_is_taken_over(
    fleet, s3_lake, prefect_api
):
    lake = Lake.create(s3_lake)
    with lake.lock():
        assert "_lock.json" in _keys(s3_lake)
        with pytest.raises(LakeBusyError, match=f"holds the lake {s3_lake}"):
            night(fleet, s3_lake)
    assert "_lock.json" not in _keys(s3_lake)
    assert run_query(Lake.open(s3_lake), "SELECT count(*) AS n FROM invocations").to_pylist() == [
        {"n": 0}
    ]

    stale = {"owner": "crashed-host:1:dead", "expires": time.time() - 1}
    lake.storage.write_text("_lock.json", json.dumps(stale))
    lake.storage.write_text("_spool/crashed/x.parquet", "half")
    night(fleet, s3_lake)
    assert run_query(Lake.open(s3_lake), "SELECT count(*) AS n FROM invocations").to_pylist()[0][
        "n"
    ]
    assert not [k for k in _keys(s3_lake) if k.startswith(("_spool/", "_lock"))]


def test_a_lease_lost_to_another_run_stops_commits(s3_lake, monkeypatch):
    """Fencing: the holder renews with If-Match on its own ETag; once another run has taken
    the lease over (it expired during a long pause), the holder refuses to commit."""
    lake = Lake.create(s3_lake)
    with lake.lock() as lease:
        lease.check()  # held: no error
        usurper = {"owner": "other-host:2:new", "expires": time.time() + LEASE_SECONDS}
        lake.storage.write_text("_lock.json", json.dumps(usurper))
        lease.renew()
        with pytest.raises(LakeBusyError, match="another run took the lease over"):
            lease.check()
        lake.ensure_tables()
        writer = RegionWriter(lake.storage, "run-1", ACCOUNT, "eu-west-1")
        record = invocation("c-1", "i-00000001", at("2026-02-01T00:00:00"), "Success")
        writer.add(INVOCATIONS, flatten_page([record], LINEAGE).invocations)
        committer = Committer(lake, "run-1", lease)
        committer.add(Pending(writer.close(), None))
        with pytest.raises(LakeBusyError, match="lost the lease"):
            committer.commit()
    assert run_query(lake, "SELECT count(*) AS n FROM invocations").to_pylist() == [{"n": 0}]
    assert json.loads(lake.storage.read_text("_lock.json"))["owner"] == usurper["owner"]
    with pytest.raises(LakeBusyError), lake.lock():  # the usurper's lease is fresh
        pass


def test_a_lease_that_could_not_be_renewed_in_time_stops_commits(s3_lake, monkeypatch):
    lake = Lake.create(s3_lake)
    with lake.lock() as lease:
        lease.check()
        later = time.monotonic() + LEASE_SECONDS - LEASE_MARGIN + 1  # renewals all failed
        monkeypatch.setattr("pipeline.storage.time.monotonic", lambda: later)
        with pytest.raises(LakeBusyError, match="could not be renewed in time"):
            lease.check()


def test_sql_and_a_views_database_over_the_s3_lake(fleet, s3_lake, tmp_path, prefect_api):
    night(fleet, s3_lake)
    lake = Lake.open(s3_lake)
    sql = "SELECT region, count(*) AS n FROM invocations GROUP BY region ORDER BY region"
    table = run_query(lake, sql)
    assert [r["region"] for r in table.to_pylist()] == ["eu-west-1", "us-east-1"]

    database = write_views_database(lake, tmp_path / "views.duckdb")
    con = duckdb.connect(str(database), read_only=True)
    lake.storage.register(con)  # a BI tool would load httpfs instead
    assert con.sql(sql).fetchall() == [tuple(r.values()) for r in table.to_pylist()]


def test_sse_kms_key_encrypts_every_object_the_lake_writes(s3_lake):
    key_id = "alias/ssm-etl-lake"
    lake = Lake.create(s3_lake, sse_kms_key_id=key_id)
    ingest(lake, [invocation("c-1", "i-00000001", at("2026-02-01T00:00:00"), "Success")])
    bucket, prefix = s3_lake.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3")
    names = _keys(s3_lake)
    assert any(n.endswith(".parquet") for n in names) and any("_delta_log" in n for n in names)
    for name in names:
        head = client.head_object(Bucket=bucket, Key=f"{prefix}/{name}")
        assert head.get("ServerSideEncryption") == "aws:kms", name
        assert head.get("SSEKMSKeyId", "").endswith(key_id), name


def test_credentials_are_never_frozen_into_the_lake(s3_lake):
    """delta-rs and pyarrow resolve (and refresh) the standard chain themselves."""
    lake = Lake.open(Lake.create(s3_lake).location)
    options = lake.storage.delta_options()
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(options)
    assert options["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert "access_key=" not in repr(lake.storage.fs) or "None" in repr(lake.storage.fs)


def test_a_prefix_holding_something_else_is_refused(s3_lake):
    bucket, prefix = s3_lake.removeprefix("s3://").split("/", 1)
    boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/notes.txt", Body=b"x")
    with pytest.raises(ConfigError, match="not empty and is not a lake"):
        Lake.create(s3_lake)
    with pytest.raises(ConfigError, match="no lake.json"):
        Lake.open(s3_lake)


def test_the_cli_runs_queries_and_reports_on_an_s3_lake(fleet, s3_lake, prefect_api, tmp_path):
    """The commands as a user types them, with the standard endpoint variables."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "AWS_ENDPOINT_URL_SSM": fleet.url,
        "AWS_ENDPOINT_URL_STS": fleet.url,
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "flows.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    region = fleet.spec.regions[0]
    done = cli("run", "--regions", region, "--lake", s3_lake)
    assert done.returncode == 0, done.stderr[-2000:]
    done = cli(
        "sql", "--lake", s3_lake, "--format", "json", "SELECT count(*) AS n FROM invocations"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"n": len(fleet.ground_truth(fleet.spec.account_id, region))}
    ]
    report = tmp_path / "report.html"
    assert cli("report", "--lake", s3_lake, "--out", str(report)).returncode == 0
    assert s3_lake in report.read_text()
    assert cli("status", "--lake", s3_lake).returncode == 0
    done = cli("history", "--lake", s3_lake, "--format", "json")
    assert done.returncode == 0 and json.loads(done.stdout), done.stderr
