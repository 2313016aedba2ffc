"""One region of one account: from API pages to a spooled region the committer can take.

A region task reads its window (from `watermark - lookback`; everything on a
first run) in concurrent time slices, follows the invocations the lake still
holds as open from before that window, reads the full output of the plugins
`--full-output` selects (`pipeline.outputs`), and spools what it read
(`pipeline.spool`). It never commits: the run's committer does
(`pipeline.commit`), together with other regions. A task that fails discards
its spool; the watermark then stays where it was.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from .config import DEFAULT_SLICES, RunConfig
from .errors import AwsError, Interrupted
from .extract import AwsSettings, PageRetry, newest_requested_ms
from .flatten import Lineage
from .lake import Lake
from .outputs import Fetcher, OutputOptions, OutputStats, Selecting, fetch_outputs
from .pacing import Pacer
from .redact import Redactor
from .schema import COMMANDS, INVOCATIONS, MANAGED_INSTANCES, PLUGIN_OUTPUTS, TIMESTAMP
from .spool import RegionWriter, SpooledRegion
from .walk import Slice, Writer, follow_commands, slice_count, slices, walk_region, walk_sources

log = logging.getLogger("ssm_etl")


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time, unique across machines."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ms_to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


class Stop:
    """Set to make region tasks stop before their next request (Ctrl-C, SIGTERM).

    Pickled (for a Dask worker) it arrives unset: other processes are stopped
    by their cluster, not by this flag.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None
        """The signal that asked to stop, if one did (`pipeline.signals`)."""

    def set(self) -> None:
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def __reduce__(self) -> tuple[Any, ...]:
        return (Stop, ())


@dataclass
class RegionResult:
    """What one run did in one region: the summary line and the ledger row."""

    run_id: str
    account_id: str
    region: str
    status: str = "running"
    pages: int = 0
    invocations: int = 0
    plugins: int = 0
    quarantined: int = 0
    error: str | None = None
    started_ms: int = field(default_factory=now_ms)
    finished_ms: int | None = None
    window_start_ms: int | None = None
    window_end_ms: int | None = None
    watermark_ms: int | None = None
    commands: int | None = None
    managed_instances: int | None = None
    followed: int = 0
    """Open invocations from before the window that were read again."""
    expired: int = 0
    """Of those, invocations the API no longer returns (marked expired while open)."""
    purged_months: list[str] | None = None
    outputs: OutputStats | None = None
    """What --full-output stored and could not read (None: not asked for)."""

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def ledger_row(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "account_id": self.account_id,
            "region": self.region,
            "started_at": ms_to_datetime(self.started_ms),
            "finished_at": ms_to_datetime(self.finished_ms or now_ms()),
            "window_start": ms_to_datetime(self.window_start_ms),
            "window_end": ms_to_datetime(self.window_end_ms),
            "pages": self.pages,
            "invocations": self.invocations,
            "plugins": self.plugins,
            "quarantined": self.quarantined,
            "status": self.status,
            "error": self.error,
            "watermark": ms_to_datetime(self.watermark_ms),
            "purged_months": self.purged_months,
            "commands": self.commands,
            "managed_instances": self.managed_instances,
            "open_followed": self.followed,
            "expired_while_open": self.expired,
            "outputs_fetched": None if self.outputs is None else self.outputs.fetched,
            "outputs_unavailable": None if self.outputs is None else self.outputs.unavailable,
            "outputs_unavailable_reasons": (
                None if self.outputs is None else self.outputs.reason_list()
            ),
        }


@dataclass(frozen=True)
class OpenCommand:
    """A command with invocations the lake holds as open, requested before a region's window."""

    command_id: str
    requested_ms: int
    requested_month: str
    instance_ids: tuple[str, ...]


@dataclass(frozen=True)
class IngestOptions:
    """Knobs of one region's walk that are not about the window."""

    retry: PageRetry = field(default_factory=PageRetry)
    redactor: Redactor | None = None
    slices: int = DEFAULT_SLICES
    """Concurrent time slices per region (see `pipeline.walk`)."""
    sources: bool = True
    """Also read ListCommands and DescribeInstanceInformation (commands, managed_instances)."""
    outputs: OutputOptions = field(default_factory=OutputOptions)

    @classmethod
    def from_config(cls, config: RunConfig) -> IngestOptions:
        return cls(
            redactor=Redactor.from_options(config.redact),
            slices=config.slices,
            outputs=OutputOptions(config.full_output, config.output_cap),
        )


