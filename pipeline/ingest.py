"""One region of one account, from API pages to committed Parquet; and a whole run.

This is the library's entry point for ingestion. The Prefect flow in
`flows/` calls `ingest_region` once per task; `run_local` does the same work
without Prefect (tests, embedding, debugging).

A region's run: read its watermark from the ledger, walk the pages from
`watermark - lookback` (everything on a first run), stream them to staged
files, commit them, compact the partitions it touched, and only then append a
ledger row carrying the new watermark. A crash anywhere before that last
step leaves the watermark where it was, so the next run reads the window
again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePath

import boto3

from . import ledger
from .accounts import caller_partition, organization_accounts, role_arn
from .compact import Compactor, retire, sweep
from .config import DEFAULT_SLICES, RunConfig, Window
from .errors import AwsError
from .extract import (
    AwsSettings,
    PageRetry,
    caller_account,
    enabled_regions,
    newest_requested_ms,
)
from .flatten import Lineage
from .lake import PAIRED, Lake, is_compacted
from .pacing import Pacer
from .redact import Redactor
from .schema import COMMANDS, INGEST_RUNS, MANAGED_INSTANCES, TABLES
from .upgrade import upgrade
from .walk import Slice, slice_count, slices, walk_region, walk_sources

log = logging.getLogger("ssm_etl")


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time, unique across machines."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _ms_to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


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
    files: int = 0
    error: str | None = None
    started_ms: int = field(default_factory=_now_ms)
    finished_ms: int | None = None
    window_start_ms: int | None = None
    window_end_ms: int | None = None
    watermark_ms: int | None = None
    commands: int | None = None
    managed_instances: int | None = None
    purged_months: list[str] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def ledger_row(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "account_id": self.account_id,
            "region": self.region,
            "started_at": _ms_to_datetime(self.started_ms),
            "finished_at": _ms_to_datetime(self.finished_ms or _now_ms()),
            "window_start": _ms_to_datetime(self.window_start_ms),
            "window_end": _ms_to_datetime(self.window_end_ms),
            "pages": self.pages,
            "invocations": self.invocations,
            "plugins": self.plugins,
            "quarantined": self.quarantined,
            "status": self.status,
            "error": self.error,
            "watermark": _ms_to_datetime(self.watermark_ms),
            "purged_months": self.purged_months,
            "commands": self.commands,
            "managed_instances": self.managed_instances,
        }


@dataclass(frozen=True)
class Target:
    """One account x region of a run, with the settings that reach that account."""

    account_id: str
    region: str
    settings: AwsSettings


@dataclass
class RunPlan:
    run_id: str
    targets: list[Target] = field(default_factory=list)
    unreachable: list[tuple[str, str, AwsError]] = field(default_factory=list)
    """(account, region, error) of accounts that could not be reached at all."""
    skipped_accounts: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class RunSummary:
    run_id: str
    results: list[RegionResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if all(r.ok for r in self.results) else 1

    def totals(self) -> dict[str, int]:
        keys = ("pages", "invocations", "plugins", "quarantined", "files")
        return {k: sum(getattr(r, k) for r in self.results) for k in keys}

    def render(self) -> str:
        lines = [f"run {self.run_id}"]
        for r in self.results:
            line = (
                f"  {r.account_id} {r.region:<15} {r.status:<9} pages={r.pages} "
                f"invocations={r.invocations} plugins={r.plugins} quarantined={r.quarantined}"
            )
            lines.append(line + (f"  error: {r.error}" if r.error else ""))
        accounts = {r.account_id for r in self.results}
        failed = [
            r.region if len(accounts) == 1 else f"{r.account_id}/{r.region}"
            for r in self.results
            if not r.ok
        ]
        totals = self.totals()
        lines.append(
            f"  total: {len(self.results)} regions, {totals['invocations']} invocations, "
            f"{totals['plugins']} plugins, {totals['quarantined']} quarantined"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        )
        return "\n".join(lines)


def plan_run(config: RunConfig, settings: AwsSettings, run_id: str | None = None) -> RunPlan:
    """Resolve the accounts (STS, Organizations) and regions (EC2) a run covers.

    An account whose role cannot be assumed is not an error of the run: it
    becomes `unreachable` and fails alone.
    """
    plan = RunPlan(run_id=run_id or new_run_id())
    session = settings.session()
    home = session.region_name or ("us-east-1" if config.discover_regions else config.regions[0])
    if not config.multi_account:
        account_id = config.account_id or caller_account(settings, session, home)
        for region in _regions(config, settings, session, home):
            plan.targets.append(Target(account_id, region, settings))
        return plan
    assert config.role_name is not None
    partition = caller_partition(settings, session, home)
    accounts = list(config.accounts)
    if config.organization:
        found = organization_accounts(settings, session)
        accounts, plan.skipped_accounts = found.active, found.skipped
    for account_id in accounts:
        role = role_arn(partition, account_id, config.role_name)
        reach = settings.assuming(role, config.external_id)
        try:
            account_session = reach.session()
            caller_account(reach, account_session, home)  # assumes the role once, up front
            regions = _regions(config, reach, account_session, home)
        except AwsError as exc:
            names = config.regions if not config.discover_regions else ("all",)
            plan.unreachable += [(account_id, region, exc) for region in names]
            continue
        plan.targets += [Target(account_id, region, reach) for region in regions]
    return plan


def _regions(
    config: RunConfig, settings: AwsSettings, session: boto3.Session, home: str
) -> tuple[str, ...]:
    if config.discover_regions:
        return tuple(enabled_regions(settings, session, home))
    return config.regions


WALK_RESTARTS = 2
"""How often each time slice may fail with InvalidNextToken before the region fails.

