"""Upgrade a lake of an older format in place, under the run lock.

Format 2 stored each table as plain Parquet files with a home-made commit
protocol: retired files listed in `_trash/` manifests, rows possibly repeated
by a killed run and deduplicated by the views. Format 3 (this version) stores
each table as a Delta table. The upgrade reads every live format-2 file
(retired ones left out), keeps each row once as the format-2 views showed it
(`sql/upgrade/v3_<table>.sql`), writes it as the first data version of the
table's Delta log, records format 3 in `lake.json`, and only then deletes
what format 2 left behind (its files, `_trash/`, `_staging/`). An upgrade
killed before `lake.json` changed is simply done again: each table is
rewritten from the format-2 files, which are all still there.
"""

from __future__ import annotations

import json
import logging
import re
import string
import tempfile
from collections.abc import Iterator

import duckdb
import pyarrow as pa

from .commit import metadata, writer_properties
from .lake import FORMAT_VERSION, Lake
from .maintain import vacuum
from .schema import COMMAND_PLUGINS, INVOCATIONS, TABLES, TableSpec
from .views import sql_dir, sql_literal

log = logging.getLogger("ssm_etl")

UPGRADE_MEMORY = "512MB"
"""DuckDB's budget for deduplicating one table; a larger table spills to disk instead."""
_BATCH_ROWS = 64 * 1024
_FORMAT_2_FILE = re.compile(r"/part-\d{8}T\d{6}Z-[0-9a-z]+-[^/]*\.parquet$")
"""A format-2 data file (`part-<run id>-...`), not one a Delta write left beside it."""


def upgrade(lake: Lake, run_id: str) -> int:
    """Bring `lake` to this version's format; returns the rows written (0: nothing to do).

    The caller holds the lake's lock.
    """
    if lake.version >= FORMAT_VERSION:
        return 0
    if lake.version != 2:
        raise ValueError(f"no upgrade from format {lake.version}; upgrade with ssm-etl 0.1 first")
    storage = lake.storage
    retired = _retired(lake)
    live = {
        spec.name: [
            storage.uri(f)
            for f in storage.files(spec.name)
            if _FORMAT_2_FILE.search(f) and f not in retired
        ]
        for spec in TABLES
    }
    written = 0
    with tempfile.TemporaryDirectory(prefix="ssm-etl-upgrade-") as spill:
        con = duckdb.connect(config={"memory_limit": UPGRADE_MEMORY, "temp_directory": spill})
        try:
            con.execute("SET TimeZone = 'UTC'")
            storage.register(con)
            for spec in TABLES:
                written += _rewrite(lake, con, spec, live, run_id)
        finally:
            con.close()
    lake.mark_version()
    for spec in TABLES:  # format 2's files: no Delta version has ever referenced them
        vacuum(lake.table(spec), run_id, keep_days=0)
    storage.delete_tree("_trash")
    storage.delete_tree("_staging")
    log.info("lake %s upgraded to format %d (%d rows)", lake.location, FORMAT_VERSION, written)
    return written


def _retired(lake: Lake) -> set[str]:
    """Files (relative to the lake) that format 2's `_trash/` manifests retired."""
    retired: set[str] = set()
    for manifest in lake.storage.files("_trash"):
        if manifest.endswith(".json"):
            retired.update(json.loads(lake.storage.read_text(manifest)).get("files", []))
    return retired


def _rewrite(
    lake: Lake,
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    live: dict[str, list[str]],
    run_id: str,
) -> int:
    """The table's format-2 rows, each once, as the first data version of its Delta table."""
    from deltalake import write_deltalake

    lake.ensure_tables((spec,))
    files = live[spec.name]
    schema = spec.table_schema
    if not files:
        return 0
    text = (sql_dir() / "upgrade" / f"v3_{spec.name}.sql").read_text()
    listed = {name: "[" + ", ".join(sql_literal(f) for f in fs) + "]" for name, fs in live.items()}
    sql = string.Template(text).substitute(files=listed[spec.name], **listed)
    if spec is COMMAND_PLUGINS and not live[INVOCATIONS.name]:
        return 0  # plugins without any invocation were invisible in format 2 already
    reader = con.sql(sql).to_arrow_reader(_BATCH_ROWS)
    rows = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for batch in reader:
            rows += batch.num_rows
            columns = [
                batch.column(f.name).cast(f.type)
                if f.name in batch.schema.names
                else pa.nulls(batch.num_rows, f.type)
                for f in schema
            ]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)

    write_deltalake(
        lake.table(spec),
        pa.RecordBatchReader.from_batches(schema, batches()),
        mode="overwrite",
        writer_properties=writer_properties(),
        commit_properties=metadata(run_id, "upgrade"),
    )
    return rows
