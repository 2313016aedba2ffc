"""Benchmark 1: invocations per second from HTTP response to Parquet, one process, no latency.

Four ways to read the same pages (50 invocations, ~2.4 plugins each) from
the replay server running in a child process (see `replay.py`):

- ours: `ingest_region` with default settings but without the other sources
  (the baselines read ListCommandInvocations only): probe, time slices, bodies
  decoded by pyarrow.json and flattened by Arrow compute a few pages at a time
  into declared Arrow schemas, staged files, commit, compaction and the ledger
  row; and "ours + sources", the same with ListCommands and
  DescribeInstanceInformation walked beside it, as a nightly run does;
- naive: boto3's paginator with botocore's parser, `from_pylist`, and
  `write_to_dataset` per page (`naive.py`);
- ceiling: the raw-parsing client in "json" mode and nothing else: signing,
  HTTP and json.loads, the least any botocore-based reader of dicts can do;
- dlt: a dlt pipeline (filesystem destination, Parquet) fed the raw records.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from pipeline.extract import AwsSettings, RawParsing, iter_pages
from pipeline.ingest import IngestOptions, ingest_region, new_run_id
from pipeline.lake import Lake

from . import naive
from .fleets import ACCOUNT, REGIONS, fleet
from .replay import Replay
from .results import Row, ratio
from .servers import serve_in_child
from .timing import Timed, best_of

REGION = REGIONS[0]
Counts = tuple[int, int]


def _client(url: str, parsing: RawParsing = "arrow") -> object:
    settings = AwsSettings(endpoint_url=url, raw_parsing=parsing)
    return settings.client(settings.session(), "ssm", REGION)


def ours(url: str, work: Path) -> Counts:
    """The region's ListCommandInvocations walk, as the baselines read it: no other source."""
    return _ingest(url, work, IngestOptions(sources=False))


def ours_with_sources(url: str, work: Path) -> Counts:
    """A nightly run's region as configured by default: ListCommands and
    DescribeInstanceInformation walked beside the invocations."""
    return _ingest(url, work, IngestOptions())


def _ingest(url: str, work: Path, options: IngestOptions) -> Counts:
    lake = Lake.create(work / "lake")
    settings = AwsSettings(endpoint_url=url)
    result = ingest_region(settings, lake, new_run_id(), ACCOUNT, REGION, options=options)
    return result.invocations, result.plugins


def naive_baseline(url: str, work: Path) -> Counts:
    return naive.walk(_client(url, parsing=False), work / "dataset", ACCOUNT, REGION)


def ceiling(url: str, work: Path) -> Counts:
    invocations = plugins = 0
    for page in iter_pages(_client(url, "json"), region=REGION):
        invocations += len(page.records)
        plugins += sum(len(r.get("CommandPlugins") or ()) for r in page.records)
    return invocations, plugins


def dlt_pipeline(url: str, work: Path) -> Counts:
    import dlt

    counts = [0, 0]

    def pages():  # noqa: ANN202 (a dlt resource)
        for page in iter_pages(_client(url, "json"), region=REGION):
            counts[0] += len(page.records)
            counts[1] += sum(len(r.get("CommandPlugins") or ()) for r in page.records)
            yield page.records

    pipeline = dlt.pipeline(
        pipeline_name="ssm_bench",
        pipelines_dir=str(work / "dlt-state"),
        destination=dlt.destinations.filesystem(bucket_url=(work / "dlt").as_uri()),
        dataset_name="ssm",
    )
    pipeline.run(dlt.resource(pages(), name="command_invocations"), loader_file_format="parquet")
    return counts[0], counts[1]


VARIANTS: dict[str, Callable[[str, Path], Counts]] = {
    "ours": ours,
    "ours + sources": ours_with_sources,
    "naive": naive_baseline,
    "ceiling": ceiling,
    "dlt": dlt_pipeline,
}


def _fresh(fn: Callable[[str, Path], Counts], url: str) -> Callable[[], Counts]:
    def run() -> Counts:
        work = Path(tempfile.mkdtemp(prefix="ssm-bench-extract-"))
        try:
            return fn(url, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return run


def run(scale: float = 1.0, rounds: int = 3) -> list[Row]:
    spec = fleet(round(20_000 * scale))
    with serve_in_child(Replay, spec) as url:
        best = best_of(rounds, {name: _fresh(fn, url) for name, fn in VARIANTS.items()})
    rates = {name: counts[0] / took.wall for name, (counts, took) in best.items()}
    invocations, plugins = best["ours"][0]
    rows = [_row(name, counts, took, rates[name]) for name, (counts, took) in best.items()]
    shape = f"{invocations} invocations, {plugins / invocations:.2f} plugins each"
    rows += [
        Row("extract", "ours / naive", ratio(rates["ours"], rates["naive"]), "target >= 4x"),
        Row("extract", "ours / ceiling", ratio(rates["ours"], rates["ceiling"]), shape),
        Row("extract", "ours / dlt", ratio(rates["ours"], rates["dlt"]), f"best of {rounds}"),
    ]
    return rows


def _row(name: str, counts: Counts, took: Timed, rate: float) -> Row:
    note = f"{took.wall:.2f} s wall, {took.cpu:.2f} s CPU in this process"
    return Row("extract", f"{name} (invocations/s)", f"{rate:,.0f}", note)
