"""Retention chosen by the operator: what is older than N days leaves every table.

- `invocations`, `command_plugins`, `commands`: whole months that ended
  before the cutoff (a month stays while any of it is younger).
- `quarantine`: records last seen before the cutoff.
- `ingest_runs`: ledger rows that finished before the cutoff, except each
  region's newest successful run, whose watermark the next run starts from.
- `managed_instances`: the inventory of regions whose latest snapshot was
  taken before the cutoff (regions no run reads any more). Every run
  replaces its region's snapshot, so a region still read is never purged.

Each table's purge is one Delta DELETE. The rows stay reachable by time
travel, and their files on storage, until vacuum forgets them (`keep_days`,
run right after the purge). Nothing is ever purged by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

from .commit import Committer, Pending, metadata
from .ingest import RegionResult
from .lake import Lake
from .maintain import vacuum
from .schema import (
    COMMAND_PLUGINS,
    COMMANDS,
    INGEST_RUNS,
    INVOCATIONS,
    MANAGED_INSTANCES,
    PLUGIN_OUTPUTS,
    QUARANTINE,
    TABLES,
    TableSpec,
)
from .storage import Lease
from .views import sql_literal, table_source

MONTHLY = (COMMAND_PLUGINS, COMMANDS, PLUGIN_OUTPUTS)
"""Monthly tables purged with `invocations`, month for month."""


@dataclass
class PurgeResult:
    run_id: str
    cutoff: datetime
    months: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def render(self) -> str:
        removed = ", ".join(f"{n} {t}" for t, n in self.rows.items() if n) or "nothing"
        lines = [f"purge {self.run_id}: older than {self.cutoff:%Y-%m-%d %H:%M}Z: {removed}"]
        for (account, region), months in sorted(self.months.items()):
            lines.append(f"  {account} {region}: months {', '.join(months)}")
        return "\n".join(lines)


def purge(
    lake: Lake,
    older_than_days: float,
    run_id: str,
    lease: Lease,
    *,
    keep_days: float,
    now: datetime | None = None,
) -> PurgeResult:
    """Delete what is older than `older_than_days` from every table (see the module docstring).

    The caller holds the lake's lock; `lease` is checked before each commit.
    """
    now = now or datetime.now(UTC)
    result = PurgeResult(run_id=run_id, cutoff=now - timedelta(days=older_than_days))
    kept_from = result.cutoff.strftime("%Y-%m")  # a month stays while any of it is younger
    actions = pa.table(lake.table(INVOCATIONS).get_add_actions(flatten=True))
    for account, region, month in _partitions(actions):
        if month < kept_from:
            result.months.setdefault((account, region), []).append(month)
    for months in result.months.values():
        months.sort()
    for spec in (INVOCATIONS, *MONTHLY):
        predicate = f"requested_month < {sql_literal(kept_from)}"
        result.rows[spec.name] = _delete(lake, spec, predicate, run_id, lease)
    cutoff = result.cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    predicate = f"ingested_at < '{cutoff}'"
    result.rows[QUARANTINE.name] = _delete(lake, QUARANTINE, predicate, run_id, lease)
    result.rows[MANAGED_INSTANCES.name] = _delete(lake, MANAGED_INSTANCES, predicate, run_id, lease)
    result.rows[INGEST_RUNS.name] = _purge_ledger(lake, result.cutoff, run_id, lease)
    committer = Committer(lake, run_id, lease)
    for (account, region), months in result.months.items():
        row = RegionResult(run_id, account, region, status="purged", purged_months=months)
        committer.add(Pending(None, row.ledger_row()))
    committer.commit()
    for spec in TABLES:
        vacuum(lake.table(spec), run_id, keep_days)
    return result


def _partitions(actions: pa.Table) -> set[tuple[str, str, str]]:
    if not actions.num_rows:
        return set()
    columns = [actions.column(f"partition.{c}").to_pylist() for c in INVOCATIONS.partition_by]
    return set(zip(*columns, strict=True))


def _delete(lake: Lake, spec: TableSpec, predicate: str | None, run_id: str, lease: Lease) -> int:
    if predicate is None:
        return 0
    lease.check()
    metrics = lake.table(spec).delete(predicate, commit_properties=metadata(run_id, "purge"))
    return int(metrics.get("num_deleted_rows", 0))


def _purge_ledger(lake: Lake, cutoff: datetime, run_id: str, lease: Lease) -> int:
    """Ledger rows older than the cutoff, but never a region's newest successful run."""
    sql = f"""
        WITH ledger AS (
            SELECT
                run_id, account_id, region, status, finished_at,
                max(finished_at) FILTER (WHERE status = 'succeeded')
                    OVER (PARTITION BY account_id, region) AS newest_success
            FROM {table_source(lake.snapshot(), INGEST_RUNS)}
        )
        SELECT run_id, account_id, region FROM ledger
        WHERE finished_at < CAST($cutoff AS TIMESTAMPTZ)
            AND NOT (status = 'succeeded' AND finished_at = newest_success)
    """
    with duckdb.connect() as con:
        lake.storage.register(con)
        old = con.sql(sql, params={"cutoff": cutoff}).to_arrow_table()
    if not old.num_rows:
        return 0
    lease.check()
    merge = lake.table(INGEST_RUNS).merge(
        old,
        predicate=" AND ".join(f"t.{c} = s.{c}" for c in INGEST_RUNS.key),
        source_alias="s",
        target_alias="t",
        commit_properties=metadata(run_id, "purge"),
    )
    metrics = merge.when_matched_delete().execute()
    return int(metrics.get("num_target_rows_deleted", 0))
