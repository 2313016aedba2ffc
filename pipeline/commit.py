"""The run's one committer: spooled regions into the Delta tables, many regions per commit.

Region tasks spool their rows (`pipeline.spool`); the committer gathers
finished regions and commits them in batches: per batch one Delta
transaction per table, in `schema.COMMIT_ORDER` (an invocation's plugins
before the invocation, the ledger last). A night of 1,000 accounts x 20
regions therefore adds tens of versions to a table, not 20,000.

What a batch commit guarantees:
- Each table's new version holds exactly one row per key. Monthly tables are
  merged on their key (partition columns included, and the batch's partitions
  named as literals in the predicate, so only the partitions it touches are
  rewritten). A re-fetched invocation replaces the stored one, and so do its
  plugins: plugin rows its new state no longer has are deleted in the same
  transaction. Which state is newer follows commit order, never a clock.
  Where none of the partitions a table's write reaches holds a file yet, there
  is nothing to merge with: the rows are written as files and committed by
  `pipeline.append`, which holds a row group at a time where a merge would hold
  the whole source.
- A region is in a table entirely or not at all: its rows are in one batch.
- The ledger rows, which carry each region's new watermark, commit last; a
  run killed before that re-reads the same window next time, and the merges
  make that converge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from .append import ROW_GROUP_ROWS, append_rows, path_safe
from .lake import Lake, data_file, dataset
from .memory import release_free_memory
from .schema import COMMAND_PLUGINS, COMMIT_ORDER, INGEST_RUNS, INVOCATIONS, TableSpec
from .spool import EXPIRE, OP, UPSERT, SpooledRegion, spool_schema
from .storage import Lease

log = logging.getLogger("ssm_etl")

DELETE = "delete"
"""`_op` of a plugin row that a re-fetched invocation no longer has (added at commit time)."""
BATCH_REGIONS = 500
BATCH_ROWS = 250_000
BATCH_SECONDS = 120.0
"""A batch is committed when it holds this many regions or spooled rows, or its first region
has waited this long: bounded versions per night, bounded memory and latency per commit.
A region that would take the pending batch past `BATCH_ROWS` commits the batch first.

