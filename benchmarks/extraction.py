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
- ceiling: a boto3 paginator whose bodies are decoded by json.loads in
  botocore's before-parse hook (as ours are by `pipeline.decode`) and nothing
  else: signing, HTTP and json.loads, the least any botocore-based reader of
  dicts can do;
- dlt: a dlt pipeline (filesystem destination, Parquet) fed the raw records.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.extract import AwsSettings
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


def _client(url: str) -> Any:
    """A client as a first script would make it: botocore parses every body."""
    settings = AwsSettings(endpoint_url=url)
    return settings.client(settings.session(), "ssm", REGION)


def _json_pages(url: str) -> Iterator[list[dict[str, Any]]]:
    """Every page's records, decoded by json.loads in botocore's before-parse hook."""
    client = _client(url)

    def loads(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any):
        if response_dict["status_code"] < 300:
            customized_response_dict.update(json.loads(response_dict["body"]))
            response_dict["body"] = b""

    client.meta.events.register("before-parse.ssm.ListCommandInvocations", loads)
    paginator = client.get_paginator("list_command_invocations")
    for page in paginator.paginate(Details=True, PaginationConfig={"PageSize": 50}):
        yield page.get("CommandInvocations") or []


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
    return naive.walk(_client(url), work / "dataset", ACCOUNT, REGION)


def ceiling(url: str, work: Path) -> Counts:
    invocations = plugins = 0
    for records in _json_pages(url):
        invocations += len(records)
        plugins += sum(len(r.get("CommandPlugins") or ()) for r in records)
    return invocations, plugins


def dlt_pipeline(url: str, work: Path) -> Counts:
    import dlt

    counts = [0, 0]

    def pages():  # noqa: ANN202 (a dlt resource)
        for records in _json_pages(url):
            counts[0] += len(records)
            counts[1] += sum(len(r.get("CommandPlugins") or ()) for r in records)
            yield records

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
