"""The lake's layout rules: creation, refusal of foreign paths, lock, staging."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipeline.errors import ConfigError, LakeBusyError
from pipeline.flatten import Lineage, flatten_page
from pipeline.lake import FORMAT_VERSION, Lake
from pipeline.schema import COMMAND_PLUGINS, INVOCATIONS, TABLES

RECORD = {
    "CommandId": "0b2e4c1a-1111-4222-8333-444455556666",
    "InstanceId": "i-0123456789abcdef0",
    "RequestedDateTime": 1772323199.999,  # 2026-02-28T23:59:59.999Z
    "Status": "Success",
    "CommandPlugins": [{"Name": "aws:runShellScript", "ResponseCode": 0}],
}
LINEAGE = Lineage("012345678901", "eu-west-1", "run-1", 1772323300000)


def test_create_writes_marker_and_a_placeholder_per_table(tmp_path):
    lake = Lake.create(tmp_path / "new" / "lake")
    assert json.loads((lake.root / "lake.json").read_text())["version"] == FORMAT_VERSION
    for table in TABLES:
        (placeholder,) = lake.table_dir(table).rglob("_empty.parquet")
        assert pq.read_schema(placeholder) == table.file_schema
        assert pq.read_metadata(placeholder).num_rows == 0


def test_a_lake_from_a_newer_version_is_refused(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    (lake.root / "lake.json").write_text(json.dumps({"format": "ssm-etl-lake", "version": 99}))
    with pytest.raises(ConfigError, match="newer ssm-etl"):
        Lake.open(lake.root)


def test_the_lock_refuses_a_second_holder_and_sweeps_stale_staging(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    stale = lake.root / "_staging" / "crashed-run" / "x.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    with lake.lock():
        assert not stale.exists()
        with pytest.raises(LakeBusyError), Lake.open(lake.root).lock():
            pass
    with lake.lock():
        pass  # released


def test_nothing_is_visible_until_commit_and_abort_leaves_nothing(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    page = flatten_page([RECORD], LINEAGE)
    writer = lake.writer("run-1", "012345678901", "eu-west-1")
    writer.add(INVOCATIONS, page.invocations)
    writer.add(COMMAND_PLUGINS, page.plugins)
    assert not list(lake.root.glob("invocations/account_id=0*/**/*.parquet"))
    writer.abort()
    assert not (lake.root / "_staging").exists() or not any((lake.root / "_staging").iterdir())
    assert not list(lake.root.glob("invocations/account_id=0*/**/*.parquet"))


def test_commit_places_rows_in_their_utc_month(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    second = dict(RECORD, InstanceId="i-12345678", RequestedDateTime=1772323200.0)
    page = flatten_page([second, RECORD], LINEAGE)
    writer = lake.writer("run-1", "012345678901", "eu-west-1")
    writer.add(INVOCATIONS, page.invocations)
    writer.add(COMMAND_PLUGINS, page.plugins)
    committed = writer.commit()
    months = sorted(p.parent.name for p in committed if p.parts[-5] == "invocations")
    assert months == ["requested_month=2026-02", "requested_month=2026-03"]
    for path in committed:
        assert path.parent.parent.name == "region=eu-west-1"
        assert path.parent.parent.parent.name == "account_id=012345678901"


def test_writer_refuses_a_batch_with_another_schema(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    page = flatten_page([RECORD], LINEAGE)
    writer = lake.writer("run-1", "012345678901", "eu-west-1")
    with pytest.raises(TypeError, match="declared schema"):
        writer.add(INVOCATIONS, page.invocations.drop_columns(["comment"]))
