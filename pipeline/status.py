"""Is every account and region being ingested? The answer for a monitoring check.

A region is healthy when its last run succeeded and finished within
`max_age_hours`; the newest invocation is shown but not judged, because a
quiet region (no commands run) is not a broken one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from .lake import AsOf, Lake
from .views import connect, sql_dir


def report_query(name: str) -> str:
    """The query in `sql/report/<name>.sql` (the report and status queries)."""
    return (sql_dir() / "report" / f"{name}.sql").read_text()


def run_report_query(
    con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows of a report query as dicts; user values are bound, never spliced into SQL."""
    relation = con.sql(report_query(name), params=params or None)
    columns = relation.columns
    return [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]


@dataclass(frozen=True)
class RegionStatus:
    account_id: str
    region: str
    last_run_id: str | None
    last_run_finished_at: datetime | None
    last_run_status: str | None
    last_run_error: str | None
    last_success_at: datetime | None
    newest_invocation_at: datetime | None
    healthy: bool
    problem: str | None
    """Why the region is not healthy, in a few words (None when it is)."""


@dataclass(frozen=True)
class StatusReport:
    regions: list[RegionStatus]
    max_age_hours: float
    now: datetime

    @property
    def healthy(self) -> bool:
        """A lake with no runs recorded is not healthy: nothing is being ingested."""
        return bool(self.regions) and all(r.healthy for r in self.regions)

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else 1

    def render(self) -> str:
        if not self.regions:
            return "no runs recorded yet: nothing has been ingested into this lake"
        header = (
            "account",
            "region",
            "health",
            "last run",
            "status",
            "finished",
            "last success",
            "newest invocation",
            "problem",
        )
        body = [
            (
                r.account_id,
                r.region,
                "ok" if r.healthy else "FAIL",
                r.last_run_id or "-",
                r.last_run_status or "-",
                _when(r.last_run_finished_at),
                _when(r.last_success_at),
                _when(r.newest_invocation_at),
                _problem_text(r),
            )
            for r in self.regions
        ]
        widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in (header, tuple("-" * w for w in widths), *body)
        ]
        bad = sum(not r.healthy for r in self.regions)
        lines.append(
            f"{len(self.regions) - bad} of {len(self.regions)} regions healthy "
            f"(last success within {self.max_age_hours:g} h of {_when(self.now)})"
        )
        return "\n".join(lines)


def region_status(
    lake: Lake,
    max_age_hours: float = 36,
    now: datetime | None = None,
    *,
    as_of: AsOf | None = None,
) -> StatusReport:
    """The last run, last success and newest invocation of every account and region.

    With `as_of`, as the lake stood then, judged at that moment (unless `now` is given).
    """
    now = as_utc(now or (as_of.moment(lake) if as_of else None) or datetime.now(UTC))
    max_age = timedelta(hours=max_age_hours)
    con = connect(lake, as_of=as_of)
    try:
        rows = run_report_query(con, "status")
    finally:
        con.close()
    regions = []
    for row in rows:
        problem = _problem(row, now, max_age)
        regions.append(RegionStatus(**row, healthy=problem is None, problem=problem))
    return StatusReport(regions=regions, max_age_hours=max_age_hours, now=now)


def _problem(row: dict[str, Any], now: datetime, max_age: timedelta) -> str | None:
    if row["last_run_status"] is None:
        return "no run recorded"
    if row["last_run_status"] != "succeeded":
        return f"last run {row['last_run_status']}"
    age = now - row["last_success_at"]
    if age > max_age:
        return f"last success {age.total_seconds() / 3600:.1f} h ago"
    return None


def _problem_text(r: RegionStatus) -> str:
    if r.problem is None:
        return ""
    return f"{r.problem}: {r.last_run_error}" if r.last_run_error else r.problem


def as_utc(moment: datetime) -> datetime:
    """Aware datetimes converted to UTC; naive ones taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else as_utc(moment).strftime("%Y-%m-%d %H:%M:%SZ")
