"""Rows for partitions that hold no file yet (a first backfill, a new month), written as
they stream and committed through delta-rs as one transaction.

A delta-rs merge, and its own append alike, holds its whole source in memory
while it writes: about 2.5 times the source's Arrow size. A 60,000-invocation
region's plugins (150k rows, ~100 MB in Arrow) took the run's largest process
from ~280 to ~520 MB (benchmarks/README.md). When no partition a batch's merge
names holds a file, the merge can only insert, so the committer hands those rows
here instead: pyarrow writes each partition's rows into one Parquet file, a row
group at a time, with the file's statistics gathered on the way, and delta-rs
commits the files in one transaction (`DeltaTable.create_write_transaction`:
the log, the protocol checks and the commit stay delta-rs's). What readers see
is the same table a merge would have left: the same columns and types (the
Delta table's own Arrow schema), Hive-style partition folders, one row per key
(what was spooled, as the merge would have inserted it), and the statistics
delta-rs's writer records (`tests/test_append.py` compares them).

Nothing else can commit between the committer's look at the partitions and this
commit: the run holds the lake's lock (`pipeline.storage`), and one committer
per run commits for every region (`pipeline.commit`).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .lake import Lake
from .schema import TableSpec
from .spool import OP, UPSERT

ROW_GROUP_ROWS = 8192
"""Rows per row group of the lake's files: these, and delta-rs's (`commit.writer_properties`)."""
STATS_COLUMNS = 32
"""Delta's `dataSkippingNumIndexedCols` default: statistics for the first 32 data columns."""
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.-]+")
"""Partition values that need no escaping in a folder name or in the log's URL-encoded path."""


def path_safe(values: Iterable[str]) -> bool:
    """Whether every partition value can name a folder as it is (else the merge writes it)."""
    return all(_SAFE_VALUE.fullmatch(value) for value in values)


@dataclass
class _Stats:
    """One file's Delta statistics, gathered a row group at a time."""

    records: int = 0
    low: dict[str, Any] = field(default_factory=dict)
    high: dict[str, Any] = field(default_factory=dict)
    nulls: dict[str, int] = field(default_factory=dict)

    def add(self, rows: pa.Table, columns: list[str]) -> None:
        self.records += rows.num_rows
        for name in columns:
            column = rows.column(name)
            self.nulls[name] = self.nulls.get(name, 0) + column.null_count
            if column.null_count == len(column):
                continue
            bounds = pc.min_max(column)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if name not in self.low or low < self.low[name]:
                self.low[name] = low
            if name not in self.high or high > self.high[name]:
                self.high[name] = high

    def json(self) -> str:
        return json.dumps(
            {
                "numRecords": self.records,
                "minValues": {k: _json_value(v) for k, v in self.low.items()},
                "maxValues": {k: _json_value(v) for k, v in self.high.items()},
                "nullCount": self.nulls,
            },
            separators=(",", ":"),
        )


def _json_value(value: Any) -> Any:
    """A statistic as delta-rs writes it: timestamps in UTC to the millisecond (truncated;
    no fraction at all on a whole second), dates ISO."""
    if isinstance(value, datetime):
        fraction = f".{value.microsecond // 1000:03d}" if value.microsecond else ""
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return value


def _has_stats(kind: pa.DataType) -> bool:
    """Min/max/null statistics are kept for flat columns; delta-rs skips nested ones."""
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
    )


@dataclass
class _PartitionFile:
    local: Path
    writer: pq.ParquetWriter
    stats: _Stats = field(default_factory=_Stats)
    pending: list[pa.Table] = field(default_factory=list)
    pending_rows: int = 0


