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
import threading
from collections.abc import Callable
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
    reader = con.sql(f"SELECT * FROM {relation}").to_arrow_reader(1_000_000)
    return sum(batch.num_rows for batch in reader)


def _limited(query: Callable[[], int], con: duckdb.DuckDBPyConnection, limit: float) -> int | None:
    """`query()`, or None once it has run `limit` seconds (DuckDB is interrupted)."""
    timer = threading.Timer(limit, con.interrupt)
    timer.start()
    try:
        return query()
    except duckdb.InterruptException:
        return None
    finally:
        timer.cancel()


def run(scale: float, work: Path, fetch: bool = False, limit: float = 300.0) -> list[Row]:
    """`limit`: seconds after which a query over the uncompacted lake is stopped."""
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
            counts: dict[str, int | None] = {}
            for shape, con in cons.items():
                counts[shape], took[shape] = timed(
                    lambda c=con, q=query, r=relation: _limited(lambda: q(c, r), c, limit)
                )
            c, u = took["compacted"].wall, took["uncompacted"].wall
            if counts["uncompacted"] is None:
                note = f"{c:.2f} s vs stopped after {u:.0f} s, {counts['compacted']:,} rows"
                value = f"< {ratio(c, u)}"
            else:
                note = f"{c:.2f} s vs {u:.2f} s, {counts['compacted']:,} rows"
                value = ratio(c, u)
                if counts["compacted"] != counts["uncompacted"]:
                    note += f" (uncompacted: {counts['uncompacted']:,})"
            rows.append(Row("queries", f"{name} {mode}: compacted/uncompacted", value, note))
            print(f"  {name} {mode}: {note}", file=sys.stderr, flush=True)
    for con in cons.values():
        con.close()
    return rows


def _describe(spec: LakeSpec, files: dict[str, int]) -> str:
    invocations = spec.per_day * spec.accounts * len(spec.regions) * spec.days
    shapes = ", ".join(f"{shape} {count:,} files" for shape, count in files.items())
    return f"scale {spec.scale}: {invocations:,} invocations x3 plugins; {shapes}"
