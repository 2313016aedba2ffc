"""The lake's history, read from the tables' Delta logs: what each commit did, and when.

Every commit ssm-etl makes records `ssm_etl` in Delta's commitInfo: the run
id, the operation (ingest, optimize, vacuum, purge, upgrade) and, for an
ingest, the account x regions it carries. `ssm-etl history` lists them with
the rows each commit added, updated and deleted; `--as-of RUN_ID` answers as
the lake stood after that run's last commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from .errors import ConfigError
from .schema import INGEST_RUNS, INVOCATIONS, TABLES, TIMESTAMP

HISTORY_SCHEMA = pa.schema(
    [
        pa.field("committed_at", TIMESTAMP),
        pa.field("table_name", pa.string()),
        pa.field("version", pa.int64()),
        pa.field("operation", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("accounts", pa.int64()),
        pa.field("regions", pa.string()),
        pa.field("rows_added", pa.int64()),
        pa.field("rows_updated", pa.int64()),
        pa.field("rows_deleted", pa.int64()),
    ]
)
_SHOWN_REGIONS = 3


def _rows(
    metrics: dict[str, Any], info: dict[str, Any]
) -> tuple[int | None, int | None, int | None]:
    """(added, updated, deleted) from a commit's operationMetrics, whatever the operation;
    a commit of files written by `pipeline.append` has none, and records its rows itself."""
    if "rows_added" in info and not metrics:  # new partitions: rows added, none changed
        return info["rows_added"], 0, 0
    added = metrics.get("num_target_rows_inserted", metrics.get("num_added_rows"))
    updated = metrics.get("num_target_rows_updated")
    deleted = metrics.get("num_target_rows_deleted", metrics.get("num_deleted_rows"))
    return added, updated, deleted


def _regions(regions: list[list[str]] | None) -> tuple[int | None, str | None]:
    if not regions:
        return None, None
    names = [f"{account}/{region}" for account, region in regions]
    shown = ", ".join(names[:_SHOWN_REGIONS])
    if len(names) > _SHOWN_REGIONS:
        shown += f" and {len(names) - _SHOWN_REGIONS} more"
    return len({account for account, _ in regions}), shown


def history(lake: Any, limit: int | None = None) -> pa.Table:
    """Every table's commits, newest first (`limit`: the newest N of each table)."""
    rows = []
    for spec in TABLES:
        if not lake.exists(spec):  # a lake before its first run, or a table added since
            continue
        for entry in lake.table(spec).history(limit):
            info = entry.get("ssm_etl") or {}
            accounts, regions = _regions(info.get("regions"))
            added, updated, deleted = _rows(entry.get("operationMetrics") or {}, info)
            rows.append(
                {
                    "committed_at": entry["timestamp"],
                    "table_name": spec.name,
                    "version": entry["version"],
                    "operation": info.get("operation") or entry.get("operation", "").lower(),
                    "run_id": info.get("run_id"),
                    "accounts": accounts,
                    "regions": regions,
                    "rows_added": added,
                    "rows_updated": updated,
                    "rows_deleted": deleted,
                }
            )
    rows.sort(key=lambda r: (r["committed_at"], r["table_name"], r["version"]), reverse=True)
    return pa.Table.from_pylist(rows, schema=HISTORY_SCHEMA)


def commit_time(lake: Any, *, run_id: str | None = None, version: int | None = None) -> datetime:
    """When a run's last commit was made, or version `version` of `invocations` was."""
    if not lake.exists(INVOCATIONS):
        raise ConfigError(f"--as-of: the lake {lake.location} has no history yet (no run so far)")
    if version is not None:
        for entry in lake.table(INVOCATIONS).history():
            if entry["version"] == version:
                return _moment(entry["timestamp"])
        raise ConfigError(
            f"--as-of {version}: invocations has no version {version} in its log "
            f"(see `ssm-etl history --lake {lake.location}`)"
        )
    for entry in lake.table(INGEST_RUNS).history():  # newest first; the ledger commits last
        if (entry.get("ssm_etl") or {}).get("run_id") == run_id:
            return _moment(entry["timestamp"])
    raise ConfigError(
        f"--as-of {run_id}: not a time, a version or a run id in the lake's history "
        f"(see `ssm-etl history --lake {lake.location}`)"
    )


def _moment(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)