Every failure re-reads the whole window (what was staged is dropped), but
the budget is per slice: each slice is its own query with its own tokens,
and a walk that stops the other slices at the first failure can meet each
slice's expired token in a separate attempt.
"""


def ingest_region(
    settings: AwsSettings,
    lake: Lake,
    run_id: str,
    account_id: str,
    region: str,
    window: Window | None = None,
    *,
    options: IngestOptions | None = None,
) -> RegionResult:
    """Walk one region's window, commit it, compact what it touched, advance the watermark.

    Raises AwsError (retriable or fatal) after discarding the staged files;
    the watermark then stays where it was.
    """
    window = window or Window()
    options = options or IngestOptions()
    prior = ledger.watermark_ms(lake, account_id, region)
    result = RegionResult(run_id=run_id, account_id=account_id, region=region)
    result.window_start_ms = window.start_ms(prior)
    lineage = Lineage(account_id, region, run_id, result.started_ms)
    client = settings.client(settings.session(), "ssm", region)
    Pacer().attach(client)  # one pacer per account and region, for every slice
    window_slices = _slices(client, result.window_start_ms, options, region)
    failures: Counter[int | None] = Counter()  # InvalidNextToken per slice
    while True:
        writer = lake.writer(run_id, account_id, region)
        # The sources (ListCommands, DescribeInstanceInformation) are a few
        # sequential pages: walked beside the slices, they cost no extra time.
        sources = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sources")
        try:
            counts_future = (
                sources.submit(
                    walk_sources,
                    client,
                    writer,
                    lineage,
                    result.window_start_ms,
                    retry=options.retry,
                    redactor=options.redactor,
                )
                if options.sources
                else None
            )
            try:
                stats = walk_region(
                    client,
                    writer,
                    lineage,
                    window_slices,
                    retry=options.retry,
                    redactor=options.redactor,
                )
            finally:
                sources.shutdown(wait=True)
            counts = counts_future.result() if counts_future else {}
            committed = writer.commit()
            break
        except AwsError as exc:
            writer.abort()
            exc.region = exc.region or region
            if exc.code != "InvalidNextToken":
                raise
            failures[exc.slice] += 1
            if failures[exc.slice] > WALK_RESTARTS:
                raise
            where = "" if exc.slice is None else f" in time slice {exc.slice + 1}"
            log.warning(
                "%s %s: InvalidNextToken%s; re-reading the window", account_id, region, where
            )
        except BaseException:
            writer.abort()
            raise
    result.commands = counts.get(COMMANDS.name)
    result.managed_instances = counts.get(MANAGED_INSTANCES.name)
    result.pages, result.invocations = stats.pages, stats.invocations
    result.plugins, result.quarantined = stats.plugins, stats.quarantined
    result.files = len(committed)
    compact_region(lake, run_id, committed)
    newest = stats.newest_ms
    result.window_end_ms = newest
    candidates = [m for m in (prior, newest) if m is not None]
    result.watermark_ms = max(candidates) if candidates else None
    result.status = "succeeded"
    finish(lake, result)
    log.info(
        "%s %s: %d invocations, %d pages", account_id, region, result.invocations, result.pages
    )
    return result


@dataclass(frozen=True)
class IngestOptions:
    """Knobs of one region's walk that are not about the window."""

    retry: PageRetry = field(default_factory=PageRetry)
    redactor: Redactor | None = None
    slices: int = DEFAULT_SLICES
    """Concurrent time slices per region (see `pipeline.walk`)."""
    sources: bool = True
    """Also read ListCommands and DescribeInstanceInformation (commands, managed_instances)."""

    @classmethod
    def from_config(cls, config: RunConfig) -> IngestOptions:
        return cls(redactor=Redactor.from_options(config.redact), slices=config.slices)


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
        return slices(start_ms, _now_ms(), 1)
    after = _ms_to_datetime(start_ms)
    started = time.perf_counter()
    newest = newest_requested_ms(client, invoked_after=after, retry=options.retry, region=region)
    round_trip = time.perf_counter() - started
    if newest is None:
        return slices(start_ms, _now_ms(), 1)
    return slices(start_ms, newest + 1, slice_count(round_trip, options.slices))


