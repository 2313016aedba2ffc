"""`kill -9` while a run commits: every table stays at a committed version.

A night is run in its own process (`ssm-etl run`, the way cron starts it) and
killed with SIGKILL at ten random points of its commit phase, one after
another, each starting from what the previous one left. After each kill every
table is readable, and in each table each region holds either exactly what it
held before the night or exactly what a whole night gives it, never a mix.
A last, uninterrupted run converges on the ground truth.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa

from emulator import Emulator
from pipeline.lake import Lake
from pipeline.schema import COMMAND_PLUGINS, COMMANDS, INVOCATIONS, MANAGED_INSTANCES, TABLES
from pipeline.views import connect
from tests.nights import REGIONS, night, spec
from tests.truth import LAKE_ONLY

KILLS = 10
CONTENT = (COMMAND_PLUGINS, INVOCATIONS, COMMANDS, MANAGED_INSTANCES)
"""Tables whose content a night decides (the ledger only gains rows)."""
ROOT = Path(__file__).resolve().parent.parent


def _content(lake: Path) -> dict[tuple[str, str], frozenset]:
    """(table, region) -> its rows, lineage and lake-only columns left out."""
    found: dict[tuple[str, str], frozenset] = {}
    snapshot = Lake.open(lake).snapshot()
    for spec_ in CONTENT:
        table = snapshot.tables[spec_.name]
        rows = pa.table(table.to_pyarrow_table()).to_pylist() if table is not None else []
        for region in REGIONS:
            found[(spec_.name, region)] = frozenset(
                tuple(sorted((k, repr(v)) for k, v in row.items() if k not in LAKE_ONLY))
                for row in rows
                if row["region"] == region
            )
    return found


def _log_entries(lake: Path) -> int:
    return sum(len(list((lake / t.name / "_delta_log").glob("*.json"))) for t in TABLES)


def _commit_span(lake: Path, after: float) -> float:
    """Seconds from a night's first Delta commit to its last (log files written after `after`)."""
    times = [
        entry.stat().st_mtime
        for t in TABLES
        for entry in (lake / t.name / "_delta_log").glob("*.json")
        if entry.stat().st_mtime > after
    ]
    return max(times) - min(times)


def _run_process(lake: Path, emulator: Emulator, prefect_api: str) -> subprocess.Popen:
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    command = [
        sys.executable, "-m", "flows.cli", "run", "--lake", str(lake),
        "--regions", ",".join(REGIONS), "--endpoint-url", emulator.url,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def test_kill_nine_during_commits_leaves_each_region_before_or_after(tmp_path, prefect_api):
    lake, reference = tmp_path / "lake", tmp_path / "reference"
    chance = random.Random(7)
    with Emulator(spec()) as emulator:
        night(emulator, lake)
        emulator.clock.advance(timedelta(days=1))
        before = _content(lake)
        shutil.copytree(lake, reference)
        commits_before = _log_entries(reference)
        started = time.time()
        night(emulator, reference)
        span = _commit_span(reference, started)  # kills land inside it, however fast the machine
        after = _content(reference)
        commits = _log_entries(reference) - commits_before
        changed = [k for k in before if before[k] != after[k]]
        assert changed, "the night must change the lake, or the test proves nothing"

        during = 0
        for _ in range(KILLS):
            start = _log_entries(lake)
            process = _run_process(lake, emulator, prefect_api)
            while _log_entries(lake) == start and process.poll() is None:
                time.sleep(0.005)  # the commit phase has begun when a log entry appears
            time.sleep(chance.uniform(0, span))
            done = _log_entries(lake) - start
            alive = process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait()
            during += alive and 0 < done < commits
            con = connect(Lake.open(lake))  # readable, at a committed version of every table
            con.sql(
                "SELECT count(*) FROM invocations, (SELECT count(*) FROM ingest_runs)"
            ).fetchall()
            now = _content(lake)
            for place in before:
                assert now[place] in (before[place], after[place]), place
        assert during >= KILLS // 2, f"only {during} kills landed between two commits"

        night(emulator, lake)  # the next run converges on what an uninterrupted night gives
    assert _content(lake) == after
    ledger = connect(Lake.open(lake)).sql(
        "SELECT count(*) = count(DISTINCT (run_id, account_id, region)) FROM ingest_runs"
    )
    assert ledger.fetchall() == [(True,)]
