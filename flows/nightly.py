"""The nightly flow: one Prefect task per region, each a call into the library."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from pipeline.config import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_LOOKBACK_HOURS,
    DEFAULT_SLICES,
    RunConfig,
    Window,
)
from pipeline.errors import RetriableAwsError
from pipeline.extract import AwsSettings
from pipeline.ingest import (
    IngestOptions,
    RegionResult,
    RunSummary,
    Target,
    fail,
    held_lake,
    ingest_region,
    plan_run,
)
from pipeline.lake import Lake


def _retriable(task, task_run, state) -> bool:  # noqa: ANN001 (Prefect's hook signature)
    """Retry a region only for throttling, 5xx and connection trouble."""
    try:
        state.result()
    except RetriableAwsError:
        return True
    except Exception:
        return False
    return False


@task(
    name="ingest-region",
    task_run_name="{account_id}/{region}",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=_retriable,
    cache_policy=NO_CACHE,
)
def ingest_region_task(
    settings: AwsSettings,
    lake: Lake,
    run_id: str,
    account_id: str,
    region: str,
    window: Window,
    options: IngestOptions,
) -> RegionResult:
    return ingest_region(settings, lake, run_id, account_id, region, window, options=options)


def concurrency_tags(item: Target) -> list[str]:
    """Tags that Prefect's tag concurrency limits act on, across threads and Dask workers.

    `prefect concurrency-limit create account:111111111111 2` caps one account's
    regions at two at a time; `region:us-east-1` caps a region across accounts;
    `ssm-etl` caps every region task of every run.
    """
    return ["ssm-etl", f"account:{item.account_id}", f"region:{item.region}"]


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
            "quarantined": r.quarantined,
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
        f"# ssm-etl run `{summary.run_id}`",
        "",
        f"- regions: {len(summary.results)} ({len(failed)} failed)",
        f"- invocations: {totals['invocations']}, plugins: {totals['plugins']}",
        f"- quarantined records: {totals['quarantined']}",
    ]
    if failed:
        lines += ["", "## Failed regions", ""]
        lines += [f"- `{r.account_id}` `{r.region}`: {r.error}" for r in failed]
    create_markdown_artifact(
        markdown="\n".join(lines), key="ssm-etl-summary", description="ssm-etl run summary"
    )


@flow(name="ssm-etl-nightly", validate_parameters=False)
def nightly(
    lake: str,
    regions: list[str],
    account_id: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    lookback_hours: float = DEFAULT_LOOKBACK_HOURS,
    since: str | None = None,
    full_refresh: bool = False,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    redact: list[str] | None = None,
    slices: int = DEFAULT_SLICES,
    accounts: list[str] | None = None,
    organization: bool = False,
    role_name: str | None = None,
    external_id: str | None = None,
    sse_kms_key_id: str | None = None,
) -> RunSummary:
    """Export every account's and region's new and changed Run Command history.

    Accounts and regions fail independently: one that still fails after its
    retries is recorded as failed (its watermark stays); the others commit.
    Parameters are plain values so that a deployment can carry them.
    """
    logger = get_run_logger()
    config = RunConfig(
        lake=lake,
        regions=tuple(regions),
        account_id=account_id,
        profile=profile,
        lookback_hours=lookback_hours,
        since=datetime.fromisoformat(since) if since else None,
        full_refresh=full_refresh,
        grace_seconds=grace_seconds,
        redact=tuple(redact or ()),
        slices=slices,
        accounts=tuple(accounts or ()),
        organization=organization,
        role_name=role_name,
        external_id=external_id,
        sse_kms_key_id=sse_kms_key_id,
    )
    settings = AwsSettings(profile=profile, endpoint_url=endpoint_url)
    with held_lake(config) as target:
        plan = plan_run(config, settings)
        accounts_seen = sorted({t.account_id for t in plan.targets})
        logger.info(
            "run %s: %d accounts, %d account-regions",
            plan.run_id,
            len(accounts_seen),
            len(plan.targets),
        )
        for account, state in plan.skipped_accounts:
            logger.warning("account %s skipped: %s", account, state)
        window, options = config.window(), IngestOptions.from_config(config)
        futures = [
            (
                item,
                ingest_region_task.with_options(tags=concurrency_tags(item)).submit(
                    item.settings,
                    target,
                    plan.run_id,
                    item.account_id,
                    item.region,
                    window,
                    options,
                ),
            )
            for item in plan.targets
        ]
        summary = RunSummary(plan.run_id)
        for item, future in futures:
            try:
                summary.results.append(future.result())
            except Exception as exc:  # failed for good; the others stand
                summary.results.append(fail(target, plan.run_id, item.account_id, item.region, exc))
        for account, region, error in plan.unreachable:
            summary.results.append(fail(target, plan.run_id, account, region, error))
    publish_artifacts(summary)
    totals = summary.totals()
    failed = [f"{r.account_id}/{r.region} ({r.error})" for r in summary.results if not r.ok]
    logger.info(
        "run %s: %d account-regions, %d invocations, %d plugins, %d quarantined%s",
        summary.run_id,
        len(summary.results),
        totals["invocations"],
        totals["plugins"],
        totals["quarantined"],
        f"; failed: {'; '.join(failed)}" if failed else "",
    )
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


def flow_parameters(config: RunConfig) -> dict[str, Any]:
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
        "grace_seconds": config.grace_seconds,
        "redact": list(config.redact),
        "slices": config.slices,
        "accounts": list(config.accounts),
        "organization": config.organization,
        "role_name": config.role_name,
        "external_id": config.external_id,
        "sse_kms_key_id": config.sse_kms_key_id,
    }
