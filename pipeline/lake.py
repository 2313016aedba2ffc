"""The lake: one Delta table per table of `pipeline.schema`, under one folder or S3 prefix.

Layout::

    <lake>/lake.json                     format marker and version
    <lake>/<table>/_delta_log/           the table's transaction log (delta-rs)
    <lake>/<table>/account_id=<id>/region=<r>[/requested_month=<YYYY-MM>]/part-*.parquet
    <lake>/_spool/<run>/                 rows handed from region tasks to the committer
    <lake>/.lock                         the run lock (S3: a lease object, _lock.json)

Every reader and writer goes through Delta's log: a reader sees one committed
version of each table (`Snapshot`), whatever a run is doing meanwhile, and so
does every other engine (Athena, Trino, Spark, Polars) that reads Delta.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from .errors import ConfigError
from .schema import TABLES, TableSpec
from .storage import LocalStorage, Storage, is_s3

FORMAT = "ssm-etl-lake"
FORMAT_VERSION = 3
"""3: Delta tables (2: Parquet files with a home-made commit protocol; `pipeline.upgrade`)."""
MARKER = "lake.json"
SPOOL = "_spool"


class Lake:
    """A lake. Construct with `Lake.create` (writers) or `Lake.open` (readers)."""

    def __init__(self, storage: Storage, version: int = FORMAT_VERSION) -> None:
        self.storage = storage
        self.version = version
        self._tables: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its loaded tables (a Dask worker loads its own)."""
        return {**self.__dict__, "_tables": {}}

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
        where = storage.location
        local = isinstance(storage, LocalStorage)
        if local and storage.root.exists() and not storage.root.is_dir():  # type: ignore[attr-defined]
            raise ConfigError(f"lake path is not a directory: {where}")
        try:
            if not storage.exists(MARKER):
                raise ConfigError(f"not an ssm-etl lake (no lake.json): {where}")
            meta = json.loads(storage.read_text(MARKER))
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
        return cls(storage, version)

    @staticmethod
    def check_location(location: str | os.PathLike[str]) -> None:
        """Validate a lake location for writing without changing anything."""
        storage = Storage.from_location(location)
        if not isinstance(storage, LocalStorage):
            _check_s3(storage)
            return
        root = storage.root
        if root.exists() and not root.is_dir():
            raise ConfigError(f"lake path is not a directory: {root}")
        if (root / MARKER).exists():
            Lake._open(storage, older=True)  # refuses lakes from newer versions
        elif root.exists() and any(p.name != ".lock" for p in root.iterdir()):
            raise ConfigError(f"lake path exists, is not empty and is not a lake: {root}")
        parent = root
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise ConfigError(f"lake path is inside a file ({parent}): {root}")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"lake path is not writable: {root}")
        if parent != root:
            _check_creatable(parent, root)

    @classmethod
    def create(cls, location: str | os.PathLike[str], *, sse_kms_key_id: str | None = None) -> Lake:
        """Open a lake for writing, creating its folder and marker if needed.

        An older format is accepted (the caller upgrades it under the lock);
        the tables are created by `ensure_tables`, under the lock too.
        """
        if not is_s3(location):
            cls.check_location(location)
        storage = Storage.from_location(location, sse_kms_key_id=sse_kms_key_id)
        if not isinstance(storage, LocalStorage):
            _check_s3(storage)
        if not storage.exists(MARKER):
            try:
                if isinstance(storage, LocalStorage):
                    storage.root.mkdir(parents=True, exist_ok=True)
                storage.write_text(MARKER, _marker())
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise ConfigError(
                    f"cannot create the lake at {storage.location}: {reason}"
                ) from None
        return cls._open(storage, older=True)

    def mark_version(self) -> None:
        """Record that the whole lake is in this ssm-etl's format (an upgrade's last step)."""
        self._write_marker(version=FORMAT_VERSION)
        self.version = FORMAT_VERSION

    def _marker(self) -> dict[str, Any]:
        meta = json.loads(self.storage.read_text(MARKER))
        return meta if isinstance(meta, dict) else {}

    def _write_marker(self, **changes: Any) -> None:
        meta = {**self._marker(), "format": FORMAT, **changes}
        self.storage.write_text(MARKER, json.dumps(meta, indent=1))

    @property
    def views_databases(self) -> list[str]:
        """DuckDB files written by `ssm-etl views --db`, which every run refreshes."""
        found = self._marker().get("views_databases", [])
        return [str(p) for p in found] if isinstance(found, list) else []

    def register_views_database(self, path: str) -> None:
        if path not in self.views_databases:
            self._write_marker(views_databases=[*self.views_databases, path])

    def table_uri(self, spec: TableSpec) -> str:
        return self.storage.uri(spec.name)

    def table(self, spec: TableSpec) -> Any:
        """The table's `DeltaTable` at its latest version, for a writer.

        Loaded once per `Lake` and brought up to date on each call (on S3 a
        list of the new log entries, not a new load).
        """
        from deltalake import DeltaTable

        table = self._tables.get(spec.name)
        if table is None:
            table = DeltaTable(self.table_uri(spec), storage_options=self.storage.delta_options())
            self._tables[spec.name] = table
        else:
            table.update_incremental()
        return table

    def ensure_tables(self, tables: tuple[TableSpec, ...] = TABLES, run_id: str = "") -> None:
        """Create the tables that do not exist yet, and add columns a schema gained since.

        The caller holds the lock. This is how a new table or a new nullable
        column reaches an existing lake (see `pipeline.schema`).
        """
        from deltalake import DeltaTable, Schema

        options = self.storage.delta_options()
        for spec in tables:
            uri = self.table_uri(spec)
            if not DeltaTable.is_deltatable(uri, storage_options=options):
                DeltaTable.create(
                    uri,
                    schema=Schema.from_arrow(spec.table_schema),
                    partition_by=list(spec.partition_by),
                    storage_options=options,
                    name=spec.name,
                    mode="ignore",
                )
                continue
            table = self.table(spec)
            missing = spec.absent_from(_column_names(table))
            if missing:
                _add_columns(table, missing, run_id)

    @contextmanager
    def lock(self) -> Iterator[Any]:
        """Hold the lake for one run; a second run refuses rather than waits.

        Locally an flock, which the kernel drops when the process dies; on S3
        a fenced lease (`S3Storage.lock`). Yields a lease whose `check()` a
        writer calls before each commit. A killed run's spool is deleted once
        the lock is ours.
        """
        with self.storage.lock() as lease:
            self.storage.delete_tree(SPOOL)
            yield lease

    def exists(self, spec: TableSpec) -> bool:
        from deltalake import DeltaTable

        options = self.storage.delta_options()
        return bool(DeltaTable.is_deltatable(self.table_uri(spec), storage_options=options))

    def snapshot(self, as_of: AsOf | None = None) -> Snapshot:
        """One committed version of every table: the latest, or the lake as it stood `as_of`.

        A table the lake does not have yet (a new lake, or a table a newer
        version added before its first run) reads as empty.
        """
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        moment = None if as_of is None else as_of.moment(self)
        tables: dict[str, Any] = {}
        for spec in TABLES:
            uri = self.table_uri(spec)
            try:
                table = DeltaTable(uri, storage_options=self.storage.delta_options())
            except TableNotFoundError:
                tables[spec.name] = None
                continue
            if moment is not None:
                version = version_at(table, moment)
                if version is None:  # the table did not exist yet
                    tables[spec.name] = None
                    continue
                table.load_as_version(version)
            tables[spec.name] = table
        return Snapshot(self, tables, moment)


