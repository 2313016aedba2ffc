"""Simulated nights: the real Prefect flow against the emulator, and what the lake must hold."""

from __future__ import annotations

from typing import Any

from emulator import Emulator, FleetSpec
from flows.nightly import flow_parameters, with_runner
from pipeline.config import RunConfig
from pipeline.night import RunSummary
from tests.truth import expected_invocation, expected_plugins, key, view_rows

REGIONS = ("us-east-1", "eu-west-1")
ACCOUNT = "123456789012"


def night(
    emulator: Emulator,
    lake: Any,
    *,
    regions: tuple[str, ...] = REGIONS,
    concurrency: int = 4,
    expect: int | None = 0,
    **options: Any,
) -> RunSummary:
    """One run of the nightly flow (threads), as `ssm-etl run` starts it; needs `prefect_api`."""
    config = RunConfig(lake=str(lake), regions=regions, endpoint_url=emulator.url, **options)
    flow = with_runner("threads", concurrency=concurrency)
    summary: RunSummary = flow(**flow_parameters(config, concurrency))
    if expect is not None:
        assert summary.exit_code == expect, summary.render()
    return summary


class Truth:
    """Every invocation ever served, in its latest state, as expected lake rows."""

    def __init__(self, regions: tuple[str, ...] = REGIONS, account: str = ACCOUNT) -> None:
        self.regions, self.account = regions, account
        self.invocations: dict[tuple, dict] = {}
        self.plugins: dict[tuple, list[dict]] = {}

    def observe(self, emulator: Emulator) -> None:
        for region in self.regions:
            for record in emulator.ground_truth(self.account, region):
                row = expected_invocation(record, self.account, region)
                self.invocations[key(row)] = row
                self.plugins[key(row)] = expected_plugins(record, self.account, region)

    def rows(self) -> tuple[list[dict], list[dict]]:
        plugins = [p for group in self.plugins.values() for p in group]
        return sorted(self.invocations.values(), key=key), sorted(plugins, key=key)


def assert_views_equal(lake: Any, truth: Truth) -> None:
    invocations, plugins = truth.rows()
    assert invocations, "the truth is empty: the comparison would be vacuous"
    assert sorted(view_rows(lake, "invocations"), key=key) == invocations
    assert sorted(view_rows(lake, "command_plugins"), key=key) == plugins


def spec(**overrides: Any) -> FleetSpec:
    from datetime import UTC, datetime

    options: dict[str, Any] = dict(
        seed=23,
        now=datetime(2026, 2, 20, 6, 0, tzinfo=UTC),
        regions=REGIONS,
        instances_per_region=8,
        account_id=ACCOUNT,
    )
    return FleetSpec(**{**options, **overrides})
