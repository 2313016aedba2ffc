"""Retention chosen by the operator: drop whole months older than N days."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import PurePath

from . import ledger
from .compact import data_files, retire
from .ingest import RegionResult
from .lake import Lake
from .schema import COMMAND_PLUGINS, INVOCATIONS


@dataclass
class PurgeResult:
    run_id: str
    cutoff: datetime
    months: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    files: int = 0

    def render(self) -> str:
        if not self.months:
            return f"purge {self.run_id}: nothing older than {self.cutoff:%Y-%m-%d}"
        lines = [f"purge {self.run_id}: months ending before {self.cutoff:%Y-%m-%d}"]
        for (account, region), months in sorted(self.months.items()):
            lines.append(f"  {account} {region}: {', '.join(months)}")
        return "\n".join(lines + [f"  {self.files} files retired"])


def _month_end(month: str) -> datetime:
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    return (start + timedelta(days=32)).replace(day=1)


def _month_dirs(lake: Lake, table_dir: PurePath) -> list[PurePath]:
    """`account_id=*/region=*/requested_month=*` below a table."""
    found = [table_dir]
    for level in ("account_id=", "region=", "requested_month="):
        found = [
            d for parent in found for d in lake.storage.dirs(parent) if d.name.startswith(level)
        ]
    return sorted(found)


def purge(
    lake: Lake, older_than_days: float, run_id: str, now: datetime | None = None
) -> PurgeResult:
    """Retire every month partition that ended more than `older_than_days` ago.

    Only whole months go: a month is kept while any of it is younger than the
    cutoff. Files are retired like compaction's (deleted after the grace
    period), and each account/region touched gets a ledger row.
    """
    now = now or datetime.now(UTC)
    result = PurgeResult(run_id=run_id, cutoff=now - timedelta(days=older_than_days))
    retired: list[PurePath] = []
    for table in (INVOCATIONS, COMMAND_PLUGINS):
        for month_dir in _month_dirs(lake, lake.table_dir(table)):
            month = month_dir.name.removeprefix("requested_month=")
            if month == "_none" or _month_end(month) > result.cutoff:
                continue
            files = data_files(month_dir, lake.storage)
            retired += files
            account = month_dir.parent.parent.name.removeprefix("account_id=")
            region = month_dir.parent.name.removeprefix("region=")
            months = result.months.setdefault((account, region), [])
            if month not in months:
                months.append(month)
    retire(lake, retired)
    result.files = len(retired)
    for (account, region), months in result.months.items():
        row = RegionResult(run_id, account, region, status="purged", purged_months=sorted(months))
        ledger.append(lake, row.ledger_row())
    return result
