"""A region's rows on their way to the run's committer: Parquet files under `<lake>/_spool/`.

Region tasks (threads, or Dask workers on other machines) do not commit:
one committer per run does, for many regions at once, so a night of
thousands of regions adds tens of versions to a table, not thousands. A
region task writes its rows here and hands back a `SpooledRegion` that
names the files. Nothing under `_spool/` is ever read by a reader; a run
that dies leaves its spool to the next run, which deletes it once it holds
the lock.

Each table's spooled rows carry the table's own columns (`requested_month`
included) plus `_op`: `upsert` for a row to store, `expire` for a mark on an
invocation the API no longer returns (only its key and
`expired_while_open_at` are set).
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .schema import TableSpec
from .storage import Storage

OP = "_op"
UPSERT, EXPIRE = "upsert", "expire"
FLUSH_BYTES = 8 * 1024 * 1024
"""Buffered bytes of all of a region's tables together: bounds a region task's memory."""
ROW_GROUP_ROWS = 8192
"""Rows per row group of a spooled file. The committer streams a spool into a merge in small
batches, and a Parquet reader decodes a row group's pages as a whole: one row group per
flush (a region's whole plugin output) made the commit hold tens of MB per region."""


def spool_schema(spec: TableSpec) -> pa.Schema:
    """A spooled file's columns: the table's, every one nullable (an `expire` row is a key)."""
    columns = [f.with_nullable(True) for f in spec.table_schema]
    return pa.schema([*columns, pa.field(OP, pa.string(), nullable=False)])


def month_of(table: pa.Table, spec: TableSpec) -> pa.Array:
    """UTC `YYYY-MM` of each row: the `requested_month` partition."""
    assert spec.month_from is not None
    column = table.column(spec.month_from)
    bounds = pc.min_max(column)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is not None and (low.year, low.month) == (high.year, high.month):  # almost every page
        return pa.repeat(pa.scalar(f"{low.year:04d}-{low.month:02d}"), table.num_rows)
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("ms"))  # drop the zone: values are UTC
    return pc.strftime(column, format="%Y-%m")


def spooled_rows(spec: TableSpec, table: pa.Table, op: str = UPSERT) -> pa.Table:
    """`table` (a flattener's rows, or key columns for `expire`) in the spool's columns."""
    schema = spool_schema(spec)
    rows = table.num_rows
    columns = []
    for f in schema:
        if f.name == OP:
            columns.append(pa.repeat(pa.scalar(op), rows))
        elif f.name == "requested_month" and f.name not in table.column_names:
            columns.append(month_of(table, spec))
        elif f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


@dataclass
class SpooledRegion:
    """What a region task hands to the committer: its spooled files and row counts."""

    account_id: str
    region: str
    files: dict[str, list[str]] = field(default_factory=dict)
    """Table name -> spool files (relative to the lake root)."""
    rows: dict[str, int] = field(default_factory=dict)
    months: dict[str, set[str]] = field(default_factory=dict)
    """Table name -> the `requested_month` partitions its rows fall in (monthly tables)."""
    snapshots: set[str] = field(default_factory=set)
    """Snapshot tables (`TableSpec.snapshot`) whose whole content for this region was read."""

    @property
    def size(self) -> int:
        return sum(self.rows.values())


class RegionWriter:
    """Collects a region's rows, table by table, into spooled Parquet files.

    Thread-safe: the time slices of a walk add pages concurrently. Rows are
    buffered and flushed (largest table first) whenever all tables together
    hold `FLUSH_BYTES`, so memory is bounded however long the history. Files
    are written to a local temporary folder and handed to the lake's storage
    when the region is closed (an upload, for an S3 lake).
    """

    def __init__(self, storage: Storage, run_id: str, account_id: str, region: str) -> None:
        self.storage = storage
        self.spooled = SpooledRegion(account_id, region)
        self.folder = f"_spool/{run_id}/{account_id}/{region}-{uuid.uuid4().hex[:8]}"
        self._tmp = tempfile.TemporaryDirectory(prefix="ssm-etl-spool-")
        self._buffers: dict[str, list[pa.Table]] = {}
        self._sizes: dict[str, int] = {}
        self._writers: dict[str, tuple[TableSpec, pq.ParquetWriter, Path]] = {}
        self._specs: dict[str, TableSpec] = {}
        self._buffered = 0
        self._lock = threading.Lock()

    def add(self, spec: TableSpec, table: pa.Table, stream: int = 0) -> None:
        """Append a flattener's rows for `spec` (`stream` is the time slice; any order)."""
        if table.num_rows:
            self._add(spec, spooled_rows(spec, table))

    def snapshot_taken(self, spec: TableSpec) -> None:
        """Every row of a snapshot table for this region was added (none at all is a snapshot)."""
        with self._lock:
            self.spooled.snapshots.add(spec.name)

    def expire(self, spec: TableSpec, keys: pa.Table) -> None:
        """Mark stored rows (by their key and `expired_while_open_at`) as expired while open."""
        if keys.num_rows:
            self._add(spec, spooled_rows(spec, keys, EXPIRE))

    def _add(self, spec: TableSpec, rows: pa.Table) -> None:
        size = rows.get_total_buffer_size()
        with self._lock:
            self._specs[spec.name] = spec
            self._buffers.setdefault(spec.name, []).append(rows)
            self._sizes[spec.name] = self._sizes.get(spec.name, 0) + size
            self.spooled.rows[spec.name] = self.spooled.rows.get(spec.name, 0) + rows.num_rows
            if spec.month_from is not None:
                months = pc.unique(rows.column("requested_month")).to_pylist()
                self.spooled.months.setdefault(spec.name, set()).update(months)
            self._buffered += size
            while self._buffered >= FLUSH_BYTES:
                self._flush(max(self._sizes, key=self._sizes.__getitem__))

    def _flush(self, name: str) -> None:
        buffered = self._buffers.pop(name, [])
        self._buffered -= self._sizes.pop(name, 0)
        if not buffered:
            return
        if name not in self._writers:
            spec = self._specs[name]
            path = Path(self._tmp.name) / f"{name}.parquet"
            writer = pq.ParquetWriter(path, spool_schema(spec), compression="zstd")
            self._writers[name] = (spec, writer, path)
        self._writers[name][1].write_table(
            pa.concat_tables(buffered), row_group_size=ROW_GROUP_ROWS
        )

    def close(self) -> SpooledRegion:
        """Finish every file and hand it to the lake's spool; returns what was spooled."""
        with self._lock:
            for name in list(self._buffers):
                self._flush(name)
            for name, (_, writer, path) in self._writers.items():
                writer.close()
                relative = f"{self.folder}/{name}.parquet"
                self.storage.put_file(path, relative)
                self.spooled.files[name] = [relative]
            self._writers.clear()
        self._tmp.cleanup()
        return self.spooled

    def discard(self) -> None:
        """Drop everything (a walk that restarts, or a region that failed)."""
        with self._lock:
            for _, writer, _ in self._writers.values():
                writer.close()
            self._writers.clear()
            self._buffers.clear()
            self._sizes.clear()
            self._buffered = 0
            self.spooled.rows.clear()
            self.spooled.months.clear()
            self.spooled.snapshots.clear()
        self._tmp.cleanup()
        self.storage.delete_tree(self.folder)
