"""Rows for partitions that hold no file yet are written by `pipeline.append` and committed
through delta-rs: the same table, statistics and history a merge would leave, with a
merge wherever a partition already holds a file."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from pipeline.append import path_safe
from pipeline.commit import writer_properties
from pipeline.history import history
from pipeline.lake import Lake
from pipeline.schema import COMMAND_PLUGINS, INVOCATIONS
from tests.lakes import at, expire, ingest, invocation, plugin

FEBRUARY = at("2026-02-27T10:00:00.125")
MARCH = at("2026-03-01T00:00:00")


def _records() -> list[dict]:
    """Two months of invocations: every kind of value, nulls, a long and a non-ASCII output."""
    records = []
    for n in range(40):
        requested = (FEBRUARY if n % 3 else MARCH) + timedelta(minutes=n, milliseconds=n)
        status = ["Success", "Failed", "InProgress", "TimedOut"][n % 4]
        steps = [
            plugin(
                f"step{k}",
                status,
                None if status == "InProgress" else k - n % 2,
                start=None if n % 5 == 0 else requested + timedelta(seconds=2),
                seconds=None if status == "InProgress" else 30.5 + k,
                output="パッチ適用 " * (k + n) if k == 1 else "x" * (60 * n),
            )
            for k in range(n % 3 + 1)
        ]
        records.append(
            invocation(
                f"c-{n // 4:04d}",
                f"i-{n:017x}",
                requested,
                status,
                instance_name=None if n % 2 else f"web-{n}",
                plugins=steps,
            )
        )
    return records


def _adds(table_path: Path) -> dict[tuple, dict]:
    """Each data file's add action in the table's log (by partition), its stats parsed."""
    adds = {}
    for entry in sorted((table_path / "_delta_log").glob("*.json")):
        for line in entry.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                add = action["add"]
                key = tuple(sorted(add["partitionValues"].items()))
                assert key not in adds, "one file per partition"
                adds[key] = {**add, "stats": json.loads(add["stats"])}
    return adds


def _pairs(lake: Lake, spec, column: str) -> list[tuple]:
    """(command id, `column`) of every stored row, sorted."""
    stored = lake.table(spec).to_pyarrow_table()
    return sorted(zip(stored["command_id"].to_pylist(), stored[column].to_pylist(), strict=True))


def _operations(lake: Lake, spec) -> list[str]:
    return [e["operation"] for e in lake.table(spec).history() if "ssm_etl" in e]


@pytest.mark.parametrize("spec", [INVOCATIONS, COMMAND_PLUGINS], ids=lambda s: s.name)
def test_new_partitions_hold_what_delta_rs_would_have_written(tmp_path, spec):
    lake = Lake.create(tmp_path / "lake")
    ingest(lake, _records())
    assert _operations(lake, spec) == ["WRITE"]  # files committed, not merged
    ours = lake.table(spec)
    stored = ours.to_pyarrow_table()
    assert stored.num_rows == (40 if spec is INVOCATIONS else sum(n % 3 + 1 for n in range(40)))

    # The same rows through delta-rs's own writer, into a table of the same schema.
    theirs = Lake.create(tmp_path / "theirs")
    theirs.ensure_tables()
    write_deltalake(
        theirs.table(spec), stored, mode="append", writer_properties=writer_properties()
    )
    assert theirs.table(spec).schema() == ours.schema()
    mine, reference = _adds(tmp_path / "lake" / spec.name), _adds(tmp_path / "theirs" / spec.name)
    assert mine.keys() == reference.keys() and len(mine) == 2  # the two months
    for partition, add in mine.items():
        assert add["stats"] == reference[partition]["stats"], partition
        values = add["partitionValues"]
        assert add["path"].split("/")[:3] == [
            f"account_id={values['account_id']}",
            f"region={values['region']}",
            f"requested_month={values['requested_month']}",
        ]
    # Every reader reads the files as the writer's: the same rows in the same types.
    again = theirs.table(spec).to_pyarrow_table()
    order = [(k, "ascending") for k in spec.key]
    assert stored.sort_by(order).equals(again.select(stored.column_names).sort_by(order))


def test_a_partition_that_holds_a_file_is_merged_and_new_months_are_written(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    steps = [plugin("a", "Success", 0), plugin("b", "Success", 0)]
    ingest(lake, [invocation("c-1", "i-1", FEBRUARY, "InProgress", plugins=steps)])
    # Re-fetched, one plugin fewer, beside a new month: February holds files, so this merges.
    ingest(
        lake,
        [
            invocation("c-1", "i-1", FEBRUARY, "Success", plugins=steps[:1]),
            invocation("c-2", "i-1", MARCH, "Success", plugins=steps),
        ],
        run_id="run-2",
    )
    # A month no partition holds yet: written again.
    april = at("2026-04-02T08:00:00")
    ingest(lake, [invocation("c-3", "i-1", april, "Success", plugins=steps)], run_id="run-3")
    for spec in (INVOCATIONS, COMMAND_PLUGINS):
        assert _operations(lake, spec) == ["WRITE", "MERGE", "WRITE"], spec.name
    assert _pairs(lake, INVOCATIONS, "status") == [
        ("c-1", "Success"),
        ("c-2", "Success"),
        ("c-3", "Success"),
    ]
    assert _pairs(lake, COMMAND_PLUGINS, "name") == [
        ("c-1", "a"),
        ("c-2", "a"),
        ("c-2", "b"),
        ("c-3", "a"),
        ("c-3", "b"),
    ]
    rows = {
        (r["table_name"], r["run_id"]): (r["rows_added"], r["rows_updated"], r["rows_deleted"])
        for r in history(lake).to_pylist()
        if r["operation"] == "ingest"
    }
    assert rows[("command_plugins", "run-1")] == (2, 0, 0)
    assert rows[("command_plugins", "run-3")] == (2, 0, 0)
    assert rows[("command_plugins", "run-2")] == (2, 1, 1)  # c-2's two; c-1's a kept, b gone


def test_marks_for_a_partition_with_no_file_store_nothing(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    lake.ensure_tables()
    before = lake.table(INVOCATIONS).version()
    expire(lake, [("c-1", "i-1", FEBRUARY)], when=MARCH)
    assert lake.table(INVOCATIONS).version() == before
    assert lake.table(INVOCATIONS).to_pyarrow_table().num_rows == 0


def test_only_plain_partition_values_name_folders_as_they_are():
    assert path_safe(["012345678901", "eu-west-1", "2026-02", "a_b.c"])
    for value in ("a b", "a/b", "a=b", "a%b", "é", ""):
        assert not path_safe(["012345678901", value]), value


def test_the_files_are_parquet_without_the_partition_columns(tmp_path):
    import pyarrow.parquet as pq

    lake = Lake.create(tmp_path / "lake")
    ingest(lake, _records())
    for spec in (INVOCATIONS, COMMAND_PLUGINS):
        for add in _adds(tmp_path / "lake" / spec.name).values():
            schema = pq.read_schema(tmp_path / "lake" / spec.name / add["path"])
            assert not set(schema.names) & set(spec.partition_by)
            assert schema.field("requested_date_time").type == pa.timestamp("us", tz="UTC")
            assert (tmp_path / "lake" / spec.name / add["path"]).stat().st_size == add["size"]


def test_timestamp_statistics_are_formatted_as_delta_rs_formats_them(tmp_path):
    from datetime import UTC, datetime

    from pipeline.append import _json_value

    moments = [
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, 0, 125000, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, 0, 125999, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, 1, 999, tzinfo=UTC),
    ]
    for n, (low, high) in enumerate(zip(moments, moments[1:], strict=False)):
        column = pa.array([high, low], pa.timestamp("us", tz="UTC"))
        write_deltalake(tmp_path / str(n), pa.table({"t": column}))
        (add,) = _adds(tmp_path / str(n)).values()
        assert _json_value(low) == add["stats"]["minValues"]["t"]
        assert _json_value(high) == add["stats"]["maxValues"]["t"]


def test_a_batch_of_new_regions_is_one_commit_of_one_file_per_partition(tmp_path):
    from pipeline.decode import flatten_page
    from pipeline.flatten import Lineage
    from tests.lakes import commit_regions

    lake = Lake.create(tmp_path / "lake")
    regions = {}
    for region in ("eu-west-1", "us-east-1", "ap-south-1"):
        page = flatten_page(_records(), Lineage("012345678901", region, "run-1", 1772323300000))
        regions[("012345678901", region)] = [
            (INVOCATIONS, page.invocations),
            (COMMAND_PLUGINS, page.plugins),
        ]
    commit_regions(lake, regions)
    assert _operations(lake, INVOCATIONS) == ["WRITE"]
    adds = _adds(tmp_path / "lake" / INVOCATIONS.name)
    assert len(adds) == 6  # three regions x two months
    assert sum(a["stats"]["numRecords"] for a in adds.values()) == 120
    stored = lake.table(INVOCATIONS).to_pyarrow_table()
    assert stored.group_by("region").aggregate([("command_id", "count")]).num_rows == 3
    assert len(set(zip(*(stored[c].to_pylist() for c in INVOCATIONS.key), strict=True))) == 120
