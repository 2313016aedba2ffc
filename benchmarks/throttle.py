"""Benchmark: a first-night backfill of `ssm-etl run` against a throttled, slow API, vs its bound.

The emulator (in a child process) answers each page after `page_delay`
(0.2 s) and throttles each account+region with a token bucket of 20
requests per second, burst 20. No client can read a region faster than
pages / 20 s, and regions have separate buckets, so the bound of a run is
its largest region's pages / 20. The installed CLI (`ssm-etl run`, a whole
process tree, `cli.py`) backfills 3 regions into a fresh lake, each run
timed from spawn to exit, at two sizes (`SIZES`: 20,000 invocations a
region, a bound of about 20 s, and three times that) and in two settings:

- as a user without a Prefect server runs it: the CLI starts its own
  temporary server inside the timing (the figure issue 12 asks for);
- with PREFECT_API_URL pointing at a server started before (the README's
  advice for cron hosts), so only the run itself is timed.

Inside a region, the run walks time slices side by side, paced by
`pipeline.pacing.Pacer`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from emulator import Emulator, FaultSpec, RegionFaults

from . import cli
from .fleets import ACCOUNT, REGIONS, fleet
from .phases import Phases, phases
from .results import Row, ratio
from .servers import serve_in_child
from .timing import timed

RATE, BURST, PAGE_DELAY = 20, 20, 0.2


def warm_up(url: str) -> None:
    """Have the emulator build each region's history before the clock starts.

    The emulator generates its fleet lazily, in Python, on the first request
    of a region; SSM has its history ready. Timed cold, the first contender
    would pay for that generation on the same two cores. One small request per
    call and region builds it; a pause then refills the token buckets.
    """
    import boto3

    for region in REGIONS:
        client = boto3.client("ssm", region_name=region, endpoint_url=url)
        client.list_command_invocations(Details=True, MaxResults=1)
        client.list_commands(MaxResults=1)
        client.describe_instance_information(MaxResults=5)
    time.sleep(2 * BURST / RATE)


def cli_run(url: str, api: str | None) -> tuple[cli.Measured, dict[str, int], Phases]:
    """One backfill by the installed CLI into a fresh lake; returns pages per region too."""
    env = cli.environment(**({"PREFECT_API_URL": api} if api else {}))
    with tempfile.TemporaryDirectory(prefix="ssm-bench-throttle-") as work:
        argv = [cli.ssm_etl(), "run", "--regions", ",".join(REGIONS), "--lake",
                str(Path(work) / "lake"), "--account-id", ACCOUNT, "--endpoint-url", url]  # fmt: skip
        measured = cli.run(argv, env).check()
        split = phases(Path(work) / "lake", measured)
    pages = {}
    for line in measured.stdout.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1] in REGIONS and fields[3].startswith("pages="):
            pages[fields[1]] = int(fields[3].removeprefix("pages="))
    return measured, pages, split


SIZES = (1, 3)
"""Invocations per region, in 20,000s: the size issue 12 measures at (a bound of about 20 s),
and a backfill three times as long, where the same fixed costs weigh a third as much."""


def run(scale: float = 1.0, repeats: int = 2) -> list[Row]:
    from flows.server import LocalServer

    server, started = timed(LocalServer)
    api, ready = timed(server.wait)
    rows = [
        Row("throttle", "Prefect server start, configured runs (s)",
            f"{started.wall + ready.wall:.1f}", "before timing, once"),
    ]  # fmt: skip
    try:
        for size in SIZES:
            rows += _size(round(20_000 * scale * size), api, repeats)
    finally:
        server.stop()
    return rows


def _size(invocations: int, api: str, repeats: int) -> list[Row]:
    faults = FaultSpec(regions={"*": RegionFaults(throttle_rate=RATE, throttle_burst=BURST)})
    spec = fleet(invocations, REGIONS, page_delay=PAGE_DELAY, faults=faults)
    walls: dict[str, list[float]] = {"without": [], "with": []}
    splits: dict[str, list[Phases]] = {"without": [], "with": []}
    pages: dict[str, int] = {}
    with serve_in_child(Emulator, spec) as url:
        _, warmed = timed(lambda: warm_up(url))
        for _ in range(max(1, repeats)):
            for mode in walls:
                time.sleep(2 * BURST / RATE)  # every bucket full again
                measured, pages, split = cli_run(url, api if mode == "with" else None)
                walls[mode].append(measured.wall)
                splits[mode].append(split)
                print(f"  throttle, {invocations:,} a region, {mode} a configured server: "
                      f"{measured.wall:.1f} s", file=sys.stderr, flush=True)  # fmt: skip
    bound = max(pages.values()) / RATE
    size = f"3 x {invocations:,}"
    detail = f"{len(pages)} regions, {sum(pages.values())} pages, {spec.instances_per_region} instances each"
    rows = [
        Row("throttle", f"{size}: emulator warm-up (s)", f"{warmed.wall:.1f}", "before timing"),
        Row("throttle", f"{size}: bound (s)", f"{bound:.1f}",
            f"largest region's pages / {RATE}/s; {detail}"),
    ]  # fmt: skip
    for mode, label in (("without", "no Prefect server configured"),
                        ("with", "PREFECT_API_URL set")):  # fmt: skip
        median = statistics.median(walls[mode])
        runs = ", ".join(f"{w:.1f} s" for w in walls[mode])
        runs += f"; {median - bound:.1f} s over the bound"
        rows.append(
            Row("throttle", f"{size}: ssm-etl run, {label}, median (s)", f"{median:.1f}", runs)
        )
        middle = sorted(zip(walls[mode], splits[mode], strict=True), key=lambda w: w[0])
        rows.append(Row("throttle", f"{size}: where the time went, {label}", "",
                        middle[len(middle) // 2][1].render() + " (the run at the upper median)"))  # fmt: skip
        rows.append(
            Row("throttle", f"{size}: ssm-etl run / bound, {label}", ratio(median, bound),
                "target <= 1.3x" + (" (Prefect's start included)" if mode == "without" else ""))
        )  # fmt: skip
    return rows
