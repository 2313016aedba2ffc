"""Benchmark: what a night with nothing new costs, and how fast the CLI answers at all.

A lake is backfilled once from the emulator (a child process, 3 regions,
its clock fixed), then `ssm-etl run` is run again with the same arguments:
nothing is new, and the run re-reads its lookback (48 hours) as every
night does, commits (the merges change nothing), optimizes and vacuums.
Each run is the installed CLI's whole process tree (`cli.py`), timed from
spawn to exit, in two settings:

- PREFECT_API_URL pointing at a Prefect server started before (target 10 s);
- no server configured: the CLI starts its own (target 15 s).

Also timed: `ssm-etl --help`, `ssm-etl run --help`, and two argument errors
(a missing option, which argparse refuses, and an unknown region, which the
configuration check refuses), each target < 1 s.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from emulator import Emulator

from . import cli
from .fleets import ACCOUNT, REGIONS, fleet
from .phases import Phases, phases
from .results import Row
from .servers import serve_in_child


def _argv(url: str, lake: Path) -> list[str]:
    return [cli.ssm_etl(), "run", "--regions", ",".join(REGIONS), "--lake", str(lake),
            "--account-id", ACCOUNT, "--endpoint-url", url]  # fmt: skip


QUICK = {
    "ssm-etl --help": ["--help"],
    "ssm-etl run --help": ["run", "--help"],
    "argument error: no --lake": ["run", "--regions", "us-east-1"],
    "argument error: unknown region": ["run", "--regions", "mars-north-1", "--lake", "/tmp/x"],
}


def run(scale: float = 1.0, repeats: int = 3) -> list[Row]:
    from flows.server import LocalServer

    per_region = round(5_000 * scale)
    rows = []
    walls: dict[str, list[float]] = {"with": [], "without": []}
    splits: dict[str, list[Phases]] = {"with": [], "without": []}
    with (
        tempfile.TemporaryDirectory(prefix="ssm-bench-quiet-") as work,
        serve_in_child(Emulator, fleet(per_region, REGIONS)) as url,
    ):
        lake = Path(work) / "lake"
        first = cli.run(_argv(url, lake), cli.environment()).check()
        rows.append(
            Row("quiet", "first night (backfill), no server configured (s)",
                f"{first.wall:.1f}", f"3 regions x ~{per_region:,} invocations")
        )  # fmt: skip
        server = LocalServer()
        api = server.wait()
        try:
            for _ in range(repeats):
                for mode in walls:
                    env = cli.environment(**({"PREFECT_API_URL": api} if mode == "with" else {}))
                    measured = cli.run(_argv(url, lake), env).check()
                    walls[mode].append(measured.wall)
                    splits[mode].append(phases(lake, measured))
                    print(f"  quiet night, {mode} a configured server: {measured.wall:.1f} s",
                          file=sys.stderr, flush=True)  # fmt: skip
        finally:
            server.stop()
    for mode, label, target in (("with", "PREFECT_API_URL set", 10),
                                ("without", "no server configured", 15)):  # fmt: skip
        runs = ", ".join(f"{w:.1f}" for w in walls[mode])
        rows.append(
            Row("quiet", f"night with nothing new, {label}, median (s)",
                f"{statistics.median(walls[mode]):.1f}", f"target <= {target} s; runs: {runs}")
        )  # fmt: skip
        middle = sorted(zip(walls[mode], splits[mode], strict=True), key=lambda w: w[0])
        rows.append(Row("quiet", f"where the time went, {label}", "",
                        middle[len(middle) // 2][1].render() + " (the run at the upper median)"))  # fmt: skip
    for label, args in QUICK.items():
        times = []
        for _ in range(repeats):
            measured = cli.run([cli.ssm_etl(), *args], cli.environment())
            times.append(measured.wall)
        code = measured.returncode
        rows.append(
            Row("quiet", f"{label}, median (s)", f"{statistics.median(times):.2f}",
                f"target < 1 s; exit {code}; " + " ".join(measured.stderr.split())[:80])
        )  # fmt: skip
    return rows
