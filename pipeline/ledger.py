"""The lake's own state for the next run: watermarks, the invocations still open, and the
full outputs already stored.

Both come from the lake (the `ingest_runs` ledger and the `invocations`
table), read once per run from one snapshot, so the lake carries its own state
and can be moved or copied as one folder (or S3 prefix).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import duckdb

from .ingest import OpenCommand
from .lake import Snapshot
from .schema import INGEST_RUNS, INVOCATIONS, PLUGIN_OUTPUTS, TABLES
from .views import sql_dir


@dataclass
class RegionState:
    watermark_ms: int | None = None
    open_commands: list[OpenCommand] = field(default_factory=list)
    stored_outputs: list[tuple[str, str, int, str | None]] = field(default_factory=list)


def _query(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple]:
    text = (sql_dir() / "state" / f"{name}.sql").read_text()
    return con.sql(string.Template(text).substitute({s.name: s.name for s in TABLES})).fetchall()


def region_states(
    snapshot: Snapshot, *, outputs: bool = False
) -> dict[tuple[str, str], RegionState]:
    """Per (account, region): its watermark, its open commands (oldest first) and, with
    `outputs`, the full outputs stored."""
    states: dict[tuple[str, str], RegionState] = {}
    with duckdb.connect() as con:
        for spec in (INGEST_RUNS, INVOCATIONS, PLUGIN_OUTPUTS):
            con.register(spec.name, snapshot.dataset(spec))
        for account, region, watermark in _query(con, "watermarks"):
            states.setdefault((account, region), RegionState()).watermark_ms = watermark
        for account, region, command, requested, month, instances in _query(
            con, "open_invocations"
        ):
            state = states.setdefault((account, region), RegionState())
            state.open_commands.append(OpenCommand(command, requested, month, tuple(instances)))
        if outputs:
            for account, region, *stored in _query(con, "stored_outputs"):
                state = states.setdefault((account, region), RegionState())
                state.stored_outputs.append(tuple(stored))  # type: ignore[arg-type]
    return states