class _Files:
    """One Parquet file per partition, written in a local folder.

    A region's rows are spooled in its own files and read one file after
    another, so a region's partitions are finished when the next region's rows
    arrive: a batch of 500 regions never holds 500 regions' files open.
    """

    def __init__(self, schema: pa.Schema, folder: Path) -> None:
        self.schema = schema
        self.folder = folder
        self.columns = [f.name for f in schema if _has_stats(f.type)][:STATS_COLUMNS]
        self.open: dict[tuple[str, ...], _PartitionFile] = {}
        self.finished: list[tuple[tuple[str, ...], _PartitionFile]] = []

    def add(self, key: tuple[str, ...], rows: pa.Table) -> None:
        """`key`: the partition values, account and region first."""
        if self.open and key[:2] != next(iter(self.open))[:2]:
            self._finish()
        file = self.open.get(key)
        if file is None:
            local = self.folder / f"{uuid.uuid4().hex}.parquet"
            writer = pq.ParquetWriter(local, self.schema, compression="zstd")
            file = self.open[key] = _PartitionFile(local, writer)
        file.pending.append(rows)
        file.pending_rows += rows.num_rows
        if file.pending_rows >= ROW_GROUP_ROWS:
            self._flush(file)

    def _flush(self, file: _PartitionFile) -> None:
        if not file.pending:
            return
        rows = pa.concat_tables(file.pending).combine_chunks()
        file.pending, file.pending_rows = [], 0
        file.stats.add(rows, self.columns)
        file.writer.write_table(rows, row_group_size=ROW_GROUP_ROWS)

    def _finish(self) -> None:
        for key, file in self.open.items():
            self._flush(file)
            file.writer.close()
            self.finished.append((key, file))
        self.open = {}

    def close(self) -> list[tuple[tuple[str, ...], _PartitionFile]]:
        """Every file written (a partition may have two if its region's rows came apart)."""
        self._finish()
        return self.finished


def append_rows(
    lake: Lake,
    spec: TableSpec,
    table: Any,
    batches: Iterable[pa.RecordBatch],
    commit_properties: Callable[[int], Any],
) -> int:
    """Store the `upsert` rows of `batches` (spooled rows of `spec`) in one commit, as files
    of partitions that hold none yet; returns the rows stored (no commit if there are none).

    `commit_properties(rows)` gives the commit's properties: delta-rs records no row
    counts for a transaction of files, so the caller records them (`ssm-etl history`).

    `expire` rows are marks on stored rows, and a partition with no file has none to mark.
    """
    from deltalake.transaction import AddAction

    schema = pa.schema(table.schema().to_arrow())
    partition_by = tuple(spec.partition_by)
    data = pa.schema([f for f in schema if f.name not in partition_by])
    with tempfile.TemporaryDirectory(prefix="ssm-etl-append-") as folder:
        files = _Files(data, Path(folder))
        for batch in batches:
            rows = pa.Table.from_batches([batch])
            upserts = pc.equal(rows.column(OP), UPSERT)
            if not pc.all(upserts).as_py():  # plugins never carry marks: no copy for them
                rows = rows.filter(upserts)
            for key, part in _partitions(rows, partition_by):
                files.add(key, _cast(part, data))
        written = files.close()
        actions = []
        for key, file in written:
            folders = "/".join(f"{c}={v}" for c, v in zip(partition_by, key, strict=True))
            relative = f"{folders}/part-00000-{uuid.uuid4()}-c000.zstd.parquet"
            size = file.local.stat().st_size
            lake.storage.put_file(file.local, f"{spec.name}/{relative}")
            actions.append(
                AddAction(
                    path=relative,
                    size=size,
                    partition_values=dict(zip(partition_by, key, strict=True)),
                    modification_time=int(time.time() * 1000),
                    data_change=True,
                    stats=file.stats.json(),
                )
            )
    stored = sum(file.stats.records for _, file in written)
    if actions:
        table.create_write_transaction(
            actions,
            mode="append",
            schema=table.schema(),
            partition_by=list(partition_by),
            commit_properties=commit_properties(stored),
        )
    return stored


def _partitions(
    rows: pa.Table, partition_by: tuple[str, ...]
) -> Iterable[tuple[tuple[str, ...], pa.Table]]:
    """`rows` split by their partition values (a spooled batch is almost always one)."""
    if not rows.num_rows:
        return
    bounds = [pc.min_max(rows.column(c)) for c in partition_by]
    if all(b["min"] == b["max"] for b in bounds):  # one partition: no grouping to pay for
        yield tuple(b["min"].as_py() for b in bounds), rows
        return
    keys = rows.select(list(partition_by)).group_by(list(partition_by)).aggregate([])
    for key in keys.to_pylist():
        mask = None
        for column in partition_by:
            match = pc.equal(rows.column(column), key[column])
            mask = match if mask is None else pc.and_(mask, match)
        yield tuple(key[c] for c in partition_by), rows.filter(mask)


def _cast(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """The data columns in the Delta table's own Arrow types (timestamps in microseconds)."""
    return pa.Table.from_arrays([rows.column(f.name).cast(f.type) for f in schema], schema=schema)
