"""The nightly flow: `pipeline.night.run_night` with region tasks submitted to Prefect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.config import (
    DEFAULT_KEEP_DAYS,
    DEFAULT_LOOKBACK_HOURS,
    DEFAULT_OUTPUT_CAP,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SLICES,
    RunConfig,
)
from pipeline.errors import Interrupted
from pipeline.ingest import RegionJob, RegionOutcome, ingest_region
from pipeline.night import RunSummary, failed, run_night
from pipeline.signals import stopping_on_signals

DEFAULT_CONCURRENCY = 8


@task(name="ingest-region", task_run_name="{job.account_id}/{job.region}", cache_policy=NO_CACHE)
def ingest_region_task(job: RegionJob) -> RegionOutcome:
    """No Prefect retries: a page's retries are bounded inside (see `pipeline.paging`).

    A stop (Ctrl-C, SIGTERM) is not a failure: the task ends quietly, with no
    error in Prefect's log, and `run_night` records the region as interrupted.
    """
    try:
        return ingest_region(job)
    except Interrupted as stopped:
        return RegionOutcome(failed(job.run_id, job.account_id, job.region, stopped), None)


def concurrency_tags(job: RegionJob) -> list[str]:
    """Tags that Prefect's tag concurrency limits act on, across threads and Dask workers.

    `prefect concurrency-limit create account:111111111111 2` caps one account's
    regions at two at a time; `region:us-east-1` caps a region across accounts;
    `ssm-etl` caps every region task of every run.
    """
    return ["ssm-etl", f"account:{job.account_id}", f"region:{job.region}"]


LIMITS_PAGE = 200
"""The Prefect server's largest page (PREFECT_API_DEFAULT_LIMIT)."""


def limited_tags() -> frozenset[str]:
    """The tags that a concurrency limit on the Prefect server names (limit `tag:<tag>`)."""
    from prefect.client.orchestration import get_client

    tags: set[str] = set()
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_global_concurrency_limits(limit=LIMITS_PAGE, offset=offset)
            tags.update(limit.name.removeprefix("tag:") for limit in page
                        if limit.name.startswith("tag:"))  # fmt: skip
            if len(page) < LIMITS_PAGE:
                return frozenset(tags)
            offset += LIMITS_PAGE


class PrefectRunner:
    """Submits region tasks to the flow's task runner, at most `concurrency` at a time.

    A task is tagged only with those of its `concurrency_tags` that a limit
    names, read once per run. Prefect takes a slot (a database write) for
    every tag of a task as it starts, limit or not, and on its SQLite server
    region tasks starting together collide: the server answers 503 and
    Prefect's client retries after 2 s, each time, for every region but the
    first. A limit created during a run applies from the next run.
    """

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.limited = limited_tags()

    def submit(self, job: RegionJob) -> Any:
        tags = [tag for tag in concurrency_tags(job) if tag in self.limited]
        return ingest_region_task.with_options(tags=tags).submit(job)


def publish_artifacts(summary: RunSummary) -> None:
    """A markdown summary and a table per account and region, shown in the Prefect UI."""
    rows = [
        {
            "account_id": r.account_id,
            "region": r.region,
            "status": r.status,
            "pages": r.pages,
            "invocations": r.invocations,
            "plugins": r.plugins,
            "commands": r.commands or 0,
            "managed_instances": r.managed_instances or 0,
            "open_followed": r.followed,
            "expired_while_open": r.expired,
            "quarantined": r.quarantined,
            "outputs_fetched": 0 if r.outputs is None else r.outputs.fetched,
            "outputs_unavailable": 0 if r.outputs is None else r.outputs.unavailable,
            "error": r.error or "",
        }
        for r in summary.results
    ]
    create_table_artifact(
        table=rows, key="ssm-etl-regions", description=f"Regions of run {summary.run_id}"
    )
    totals = summary.totals()
    failed = [r for r in summary.results if not r.ok]
    lines = [
        f"# ssm-etl run `{summary.run_id}`" + (" (interrupted)" if summary.interrupted else ""),
        "",
        f"- regions: {len(summary.results)} ({len(failed)} not committed)",
        f"- invocations: {totals['invocations']}, plugins: {totals['plugins']}",
        f"- quarantined records: {totals['quarantined']}",
    ]
    if failed:
        lines += ["", "## Regions not committed", ""]
        lines += [f"- `{r.account_id}` `{r.region}` ({r.status}): {r.error}" for r in failed]
    create_markdown_artifact(
        markdown="\n".join(lines), key="ssm-etl-summary", description="ssm-etl run summary"
    )


