"""Benchmark 4: every view in sql/*.sql over a year of history, compacted vs uncompacted.

Both lakes come from `generate_lake.py`. Each view is counted in full,
`SELECT count(*) FROM (SELECT * FROM <view>)`, through
`pipeline.views.connect`; table macros get a representative call. The two
shapes of one view are timed back to back, so the ratio compares like with
like on a noisy machine. DuckDB prunes columns a count does not need, so
this times the view's logic (dedup, joins, windows), not reading every
column; `--fetch` also pulls every row and column as Arrow, as a BI tool
would.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import duckdb

from pipeline.lake import Lake
from pipeline.views import connect, view_sql

from .generate_lake import LakeSpec, generate
from .results import Row, ratio
from .timing import Timed, timed

_MACRO = re.compile(r"CREATE\s+OR\s+REPLACE\s+MACRO", re.IGNORECASE)
MACRO_CALLS = {
    "compliance_between": "compliance_between(DATE '2026-04-01', DATE '2026-06-30')",
    "patch_compliance_within": "patch_compliance_within(7, as_of := TIMESTAMPTZ '2026-06-30')",
}


def relations(lake: Lake) -> dict[str, str]:
    """What to select from for each view file: the view, or a call of its macro."""
    out = {}
    for name, sql in view_sql(lake).items():
        is_macro = _MACRO.search(sql) is not None
        out[name] = MACRO_CALLS.get(name, name) if is_macro else name
    return out


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    row = con.execute(f"SELECT count(*) FROM (SELECT * FROM {relation})").fetchone()
    return int(row[0]) if row else 0


def _fetch(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    reader = con.execute(f"SELECT * FROM {relation}").fetch_record_batch(1_000_000)
    return sum(batch.num_rows for batch in reader)


def run(scale: float, work: Path, fetch: bool = False) -> list[Row]:
    spec = LakeSpec(scale=scale)
    roots, generated = timed(lambda: generate(work, spec))
    lakes = {shape: Lake.open(root) for shape, root in roots.items()}
    files = {shape: sum(1 for _ in root.rglob("*.parquet")) for shape, root in roots.items()}
    connected = {shape: timed(lambda lake=lake: connect(lake)) for shape, lake in lakes.items()}
    cons = {shape: con for shape, (con, _) in connected.items()}
    c, u = (connected[shape][1].wall for shape in ("compacted", "uncompacted"))
    print(f"  generated in {generated.wall:.0f} s; connect {c:.1f} s vs {u:.1f} s", file=sys.stderr)
    rows = [
        Row("queries", "lake generation (s)", f"{generated.wall:.0f}", _describe(spec, files)),
        Row("queries", "connect (views bound): compacted/uncompacted", ratio(c, u),
            f"{c:.2f} s vs {u:.2f} s"),
    ]  # fmt: skip
    modes = {"count": _count, **({"fetch": _fetch} if fetch else {})}
    for name, relation in relations(lakes["compacted"]).items():
        for mode, query in modes.items():
            took: dict[str, Timed] = {}
            counts = {}
            for shape, con in cons.items():
                counts[shape], took[shape] = timed(lambda c=con, q=query, r=relation: q(c, r))
            c, u = took["compacted"].wall, took["uncompacted"].wall
            note = f"{c:.2f} s vs {u:.2f} s, {counts['compacted']:,} rows"
            if counts["compacted"] != counts["uncompacted"]:
                note += f" (uncompacted: {counts['uncompacted']:,})"
            rows.append(Row("queries", f"{name} {mode}: compacted/uncompacted", ratio(c, u), note))
            print(f"  {name} {mode}: {note}", file=sys.stderr, flush=True)
    for con in cons.values():
        con.close()
    return rows


def _describe(spec: LakeSpec, files: dict[str, int]) -> str:
    invocations = spec.per_day * spec.accounts * len(spec.regions) * spec.days
    shapes = ", ".join(f"{shape} {count:,} files" for shape, count in files.items())
    return f"scale {spec.scale}: {invocations:,} invocations x3 plugins; {shapes}"