@dataclass(frozen=True)
class RegionJob:
    """Everything a region task needs: plain, picklable values (no clients, no credentials)."""

    run_id: str
    account_id: str
    region: str
    settings: AwsSettings
    lake: Lake
    window_start_ms: int | None
    prior_watermark_ms: int | None
    options: IngestOptions = field(default_factory=IngestOptions)
    open_commands: tuple[OpenCommand, ...] = ()
    stop: Stop = field(default_factory=Stop)
    stored_outputs: tuple[tuple[str, str, int, str | None], ...] = ()
    """(command, instance, plugin index, invocation status) of the full outputs the lake
    holds for this region (--full-output): read again only if that status changed."""


@dataclass
class RegionOutcome:
    result: RegionResult
    spooled: SpooledRegion | None
    """None when nothing was spooled (the region was stopped)."""


WALK_RESTARTS = 2
"""How often each time slice may fail with InvalidNextToken before the region fails.

Every failure re-reads the whole window (what was spooled is dropped), but
the budget is per slice: each slice is its own query with its own tokens,
and a walk that stops the other slices at the first failure can meet each
slice's expired token in a separate attempt.
"""


def ingest_region(job: RegionJob) -> RegionOutcome:
    """Walk one region's window and its open invocations into the spool.

    Raises AwsError (after discarding the spool) or Interrupted when the job
    was stopped.
    """
    if job.stop.is_set():
        raise Interrupted(f"{job.account_id} {job.region}: not started")
    result = RegionResult(job.run_id, job.account_id, job.region)
    result.window_start_ms = job.window_start_ms
    lineage = Lineage(job.account_id, job.region, job.run_id, result.started_ms)
    session = job.settings.session()
    client = job.settings.client(session, "ssm", job.region)
    Pacer().attach(client)  # one pacer per account and region, for every slice
    options = job.options
    window = _slices(client, job.window_start_ms, options, job.region)
    failures: Counter[int | None] = Counter()  # InvalidNextToken per slice
    while True:
        writer = RegionWriter(job.lake.storage, job.run_id, job.account_id, job.region)
        selecting = Selecting(writer, options.outputs.mode) if options.outputs.enabled else None
        try:
            counts, stats = _walk(client, writer, lineage, window, job, selecting or writer)
            result.followed, result.expired = _follow(
                client, writer, lineage, job, selecting or writer
            )
            if selecting is not None:  # after the walk: it never waits for these requests
                result.outputs = _read_outputs(job, session, client, lineage, selecting, writer)
            spooled = writer.close()
            break
        except AwsError as exc:
            writer.discard()
            exc.region = exc.region or job.region
            if exc.code != "InvalidNextToken":
                raise
            failures[exc.slice] += 1
            if failures[exc.slice] > WALK_RESTARTS:
                raise
            where = "" if exc.slice is None else f" in time slice {exc.slice + 1}"
            log.warning(
                "%s %s: InvalidNextToken%s; re-reading the window",
                job.account_id,
                job.region,
                where,
            )
        except BaseException:
            writer.discard()
            raise
    if job.stop.is_set():
        raise Interrupted(f"{job.account_id} {job.region}: stopped")
    result.commands = counts.get(COMMANDS.name)
    result.managed_instances = counts.get(MANAGED_INSTANCES.name)
    result.pages, result.invocations = stats.pages, stats.invocations
    result.plugins, result.quarantined = stats.plugins, stats.quarantined
    result.window_end_ms = stats.newest_ms
    known = [m for m in (job.prior_watermark_ms, stats.newest_ms) if m is not None]
    result.watermark_ms = max(known) if known else None
    result.status = "succeeded"
    result.finished_ms = now_ms()
    log.info(
        "%s %s: %d invocations, %d pages",
        job.account_id,
        job.region,
        result.invocations,
        result.pages,
    )
    return RegionOutcome(result, spooled)


