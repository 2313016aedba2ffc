"""Walk one region's window into a writer, in concurrent time slices.

A region's walk is bound by round trips, not CPU: with 200 ms per page and a
throttle of 20 requests/s per region, one paginator uses a quarter of what
the API allows. The window is therefore cut into InvokedAfter/InvokedBefore
slices walked side by side. Both filters are inclusive and timestamps have
millisecond precision, so slice i covers [edge_i, edge_i+1 - 1 ms] and the
last slice is open-ended: no record can fall between two slices or into two.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .arrow_page import ArrowPage
from .errors import AwsError, FatalAwsError
from .extract import Page, PageRetry, iter_api_pages, iter_pages, time_filters
from .flatten import Lineage, flatten_page, flatten_source, quarantine_table
from .pacing import ASSUMED_RATE
from .redact import Redactor
from .schema import COMMAND_PLUGINS, COMMANDS, INVOCATIONS, MANAGED_INSTANCES, QUARANTINE
from .spool import RegionWriter

log = logging.getLogger("ssm_etl")

HOUR_MS = 3_600_000
RETENTION_MS = 30 * 24 * HOUR_MS
MIN_SLICE_MS = 6 * HOUR_MS
"""Below this, a slice costs more in extra requests than it saves in waiting."""


PAGE_OVER_PROBE = 4.0
"""How much longer a full page (50 records, output included) takes than the 1-record probe."""


def slice_count(round_trip: float, most: int) -> int:
    """Slices to walk side by side, from the probe's round trip in seconds (2 <= n <= most)."""
    needed = math.ceil(ASSUMED_RATE * PAGE_OVER_PROBE * round_trip)
    return max(2, min(most, needed))


BATCH_RECORDS = 500
"""Consecutive Arrow pages are flattened and buffered together up to this many records:
flattening costs about as much for ten pages as for one, in fixed per-call overhead."""


def batches(pages: Iterable[Page], most: int = BATCH_RECORDS) -> Iterator[tuple[Any, int]]:
    """(records, pages in them): runs of Arrow pages joined, any other page alone, in order."""
    run: list[ArrowPage] = []
    size = 0
    for page in pages:
        if isinstance(page.records, ArrowPage):
            run.append(page.records)
            size += len(page.records)
            if size < most:
                continue
        if run:
            yield ArrowPage.concat(run), len(run)
            run, size = [], 0
        if not isinstance(page.records, ArrowPage):
            yield page.records, 1
    if run:
        yield ArrowPage.concat(run), len(run)


def _until(stop: threading.Event, pages: Iterator[Page]) -> Iterator[Page]:
    """`pages` while `stop` is unset, checked before each next page is requested."""
    while not stop.is_set():
        page = next(pages, None)
        if page is None:
            return
        yield page


@dataclass(frozen=True)
class Slice:
    after_ms: int | None
    before_ms: int | None  # inclusive; None for the open-ended newest slice


