"""The run's configuration: one typed, frozen object, validated once at the edge.

AWS credentials are never part of it: boto3's standard chain supplies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import botocore.session

from .errors import ConfigError
from .redact import Redactor

ALL_REGIONS = "all"
DEFAULT_LOOKBACK_HOURS = 48.0
DEFAULT_SLICES = 8
"""Concurrent time slices per region: enough to fill a 20 requests/s throttle at 200 ms a page."""
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_KEEP_DAYS = 7.0
"""Data files no version needs any more are kept this long: how far back time travel reaches."""
FULL_OUTPUT_MODES = ("none", "failed", "all")
"""--full-output: which plugins' full output to store (`pipeline.outputs`)."""
DEFAULT_OUTPUT_CAP = 1024 * 1024
"""--output-cap: bytes of one stored stdout or stderr, at most."""
_ACCOUNT = re.compile(r"^\d{12}$")
_ROLE_NAME = re.compile(r"^[\w+=,.@/-]{1,64}$")


def parse_regions(text: str) -> tuple[str, ...]:
    """`us-east-1,eu-west-1` or `all`; names are checked so none can escape the lake."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise ConfigError("--regions is empty: give region names or 'all'")
    if names == (ALL_REGIONS,):
        return names
    known = known_regions()
    for name in names:
        if name not in known:
            raise ConfigError(
                f"unknown AWS region {name!r} (not in botocore's endpoint data; "
                "a brand-new region needs a newer boto3)"
            )
    return names


@cache
def known_regions() -> frozenset[str]:
    """Every region botocore knows for SSM, in every partition (aws, aws-cn, aws-us-gov...)."""
    session = botocore.session.get_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("ssm", partition_name=partition)
    )


def check_account_id(text: str) -> str:
    if not _ACCOUNT.match(text):
        raise ConfigError(f"account id must be 12 digits: {text!r}")
    return text


def parse_lookback(text: str | float) -> float:
    """Hours, a positive number: how long an invocation may stay non-terminal."""
    try:
        hours = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"--lookback must be a number of hours: {text!r}") from None
    if not 0 <= hours <= 24 * 366 or hours != hours:
        raise ConfigError(f"--lookback must be between 0 and 8784 hours: {text!r}")
    return hours


def check_keep_days(days: float) -> float:
    if not 0 <= days <= 3650 or days != days:
        raise ConfigError(f"--keep-days must be between 0 and 3650: {days!r}")
    return days


def check_output_cap(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 1024 <= size <= 1 << 30:
        raise ConfigError(f"--output-cap must be from 1024 to 1073741824 bytes: {size!r}")
    return size


def parse_since(text: str) -> datetime:
    """An ISO-8601 timestamp; a missing zone means UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since must be an ISO-8601 timestamp: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RunConfig:
    lake: str
    regions: tuple[str, ...]
    account_id: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    lookback_hours: float = DEFAULT_LOOKBACK_HOURS
    since: datetime | None = None
    full_refresh: bool = False
    keep_days: float = DEFAULT_KEEP_DAYS
    read_timeout: float = DEFAULT_READ_TIMEOUT
    """Seconds to wait for an answer before a request is tried again (see `pipeline.paging`)."""
    """Vacuum's retention: `--as-of` reaches this far back (see `pipeline.maintain`)."""
    redact: tuple[str, ...] = ()
    """`aws` (built-in patterns) and/or regular expressions masked in command output."""
    slices: int = DEFAULT_SLICES
    accounts: tuple[str, ...] = ()
    """Accounts to reach by assuming `role_name` in each (empty: the caller's own)."""
    organization: bool = False
    """Discover the accounts with AWS Organizations ListAccounts (ACTIVE ones only)."""
    role_name: str | None = None
    external_id: str | None = None
    sse_kms_key_id: str | None = None
    """S3 lakes: encrypt every object written with this KMS key."""
    full_output: str = "none"
    """Store the full stdout/stderr of no plugins, those of failed invocations, or all."""
    output_cap: int = DEFAULT_OUTPUT_CAP

    def __post_init__(self) -> None:
        parse_regions(",".join(self.regions))
        if self.account_id is not None:
            check_account_id(self.account_id)
        parse_lookback(self.lookback_hours)
        if self.since is not None and self.full_refresh:
            raise ConfigError("--since and --full-refresh do not go together")
        check_keep_days(self.keep_days)
        if not 0.1 <= self.read_timeout <= 900:
            raise ConfigError(
                f"--read-timeout must be from 0.1 to 900 seconds: {self.read_timeout!r}"
            )
        Redactor.from_options(self.redact)  # bad patterns fail here, before any work
        for account in self.accounts:
            check_account_id(account)
        if self.multi_account and self.account_id is not None:
            raise ConfigError("--account-id cannot be combined with --accounts or --organization")
        if self.accounts and self.organization:
            raise ConfigError("--accounts and --organization do not go together")
        if self.multi_account and not self.role_name:
            raise ConfigError("--accounts and --organization need --role-name")
        if self.role_name is not None and not _ROLE_NAME.match(self.role_name):
            raise ConfigError(f"not an IAM role name: {self.role_name!r}")
        if self.sse_kms_key_id is not None and not self.lake.startswith("s3://"):
            raise ConfigError("--sse-kms-key-id applies to S3 lakes (s3://bucket/prefix) only")
        if self.full_output not in FULL_OUTPUT_MODES:
            raise ConfigError(
                f"--full-output must be one of {', '.join(FULL_OUTPUT_MODES)}: {self.full_output!r}"
            )
        check_output_cap(self.output_cap)
        if not 1 <= self.slices <= 32:
            raise ConfigError(f"--slices must be from 1 to 32, not {self.slices}")

    @property
    def multi_account(self) -> bool:
        return bool(self.accounts) or self.organization

    @property
    def discover_regions(self) -> bool:
        return self.regions == (ALL_REGIONS,)

    def settings(self) -> Any:
        """How this run reaches AWS (`pipeline.extract.AwsSettings`)."""
        from .extract import AwsSettings

        return AwsSettings(
            profile=self.profile, endpoint_url=self.endpoint_url, read_timeout=self.read_timeout
        )

    def window(self) -> Window:
        return Window(
            lookback_ms=round(self.lookback_hours * 3_600_000),
            since_ms=None if self.since is None else round(self.since.timestamp() * 1000),
            full_refresh=self.full_refresh,
        )


@dataclass(frozen=True)
class Window:
    """How a run picks each region's InvokedAfter."""

    lookback_ms: int = round(DEFAULT_LOOKBACK_HOURS * 3_600_000)
    since_ms: int | None = None
    full_refresh: bool = False

    def start_ms(self, watermark_ms: int | None) -> int | None:
        """None means everything the API still has (first run or a full refresh)."""
        if self.since_ms is not None:
            return self.since_ms
        if self.full_refresh or watermark_ms is None:
            return None
        return watermark_ms - self.lookback_ms