The rows bound is what holds the committer's memory: delta-rs's writer holds about one
to two times the Arrow size of a merge's source while it writes. Measured with
`python -m benchmarks --only run` (3 regions of 20,000 and of 60,000 invocations,
benchmarks/README.md): 250k rows is three small regions or one large one per batch, so
the largest commit is about the same size at both. A night of 20,000 small regions
(a few hundred invocations each) still commits in tens of batches."""
_READ_BATCH = 1024
"""Rows per batch the merge is fed, read one file and one batch at a time: what delta-rs
holds while it writes grows with what it is handed ahead of the writer. `pipeline.append`
holds one batch per partition at most, and is fed a row group per batch."""


def metadata(
    run_id: str,
    operation: str,
    regions: list[tuple[str, str]] | None = None,
    *,
    rows_added: int | None = None,
) -> Any:
    """What every commit of ssm-etl records in Delta's commitInfo (`ssm-etl history` reads it).

    `rows_added`: for a commit of files (`pipeline.append`), whose operation metrics
    delta-rs leaves empty."""
    from deltalake import CommitProperties

    info: dict[str, Any] = {"run_id": run_id, "operation": operation}
    if regions is not None:
        info["regions"] = [list(r) for r in regions]
    if rows_added is not None:
        info["rows_added"] = rows_added
    return CommitProperties(custom_metadata={"ssm_etl": info})


def writer_properties() -> Any:
    from deltalake import WriterProperties

    # Small row groups keep the writer's buffers (and so the committer's memory) bounded.
    return WriterProperties(
        compression="ZSTD", max_row_group_size=ROW_GROUP_ROWS, write_batch_size=1024
    )


@dataclass
class Pending:
    """A finished region waiting for its batch: its spool (None if it failed) and ledger row."""

    spooled: SpooledRegion | None
    ledger_row: dict[str, Any] | None
    """None: rows without a ledger entry (hand-made lakes in tests, an upgrade)."""


@dataclass
class Batch:
    items: list[Pending] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def rows(self) -> int:
        return sum(p.spooled.size for p in self.items if p.spooled is not None)


class Committer:
    """Commits finished regions in batches; lives in the process that holds the lake's lock."""

    def __init__(
        self,
        lake: Lake,
        run_id: str,
        lease: Lease,
        *,
        max_regions: int = BATCH_REGIONS,
        max_rows: int = BATCH_ROWS,
        max_seconds: float = BATCH_SECONDS,
    ) -> None:
        self.lake = lake
        self.run_id = run_id
        self.lease = lease
        self.max_regions, self.max_rows, self.max_seconds = max_regions, max_rows, max_seconds
        self.batch = Batch()
        self.committed: list[dict[str, Any]] = []
        """The ledger rows committed so far (in commit order)."""
        self.commits = 0

    def add(self, item: Pending) -> None:
        """Queue a finished region; the pending batch commits first if the region would push
        it past the rows bound (a batch exceeds it only when one region alone does)."""
        size = item.spooled.size if item.spooled is not None else 0
        if size and self.batch.rows and self.batch.rows + size > self.max_rows:
            self.commit()
        if not self.batch.items:
            self.batch = Batch()
        self.batch.items.append(item)

    @property
    def due(self) -> bool:
        items = self.batch.items
        return bool(items) and (
            len(items) >= self.max_regions
            or self.batch.rows >= self.max_rows
            or time.monotonic() - self.batch.started >= self.max_seconds
        )

    def commit_if_due(self) -> None:
        if self.due:
            self.commit()

    def discard(self) -> list[Pending]:
        """Drop the pending batch (an interrupted run) and its spool; returns what was dropped."""
        dropped, self.batch = self.batch.items, Batch()
        for item in dropped:
            if item.spooled is not None:
                self._delete_spool(item.spooled)
        return dropped

    def commit(self) -> None:
        """Commit the pending batch: one transaction per table, the ledger last."""
        items = self.batch.items
        if not items:
            return
        started = time.monotonic()
        spooled = [p.spooled for p in items if p.spooled is not None]
        rows = [p.ledger_row for p in items if p.ledger_row is not None]
        regions = sorted(
            {(r["account_id"], r["region"]) for r in rows}
            | {(s.account_id, s.region) for s in spooled}
        )
        for spec in COMMIT_ORDER:
            if spec is INGEST_RUNS:
                continue
            files = [f for s in spooled for f in s.files.get(spec.name, [])]
            stale = self._stale(spec, spooled) if spec is COMMAND_PLUGINS or spec.snapshot else None
            if files or (stale is not None and stale.num_rows):
                self.lease.check()
                release_free_memory()  # what the walks and the last source freed, before this merge
                self._write(spec, spooled, files, regions, stale)
        if rows:
            self.lease.check()
            ledger = pa.Table.from_pylist(rows, schema=INGEST_RUNS.schema)
            self._append(INGEST_RUNS, ledger, regions)
        for region in spooled:
            self._delete_spool(region)
        self.committed += rows
        self.commits += 1
        self.batch = Batch()
        # A commit of ledger rows alone (failed or interrupted regions) is bookkeeping.
        log.log(
            logging.INFO if spooled else logging.DEBUG,
            "committed %d regions (%d rows) in %.1f s",
            len(items),
            sum(s.size for s in spooled),
            time.monotonic() - started,
        )

    def _delete_spool(self, region: SpooledRegion) -> None:
        for files in region.files.values():
            for relative in files:
                self.lake.storage.delete_tree(relative.rsplit("/", 1)[0])

    def _source(
        self, spec: TableSpec, files: list[str], batch_size: int = _READ_BATCH
    ) -> Iterator[pa.RecordBatch]:
        storage = self.lake.storage
        paths = [storage.fs_path(storage.uri(f)) for f in files]
        spooled = ds.dataset(paths, schema=spool_schema(spec), filesystem=storage.fs)
        yield from spooled.to_batches(
            batch_size=batch_size, batch_readahead=0, fragment_readahead=1, use_threads=False
        )

    def _write(
        self,
        spec: TableSpec,
        spooled: list[SpooledRegion],
        files: list[str],
        regions: list[tuple[str, str]],
        stale: pa.Table | None = None,
    ) -> None:
        table = self.lake.table(spec)
        touched = _touched(spec, spooled)
        if _new_partitions(self.lake, table, spec, touched):
            rows = append_rows(
                self.lake,
                spec,
                table,
                self._source(spec, files, ROW_GROUP_ROWS),  # a row group per batch
                lambda added: metadata(self.run_id, "ingest", regions, rows_added=added),
            )
            log.debug("%s: %d rows into new partitions", spec.name, rows)
            return
        source = self._source(spec, files)
        if stale is not None:
            source = _chain(source, iter(stale.to_batches()))
        reader = pa.RecordBatchReader.from_batches(spool_schema(spec), source)
        merger = table.merge(
            reader,
            predicate=_predicate(spec, touched),
            source_alias="s",
            target_alias="t",
            writer_properties=writer_properties(),
            commit_properties=metadata(self.run_id, "ingest", regions),
        )
        upsert = f"s.{OP} = '{UPSERT}'"
        if spec is INVOCATIONS:
            merger = merger.when_matched_update(
                {"expired_while_open_at": "s.expired_while_open_at"},
                predicate=f"s.{OP} = '{EXPIRE}'",
            )
        if stale is not None:
            merger = merger.when_matched_delete(predicate=f"s.{OP} = '{DELETE}'")
        merger = merger.when_matched_update_all(predicate=upsert, except_cols=[OP])
        merger = merger.when_not_matched_insert_all(predicate=upsert, except_cols=[OP])
        metrics = merger.execute()
        log.debug("%s: %s", spec.name, metrics)

    def _append(self, spec: TableSpec, data: Any, regions: list[tuple[str, str]]) -> None:
        from deltalake import write_deltalake

        if isinstance(data, pa.Table) and spec.month_from is None:
            data = data.cast(spec.table_schema)
        write_deltalake(
            self.lake.table(spec),
            data,
            mode="append",
            writer_properties=writer_properties(),
            commit_properties=metadata(self.run_id, "ingest", regions),
        )

    def _stale(self, spec: TableSpec, spooled: list[SpooledRegion]) -> pa.Table:
        """`delete` rows for stored rows that the batch's new state of them no longer has.

        - `command_plugins`: stored plugins of the invocations this batch
          re-fetched, that the invocation's new plugin list lacks.
        - snapshot tables: stored rows of a region whose new snapshot lacks them.

        Only the batch's own partitions are read, key columns only.
        """
        import duckdb

        schema = spool_schema(spec)
        if spec is COMMAND_PLUGINS:
            scope = [s for s in spooled if s.files.get(INVOCATIONS.name)]
        else:
            scope = [s for s in spooled if spec.name in s.snapshots]
        targets = _partition_files(self.lake, self.lake.table(spec), spec, scope)
        if not targets:
            return schema.empty_table()
        keys = ", ".join(spec.key)
        sql = f"""
            SELECT {keys} FROM stored
            ANTI JOIN (SELECT {keys} FROM kept WHERE {OP} = '{UPSERT}') USING ({keys})
        """
        if spec is COMMAND_PLUGINS:
            refetched = ", ".join(INVOCATIONS.key)
            sql += (
                f"SEMI JOIN (SELECT {refetched} FROM refetched WHERE {OP} = '{UPSERT}') "
                f"USING ({refetched})"
            )
        with duckdb.connect() as con:  # lazy scans: only the key columns are read
            con.register("stored", dataset(self.lake.storage, spec, targets))
            con.register("kept", self._spooled(spec, scope))
            con.register("refetched", self._spooled(INVOCATIONS, scope))
            stale = con.sql(sql).to_arrow_table()
        columns = [
            stale.column(f.name).cast(f.type)
            if f.name in stale.column_names
            else pa.repeat(pa.scalar(DELETE), stale.num_rows)
            if f.name == OP
            else pa.nulls(stale.num_rows, f.type)
            for f in schema
        ]
        return pa.Table.from_arrays(columns, schema=schema)

    def _spooled(self, spec: TableSpec, spooled: list[SpooledRegion]) -> Any:
        """The regions' spooled rows of `spec`, as a lazily read dataset."""
        files = [f for s in spooled for f in s.files.get(spec.name, [])]
        if not files:
            return spool_schema(spec).empty_table()
        storage = self.lake.storage
        paths = [storage.fs_path(storage.uri(f)) for f in files]
        return ds.dataset(paths, schema=spool_schema(spec), filesystem=storage.fs)