def version_at(table: Any, moment: datetime) -> int | None:
    """The table's last version committed at or before `moment`, by the commits' own
    timestamps (the ones `history` shows and `--as-of RUN` resolves to), not by the log
    files' modification times, which S3 or a slow write stamp later."""
    limit = moment.timestamp() * 1000
    for entry in table.history():  # newest first
        if entry["timestamp"] <= limit:
            return int(entry["version"])
    return None


def _add_columns(table: Any, missing: list[pa.Field], run_id: str) -> None:
    """Rewrite the table with the new (nullable) columns, in one commit.

    Every data file then has every column, so the views can read the files
    without reconciling their schemas; rows written before read as NULL.
    """
    from deltalake import write_deltalake

    from .commit import metadata, writer_properties

    stored = table.to_pyarrow_dataset()
    schema = pa.schema([*stored.schema, *missing])

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in stored.to_batches(batch_size=64 * 1024):
            nulls = [pa.nulls(batch.num_rows, f.type) for f in missing]
            yield pa.RecordBatch.from_arrays([*batch.columns, *nulls], schema=schema)

    write_deltalake(
        table,
        pa.RecordBatchReader.from_batches(schema, batches()),
        mode="overwrite",
        schema_mode="merge",
        writer_properties=writer_properties(),
        commit_properties=metadata(run_id, "add columns"),
    )


def _marker() -> str:
    return json.dumps({"format": FORMAT, "version": FORMAT_VERSION})


