"""Emulator fixtures: a fresh, small fleet with a fixed clock, and real boto3 clients for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config

from emulator import Emulator, FleetSpec

__all__ = ["emulator", "emulator_client"]

EMULATOR_NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
"""Thirty days back from here crosses the February/March boundary."""
EMULATOR_ACCOUNT = "123456789012"
EMULATOR_REGIONS = ("us-east-1", "eu-west-1")
EMULATOR_SPEC = FleetSpec(
    seed=3,
    now=EMULATOR_NOW,
    regions=EMULATOR_REGIONS,
    instances_per_region=8,
    account_id=EMULATOR_ACCOUNT,
)
DUMMY_CREDENTIALS = {
    "aws_access_key_id": "AKIDEXAMPLE",
    "aws_secret_access_key": "emulator-secret-not-a-real-key",
}
_SESSION = boto3.session.Session()  # one session: clients share its loaded models


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator per test, so clock changes never leak between tests."""
    with Emulator(EMULATOR_SPEC, host="127.0.0.1", port=0) as running:
        yield running


@pytest.fixture
def emulator_client(emulator: Emulator) -> Callable[..., Any]:
    """`emulator_client("ssm", region="eu-west-1", parameter_validation=False)` -> a client."""

    def make(service: str = "ssm", region: str = "us-east-1", **config: Any) -> Any:
        options = {"retries": {"total_max_attempts": 1}, **config}
        return _SESSION.client(
            service,
            region_name=region,
            endpoint_url=emulator.url,
            config=Config(**options),
            **DUMMY_CREDENTIALS,
        )

    return make
