"""The nightly flow: one Prefect task per region, each a call into the library."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
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
) -> RunSummary:
    """Export every region's new and changed Run Command history into the lake.

    Regions fail independently: a region that still fails after its retries
    is recorded as failed (its watermark stays) and the others are committed.
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
    )
    settings = AwsSettings(profile=profile, endpoint_url=endpoint_url)
    with held_lake(config) as target:
        plan = plan_run(config, settings)
        logger.info(
            "run %s: account %s, %d regions", plan.run_id, plan.account_id, len(plan.regions)
        )
        args = (settings, target, plan.run_id, plan.account_id)
        window, options = config.window(), IngestOptions.from_config(config)
        futures = {
            region: ingest_region_task.submit(*args, region, window, options)
            for region in plan.regions
        }
        summary = RunSummary(plan.run_id)
        for region, future in futures.items():
            try:
                summary.results.append(future.result())
            except Exception as exc:  # failed for good; the other regions stand
                summary.results.append(fail(target, plan.run_id, plan.account_id, region, exc))
    totals = summary.totals()
    failed = [f"{r.region} ({r.error})" for r in summary.results if not r.ok]
    logger.info(
        "run %s: %d regions, %d invocations, %d plugins, %d quarantined%s",
        summary.run_id,
        len(summary.results),
        totals["invocations"],
        totals["plugins"],
        totals["quarantined"],
        f"; failed: {'; '.join(failed)}" if failed else "",
    )
    return summary
