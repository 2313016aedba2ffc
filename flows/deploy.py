"""`ssm-etl deploy`: the nightly flow as a scheduled Prefect deployment, served here."""

from __future__ import annotations

from pathlib import Path

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron
from prefect.settings import get_current_settings

from pipeline.config import RunConfig
from pipeline.errors import ConfigError

from .nightly import flow_parameters, with_runner


def serve(
    config: RunConfig,
    *,
    name: str,
    cron: str,
    timezone: str,
    task_runner: str = "threads",
    dask_address: str | None = None,
    concurrency: int = 8,
) -> None:
    """Create (or update) the deployment and execute its scheduled runs until stopped.

    A deployment needs a server that outlives this process, so unlike `run`
    this never starts a temporary one. One run at a time: a night that is
    still running when the next is due makes the next wait in Prefect's queue
    (the deployment's concurrency limit) instead of meeting the lake's lock.
    """
    if task_runner != "threads":
        raise ConfigError(
            "ssm-etl deploy serves the flow with threads; for Dask, run `ssm-etl run "
            "--task-runner dask` from your scheduler or a work pool"
        )
    if not get_current_settings().api.url:
        raise ConfigError(
            "ssm-etl deploy needs a Prefect server: start one (`prefect server start`) "
            "and set PREFECT_API_URL"
        )
    try:
        schedule = Cron(cron, timezone=timezone)
    except ValueError as exc:
        raise ConfigError(f"bad --cron or --timezone: {exc}") from None
    parameters = flow_parameters(config, concurrency)
    if "://" not in config.lake:  # the served runs may start in another directory
        parameters["lake"] = str(Path(config.lake).expanduser().resolve())
    flow = with_runner(task_runner, dask_address, concurrency)
    flow.serve(
        name=name,
        schedules=[schedule],
        parameters=parameters,
        enforce_parameter_schema=False,
        description="ssm-etl: export SSM Run Command history into the lake",
        tags=["ssm-etl"],
        global_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
    )
