"""The Parquet lake: layout, run lock, staged writes and commits.

Layout (Hive partitions, monthly)::

    <lake>/lake.json
    <lake>/invocations/account_id=<id>/region=<r>/requested_month=<YYYY-MM>/part-*.parquet
    <lake>/command_plugins/...same partitions...
    <lake>/quarantine/account_id=<id>/region=<r>/part-*.parquet
    <lake>/_staging/<run>/...       files being written; never read
    <lake>/_trash/*.json            manifests of retired files (see `pipeline.compact`)

Every file is written under `_staging/` and moved into place once its region
has finished (an atomic rename locally; a copy to a new, unique key on S3,
where a PUT is atomic), so readers never see a partial file.
Each table also holds one zero-row file (`_empty.parquet`) so that the views'
globs always match something and an empty lake queries as zero rows.
The bytes live wherever the lake's `Storage` says (`pipeline.storage`).
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import ConfigError
from .schema import COMMAND_PLUGINS, INVOCATIONS, TABLES, TableSpec
from .storage import LocalStorage, Storage, is_s3

FORMAT = "ssm-etl-lake"
PAIRED = (INVOCATIONS.name, COMMAND_PLUGINS.name)
"""Tables written, committed and compacted together, month by month."""
TRASH = "_trash"
EMPTY_MANIFEST = "_empty.json"
"""A manifest retiring nothing, so that the views' glob of `_trash/` always matches."""
FORMAT_VERSION = 2
"""2: plugin rows carry their invocation's time and document, invocation rows their
plugins' time span (`pipeline.upgrade` rewrites a format-1 lake in place)."""
_FLUSH_BYTES = 48 * 1024 * 1024
"""Buffered bytes of all a writer's partitions together: bounds a region's memory."""


