"""Benchmark 2: a first-night backfill against a throttled, slow API, versus the bound.

The emulator (in a child process) answers each page after `page_delay`
(0.2 s) and throttles each account+region with a token bucket of 20
requests per second, burst 20. No client can read a region faster than
pages / 20 s, and regions have separate buckets, so the bound of a run is
its largest region's pages / 20. Our flow (`flows.nightly.nightly`, on a
Prefect server started before the clock starts; its start-up is reported
apart) runs `repeats` times, each in a fresh process (as a scheduled run or
`ssm-etl run` has: no warm client, no cached lookups) and timed from the
flow's start, against a sequential boto3 paginator walking the regions one
after another. Inside a region, `ingest_region` walks time slices side by
side, paced by `pipeline.pacing.Pacer`.

Run as `python -m benchmarks.throttle URL LAKE` for one timed flow.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from emulator import Emulator, FaultSpec, RegionFaults

from .fleets import ACCOUNT, REGIONS, fleet
from .results import Row, ratio
from .servers import serve_in_child
from .timing import timed

RATE, BURST, PAGE_DELAY = 20, 20, 0.2


def sequential_paginator(url: str) -> int:
    """The plain script: one region after the other, botocore's parser; returns pages."""
    import boto3

    pages = 0
    for region in REGIONS:
        client = boto3.client("ssm", region_name=region, endpoint_url=url)
        paginator = client.get_paginator("list_command_invocations")
        for _ in paginator.paginate(Details=True, PaginationConfig={"PageSize": 50}):
            pages += 1
    return pages


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


def one_flow(url: str, lake: str) -> dict[str, Any]:
    """Run the nightly flow once in this process, timed from the flow's start."""
    from flows.nightly import nightly

    flow_started_ms = time.time_ns() // 1_000_000
    summary, took = timed(
        lambda: nightly(lake=lake, regions=list(REGIONS), account_id=ACCOUNT, endpoint_url=url)
    )
    results = summary.results
    return {
        "wall": took.wall,
        "pages": {r.region: r.pages for r in results},
        "invocations": sum(r.invocations for r in results),
        "failed": [f"{r.region}: {r.error}" for r in results if not r.ok],
        # Prefect's flow and task start-up before the last region's task body ran, and
        # the slowest region's own work (RegionResult's clock, as the ledger has it).
        "start_up": max(r.started_ms - flow_started_ms for r in results) / 1000,
        "work": max((r.finished_ms or r.started_ms) - r.started_ms for r in results) / 1000,
    }


def _flow_in_subprocess(url: str, api: str | None) -> dict[str, Any]:
    """A fresh process per flow, as a scheduled run or `ssm-etl run` has: nothing warm."""
    env = {**os.environ, **({"PREFECT_API_URL": api} if api else {})}
    with tempfile.TemporaryDirectory(prefix="ssm-bench-throttle-") as work:
        argv = [sys.executable, "-m", "benchmarks.throttle", url, str(Path(work) / "lake")]
        out = subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def run(scale: float = 1.0, repeats: int = 3) -> list[Row]:
    from flows.server import prefect_api

    faults = FaultSpec(regions={"*": RegionFaults(throttle_rate=RATE, throttle_burst=BURST)})
    spec = fleet(round(20_000 * scale), REGIONS, page_delay=PAGE_DELAY, faults=faults)
    flows = []
    with ExitStack() as stack:
        url = stack.enter_context(serve_in_child(Emulator, spec))
        _, warmed = timed(lambda: warm_up(url))
        api, started = timed(lambda: stack.enter_context(prefect_api()))
        for _ in range(max(1, repeats)):
            time.sleep(2 * BURST / RATE)  # every bucket full again
            flows.append(_flow_in_subprocess(url, api))
        _, baseline = timed(lambda: sequential_paginator(url))
    pages = flows[0]["pages"]
    bound = max(pages.values()) / RATE
    walls = [f["wall"] for f in flows]
    median = statistics.median(walls)
    detail = (
        f"{len(pages)} regions, {flows[0]['invocations']} invocations, {sum(pages.values())} pages"
    )
    failed = [error for f in flows for error in f["failed"]]
    if failed:
        detail += "; FAILED " + "; ".join(failed)
    runs = ", ".join(ratio(wall, bound) for wall in walls)
    return [
        Row("throttle", "emulator warm-up (s)", f"{warmed.wall:.1f}", "before timing"),
        Row("throttle", "Prefect server start-up (s)", f"{started.wall:.1f}", "before timing"),
        Row("throttle", "bound (s)", f"{bound:.1f}", f"largest region's pages / {RATE}/s"),
        Row("throttle", "ours: nightly flow, median (s)", f"{median:.1f}", detail),
        Row(
            "throttle",
            "of which Prefect start-up, median (s)",
            f"{statistics.median(f['start_up'] for f in flows):.1f}",
            "flow start to the last region's task body: flow run, task runs, concurrency leases",
        ),
        Row(
            "throttle",
            "of which a region's work, median (s)",
            f"{statistics.median(f['work'] for f in flows):.1f}",
            "slowest region, ingest_region start to its ledger row",
        ),
        Row("throttle", "sequential paginator (s)", f"{baseline.wall:.1f}", "regions in turn"),
        Row(
            "throttle",
            "ours / bound, median",
            ratio(median, bound),
            f"target <= 1.3x; {len(walls)} runs, each a fresh process: {runs}",
        ),
        Row("throttle", "sequential / ours", ratio(baseline.wall, median), ""),
    ]


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    print(json.dumps(one_flow(sys.argv[1], sys.argv[2])))
