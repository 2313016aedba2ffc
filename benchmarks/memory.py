"""Benchmark 3: peak memory of a one-region run, at two history sizes.

Each size runs `run_local` in its own Python process against the replay
server (also a child) and reports its own peak RSS at exit (`VmHWM`: Linux
carries `ru_maxrss` over from the parent across fork and exec, so the
benchmark's own peak would leak into it), so neither the server's memory
nor an earlier run's heap is counted. A run whose
memory is bounded by page and row-group buffers peaks at the same RSS
whatever the region's length; one that holds a region in memory grows with
it. A third process only imports the same modules: the fixed floor.

Run as `python -m benchmarks.memory URL REGION LAKE` for one measurement.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from .fleets import ACCOUNT, REGIONS, fleet
from .replay import Replay
from .results import Row, ratio
from .servers import serve_in_child

REGION = REGIONS[0]
MB = 1024 * 1024


def measure(url: str | None, lake: str) -> dict[str, int]:
    """One run in this process; `url` None only imports, for the floor."""
    from pipeline.config import RunConfig
    from pipeline.extract import AwsSettings
    from pipeline.ingest import run_local

    invocations = 0
    if url is not None:
        config = RunConfig(lake=lake, regions=(REGION,), account_id=ACCOUNT, grace_seconds=0)
        summary = run_local(config, AwsSettings(endpoint_url=url), workers=1)
        invocations = summary.totals()["invocations"]
    return {"invocations": invocations, "peak_bytes": peak_rss()}


def peak_rss() -> int:
    """This process's own high-water mark, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux


def _in_subprocess(url: str | None) -> dict[str, int]:
    with tempfile.TemporaryDirectory(prefix="ssm-bench-memory-") as work:
        argv = [sys.executable, "-m", "benchmarks.memory", url or "-", REGION, str(Path(work))]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(scale: float = 1.0) -> list[Row]:
    rows = [Row("memory", "imports only (MB)", f"{_in_subprocess(None)['peak_bytes'] / MB:.0f}")]
    peaks = []
    for size in (round(100_000 * scale), round(400_000 * scale)):
        with serve_in_child(Replay, fleet(size)) as url:
            measured = _in_subprocess(url)
        peaks.append(measured["peak_bytes"])
        note = f"{measured['invocations']} invocations, one region"
        rows.append(Row("memory", f"peak RSS, {size:,} (MB)", f"{peaks[-1] / MB:.0f}", note))
    rows.append(
        Row("memory", "large / small", ratio(peaks[1], peaks[0]), "target <= 1.20x, < 500 MB")
    )
    return rows


if __name__ == "__main__":
    url, region, lake = sys.argv[1:4]
    assert region == REGION
    print(json.dumps(measure(None if url == "-" else url, str(Path(lake) / "lake"))))