class Lake:
    """A lake. Construct with `Lake.create` (writers) or `Lake.open` (readers).

    `root` is the lake's path on its storage: a `Path` for a local lake,
    `bucket/prefix` for an S3 lake; `location` is what the user typed
    (`s3://bucket/prefix` for S3).
    """

    def __init__(
        self, root: PurePath, storage: Storage | None = None, version: int = FORMAT_VERSION
    ) -> None:
        self.storage = storage or LocalStorage(Path(root))
        self.root = self.storage.root
        self.version = version

    @property
    def location(self) -> str:
        return self.storage.location

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str],
        *,
        sse_kms_key_id: str | None = None,
        older: bool = False,
    ) -> Lake:
        """An existing lake; `older` also accepts an older format (to upgrade it)."""
        storage = Storage.from_location(location, sse_kms_key_id=sse_kms_key_id)
        return cls._open(storage, older=older)

    @classmethod
    def _open(cls, storage: Storage, *, older: bool = False) -> Lake:
        """`older`: accept a lake of an older format (a writer, which upgrades it)."""
        where, marker = storage.location, storage.root / "lake.json"
        if isinstance(storage.root, Path) and storage.root.exists() and not storage.root.is_dir():
            raise ConfigError(f"lake path is not a directory: {where}")
        try:
            if not storage.is_file(marker):
                raise ConfigError(f"not an ssm-etl lake (no lake.json): {where}")
            meta = json.loads(storage.read_text(marker))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"unreadable lake.json in {where}: {exc}") from exc
        version = meta.get("version") if isinstance(meta, dict) else None
        if (
            not isinstance(meta, dict)
            or meta.get("format") != FORMAT
            or not isinstance(version, int)
        ):
            raise ConfigError(f"not an ssm-etl lake (bad lake.json): {where}")
        if version > FORMAT_VERSION:
            raise ConfigError(
                f"lake {where} was written by a newer ssm-etl (format {version}); "
                f"this version reads up to {FORMAT_VERSION}"
            )
        if version < FORMAT_VERSION and not older:
            raise ConfigError(
                f"lake {where} is in format {version}, older than this ssm-etl's "
                f"{FORMAT_VERSION}: upgrade it in place once with `ssm-etl upgrade --lake {where}` "
                "(any `ssm-etl run` does it too)"
            )
        return cls(storage.root, storage, version)

    def mark_version(self) -> None:
        """Record that every file of the lake is in this ssm-etl's format."""
        meta = {"format": FORMAT, "version": FORMAT_VERSION}
        self.storage.write_text(self.root / "lake.json", json.dumps(meta))
        self.version = FORMAT_VERSION

    @staticmethod
    def check_location(location: str | os.PathLike[str]) -> PurePath:
        """Validate a lake location for writing without changing it; returns its root."""
        if is_s3(location):
            return _check_s3(Storage.from_location(location))
        root = Path(location).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise ConfigError(f"lake path is not a directory: {root}")
        if (root / "lake.json").exists():
            Lake._open(LocalStorage(root), older=True)  # refuses lakes from newer versions
        elif root.exists() and any(root.iterdir()):
            raise ConfigError(f"lake path exists, is not empty and is not a lake: {root}")
        parent = _existing_parent(root)
        if not parent.is_dir():
            raise ConfigError(f"lake path is inside a file ({parent}): {root}")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"lake path is not writable: {root}")
        return root

    @classmethod
    def create(cls, location: str | os.PathLike[str], *, sse_kms_key_id: str | None = None) -> Lake:
        """Open a lake for writing, creating it (and its placeholders) if needed.

        `sse_kms_key_id` (S3 only) encrypts every object the lake writes with
        that KMS key; staged objects get the bucket's default encryption.
        """
        storage = Storage.from_location(location, sse_kms_key_id=sse_kms_key_id)
        root = _check_s3(storage) if is_s3(location) else cls.check_location(location)
        marker = root / "lake.json"
        if not storage.exists(marker):
            try:
                if isinstance(root, Path):
                    root.mkdir(parents=True, exist_ok=True)
                meta = {"format": FORMAT, "version": FORMAT_VERSION}
                storage.write_text(marker, json.dumps(meta))
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise ConfigError(
                    f"cannot create the lake at {storage.location}: {reason}"
                ) from None
        lake = cls._open(storage, older=True)
        lake.ensure_placeholders()
        return lake

    def ensure_placeholders(self, *, replace: bool = False) -> None:
        """The zero-row file of each table and the empty trash manifest, so globs always match.

        `replace` rewrites the tables' files in this version's schemas (an upgrade).
        """
        for table in TABLES:
            self._placeholder(table, replace=replace)
        empty = self.root / TRASH / EMPTY_MANIFEST
        if not self.storage.exists(empty):
            if isinstance(empty, Path):
                empty.parent.mkdir(exist_ok=True)
            self.storage.write_text(empty, json.dumps({"retired_at": 0, "files": []}))

    def table_dir(self, table: TableSpec) -> PurePath:
        return self.root / table.name

    def glob(self, table: TableSpec) -> str:
        """The file pattern a view reads: every partition file, placeholder included."""
        depth = ["*"] * len(table.partition_by)
        return self.storage.url(self.table_dir(table).joinpath(*depth, "*.parquet"))

    def trash_glob(self) -> str:
        """The trash manifests the views read to skip retired files."""
        return self.storage.url(self.root / TRASH / "*.json")

    def empty_file(self, table: TableSpec) -> PurePath:
        """The table's zero-row placeholder (see the module docstring)."""
        placeholder = [f"{column}=_none" for column in table.partition_by]
        return self.table_dir(table).joinpath(*placeholder, "_empty.parquet")

    def _placeholder(self, table: TableSpec, *, replace: bool = False) -> None:
        path = self.empty_file(table)
        if replace or not self.storage.exists(path):
            tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
            self.storage.write_parquet(tmp, table.file_schema.empty_table())
            self.storage.move(tmp, path)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the lake for one run. A second run refuses rather than waits.

        Locally an flock, which the kernel drops when the process dies, so a
        crashed run never leaves the lake locked; on S3 a best-effort lease
        (see `S3Storage.lock`). Staging left by a crashed run is swept once
        the lock is ours.
        """
        with self.storage.lock():
            self.storage.delete_tree(self.root / "_staging")
            yield

    def writer(self, run_id: str, account_id: str, region: str) -> RegionWriter:
        staging = self.root / "_staging" / f"{run_id}-{account_id}-{region}"
        return RegionWriter(self, staging, run_id)


def _check_s3(storage: Storage) -> PurePath:
    where = storage.location
    try:
        if storage.exists(storage.root / "lake.json"):
            Lake._open(storage, older=True)  # refuses lakes from newer versions
        elif storage.walk(storage.root):
            raise ConfigError(f"lake location is not empty and is not a lake: {where}")
    except OSError as exc:
        raise ConfigError(f"cannot reach the S3 lake {where}: {exc}") from None
    return storage.root


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def month_keys(table: pa.Table, spec: TableSpec) -> pa.Array:
    """UTC `YYYY-MM` of each row: the `requested_month` partition."""
    assert spec.month_from is not None
    column = table.column(spec.month_from)
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("ms"))  # drop the zone: values are UTC
    return pc.strftime(column, format="%Y-%m")


def _only_month(table: pa.Table, spec: TableSpec) -> str | None:
    """The one `YYYY-MM` of a batch whose rows share a month (a page almost always does)."""
    assert spec.month_from is not None
    bounds = pc.min_max(table.column(spec.month_from))
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if (low.year, low.month) != (high.year, high.month):
        return None
    return f"{low.year:04d}-{low.month:02d}"


def compacted_name(run_id: str) -> str:
    """A file holding each of its rows once: a compaction's output (see `sql/lake_files.sql`)."""
    return f"part-{run_id}-c{uuid.uuid4().hex[:8]}.parquet"