def _check_s3(storage: Storage) -> None:
    where = storage.location
    try:
        if storage.exists(MARKER):
            Lake._open(storage, older=True)  # refuses lakes from newer versions
        elif storage.files(""):
            raise ConfigError(f"lake location is not empty and is not a lake: {where}")
    except OSError as exc:
        raise ConfigError(f"cannot reach the S3 lake {where}: {exc}") from None


@dataclass(frozen=True)
class AsOf:
    """A point in the lake's history: a time, a run id, or a version of `invocations`."""

    moment_value: datetime | None = None
    run_id: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> AsOf:
        """`2026-03-01T12:00:00Z` (a time; no zone means UTC), a run id, or a version number."""
        text = text.strip()
        if text.isdigit():
            return cls(version=int(text))
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            if not text:
                raise ConfigError("--as-of is empty") from None
            return cls(run_id=text)
        return cls(moment_value=moment if moment.tzinfo else moment.replace(tzinfo=UTC))

    def resolved(self, lake: Lake) -> AsOf:
        """The same point as a time (a run id or a version looked up once)."""
        return AsOf(moment_value=self.moment(lake))

    def moment(self, lake: Lake) -> datetime:
        """The instant this names: every table is read at its last commit up to it."""
        from .history import commit_time

        if self.moment_value is not None:
            return self.moment_value
        return commit_time(lake, run_id=self.run_id, version=self.version)


@dataclass
class Snapshot:
    """Each table at one committed version: what a reader's views read."""

    lake: Lake
    tables: dict[str, Any]
    as_of: datetime | None = None
    _files: dict[str, list[str]] = field(default_factory=dict)

    def version(self, spec: TableSpec) -> int | None:
        table = self.tables[spec.name]
        return None if table is None else int(table.version())

    def missing(self, spec: TableSpec) -> list[pa.Field]:
        """Columns of `spec` the table has not got at this version: added to the schema
        since (a lake the next run has not reached yet, or time travel to before the run
        that added them). Readers read them as NULL."""
        table = self.tables[spec.name]
        return [] if table is None else spec.absent_from(_column_names(table))

    def files(self, spec: TableSpec) -> list[str]:
        """The data files of the table at this version (absolute paths or `s3://` URLs)."""
        if spec.name not in self._files:
            table = self.tables[spec.name]
            root = self.lake.table_uri(spec)
            paths = [] if table is None else _log_paths(table)
            self._files[spec.name] = [data_file(root, path) for path in paths]
        return self._files[spec.name]

    def dataset(self, spec: TableSpec) -> Any:
        """The table at this version as a pyarrow dataset (read natively, S3 included).

        Registered on a DuckDB connection it is scanned lazily, with the
        query's columns and filters pushed down: what internal queries use.
        """
        return dataset(self.lake.storage, spec, self.files(spec))


def data_file(root: str, path: str) -> str:
    """A data file's name, from its table's location and its path in the Delta log.

    The log's path is a URL relative to the table, percent-encoded: "p=x%2520y"
    for the folder "p=x%20y". (delta-rs's own file URIs encode the table's
    location too, "/srv/my%20lake/...", which no file system finds.)
    """
    return f"{root}/{unquote(path)}"


def _log_paths(table: Any) -> list[str]:
    return pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()


def _column_names(table: Any) -> set[str]:
    return {f.name for f in table.schema().fields}


def dataset(storage: Storage, spec: TableSpec, uris: list[str]) -> Any:
    """A pyarrow dataset of a table's data files (partition columns from their Hive paths)."""
    import pyarrow.dataset as ds

    if not uris:
        return spec.table_schema.empty_table()
    partitions = pa.schema([spec.table_schema.field(c) for c in spec.partition_by])
    found = ds.dataset(
        [storage.fs_path(uri) for uri in uris],
        format="parquet",
        filesystem=storage.fs,
        partitioning=ds.partitioning(partitions, flavor="hive"),
        partition_base_dir=storage.fs_path(storage.uri(spec.name)),
    )
    missing = spec.absent_from(found.schema.names)
    if not missing:
        return found
    # A version from before a column was added (`Snapshot.missing`) reads it as NULL.
    return found.replace_schema(pa.schema([*found.schema, *missing]))


def local_path(location: str | os.PathLike[str]) -> Path | None:
    """The folder of a local lake location, None for S3."""
    return None if is_s3(location) else Path(location).expanduser().resolve()


def _check_creatable(parent: Path, root: Path) -> None:
    """Whether a folder can be made in `parent` (permissions alone do not say it: /proc,
    read-only mounts). Tried with a temporary folder that is removed at once."""
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".ssm-etl-check-", dir=parent))
    except OSError as exc:
        raise ConfigError(f"lake path cannot be created ({exc.strerror or exc}): {root}") from None
