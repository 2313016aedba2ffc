"""Benchmark 2: a first-night backfill against a throttled, slow API, versus the bound.

The emulator (in a child process) answers each page after `page_delay`
(0.2 s) and throttles each account+region with a token bucket of 20
requests per second, burst 20. No client can read a region faster than
pages / 20 s, and regions have separate buckets, so the bound of a run is
its largest region's pages / 20. Our flow (`flows.nightly.nightly`, on a
Prefect server started before the clock starts; its start-up is reported
apart) is timed against a sequential boto3 paginator walking the regions
one after another. Whatever `ingest_region` does inside a region (today a
sequential walk, ~4x the bound) is picked up as is.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from pipeline.emulator import Emulator, FaultSpec, RegionFaults

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


def run(scale: float = 1.0) -> list[Row]:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows.nightly import nightly
    from flows.server import prefect_api

    faults = FaultSpec(regions={"*": RegionFaults(throttle_rate=RATE, throttle_burst=BURST)})
    spec = fleet(round(20_000 * scale), REGIONS, page_delay=PAGE_DELAY, faults=faults)
    with ExitStack() as stack:
        url = stack.enter_context(serve_in_child(Emulator, spec))
        lake = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "lake"
        _, warmed = timed(lambda: warm_up(url))
        _, started = timed(lambda: stack.enter_context(prefect_api()))
        summary, ours = timed(
            lambda: nightly(
                lake=str(lake), regions=list(REGIONS), account_id=ACCOUNT, endpoint_url=url
            )
        )
        _, baseline = timed(lambda: sequential_paginator(url))
    pages = {r.region: r.pages for r in summary.results}
    invocations = sum(r.invocations for r in summary.results)
    bound = max(pages.values()) / RATE
    detail = f"{len(pages)} regions, {invocations} invocations, {sum(pages.values())} pages"
    failed = [f"{r.region}: {r.error}" for r in summary.results if not r.ok]
    if failed:
        detail += "; FAILED " + "; ".join(failed)
    return [
        Row("throttle", "emulator warm-up (s)", f"{warmed.wall:.1f}", "before timing"),
        Row("throttle", "Prefect server start-up (s)", f"{started.wall:.1f}", "before timing"),
        Row("throttle", "bound (s)", f"{bound:.1f}", f"largest region's pages / {RATE}/s"),
        Row("throttle", "ours: nightly flow (s)", f"{ours.wall:.1f}", detail),
        Row("throttle", "sequential paginator (s)", f"{baseline.wall:.1f}", "regions in turn"),
        Row("throttle", "ours / bound", ratio(ours.wall, bound), "1.00x is the best possible"),
        Row("throttle", "sequential / ours", ratio(baseline.wall, ours.wall), ""),
    ]