@flow(name="ssm-etl-nightly", validate_parameters=False, log_prints=False)
def nightly(
    lake: str,
    regions: list[str],
    account_id: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    lookback_hours: float = DEFAULT_LOOKBACK_HOURS,
    since: str | None = None,
    full_refresh: bool = False,
    keep_days: float = DEFAULT_KEEP_DAYS,
    redact: list[str] | None = None,
    slices: int = DEFAULT_SLICES,
    accounts: list[str] | None = None,
    organization: bool = False,
    role_name: str | None = None,
    external_id: str | None = None,
    sse_kms_key_id: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    full_output: str = "none",
    output_cap: int = DEFAULT_OUTPUT_CAP,
) -> RunSummary:
    """Export every account's and region's new and changed Run Command history.

    Accounts and regions fail independently: one that fails is recorded as
    failed (its watermark stays); the others commit. Parameters are plain
    values so that a deployment can carry them. SIGINT and SIGTERM stop the
    run cleanly (see `pipeline.night.run_night`).
    """
    config = RunConfig(
        lake=lake,
        regions=tuple(regions),
        account_id=account_id,
        profile=profile,
        endpoint_url=endpoint_url,
        lookback_hours=lookback_hours,
        since=datetime.fromisoformat(since) if since else None,
        full_refresh=full_refresh,
        keep_days=keep_days,
        redact=tuple(redact or ()),
        slices=slices,
        accounts=tuple(accounts or ()),
        organization=organization,
        role_name=role_name,
        external_id=external_id,
        sse_kms_key_id=sse_kms_key_id,
        read_timeout=read_timeout,
        full_output=full_output,
        output_cap=output_cap,
    )
    with stopping_on_signals() as stop:
        summary = run_night(config, config.settings(), PrefectRunner(concurrency), stop=stop)
    publish_artifacts(summary)
    return summary


def with_runner(kind: str = "threads", address: str | None = None, concurrency: int = 8) -> Any:
    """The nightly flow on a task runner: threads here, or a Dask cluster via prefect-dask.

    With Dask, each account x region task runs in a worker process; workers
    share nothing but the lake and rebuild their AWS sessions from the
    picklable settings they are handed.
    """
    if kind == "threads":
        return nightly.with_options(task_runner=ThreadPoolTaskRunner(max_workers=concurrency))
    from prefect_dask import DaskTaskRunner

    if address:
        return nightly.with_options(task_runner=DaskTaskRunner(address=address))
    cluster = {"n_workers": 2, "threads_per_worker": max(1, concurrency // 2), "processes": True}
    return nightly.with_options(task_runner=DaskTaskRunner(cluster_kwargs=cluster))


def flow_parameters(config: RunConfig, concurrency: int = DEFAULT_CONCURRENCY) -> dict[str, Any]:
    """The flow's plain-value parameters for a validated config (for runs and deployments)."""
    return {
        "lake": config.lake,
        "regions": list(config.regions),
        "account_id": config.account_id,
        "profile": config.profile,
        "endpoint_url": config.endpoint_url,
        "lookback_hours": config.lookback_hours,
        "since": config.since.isoformat() if config.since else None,
        "full_refresh": config.full_refresh,
        "keep_days": config.keep_days,
        "redact": list(config.redact),
        "slices": config.slices,
        "accounts": list(config.accounts),
        "organization": config.organization,
        "role_name": config.role_name,
        "external_id": config.external_id,
        "sse_kms_key_id": config.sse_kms_key_id,
        "concurrency": concurrency,
        "read_timeout": config.read_timeout,
        "full_output": config.full_output,
        "output_cap": config.output_cap,
    }
