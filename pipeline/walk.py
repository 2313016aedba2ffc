"""Walk one region's window into a writer, in concurrent time slices; follow open commands.

A region's walk is bound by round trips, not CPU: with 200 ms per page and a
throttle of 20 requests/s per region, one paginator uses a quarter of what
the API allows. The window is therefore cut into time slices walked side by
side.

Slice edges do not depend on whether the API's InvokedAfter/InvokedBefore
are inclusive (the reference only says "after" and "before"): each slice
asks for its own range widened by `OVERLAP_MS` on both sides, and keeps
only the records requested inside its own half-open range [after, before).
Adjacent requests overlap, but every record has exactly one owner, so none
is written twice and none is lost whichever way the API treats its bounds.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from .decode import Page, flatten, requested_ms, settle
from .errors import AwsError, BadRecordError, FatalAwsError, Interrupted
from .extract import decoding, invocation_pages, time_filters
from .flatten import Lineage, Rejected, check_timestamp, flatten_source, quarantine_table, raw_json
from .pacing import ASSUMED_RATE
from .paging import PageRetry, check, pages
from .redact import Redactor
from .schema import (
    COMMAND_PLUGINS,
    COMMANDS,
    INVOCATIONS,
    MANAGED_INSTANCES,
    QUARANTINE,
    TableSpec,
)

log = logging.getLogger("ssm_etl")
progress_log = logging.getLogger("ssm_etl.progress")
"""Per-page records for the CLI's live view (`pipeline.progress`); DEBUG, so silent elsewhere."""


class Writer(Protocol):
    """Where walks put their rows: each stream's rows newest first, from several threads."""

    def add(self, spec: TableSpec, table: pa.Table, stream: int = 0) -> None: ...


HOUR_MS = 3_600_000
RETENTION_MS = 30 * 24 * HOUR_MS
MIN_SLICE_MS = 6 * HOUR_MS
"""Below this, a slice costs more in extra requests than it saves in waiting."""
OVERLAP_MS = 1_000
"""How far each slice's request reaches into its neighbours' ranges: a second, so even
an API that cut its bounds to the second would return every record a slice owns."""
TICK = 0.05
"""Seconds between two looks at the caller's stop event while slices run."""

PAGE_OVER_PROBE = 4.0
"""How much longer a full page (50 records, output included) takes than the 1-record probe."""


def slice_count(round_trip: float, most: int) -> int:
    """Slices to walk side by side, from the probe's round trip in seconds (2 <= n <= most)."""
    needed = math.ceil(ASSUMED_RATE * PAGE_OVER_PROBE * round_trip)
    return max(2, min(most, needed))


BATCH_RECORDS = 500
"""Consecutive pages are checked, flattened and buffered together up to this many
records: each costs about as much for ten pages as for one, in fixed per-call overhead."""


def batches(pages: Iterable[Page], most: int = BATCH_RECORDS) -> Iterator[tuple[Page, int]]:
    """(pages joined and settled, how many), in order, each run reaching `most` records
    or the end."""
    run: list[Page] = []
    size = 0
    for page in pages:
        run.append(page)
        size += len(page)
        if size >= most:
            yield settle(run), len(run)
            run, size = [], 0
    if run:
        yield settle(run), len(run)


def _ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


@dataclass(frozen=True)
class Slice:
    """The records requested in [after_ms, before_ms); None leaves that side open."""

    after_ms: int | None
    before_ms: int | None

    def request(self) -> dict[str, Any]:
        """The ListCommandInvocations filters of this slice, widened by OVERLAP_MS."""
        after = None if self.after_ms is None else self.after_ms - OVERLAP_MS
        before = None if self.before_ms is None else self.before_ms + OVERLAP_MS
        filters = time_filters(_ms(after), _ms(before))
        return {"Filters": filters} if filters else {}

    def owns(self, ms: int) -> bool:
        return (self.after_ms is None or ms >= self.after_ms) and (
            self.before_ms is None or ms < self.before_ms
        )

    def owned(self, page: Page) -> Page:
        """What of `page` is this slice's to write (rejected records without a usable time
        included: `_Sink` writes each of those once)."""
        records = page.records
        if len(records):
            ms = requested_ms(page)
            lowest = -(2**63) if self.after_ms is None else self.after_ms
            beyond = 2**63 - 1 if self.before_ms is None else self.before_ms
            mine = pc.and_(pc.greater_equal(ms, lowest), pc.less(ms, beyond))
            if not pc.all(mine).as_py():
                records = records.filter(mine)
        rejected = tuple(r for r in page.rejected if self._owns_rejected(r))
        return Page(records, rejected, page.next_token)

    def _owns_rejected(self, rejected: Rejected) -> bool:
        ms = _rejected_ms(rejected)
        return ms is None or self.owns(ms)