def _chain(*sources: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for source in sources:
        yield from source


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _touched(spec: TableSpec, spooled: list[SpooledRegion]) -> list[SpooledRegion]:
    """The regions whose partitions of `spec` a batch's write reaches (plugins: with their
    invocations, whose re-fetch replaces the plugin rows)."""
    if spec is COMMAND_PLUGINS:
        return [s for s in spooled if s.files.keys() & {spec.name, INVOCATIONS.name}]
    return [s for s in spooled if spec.name in s.files or spec.name in s.snapshots]


def _predicate(spec: TableSpec, touched: list[SpooledRegion]) -> str:
    """The merge condition: the key, and the touched partitions as literals (file pruning)."""
    key = " AND ".join(f"t.{c} = s.{c}" for c in spec.key)
    return f"{_partitions(spec, touched)} AND {key}"


def _new_partitions(lake: Lake, table: Any, spec: TableSpec, touched: list[SpooledRegion]) -> bool:
    """Whether no partition the write reaches holds a file yet: then a merge could only
    insert, and `pipeline.append` writes the rows with far less memory."""
    values = [v for s in touched for v in (s.account_id, s.region, *_months(spec, s))]
    return path_safe(values) and not _partition_files(lake, table, spec, touched)


def _partitions(spec: TableSpec, spooled: list[SpooledRegion]) -> str:
    """The regions' partitions of `spec` (their months, for a monthly table) as a condition."""
    groups = []
    for region in spooled:
        months = sorted(_months(spec, region))
        parts = [
            f"t.account_id = {sql_literal(region.account_id)}",
            f"t.region = {sql_literal(region.region)}",
        ]
        if spec.month_from is not None:
            parts.append(f"t.requested_month IN ({', '.join(sql_literal(m) for m in months)})")
        groups.append("(" + " AND ".join(parts) + ")")
    return f"({' OR '.join(groups)})"


def _months(spec: TableSpec, region: SpooledRegion) -> set[str]:
    """The month partitions a batch's merge of `spec` touches for one region.

    Plugins are replaced with their invocations, so the plugin merge reaches
    every month the region's invocations fall in, even one with no new plugin row.
    """
    months = set(region.months.get(spec.name, ()))
    if spec is COMMAND_PLUGINS:
        months |= region.months.get(INVOCATIONS.name, set())
    return months


def _partition_files(
    lake: Lake, table: Any, spec: TableSpec, spooled: list[SpooledRegion]
) -> list[str]:
    """The stored data files of `spec` in the regions' partitions (their months, if monthly)."""
    wanted: set[tuple[str, ...]] = (
        {(s.account_id, s.region) for s in spooled}
        if spec.month_from is None
        else {(s.account_id, s.region, m) for s in spooled for m in _months(spec, s)}
    )
    actions = pa.table(table.get_add_actions(flatten=True))
    if not actions.num_rows or not wanted:
        return []
    columns = [actions.column(f"partition.{c}").to_pylist() for c in spec.partition_by]
    base = lake.table_uri(spec)
    paths = actions.column("path").to_pylist()
    return [
        data_file(base, path)
        for path, *key in zip(paths, *columns, strict=True)
        if tuple(key) in wanted
    ]