def compact_region(lake: Lake, run_id: str, committed: list[PurePath]) -> None:
    """Rewrite every partition the commit touched; retire what the rewrites replaced.

    Months the commit wrote as already compacted (new months, as on a first
    backfill) are left as they are.
    """
    partitions = {p.parent.relative_to(lake.root) for p in committed if not is_compacted(p)}
    months = {Path(*p.parts[1:]) for p in partitions if p.parts[0] in PAIRED}
    alone = {(p.parts[0], Path(*p.parts[1:])) for p in partitions if p.parts[0] not in PAIRED}
    specs = {t.name: t for t in TABLES}
    compactor = Compactor(lake, run_id)
    try:
        retired = [f for month in sorted(months) for f in compactor.compact_month(month)]
        for table, part in sorted(alone):
            retired += compactor.compact_all(specs[table], part)
    finally:
        compactor.close()
    retire(lake, retired)


def finish(lake: Lake, result: RegionResult) -> None:
    """Append the region's ledger row (the commit point of its watermark) and merge the ledger."""
    result.finished_ms = _now_ms()
    ledger.append(lake, result.ledger_row())
    partition = Path(f"account_id={result.account_id}", f"region={result.region}")
    compactor = Compactor(lake, result.run_id)
    try:
        retire(lake, compactor.compact_all(INGEST_RUNS, partition))
    finally:
        compactor.close()


def fail(lake: Lake, run_id: str, account_id: str, region: str, exc: BaseException) -> RegionResult:
    """Record a region that failed for good; its watermark does not move."""
    result = RegionResult(run_id=run_id, account_id=account_id, region=region, status="failed")
    result.error = " ".join(str(exc).split()) or type(exc).__name__
    result.watermark_ms = ledger.watermark_ms(lake, account_id, region)
    finish(lake, result)
    return result


@contextmanager
def held_lake(config: RunConfig) -> Iterator[Lake]:
    """The lake, created if new, locked for this run, with expired trash swept."""
    lake = Lake.create(config.lake, sse_kms_key_id=config.sse_kms_key_id)
    with lake.lock():
        upgrade(lake, new_run_id())
        sweep(lake, config.grace_seconds)
        yield lake
        sweep(lake, config.grace_seconds)  # with no grace, leave nothing retired behind


def run_local(
    config: RunConfig,
    settings: AwsSettings,
    *,
    workers: int = 4,
    options: IngestOptions | None = None,
) -> RunSummary:
    """A whole run without Prefect: the targets in a thread pool, no retries beyond botocore's."""
    with held_lake(config) as lake:
        plan = plan_run(config, settings)
        summary = RunSummary(plan.run_id)
        window = config.window()
        options = options or IngestOptions.from_config(config)

        def one(target: Target) -> RegionResult:
            try:
                return ingest_region(
                    target.settings,
                    lake,
                    plan.run_id,
                    target.account_id,
                    target.region,
                    window,
                    options=options,
                )
            except AwsError as exc:
                return fail(lake, plan.run_id, target.account_id, target.region, exc)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            summary.results = list(pool.map(one, plan.targets))
        summary.results += [fail(lake, plan.run_id, a, r, e) for a, r, e in plan.unreachable]
    return summary