def _rejected_ms(rejected: Rejected) -> int | None:
    """The RequestedDateTime of a rejected record, when it has a usable one."""
    record = rejected.record
    try:
        seconds = check_timestamp(record.get("RequestedDateTime"), "RequestedDateTime")
    except (AttributeError, BadRecordError):
        return None
    return None if seconds is None else round(seconds * 1000)


def slices(start_ms: int | None, now_ms: int, count: int) -> list[Slice]:
    """Cut [start, now] into at most `count` slices of equal time, the last one open-ended.

    Without a start (a backfill), the first slice is open towards the past.
    """
    lower = start_ms if start_ms is not None else now_ms - RETENTION_MS
    span = now_ms - lower
    count = max(1, min(count, span // MIN_SLICE_MS))
    edges = [lower + span * i // count for i in range(1, count)]
    return [
        Slice(after, before)
        for after, before in zip([start_ms, *edges], [*edges, None], strict=True)
    ]


@dataclass
class WalkStats:
    pages: int = 0
    invocations: int = 0
    plugins: int = 0
    quarantined: int = 0
    newest_ms: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class _Sink:
    """The one way from pages to the writer, shared by concurrent slices.

    Writes are serialised, counted, and refused once the walk is over (a slice
    abandoned in a request must not write after its walk has returned).
    Rejected records without a usable time have no owning slice: the first
    copy is written, any other dropped.
    """

    def __init__(self, writer: Writer, lineage: Lineage, redactor: Redactor | None) -> None:
        self.writer, self.lineage, self.redactor = writer, lineage, redactor
        self.stats = WalkStats()
        self.open = True
        self._timeless: set[str] = set()

    def write(self, stream: int, page: Page, pages: int) -> None:
        flat = flatten(page, self.lineage, self.redactor)
        newest = (
            pc.max(flat.invocations["requested_date_time"]).value
            if flat.invocations.num_rows
            else None
        )
        stats = self.stats
        with stats.lock:
            if not self.open:
                raise Interrupted(f"{self.lineage.account_id} {self.lineage.region}: stopped")
            rejected = [r for r in flat.rejected if self._first(r)]
            self.writer.add(INVOCATIONS, flat.invocations, stream)
            self.writer.add(COMMAND_PLUGINS, flat.plugins, stream)
            if rejected:
                quarantine = quarantine_table(rejected, self.lineage, self.redactor)
                self.writer.add(QUARANTINE, quarantine, stream)
            stats.pages += pages
            stats.invocations += flat.invocations.num_rows
            stats.plugins += flat.plugins.num_rows
            stats.quarantined += len(rejected)
            if newest is not None:
                stats.newest_ms = max(newest, stats.newest_ms or newest)
            progress = {
                "account_id": self.lineage.account_id,
                "region": self.lineage.region,
                "pages": stats.pages,
                "invocations": stats.invocations,
            }
        progress_log.debug(
            "%(account_id)s %(region)s: %(pages)d pages", progress, extra={"progress": progress}
        )

    def _first(self, rejected: Rejected) -> bool:
        if _rejected_ms(rejected) is not None:
            return True
        raw = raw_json(rejected.record)
        if raw in self._timeless:
            return False
        self._timeless.add(raw)
        return True

    def close(self) -> None:
        with self.stats.lock:
            self.open = False


def walk_region(
    client: Any,
    writer: Writer,
    lineage: Lineage,
    window: list[Slice],
    *,
    retry: PageRetry,
    redactor: Redactor | None = None,
    stop: threading.Event | None = None,
) -> WalkStats:
    """Stream every page of every slice into `writer`.

    The first slice to fail stops the others before their next request, and
    its error is raised, `.slice` naming it. Once `stop` is set, no slice
    starts another request (within `TICK`), every wait of this walk ends, and
    Interrupted is raised at once: requests already in flight are not waited
    for, and nothing they bring back is written.
    """
    check(stop)
    decoding(client)  # once, here: the slices' threads would race to register the hook
    # And botocore's paginator model, which each slice's first page would load at once,
    # each scanning botocore's data directory before the client caches it.
    client.get_paginator("list_command_invocations")
    sink = _Sink(writer, lineage, redactor)
    halt = threading.Event()  # the first failure, or `stop`: every slice ends

    def walk_slice(stream: int, part: Slice) -> None:
        try:
            request = part.request()
            walk = invocation_pages(
                client, request, retry=retry, stop=halt, region=lineage.region, settled=False
            )
            for page, count in batches(walk):
                sink.write(stream, part.owned(page), count)
        except AwsError as exc:
            exc.slice = stream  # what the caller's restart budget is kept by
            raise

    pool = ThreadPoolExecutor(max_workers=len(window), thread_name_prefix="slice")
    try:
        futures = [pool.submit(walk_slice, stream, part) for stream, part in enumerate(window)]
        _outcome(futures, halt, stop)
        return sink.stats
    finally:
        halt.set()
        sink.close()
        pool.shutdown(wait=False, cancel_futures=True)


def _outcome(
    futures: list[Future[None]], halt: threading.Event, stop: threading.Event | None
) -> None:
    """Return when every slice is done; raise the first failure, or Interrupted."""
    pending = set(futures)
    failure: BaseException | None = None
    while pending:
        if stop is not None and stop.is_set():
            raise Interrupted("stopped")
        done, pending = wait(pending, timeout=TICK, return_when=FIRST_EXCEPTION)
        for future in done:
            error = future.exception()
            if error is not None and not isinstance(error, Interrupted) and failure is None:
                failure = error
                halt.set()  # the other slices stop before their next request
    if failure is not None:
        raise failure
    if any(isinstance(future.exception(), Interrupted) for future in futures):
        raise Interrupted("stopped")  # a slice ended by the pacer's stop


_SOURCES = {
    COMMANDS.name: (COMMANDS, "list_commands", "Commands"),
    MANAGED_INSTANCES.name: (
        MANAGED_INSTANCES,
        "describe_instance_information",
        "InstanceInformationList",
    ),
}


def walk_sources(
    client: Any,
    writer: Writer,
    lineage: Lineage,
    after_ms: int | None,
    *,
    retry: PageRetry,
    redactor: Redactor | None = None,
    stop: threading.Event | None = None,
) -> dict[str, int]:
    """The commands behind this window's invocations, and a snapshot of the managed instances.

    Both are small next to the invocations, so each is one sequential walk.
    An identity without `ssm:ListCommands` or `ssm:DescribeInstanceInformation`
    still gets its invocations: the source is skipped with a warning.
    """
    counts: dict[str, int] = {}
    for table, (spec, operation, result_key) in _SOURCES.items():
        filters = time_filters(_ms(after_ms), None) if spec is COMMANDS else []
        request = {"Filters": filters} if filters else {}
        staged: list[tuple[pa.Table, pa.Table]] = []
        try:
            for page in pages(
                client,
                operation,
                request,
                retry=retry,
                stop=stop,
                region=lineage.region,
                page_size=50,
            ):
                rows, rejected = flatten_source(
                    table, page.get(result_key) or [], lineage, redactor
                )
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


@dataclass(frozen=True)
class Followed:
    """What the API returned for one followed command."""

    instance_ids: frozenset[str]
    """Every instance it returned an invocation of (stored or quarantined)."""
    requests: int
    """Answers it took: one per page, or the one InvalidCommandId."""

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self.instance_ids


FOLLOW_STREAM = 1 << 20
"""The writer stream followed commands go to, apart from the window's time slices."""


def follow_commands(
    client: Any,
    writer: Writer,
    lineage: Lineage,
    commands: Iterable[tuple[str, int]],
    *,
    retry: PageRetry,
    redactor: Redactor | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Followed]:
    """Each command's invocations (ListCommandInvocations with its CommandId, Details=true),
    written as the window walk writes them; by command id, what the API returned.

    `commands` are (command id, requested time in epoch ms) pairs.
    One request per command, plus one per further page of a large command,
    newest command first (a writer stream wants its rows newest first). A
    command the API no longer has answers with no invocations, or with
    InvalidCommandId: either way an empty set, not an error.
    """
    decoding(client)
    sink = _Sink(writer, lineage, redactor)
    found: dict[str, Followed] = {}
    for command_id, _ in sorted(commands, key=lambda command: command[1], reverse=True):
        instances: set[str] = set()
        requests = 0
        request = {"CommandId": command_id}
        try:
            for page in invocation_pages(
                client, request, retry=retry, stop=stop, region=lineage.region
            ):
                requests += 1
                instances.update(page.records.field("InstanceId").to_pylist())
                instances.update(_instance_ids(page.rejected))
                sink.write(FOLLOW_STREAM, page, 1)
        except FatalAwsError as exc:
            if exc.code != "InvalidCommandId":
                raise
            requests += 1
        found[command_id] = Followed(frozenset(instances), requests)
    return found


def _instance_ids(rejected: Iterable[Rejected]) -> Iterator[str]:
    for item in rejected:
        record = item.record
        if isinstance(record, dict) and isinstance(record.get("InstanceId"), str):
            yield record["InstanceId"]
