"""The Parquet lake on disk: layout, run lock, staged writes and atomic commits.

Layout (Hive partitions, monthly)::

    <lake>/lake.json
    <lake>/invocations/account_id=<id>/region=<r>/requested_month=<YYYY-MM>/part-*.parquet
    <lake>/command_plugins/...same partitions...
    <lake>/quarantine/account_id=<id>/region=<r>/part-*.parquet
    <lake>/_staging/<run>/...       files being written; never read

Every file is written under `_staging/` and moved into place with an atomic
rename once its region has finished, so readers never see a partial file.
Each table also holds one zero-row file (`_empty.parquet`) so that the views'
globs always match something and an empty lake queries as zero rows.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import ConfigError, LakeBusyError
from .schema import TABLES, TableSpec

FORMAT = "ssm-etl-lake"
FORMAT_VERSION = 1
_FLUSH_BYTES = 32 * 1024 * 1024
"""Buffered bytes per partition before a row group is written: bounds memory."""


class Lake:
    """A lake directory. Construct with `Lake.create` (writers) or `Lake.open` (readers)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def open(cls, location: str | os.PathLike[str]) -> Lake:
        root = Path(location).expanduser().resolve()
        marker = root / "lake.json"
        if root.exists() and not root.is_dir():
            raise ConfigError(f"lake path is not a directory: {root}")
        if not marker.is_file():
            raise ConfigError(f"not an ssm-etl lake (no lake.json): {root}")
        try:
            meta = json.loads(marker.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"unreadable lake.json in {root}: {exc}") from exc
        version = meta.get("version")
        if meta.get("format") != FORMAT or not isinstance(version, int):
            raise ConfigError(f"not an ssm-etl lake (bad lake.json): {root}")
        if version > FORMAT_VERSION:
            raise ConfigError(
                f"lake {root} was written by a newer ssm-etl (format {version}); "
                f"this version reads up to {FORMAT_VERSION}"
            )
        return cls(root)

    @staticmethod
    def check_location(location: str | os.PathLike[str]) -> Path:
        """Validate a lake path for writing without touching it; returns it resolved."""
        root = Path(location).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise ConfigError(f"lake path is not a directory: {root}")
        if (root / "lake.json").exists():
            Lake.open(root)  # refuses lakes from newer versions
        elif root.exists() and any(root.iterdir()):
            raise ConfigError(f"lake path exists, is not empty and is not a lake: {root}")
        parent = _existing_parent(root)
        if not parent.is_dir():
            raise ConfigError(f"lake path is inside a file ({parent}): {root}")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"lake path is not writable: {root}")
        return root

    @classmethod
    def create(cls, location: str | os.PathLike[str]) -> Lake:
        """Open a lake for writing, creating it (and its placeholders) if needed."""
        root = cls.check_location(location)
        if not (root / "lake.json").exists():
            try:
                root.mkdir(parents=True, exist_ok=True)
                meta = {"format": FORMAT, "version": FORMAT_VERSION}
                _write_atomic(root / "lake.json", json.dumps(meta))
            except OSError as exc:
                raise ConfigError(f"cannot create the lake at {root}: {exc.strerror}") from None
        lake = cls.open(root)
        for table in TABLES:
            lake._ensure_placeholder(table)
        return lake

    def table_dir(self, table: TableSpec) -> Path:
        return self.root / table.name

    def glob(self, table: TableSpec) -> str:
        """The file pattern a view reads: every partition file, placeholder included."""
        depth = ["*"] * len(table.partition_by)
        return str(self.table_dir(table).joinpath(*depth, "*.parquet"))

    def _ensure_placeholder(self, table: TableSpec) -> None:
        placeholder = [f"{column}=_none" for column in table.partition_by]
        path = self.table_dir(table).joinpath(*placeholder, "_empty.parquet")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
            pq.write_table(table.file_schema.empty_table(), tmp)
            os.replace(tmp, path)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the lake for one run. A second run refuses rather than waits.

        The lock is an flock: the kernel drops it when the process dies, so a
        crashed run never leaves the lake locked. Staging left by a crashed
        run is swept once the lock is ours.
        """
        handle = open(self.root / ".lock", "a+")  # noqa: SIM115 (held for the block)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LakeBusyError(f"another ssm-etl run holds the lake {self.root}") from None
            shutil.rmtree(self.root / "_staging", ignore_errors=True)
            yield
        finally:
            handle.close()

    def writer(self, run_id: str, account_id: str, region: str) -> RegionWriter:
        staging = self.root / "_staging" / f"{run_id}-{account_id}-{region}"
        return RegionWriter(self, staging, run_id)


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def month_keys(table: pa.Table, spec: TableSpec) -> pa.Array:
    """UTC `YYYY-MM` of each row: the `requested_month` partition."""
    assert spec.month_from is not None
    column = table.column(spec.month_from)
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("ms"))  # drop the zone: values are UTC
    return pc.strftime(column, format="%Y-%m")


@dataclass
class _Partition:
    spec: TableSpec
    staged: Path
    final: Path
    writer: pq.ParquetWriter | None = None
    buffer: list[pa.Table] = field(default_factory=list)
    buffered_bytes: int = 0
    rows: int = 0

    def add(self, table: pa.Table) -> None:
        self.buffer.append(table)
        self.buffered_bytes += table.nbytes
        self.rows += table.num_rows
        if self.buffered_bytes >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        if self.writer is None:
            self.staged.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.staged, self.spec.file_schema, compression="zstd")
        self.writer.write_table(pa.concat_tables(self.buffer))
        self.buffer.clear()
        self.buffered_bytes = 0

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class RegionWriter:
    """Streams one region's pages into staged Parquet files, then commits them.

    Rows are appended in API order (newest first), so each file is sorted by
    time and row-group statistics prune date filters. Memory is bounded by
    `_FLUSH_BYTES` per open month partition, however long the region's history.
    """

    def __init__(self, lake: Lake, staging: Path, run_id: str) -> None:
        self.lake = lake
        self.staging = staging
        self.run_id = run_id
        self._partitions: dict[tuple[str, str | None], _Partition] = {}

    def add(self, spec: TableSpec, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if table.schema != spec.schema:
            raise TypeError(f"{spec.name}: batch schema differs from the declared schema")
        account = table.column("account_id")[0].as_py()
        region = table.column("region")[0].as_py()
        file_columns = table.select(spec.file_schema.names)
        if spec.month_from is None:
            self._partition(spec, account, region, None).add(file_columns)
            return
        months = month_keys(table, spec)
        distinct = pc.unique(months).to_pylist()
        for month in distinct:
            part = (
                file_columns if len(distinct) == 1 else file_columns.filter(pc.equal(months, month))
            )
            self._partition(spec, account, region, month).add(part)

    def _partition(
        self, spec: TableSpec, account: str, region: str, month: str | None
    ) -> _Partition:
        key = (spec.name, month)
        if key not in self._partitions:
            values = {"account_id": account, "region": region, "requested_month": month}
            relative = Path(spec.name).joinpath(*(f"{c}={values[c]}" for c in spec.partition_by))
            name = f"part-{self.run_id}-{uuid.uuid4().hex[:8]}.parquet"
            self._partitions[key] = _Partition(
                spec, self.staging / relative / name, self.lake.root / relative / name
            )
        return self._partitions[key]

    def commit(self) -> list[Path]:
        """Close every file and move it into the lake.

        Child tables first: a new invocation version becomes visible only
        once its plugin rows are already in place.
        """
        ordered = sorted(self._partitions.values(), key=lambda p: p.spec.name != "command_plugins")
        for partition in ordered:
            partition.close()
        committed = []
        for partition in ordered:
            if not partition.staged.exists():
                continue
            partition.final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partition.staged, partition.final)
            committed.append(partition.final)
        shutil.rmtree(self.staging, ignore_errors=True)
        return committed

    def abort(self) -> None:
        for partition in self._partitions.values():
            partition.buffer.clear()
            if partition.writer is not None:
                partition.writer.close()
        shutil.rmtree(self.staging, ignore_errors=True)
