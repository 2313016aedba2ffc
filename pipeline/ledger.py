"""The run ledger inside the lake: what each run did per account and region.

It is also the lake's state: a region's watermark (the newest RequestedDateTime
committed) is read from its latest successful ledger row, so the lake carries
its own state and can be moved or copied as one folder (or S3 prefix).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .compact import data_files
from .lake import Lake
from .schema import INGEST_RUNS, INGEST_RUNS_SCHEMA


def region_dir(lake: Lake, account_id: str, region: str) -> PurePath:
    return lake.table_dir(INGEST_RUNS) / f"account_id={account_id}" / f"region={region}"


def append(lake: Lake, row: Mapping[str, Any]) -> None:
    """Write one ledger row as its own file, atomically (compaction merges them later)."""
    table = pa.Table.from_pylist([dict(row)], schema=INGEST_RUNS_SCHEMA)
    directory = region_dir(lake, row["account_id"], row["region"])
    name = f"part-{row['run_id']}-{uuid.uuid4().hex[:8]}.parquet"
    staged = lake.root / "_staging" / f"ledger-{name}"
    lake.storage.write_parquet(staged, table.select(INGEST_RUNS.file_schema.names))
    lake.storage.move(staged, directory / name)


def watermark_ms(lake: Lake, account_id: str, region: str) -> int | None:
    """The newest committed RequestedDateTime of a region, or None before its first success."""
    files = data_files(region_dir(lake, account_id, region), lake.storage)
    if not files:
        return None
    columns = ["status", "watermark"]
    table = pa.concat_tables(lake.storage.read_parquet(f, columns) for f in files)
    done = table.filter(pc.equal(table["status"], "succeeded"))
    newest = pc.max(done["watermark"]).as_py() if done.num_rows else None
    return None if newest is None else round(newest.timestamp() * 1000)
