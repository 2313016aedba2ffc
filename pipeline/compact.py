"""Rewrite what a run touched into one file per partition; retire the old files late.

Why: a nightly run re-reads a lookback window, so without this every night
would add another copy of the same invocations. After a region commits, each
partition it touched is rewritten as one sorted file holding the latest
version of every row (queries stay fast, storage stays flat).

Reader guarantee: the rewritten file is moved into place *before* the files
it replaces are retired, and the views keep only the latest version of each
row, so a reader sees every row exactly once at every instant. Replaced files
are listed in a manifest under `_trash/` and deleted only after a grace
period, so a query that already listed them does not fail. A run killed
anywhere in between leaves duplicates the views hide, and the next
compaction of that partition folds them in again.
"""

from __future__ import annotations

import json
import string
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path, PurePath

import duckdb
import pyarrow as pa

from .lake import EMPTY_MANIFEST, TRASH, Lake, compacted_name, sql_literal
from .schema import COMMAND_PLUGINS, INVOCATIONS, TableSpec
from .storage import LocalStorage, Storage
from .views import sql_dir


def data_files(directory: PurePath, storage: Storage | None = None) -> list[PurePath]:
    """A partition's Parquet files, without the zero-row placeholder (local by default)."""
    listed = (storage or LocalStorage(Path("/"))).files(directory)
    return [p for p in listed if p.suffix == ".parquet" and p.name != "_empty.parquet"]


def retired_files(lake: Lake) -> set[PurePath]:
    """Every file a trash manifest lists: replaced or purged, waiting for `sweep`."""
    retired: set[PurePath] = set()
    for manifest in lake.storage.files(lake.root / TRASH):
        if manifest.suffix == ".json" and manifest.name != EMPTY_MANIFEST:
            entry = json.loads(lake.storage.read_text(manifest))
            retired.update(lake.root / name for name in entry["files"])
    return retired


def _listed(urls: list[str]) -> str:
    return "[" + ", ".join(sql_literal(u) for u in urls) + "]"


def _query(
    table: TableSpec, urls: list[str], *, template: str = "compaction/{table}", **extra: str
) -> str:
    """A query of `sql/<template>.sql` over the files at `urls`."""
    text = (sql_dir() / f"{template.format(table=table.name)}.sql").read_text()
    return string.Template(text).substitute(files=_listed(urls), **extra)


COMPACTION_MEMORY = "256MB"
"""DuckDB's budget for one compaction; a larger partition spills to disk instead."""
_BATCH_ROWS = 128 * 1024
"""Rows per record batch streamed into the compacted file (one row group each)."""