def slices(start_ms: int | None, now_ms: int, count: int) -> list[Slice]:
    """Cut [start, now] into at most `count` slices of equal time, the last one open-ended.

    Without a start (a backfill), the first slice is open towards the past.
    """
    lower = start_ms if start_ms is not None else now_ms - RETENTION_MS
    span = now_ms - lower
    count = max(1, min(count, span // MIN_SLICE_MS))
    if count == 1:
        return [Slice(start_ms, None)]
    edges = [lower + span * i // count for i in range(1, count)]
    afters: list[int | None] = [start_ms, *edges]
    befores: list[int | None] = [edge - 1 for edge in edges] + [None]
    return [Slice(a, b) for a, b in zip(afters, befores, strict=True)]


@dataclass
class WalkStats:
    pages: int = 0
    invocations: int = 0
    plugins: int = 0
    quarantined: int = 0
    newest_ms: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def _ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def walk_region(
    client: Any,
    writer: RegionWriter,
    lineage: Lineage,
    window: list[Slice],
    *,
    retry: PageRetry,
    redactor: Redactor | None = None,
    stop: threading.Event | None = None,
) -> WalkStats:
    """Stream every page of every slice into `writer`; the first failure stops all slices."""
    stats = WalkStats()
    stop = stop or threading.Event()

    def one(stream: int, part: Slice) -> None:
        try:
            walk_slice(stream, part)
        except AwsError as exc:
            exc.slice = stream  # what the caller's restart budget is kept by
            raise

    def walk_slice(stream: int, part: Slice) -> None:
        pages = iter_pages(
            client,
            invoked_after=_ms(part.after_ms),
            invoked_before=_ms(part.before_ms),
            retry=retry,
            region=lineage.region,
        )
        for records, page_count in batches(_until(stop, pages)):
            if stop.is_set():
                return
            flat = flatten_page(records, lineage, redactor=redactor)
            rejected = quarantine_table(flat.rejected, lineage, redactor) if flat.rejected else None
            newest = (
                pc.max(flat.invocations["requested_date_time"]).value
                if flat.invocations.num_rows
                else None
            )
            with stats._lock:  # the writer is shared by the slices
                writer.add(INVOCATIONS, flat.invocations, stream)
                writer.add(COMMAND_PLUGINS, flat.plugins, stream)
                if rejected is not None:
                    writer.add(QUARANTINE, rejected, stream)
                stats.pages += page_count
                stats.invocations += flat.invocations.num_rows
                stats.plugins += flat.plugins.num_rows
                stats.quarantined += len(flat.rejected)
                if newest is not None:
                    stats.newest_ms = max(newest, stats.newest_ms or newest)
                progress = {
                    "account_id": lineage.account_id,
                    "region": lineage.region,
                    "pages": stats.pages,
                    "invocations": stats.invocations,
                }
            # One line per page for the CLI's live view (pipeline.progress); DEBUG elsewhere.
            log.debug(
                "%(account_id)s %(region)s: %(pages)d pages", progress, extra={"progress": progress}
            )

    if len(window) == 1:
        one(0, window[0])
        return stats
    with ThreadPoolExecutor(max_workers=len(window), thread_name_prefix="slice") as pool:
        futures = [pool.submit(one, stream, part) for stream, part in enumerate(window)]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            stop.set()
            wait(futures)
            raise failed[0].exception()  # type: ignore[misc]
    return stats


def walk_sources(
    client: Any,
    writer: RegionWriter,
    lineage: Lineage,
    after_ms: int | None,
    *,
    retry: PageRetry,
    redactor: Redactor | None = None,
) -> dict[str, int]:
    """The commands behind this window's invocations, and a snapshot of the managed instances.

    Both are small next to the invocations, so each is one sequential walk.
    An identity without `ssm:ListCommands` or `ssm:DescribeInstanceInformation`
    still gets its invocations: the source is skipped with a warning.
    """
    calls = {
        COMMANDS.name: (
            client.list_commands,
            {"MaxResults": 50, **_filters(after_ms)},
            "Commands",
        ),
        MANAGED_INSTANCES.name: (
            client.describe_instance_information,
            {"MaxResults": 50},
            "InstanceInformationList",
        ),
    }
    counts: dict[str, int] = {}
    for table, (call, request, result_key) in calls.items():
        spec = COMMANDS if table == COMMANDS.name else MANAGED_INSTANCES
        staged: list[tuple[pa.Table, pa.Table]] = []
        try:
            for page in iter_api_pages(
                call, request, result_key, retry=retry, region=lineage.region
            ):
                rows, rejected = flatten_source(table, page.records, lineage, redactor)
                staged.append((rows, quarantine_table(rejected, lineage, redactor)))
        except FatalAwsError as exc:
            if not exc.code.startswith("AccessDenied"):
                raise
            log.warning("%s %s: %s skipped: %s", lineage.account_id, lineage.region, table, exc)
            continue
        for rows, rejected in staged:
            writer.add(spec, rows)
            writer.add(QUARANTINE, rejected)
        counts[table] = sum(rows.num_rows for rows, _ in staged)
    return counts


def _filters(after_ms: int | None) -> dict[str, Any]:
    filters = time_filters(_ms(after_ms), None)
    return {"Filters": filters} if filters else {}


def follow_commands(
    client: Any,
    writer: RegionWriter,
    lineage: Lineage,
    commands: list[tuple[str, int]],
    *,
    retry: PageRetry,
    redactor: Redactor | None = None,
    stop: threading.Event | None = None,
) -> dict[str, set[str]]:
    """Every invocation of each command (ListCommandInvocations by CommandId) into `writer`.

    Returns the instance ids the API returned per command; a command it no
    longer has answers with none.
    """
    seen: dict[str, set[str]] = {}
    for command_id, _ in commands:
        if stop is not None and stop.is_set():
            break
        found = seen.setdefault(command_id, set())
        request = {"CommandId": command_id, "Details": True, "MaxResults": 50}
        try:
            for page in iter_api_pages(
                client.list_command_invocations,
                request,
                "CommandInvocations",
                retry=retry,
                region=lineage.region,
            ):
                flat = flatten_page(page.records, lineage, redactor=redactor)
                writer.add(INVOCATIONS, flat.invocations)
                writer.add(COMMAND_PLUGINS, flat.plugins)
                if flat.rejected:
                    writer.add(QUARANTINE, quarantine_table(flat.rejected, lineage, redactor))
                found.update(flat.invocations.column("instance_id").to_pylist())
        except FatalAwsError as exc:
            if exc.code != "InvalidCommandId":
                raise
    return seen
