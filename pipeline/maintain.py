"""After a run's last commit: compact what it wrote, and forget what is past keeping.

Both are delta-rs's own operations. `optimize.compact` bin-packs the small
files a night's merges leave into one file per partition (only partitions
with more than one small file are rewritten, which after a night are the
ones it touched). `vacuum` deletes data files that no version younger than
`keep_days` references, and files that no version references at all (what a
killed run wrote but never committed): time travel (`--as-of`) reaches
`keep_days` back and no further.
"""

from __future__ import annotations

import logging
from typing import Any

from .commit import metadata, writer_properties
from .lake import Lake
from .memory import release_free_memory
from .schema import TABLES, TableSpec

log = logging.getLogger("ssm_etl")

LOG_RETENTION_DAYS = 30
"""Delta's default for how long the transaction log itself keeps entries."""


def maintain(
    lake: Lake, run_id: str, *, keep_days: float, tables: tuple[TableSpec, ...] = TABLES
) -> None:
    for spec in tables:
        table = lake.table(spec)
        release_free_memory()
        compact(table, run_id)
        vacuum(table, run_id, keep_days)


def compact(table: Any, run_id: str) -> dict[str, Any]:
    """One OPTIMIZE commit if any partition has small files to join; none otherwise."""
    metrics: dict[str, Any] = table.optimize.compact(
        writer_properties=writer_properties(), commit_properties=metadata(run_id, "optimize")
    )
    if metrics.get("numFilesRemoved"):
        log.debug("optimize %s: %s", table.table_uri, metrics)
    return metrics


def vacuum(table: Any, run_id: str, keep_days: float) -> list[str]:
    """Delete files unreferenced for `keep_days`; commits only when there is something to delete."""
    hours = max(0, round(keep_days * 24))
    options = {"retention_hours": hours, "enforce_retention_duration": False, "full": True}
    if not table.vacuum(dry_run=True, **options):
        return []
    deleted: list[str] = table.vacuum(
        dry_run=False, commit_properties=metadata(run_id, "vacuum"), **options
    )
    log.debug("vacuum %s: %d files", table.table_uri, len(deleted))
    return deleted
