"""Rewrite what a run touched into one file per partition; retire the old files late.

Why: a nightly run re-reads a lookback window, so without this every night
would add another copy of the same invocations. After a region commits, each
partition it touched is rewritten as one sorted file holding the latest
version of every row (queries stay fast, storage stays flat).

Reader guarantee: the rewritten file is renamed into place *before* the files
it replaces are retired, and the views keep only the latest version of each
row, so a reader sees every row exactly once at every instant. Replaced files
are listed in a manifest under `_trash/` and deleted only after a grace
period, so a query that already listed them does not fail. A run killed
anywhere in between leaves duplicates the views hide, and the next
compaction of that partition folds them in again.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .lake import Lake
from .schema import COMMAND_PLUGINS, INVOCATIONS, TableSpec
from .views import sql_dir, sql_literal

TRASH = "_trash"


def data_files(directory: Path) -> list[Path]:
    """A partition's Parquet files, without the zero-row placeholder."""
    return sorted(p for p in directory.glob("*.parquet") if p.name != "_empty.parquet")


def _query(table: TableSpec, files: list[Path]) -> str:
    template = (sql_dir() / "compaction" / f"{table.name}.sql").read_text()
    listed = "[" + ", ".join(sql_literal(str(f)) for f in files) + "]"
    return string.Template(template).substitute(files=listed)


def _stage(
    staging: Path, directory: Path, table: pa.Table, spec: TableSpec, run_id: str
) -> tuple[Path, Path]:
    final = directory / f"part-{run_id}-c{uuid.uuid4().hex[:8]}.parquet"
    staged = staging / final.name
    staged.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table.select(spec.file_schema.names).cast(spec.file_schema), staged, compression="zstd"
    )
    return staged, final


class Compactor:
    """Compacts partitions of one lake within a run that holds its lock."""

    def __init__(self, lake: Lake, run_id: str) -> None:
        self.lake = lake
        self.run_id = run_id
        self.con = duckdb.connect()
        # One folder per compactor: regions of one run compact side by side.
        self.staging = lake.root / "_staging" / f"compact-{run_id}-{uuid.uuid4().hex[:8]}"

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.staging, ignore_errors=True)

    def _read(self, spec: TableSpec, files: list[Path]) -> pa.Table:
        return self.con.sql(_query(spec, files)).to_arrow_table()

    def compact_month(self, partition: Path, *, force: bool = False) -> list[Path]:
        """Invocations and their plugins of one `account/region/month`; returns retired files.

        `partition` is relative to a table directory, e.g.
        `account_id=1/region=r/requested_month=2026-03`.
        """
        inv_dir = self.lake.table_dir(INVOCATIONS) / partition
        plg_dir = self.lake.table_dir(COMMAND_PLUGINS) / partition
        inv_files, plg_files = data_files(inv_dir), data_files(plg_dir)
        if not inv_files or (len(inv_files) <= 1 and len(plg_files) <= 1 and not force):
            return []
        survivors = self._read(INVOCATIONS, inv_files)
        self.con.register("survivors", survivors)
        try:
            plugins = self._read(COMMAND_PLUGINS, plg_files) if plg_files else None
        finally:
            self.con.unregister("survivors")
        moves = [_stage(self.staging, inv_dir, survivors, INVOCATIONS, self.run_id)]
        if plugins is not None and plugins.num_rows:
            moves.insert(0, _stage(self.staging, plg_dir, plugins, COMMAND_PLUGINS, self.run_id))
        for staged, final in moves:  # plugins first, as in a commit
            os.replace(staged, final)
        return [*inv_files, *plg_files]

    def compact_all(self, spec: TableSpec, partition: Path, *, force: bool = False) -> list[Path]:
        """A table whose rows stand alone (commands, inventory, quarantine, ledger)."""
        directory = self.lake.table_dir(spec) / partition
        files = data_files(directory)
        if not files or (len(files) == 1 and not force):
            return []
        staged, final = _stage(self.staging, directory, self._read(spec, files), spec, self.run_id)
        os.replace(staged, final)
        return files


def retire(lake: Lake, files: Iterable[Path], now: float | None = None) -> Path | None:
    """List replaced files in a trash manifest; `sweep` deletes them after the grace."""
    relative = [str(Path(f).relative_to(lake.root)) for f in files]
    if not relative:
        return None
    trash = lake.root / TRASH
    trash.mkdir(exist_ok=True)
    stamp = time.time() if now is None else now
    manifest = trash / f"{int(stamp * 1000):015d}-{uuid.uuid4().hex[:8]}.json"
    staged = manifest.with_suffix(".tmp")
    staged.write_text(json.dumps({"retired_at": stamp, "files": relative}))
    os.replace(staged, manifest)
    return manifest


def sweep(lake: Lake, grace_seconds: float, now: float | None = None) -> int:
    """Delete retired files whose grace period has passed; returns how many."""
    trash = lake.root / TRASH
    if not trash.is_dir():
        return 0
    now = time.time() if now is None else now
    deleted = 0
    for manifest in sorted(trash.glob("*.json")):
        entry = json.loads(manifest.read_text())
        if now - entry["retired_at"] < grace_seconds:
            continue
        for name in entry["files"]:
            path = lake.root / name
            if path.exists():
                path.unlink()
                deleted += 1
        manifest.unlink()
    return deleted
