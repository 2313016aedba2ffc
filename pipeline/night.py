"""A whole run: plan the accounts and regions, run a task per region, commit, maintain.

This is the one orchestration. The Prefect flow (`flows/nightly.py`) calls
`run_night` with a runner that submits region tasks to Prefect's task runner
(threads or Dask); `ThreadRunner` submits them to a plain thread pool for
callers without Prefect. Everything else, the lock, the batching of commits,
the ledger, interrupts, maintenance, happens here, the same way for both.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3

from .accounts import caller_partition, organization_accounts, role_arn
from .bi import refresh_views_databases
from .commit import Committer, Pending
from .config import RunConfig
from .errors import AwsError, Interrupted
from .extract import AwsSettings, caller_account, enabled_regions
from .ingest import (
    IngestOptions,
    RegionJob,
    RegionOutcome,
    RegionResult,
    Stop,
    ingest_region,
    new_run_id,
    now_ms,
)
from .lake import Lake
from .ledger import RegionState, region_states
from .maintain import maintain
from .upgrade import upgrade

log = logging.getLogger("ssm_etl")


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
    interrupted: bool = False
    signal: int | None = None
    """The signal that stopped the run, if one did."""

    @property
    def exit_code(self) -> int:
        """0 all committed, 1 some failed, 128 + the signal (130, 143) if stopped."""
        if self.interrupted:
            return 128 + self.signal if self.signal else Interrupted.exit_code
        return 0 if all(r.ok for r in self.results) else 1

    def totals(self) -> dict[str, int]:
        keys = ("pages", "invocations", "plugins", "quarantined", "followed", "expired")
        return {k: sum(getattr(r, k) for r in self.results) for k in keys}

    def render(self) -> str:
        lines = [f"run {self.run_id}"]
        for r in self.results:
            line = (
                f"  {r.account_id} {r.region:<15} {r.status:<11} pages={r.pages} "
                f"invocations={r.invocations} plugins={r.plugins} quarantined={r.quarantined}"
            )
            if r.followed:
                line += f" open_followed={r.followed} expired={r.expired}"
            if r.outputs is not None:
                line += f" outputs={r.outputs.fetched} unavailable={r.outputs.unavailable}"
                if r.outputs.reasons:
                    line += f" ({', '.join(r.outputs.reason_list())})"
            lines.append(line + (f"  error: {r.error}" if r.error else ""))
        accounts = {r.account_id for r in self.results}
        failed = [
            r.region if len(accounts) == 1 else f"{r.account_id}/{r.region}"
            for r in self.results
            if not r.ok and r.status != "interrupted"
        ]
        totals = self.totals()
        outputs = [r.outputs for r in self.results if r.outputs is not None]
        lines.append(
            f"  total: {len(self.results)} regions, {totals['invocations']} invocations, "
            f"{totals['plugins']} plugins, {totals['quarantined']} quarantined"
            + (
                f", {sum(o.fetched for o in outputs)} full outputs stored "
                f"({sum(o.unavailable for o in outputs)} unavailable from a source)"
                if outputs
                else ""
            )
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        )
        return "\n".join(lines)

    def interrupted_line(self) -> str:
        """The one line an interrupted run ends with."""
        done = [r for r in self.results if r.ok]
        names = ", ".join(f"{r.account_id}/{r.region}" for r in done) or "none"
        return (
            f"interrupted: {len(done)} of {len(self.results)} regions committed ({names}); "
            "the others were dropped and a rerun resumes them"
        )


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


class Runner(Protocol):
    """How region tasks run: submit one, get a future (`add_done_callback`, `result`)."""

    concurrency: int

    def submit(self, job: RegionJob) -> Any: ...


class ThreadRunner:
    """Region tasks in a thread pool of this process: the same night without Prefect."""

    def __init__(self, concurrency: int = 8) -> None:
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="region")

    def submit(self, job: RegionJob) -> Any:
        return self._pool.submit(ingest_region, job)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def failed(run_id: str, account_id: str, region: str, exc: BaseException) -> RegionResult:
    """A region that failed for good (or was interrupted); its watermark does not move."""
    status = "interrupted" if isinstance(exc, Interrupted) else "failed"
    result = RegionResult(run_id, account_id, region, status=status)
    result.error = " ".join(str(exc).split()) or type(exc).__name__
    result.finished_ms = now_ms()
    return result


def run_night(
    config: RunConfig,
    settings: AwsSettings,
    runner: Runner,
    *,
    stop: Stop | None = None,
    plan: RunPlan | None = None,
) -> RunSummary:
    """Run one night: every planned region's task, committed in batches, then maintenance.

    `stop`, once set, ends the run within seconds: no new region starts, the
    running ones stop before their next request, what was not committed is
    dropped, and the ledger records those regions as `interrupted`.
    """
    stop = stop or Stop()
    plan = plan or plan_run(config, settings)
    lake = Lake.create(config.lake, sse_kms_key_id=config.sse_kms_key_id)
    summary = RunSummary(plan.run_id)
    with lake.lock() as lease:
        upgrade(lake, plan.run_id)
        lake.ensure_tables(run_id=plan.run_id)
        states = region_states(lake.snapshot(), outputs=config.full_output != "none")
        log.info(
            "run %s: %d accounts, %d account-regions",
            plan.run_id,
            len({t.account_id for t in plan.targets}),
            len(plan.targets),
        )
        for account, state in plan.skipped_accounts:
            log.warning("account %s skipped: %s", account, state)
        committer = Committer(lake, plan.run_id, lease)
        jobs = deque(_job(config, lake, plan.run_id, t, states, stop) for t in plan.targets)
        done: queue.Queue[tuple[RegionJob, Any]] = queue.Queue()
        running = 0
        while (jobs or running) and not stop.is_set():
            while jobs and running < runner.concurrency and not stop.is_set():
                job = jobs.popleft()
                future = runner.submit(job)
                future.add_done_callback(lambda f, job=job: done.put((job, f)))
                running += 1
            try:
                job, future = done.get(timeout=0.5)
            except queue.Empty:
                committer.commit_if_due()
                continue
            running -= 1
            result, spooled = _outcome(job, future)
            summary.results.append(result)
            committer.add(Pending(spooled, result.ledger_row()))
            committer.commit_if_due()
        for account, region, error in plan.unreachable:
            result = failed(plan.run_id, account, region, error)
            summary.results.append(result)
            committer.add(Pending(None, result.ledger_row()))
        if stop.is_set():
            _let_running_stop(done, running)
            summary.signal = stop.signal
            _interrupted(summary, committer, plan)
            return summary
        committer.commit()
        maintain(lake, plan.run_id, keep_days=config.keep_days)
        refresh_views_databases(lake)
    return summary


STOP_WAIT_S = 3.0
"""How long a stopped run waits for its running regions, which stop before their next
request: a task runner that shuts down with tasks still running cancels them, and
Prefect reports each as crashed. A region still busy after this is left to that."""


def _let_running_stop(done: queue.Queue[tuple[RegionJob, Any]], running: int) -> None:
    deadline = time.monotonic() + STOP_WAIT_S
    while running and time.monotonic() < deadline:
        try:
            done.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            break
        running -= 1


def _job(
    config: RunConfig,
    lake: Lake,
    run_id: str,
    target: Target,
    states: dict[tuple[str, str], RegionState],
    stop: Stop,
) -> RegionJob:
    state = states.get((target.account_id, target.region), RegionState())
    start = config.window().start_ms(state.watermark_ms)
    open_commands = (
        () if start is None else tuple(c for c in state.open_commands if c.requested_ms < start)
    )
    return RegionJob(
        run_id=run_id,
        account_id=target.account_id,
        region=target.region,
        settings=target.settings,
        lake=lake,
        window_start_ms=start,
        prior_watermark_ms=state.watermark_ms,
        options=IngestOptions.from_config(config),
        open_commands=open_commands,
        stop=stop,
        stored_outputs=tuple(state.stored_outputs),
    )


def _outcome(job: RegionJob, future: Any) -> tuple[RegionResult, Any]:
    try:
        outcome: RegionOutcome = future.result()
    except Exception as exc:  # failed for good (or stopped); the others stand
        result = failed(job.run_id, job.account_id, job.region, exc)
        result.window_start_ms = job.window_start_ms
        result.watermark_ms = job.prior_watermark_ms
        return result, None
    return outcome.result, outcome.spooled


def _interrupted(summary: RunSummary, committer: Committer, plan: RunPlan) -> None:
    """Drop what was not committed, and record every region not committed as interrupted.

    Regions that already failed keep their failure; a region that finished but
    was not committed yet did not happen as far as the lake is concerned.
    """
    committer.discard()
    committed = {(r["account_id"], r["region"]) for r in committer.committed}
    results = {(r.account_id, r.region): r for r in summary.results}
    keys = [(t.account_id, t.region) for t in plan.targets]
    keys += [(account, region) for account, region, _ in plan.unreachable]
    summary.results = []
    for account, region in keys:
        result = results.get((account, region))
        if (account, region) not in committed:
            if result is None or result.status != "failed":
                stopped = Interrupted("stopped before this region was committed")
                result = failed(plan.run_id, account, region, stopped)
            committer.add(Pending(None, result.ledger_row()))
        if result is not None:
            summary.results.append(result)
    committer.commit()
    summary.interrupted = True