class Compactor:
    """Compacts partitions of one lake within a run that holds its lock.

    A partition is streamed from DuckDB into the new file batch by batch, so
    memory stays within `COMPACTION_MEMORY` however large the partition.
    Files already retired (still on storage for the grace period) are
    ignored: they must never come back.
    """

    def __init__(self, lake: Lake, run_id: str) -> None:
        self.lake = lake
        self.run_id = run_id
        self.storage = lake.storage
        self.retired = retired_files(lake)
        # One folder per compactor: regions of one run compact side by side.
        self.staging = lake.root / "_staging" / f"compact-{run_id}-{uuid.uuid4().hex[:8]}"
        self._spill: tempfile.TemporaryDirectory[str] | None = None
        self._con: duckdb.DuckDBPyConnection | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """Opened on first use: most partitions of a night need no rewrite."""
        if self._con is None:
            self._spill = tempfile.TemporaryDirectory(prefix="ssm-etl-compact-")
            self._con = duckdb.connect(config={"memory_limit": COMPACTION_MEMORY})
            self._con.execute(f"SET temp_directory = {sql_literal(self._spill.name)}")
            self.storage.register(self._con)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self.storage.delete_tree(self.staging)
        if self._spill is not None:
            self._spill.cleanup()

    def live_files(self, directory: PurePath) -> list[PurePath]:
        return [f for f in data_files(directory, self.storage) if f not in self.retired]

    def _stage(self, directory: PurePath, spec: TableSpec, sql: str) -> tuple[PurePath, PurePath]:
        final = directory / compacted_name(self.run_id)
        staged = self.staging / final.name
        reader = self.con.sql(sql).to_arrow_reader(_BATCH_ROWS)
        writer = self.storage.parquet_writer(staged, spec.file_schema, compression="zstd")
        try:
            for batch in reader:
                rows = pa.Table.from_batches([batch]).select(spec.file_schema.names)
                writer.write_table(rows.cast(spec.file_schema))
        finally:
            writer.close()
        return staged, final

    def compact_month(
        self, partition: PurePath, *, force: bool = False, template: str = "compaction/{table}"
    ) -> list[PurePath]:
        """Invocations and their plugins of one `account/region/month`; returns retired files.

        `partition` is relative to a table directory, e.g.
        `account_id=1/region=r/requested_month=2026-03`. `template` names the
        queries (`sql/upgrade/` rewrites a partition of an older format).
        """
        inv_dir = self.lake.table_dir(INVOCATIONS) / partition
        plg_dir = self.lake.table_dir(COMMAND_PLUGINS) / partition
        inv_files = self.live_files(inv_dir)
        plg_files = self.live_files(plg_dir)
        if not inv_files or (len(inv_files) <= 1 and len(plg_files) <= 1 and not force):
            return []
        url = self.storage.url
        plugin_files = _listed(
            [url(f) for f in plg_files] or [url(self.lake.empty_file(COMMAND_PLUGINS))]
        )
        invocations = _query(
            INVOCATIONS, [url(f) for f in inv_files], template=template, plugin_files=plugin_files
        )
        inv_staged, inv_final = self._stage(inv_dir, INVOCATIONS, invocations)
        moves = [(inv_staged, inv_final)]
        if plg_files:
            survivors = sql_literal(url(inv_staged))
            plugins = _query(
                COMMAND_PLUGINS, [url(f) for f in plg_files], template=template, survivors=survivors
            )
            moves.insert(0, self._stage(plg_dir, COMMAND_PLUGINS, plugins))
        for staged, final in moves:  # plugins first, as in a commit
            self.storage.move(staged, final)
        return [*inv_files, *plg_files]

    def compact_all(
        self, spec: TableSpec, partition: PurePath, *, force: bool = False
    ) -> list[PurePath]:
        """A table whose rows stand alone (commands, inventory, quarantine, ledger)."""
        directory = self.lake.table_dir(spec) / partition
        files = self.live_files(directory)
        if not files or (len(files) == 1 and not force):
            return []
        url = self.storage.url
        staged, final = self._stage(directory, spec, _query(spec, [url(f) for f in files]))
        self.storage.move(staged, final)
        return files


def retire(lake: Lake, files: Iterable[PurePath], now: float | None = None) -> PurePath | None:
    """List replaced files in a trash manifest; `sweep` deletes them after the grace."""
    relative = [PurePath(f).relative_to(lake.root).as_posix() for f in files]
    if not relative:
        return None
    trash = lake.root / TRASH
    if isinstance(trash, Path):
        trash.mkdir(exist_ok=True)
    stamp = time.time() if now is None else now
    manifest = trash / f"{int(stamp * 1000):015d}-{uuid.uuid4().hex[:8]}.json"
    lake.storage.write_text(manifest, json.dumps({"retired_at": stamp, "files": relative}))
    return manifest


def sweep(lake: Lake, grace_seconds: float, now: float | None = None) -> int:
    """Delete retired files whose grace period has passed; returns how many."""
    storage = lake.storage
    now = time.time() if now is None else now
    deleted = 0
    for manifest in storage.files(lake.root / TRASH):
        if manifest.suffix != ".json" or manifest.name == EMPTY_MANIFEST:
            continue
        entry = json.loads(storage.read_text(manifest))
        if now - entry["retired_at"] < grace_seconds:
            continue
        for name in entry["files"]:
            path = lake.root / name
            if storage.exists(path):
                storage.delete(path)
                deleted += 1
        storage.delete(manifest)
    return deleted
