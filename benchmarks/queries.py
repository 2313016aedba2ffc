"""Benchmark: every view in sql/*.sql on a year of history (5M invocations at scale 1).

The lake comes from `generate_lake.py` (Delta tables in the project's
schemas, as a year of nights leaves them). Each view is counted in full,
`SELECT count(*) FROM (SELECT * FROM <view>)`, on a connection from
`pipeline.views.connect` (one snapshot of every table); table macros get a
representative call, scalar macros (functions the views use) are not
relations and are skipped. Each view runs twice in a row; both times are
shown and the slower one is held against the target (< 1 s). DuckDB prunes
columns a count does not need, so this times the view's logic (joins,
aggregates), not reading every column; `--fetch` also pulls every row and
column as Arrow, as a BI tool would.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import duckdb

from pipeline.lake import Lake
from pipeline.schema import TABLES
from pipeline.views import connect, view_sql

from .generate_lake import LakeSpec, generate
from .results import Row
from .timing import timed

_TABLE_MACRO = re.compile(
    r"CREATE\s+OR\s+REPLACE\s+MACRO\s+\w+\s*\(.*?\)\s+AS\s+TABLE", re.I | re.S
)
_MACRO = re.compile(r"CREATE\s+OR\s+REPLACE\s+MACRO", re.IGNORECASE)
MACRO_CALLS = {
    "compliance_between": "compliance_between(DATE '2026-04-01', DATE '2026-06-30')",
    "patch_compliance_within": "patch_compliance_within(7, as_of := TIMESTAMPTZ '2026-06-30')",
}


def relations(lake: Lake) -> dict[str, str]:
    """What to select from for each view file: the view, or a call of its table macro."""
    out = {}
    for name, sql in view_sql(lake.snapshot()).items():
        if _TABLE_MACRO.search(sql):
            out[name] = MACRO_CALLS[name]
        elif not _MACRO.search(sql):
            out[name] = name
    return out


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    row = con.execute(f"SELECT count(*) FROM (SELECT * FROM {relation})").fetchone()
    return int(row[0]) if row else 0


def _fetch(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    reader = con.execute(f"SELECT * FROM {relation}").to_arrow_reader(1_000_000)
    return sum(batch.num_rows for batch in reader)


def lake_path(work: Path, scale: float) -> Path:
    return work / f"year-scale-{scale:g}"


def run(scale: float, work: Path, fetch: bool = False) -> list[Row]:
    spec = LakeSpec(scale=scale)
    root, generated = timed(lambda: generate(lake_path(work, scale), spec))
    lake = Lake.open(root)
    snapshot = lake.snapshot()
    files = {t.name: len(snapshot.files(t)) for t in TABLES}
    con, connected = timed(lambda: connect(lake))
    shown = ", ".join(f"{name} {count:,}" for name, count in files.items())
    rows = [
        Row("queries", "lake generation (s)", f"{generated.wall:.0f}",
            f"{spec.invocations:,} invocations x3 plugins; 0 if reused from --work"),
        Row("queries", "data files per table", f"{sum(files.values()):,}", shown),
        Row("queries", "connect (every view created) (s)", f"{connected.wall:.2f}", ""),
    ]  # fmt: skip
    modes = {"count": _count, **({"fetch": _fetch} if fetch else {})}
    slowest = (0.0, "")
    for name, relation in relations(lake).items():
        for mode, query in modes.items():
            first_count, first = timed(lambda q=query, r=relation: q(con, r))
            _, second = timed(lambda q=query, r=relation: q(con, r))
            worst = max(first.wall, second.wall)
            slowest = max(slowest, (worst, f"{name} {mode}"))
            note = f"{first.wall:.2f} s then {second.wall:.2f} s; {first_count:,} rows"
            rows.append(Row("queries", f"{name} {mode} (s)", f"{worst:.2f}", note))
            print(f"  {name} {mode}: {note}", file=sys.stderr, flush=True)
    con.close()
    verdict = "met" if slowest[0] < 1 else "NOT met"
    rows.append(Row("queries", "slowest view (s)", f"{slowest[0]:.2f}",
                    f"{slowest[1]}; target < 1 s: {verdict}"))  # fmt: skip
    return rows
