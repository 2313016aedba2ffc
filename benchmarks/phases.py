"""Where a whole `ssm-etl run` spends its time, read back from the lake it wrote.

The ledger (`ingest_runs`) has each region task's start and end by the run's
own clock, and the ledger's Delta commit is the batch's last, so a run
splits into:

- before the regions: spawn to the first region task's start (imports,
  argument and AWS checks, Prefect's server and flow start, the lock, the
  ledger read);
- regions: to the last region task's end (the walks into the spool);
- commit: to the ledger's commit (every table's merge, then the ledger);
- after: to the process's exit (optimize, vacuum, views databases,
  Prefect's shutdown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.lake import Lake
from pipeline.schema import INGEST_RUNS

from .cli import Measured

_RUN = re.compile(r"^run (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Phases:
    before: float
    regions: float
    commit: float
    after: float

    def at(self, seconds: float) -> str:
        """The phase a moment (seconds after spawn) falls in."""
        edge = 0.0
        for name, length in (("before the regions", self.before), ("regions", self.regions),
                             ("commit", self.commit)):  # fmt: skip
            edge += length
            if seconds <= edge:
                return name
        return "after the commit"

    def render(self) -> str:
        return (
            f"{self.before:.1f} s before the regions, {self.regions:.1f} s regions, "
            f"{self.commit:.1f} s commit, {self.after:.1f} s after"
        )


def run_id(measured: Measured) -> str:
    found = _RUN.search(measured.stdout)
    if not found:
        raise RuntimeError(f"no run id in the CLI's output: {measured.stdout[-500:]}")
    return found[1]


def phases(lake_path: Path, measured: Measured) -> Phases:
    lake = Lake.open(lake_path)
    run = run_id(measured)
    con = duckdb.connect()
    con.register("ledger", lake.snapshot().dataset(INGEST_RUNS))
    first, last = con.execute(
        "SELECT epoch_ms(min(started_at)), epoch_ms(max(finished_at)) FROM ledger WHERE run_id = ?",
        [run],
    ).fetchone()
    committed = max(
        entry["timestamp"]
        for entry in lake.table(INGEST_RUNS).history()
        if (entry.get("ssm_etl") or {}).get("run_id") == run
        and entry["ssm_etl"].get("operation") == "ingest"
    )
    spawn, end = measured.started * 1000, (measured.started + measured.wall) * 1000
    return Phases(
        before=(first - spawn) / 1000,
        regions=(last - first) / 1000,
        commit=(committed - last) / 1000,
        after=(end - committed) / 1000,
    )
