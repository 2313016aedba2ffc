"""A format-1 lake (no derived columns) is refused by readers and upgraded in place by writers."""

from __future__ import annotations

import json
import uuid

import pyarrow.parquet as pq
import pytest

from flows.cli import main
from pipeline.compact import retire
from pipeline.errors import ConfigError
from pipeline.flatten import Lineage, flatten_page
from pipeline.ingest import compact_region
from pipeline.lake import FORMAT_VERSION, Lake
from pipeline.schema import COMMAND_PLUGINS, INVOCATIONS
from pipeline.views import connect
from tests.lakes import ACCOUNT, REGION, at, invocation, plugin

V2_ONLY = {
    "invocations": ["plugins_started_date_time", "plugins_finished_date_time"],
    "command_plugins": ["requested_date_time", "document_name"],
}
MONTHS = ("2024-04", "2024-05")


def _night(status: str, ingested: str):
    records = [
        invocation(
            f"cccccccc-0000-4000-8000-00000000000{n}",
            f"i-{n:08x}",
            at(f"{MONTHS[n % 2]}-1{n}T01:00:00"),
            status,
            document="AWS-RunPatchBaseline",
            plugins=[
                plugin("p0", status, 0, start=at(f"{MONTHS[n % 2]}-1{n}T01:00:05"), seconds=n),
                plugin("p1", status, 1, start=at(f"{MONTHS[n % 2]}-1{n}T01:00:09"), seconds=2),
            ],
        )
        for n in range(6)
    ]
    run = f"run-{ingested}"
    return flatten_page(
        records, Lineage(ACCOUNT, REGION, run, round(at(ingested).timestamp() * 1000))
    )


def _write_v1(lake: Lake, page, run: str) -> list:
    """The page as format 1 stored it: plain files per month, without the format-2 columns."""
    written = []
    for spec, table in ((COMMAND_PLUGINS, page.plugins), (INVOCATIONS, page.invocations)):
        columns = [c for c in spec.file_schema.names if c not in V2_ONLY[spec.name]]
        for month in MONTHS:
            month_rows = table.filter(
                [d.strftime("%Y-%m") == month for d in table.column("requested_date").to_pylist()]
            )
            directory = (
                lake.table_dir(spec)
                / f"account_id={ACCOUNT}/region={REGION}/requested_month={month}"
            )
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"part-{run}-{uuid.uuid4().hex[:8]}.parquet"
            pq.write_table(month_rows.select(columns), path)
            written.append(path)
    return written


def _format_1_lake(root) -> Lake:
    lake = Lake.create(root)
    for spec in (INVOCATIONS, COMMAND_PLUGINS):  # format 1's placeholders lacked the columns too
        empty = pq.read_table(lake.empty_file(spec))
        pq.write_table(empty.drop_columns(V2_ONLY[spec.name]), lake.empty_file(spec))
    first = _write_v1(lake, _night("InProgress", "2024-05-20T00:00:00"), "run-1")
    retire(lake, first[:1])  # a replaced file still waiting for its grace period
    _write_v1(lake, _night("Success", "2024-05-21T00:00:00"), "run-2")
    (lake.root / "lake.json").write_text(json.dumps({"format": "ssm-etl-lake", "version": 1}))
    return lake


def _rows(lake: Lake, view: str):
    lineage = "EXCLUDE (run_id, ingested_at)" if view in V2_ONLY else ""
    return connect(lake).sql(f"SELECT * {lineage} FROM {view} ORDER BY ALL").fetchall()


def test_readers_refuse_a_format_1_lake_with_the_way_out(tmp_path):
    _format_1_lake(tmp_path / "lake")
    with pytest.raises(ConfigError, match=r"format 1.*ssm-etl upgrade --lake"):
        Lake.open(tmp_path / "lake")


def test_upgrade_rewrites_every_partition_with_the_derived_columns(tmp_path, capsys):
    _format_1_lake(tmp_path / "old")
    expected = Lake.create(tmp_path / "new")  # the same two nights, written by this version
    for ingested in ("2024-05-20T00:00:00", "2024-05-21T00:00:00"):
        page = _night("InProgress" if ingested.startswith("2024-05-20") else "Success", ingested)
        writer = expected.writer(f"run-{ingested}", ACCOUNT, REGION)
        writer.add(INVOCATIONS, page.invocations)
        writer.add(COMMAND_PLUGINS, page.plugins)
        compact_region(expected, f"run-{ingested}", writer.commit())

    assert main(["upgrade", "--lake", str(tmp_path / "old")]) == 0
    assert "format 1 -> 2, 2 partitions rewritten" in capsys.readouterr().out
    upgraded = Lake.open(tmp_path / "old")
    assert upgraded.version == FORMAT_VERSION
    for view in ("invocations", "command_plugins", "invocation_durations", "plugin_failures"):
        assert _rows(upgraded, view) == _rows(expected, view), view
    assert _rows(upgraded, "invocations")  # not vacuous
    clean = connect(upgraded).sql("SELECT DISTINCT clean FROM lake_files").fetchall()
    assert clean == [(True,)]
    for table, columns in V2_ONLY.items():  # no file of the old format is left
        for path in (tmp_path / "old" / table).rglob("*.parquet"):
            assert set(columns) <= set(pq.read_schema(path).names), path

    assert main(["upgrade", "--lake", str(tmp_path / "old")]) == 0
    assert "already in format 2" in capsys.readouterr().out


def test_upgrade_of_a_missing_lake_is_a_one_line_error(tmp_path, capsys):
    assert main(["upgrade", "--lake", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not an ssm-etl lake" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "nowhere").exists()