def _walk(
    client: Any,
    writer: RegionWriter,
    lineage: Lineage,
    window: list[Slice],
    job: RegionJob,
    sink: Writer,
) -> tuple[dict[str, int], Any]:
    """The window's invocations, and beside them the sources (ListCommands, inventory).

    Rows go to `sink`: the writer, or a `Selecting` in front of it."""
    options = job.options
    # The sources are a few sequential pages: walked beside the slices, they cost no time.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sources") as sources:
        counted = (
            sources.submit(
                walk_sources,
                client,
                sink,
                lineage,
                job.window_start_ms,
                retry=options.retry,
                redactor=options.redactor,
            )
            if options.sources
            else None
        )
        stats = walk_region(
            client,
            sink,
            lineage,
            window,
            retry=options.retry,
            redactor=options.redactor,
            stop=job.stop.event,
        )
        counts = counted.result() if counted is not None else {}
    if MANAGED_INSTANCES.name in counts:  # read whole (not skipped for lack of permission)
        writer.snapshot_taken(MANAGED_INSTANCES)
    return counts, stats


def _read_outputs(
    job: RegionJob,
    session: Any,
    client: Any,
    lineage: Lineage,
    selecting: Selecting,
    writer: RegionWriter,
) -> OutputStats:
    """The full output of the plugins the walk selected (--full-output; `pipeline.outputs`)."""
    options = job.options
    fetcher = Fetcher(
        job.settings,
        session,
        client,
        job.region,
        options=options.outputs,
        redactor=options.redactor,
        retry=options.retry,
        stop=job.stop.event,
    )
    stored = {(c, i, p): s for c, i, p, s in job.stored_outputs}
    table, stats = fetch_outputs(fetcher, selecting.selected(), lineage, stored)
    writer.add(PLUGIN_OUTPUTS, table)
    return stats


def _follow(
    client: Any, writer: RegionWriter, lineage: Lineage, job: RegionJob, sink: Writer
) -> tuple[int, int]:
    """Read again the open invocations from before the window; mark those the API lost.

    Returns (invocations followed, invocations expired while open).
    """
    if not job.open_commands:
        return 0, 0
    seen = follow_commands(
        client,
        sink,
        lineage,
        [(c.command_id, c.requested_ms) for c in job.open_commands],
        retry=job.options.retry,
        redactor=job.options.redactor,
        stop=job.stop.event,
    )
    lost = [
        (command.requested_month, command.command_id, instance)
        for command in job.open_commands
        for instance in command.instance_ids
        if instance not in seen.get(command.command_id, set())
    ]
    if lost:
        months, commands, instances = (list(column) for column in zip(*lost, strict=True))
        count = len(lost)
        writer.expire(
            INVOCATIONS,
            pa.table(
                {
                    "account_id": [job.account_id] * count,
                    "region": [job.region] * count,
                    "requested_month": months,
                    "command_id": commands,
                    "instance_id": instances,
                    "expired_while_open_at": pa.array([lineage.ingested_at_ms] * count, TIMESTAMP),
                }
            ),
        )
    return sum(len(c.instance_ids) for c in job.open_commands), len(lost)


def _slices(
    client: object, start_ms: int | None, options: IngestOptions, region: str
) -> list[Slice]:
    """Time slices up to the API's newest record; one slice when there is little to cut.

    `options.slices` is the most: enough slices to keep `pacing.ASSUMED_RATE`
    requests in flight given the probe's round trip, and at least two. On a
    slow, far endpoint that is all of them; on a near one (an emulator, the
    benchmarks' replay) more threads only contend for the interpreter.
    """
    if options.slices <= 1:
        return slices(start_ms, now_ms(), 1)
    after = ms_to_datetime(start_ms)
    started = time.perf_counter()
    newest = newest_requested_ms(client, invoked_after=after, retry=options.retry, region=region)
    round_trip = time.perf_counter() - started
    if newest is None:
        return slices(start_ms, now_ms(), 1)
    return slices(start_ms, newest + 1, slice_count(round_trip, options.slices))