def is_compacted(path: PurePath) -> bool:
    return re.fullmatch(r"part-.+-c[0-9a-f]{8}\.parquet", path.name) is not None


@dataclass
class _Partition:
    spec: TableSpec
    storage: Storage
    staged: PurePath
    directory: PurePath
    writer: pq.ParquetWriter | None = None
    written: bool = False
    buffer: list[pa.Table] = field(default_factory=list)
    buffered_bytes: int = 0
    rows: int = 0

    def add(self, table: pa.Table) -> int:
        """Buffer `table`; returns the bytes it added."""
        size = table.get_total_buffer_size()
        self.buffer.append(table)
        self.buffered_bytes += size
        self.rows += table.num_rows
        return size

    def flush(self) -> None:
        if not self.buffer:
            return
        if self.writer is None:
            self.writer = self.storage.parquet_writer(
                self.staged, self.spec.file_schema, compression="zstd"
            )
            self.written = True
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

    Each stream (a time slice of the walk) writes its own file per partition,
    appending rows in API order (newest first), so every file is sorted by
    time and row-group statistics prune date filters. Buffered rows are
    flushed, largest partition first, whenever all partitions together hold
    `_FLUSH_BYTES`: memory is bounded however long the history or however
    many slices run.
    """

    def __init__(self, lake: Lake, staging: PurePath, run_id: str) -> None:
        self.lake = lake
        self.staging = staging
        self.run_id = run_id
        self._partitions: dict[tuple[str, str | None, int], _Partition] = {}
        self._buffered = 0
        self._lock = threading.Lock()

    def add(self, spec: TableSpec, table: pa.Table, stream: int = 0) -> None:
        """Append rows of one stream; a stream's rows must come newest first. Thread-safe."""
        if table.num_rows == 0:
            return
        with self._lock:
            self._add(spec, table, stream)

    def _add(self, spec: TableSpec, table: pa.Table, stream: int) -> None:
        if table.schema != spec.schema:
            raise TypeError(f"{spec.name}: batch schema differs from the declared schema")
        account = table.column("account_id")[0].as_py()
        region = table.column("region")[0].as_py()
        file_columns = table.select(spec.file_schema.names)
        month = None if spec.month_from is None else _only_month(table, spec)
        if spec.month_from is None or month is not None:
            self._buffered += self._partition(spec, account, region, month, stream).add(
                file_columns
            )
        else:
            months = month_keys(table, spec)
            for key in pc.unique(months).to_pylist():
                part = file_columns.filter(pc.equal(months, key))
                self._buffered += self._partition(spec, account, region, key, stream).add(part)
        while self._buffered >= _FLUSH_BYTES:
            fullest = max(self._partitions.values(), key=lambda p: p.buffered_bytes)
            self._buffered -= fullest.buffered_bytes
            fullest.flush()

    def _partition(
        self, spec: TableSpec, account: str, region: str, month: str | None, stream: int
    ) -> _Partition:
        key = (spec.name, month, stream)
        if key not in self._partitions:
            values = {"account_id": account, "region": region, "requested_month": month}
            relative = PurePath(spec.name).joinpath(
                *(f"{c}={values[c]}" for c in spec.partition_by)
            )
            name = f"{uuid.uuid4().hex}.parquet"
            self._partitions[key] = _Partition(
                spec, self.lake.storage, self.staging / relative / name, self.lake.root / relative
            )
        return self._partitions[key]

    def commit(self) -> list[PurePath]:
        """Close every file and move it into the lake; returns the committed paths.

        A month that had no file yet, and whose new invocations are each
        there once, is committed as already compacted (`compacted_name`):
        its files need no rewrite, however many slices wrote them. Anything
        else is named as a plain commit, for `pipeline.compact` to fold in.
        Child tables first: a new invocation version becomes visible only
        once its plugin rows are already in place.
        """
        # Encoding and compressing the last row groups releases the GIL: two at a time.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="close") as pool:
            list(pool.map(_Partition.close, self._partitions.values()))
        written = [p for p in self._partitions.values() if p.written]
        clean = self._clean_months(written)
        ordered = sorted(written, key=lambda p: p.spec.name != COMMAND_PLUGINS.name)
        committed = []
        for partition in ordered:
            month = partition.directory.relative_to(self.lake.table_dir(partition.spec))
            if partition.spec.month_from is not None and month in clean:
                name = compacted_name(self.run_id)
            else:
                name = f"part-{self.run_id}-{uuid.uuid4().hex[:8]}.parquet"
            final = partition.directory / name
            self.lake.storage.move(partition.staged, final)
            committed.append(final)
        self.lake.storage.delete_tree(self.staging)
        return committed

    def _clean_months(self, written: list[_Partition]) -> set[PurePath]:
        """Month partitions (relative to their table) this commit can write as compacted."""
        staged: dict[PurePath, list[PurePath]] = {}
        for partition in written:
            if partition.spec.name == INVOCATIONS.name:
                month = partition.directory.relative_to(self.lake.table_dir(partition.spec))
                staged.setdefault(month, []).append(partition.staged)
        new_months = {
            month: files
            for month, files in staged.items()
            if not any(self.lake.storage.files(self.lake.root / t / month) for t in PAIRED)
        }
        if not new_months:  # a nightly run: every month already has files
            return set()
        clean = set()
        with duckdb.connect() as con:
            self.lake.storage.register(con)
            for month, files in new_months.items():
                urls = ", ".join(sql_literal(self.lake.storage.url(f)) for f in files)
                (repeated,) = con.sql(
                    f"SELECT count(*) - count(DISTINCT (command_id, instance_id)) "
                    f"FROM read_parquet([{urls}])"
                ).fetchall()[0]
                if repeated == 0:
                    clean.add(month)
        return clean

    def abort(self) -> None:
        for partition in self._partitions.values():
            partition.buffer.clear()
            if partition.writer is not None:
                partition.writer.close()
        self.lake.storage.delete_tree(self.staging)


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
