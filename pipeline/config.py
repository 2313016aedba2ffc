"""The run's configuration: one typed, frozen object, validated once at the edge.

AWS credentials are never part of it: boto3's standard chain supplies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError

ALL_REGIONS = "all"
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
_ACCOUNT = re.compile(r"^\d{12}$")


def parse_regions(text: str) -> tuple[str, ...]:
    """`us-east-1,eu-west-1` or `all`; names are checked so none can escape the lake."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise ConfigError("--regions is empty: give region names or 'all'")
    if names == (ALL_REGIONS,):
        return names
    for name in names:
        if not _REGION.match(name):
            raise ConfigError(f"not an AWS region name: {name!r}")
    return names


def check_account_id(text: str) -> str:
    if not _ACCOUNT.match(text):
        raise ConfigError(f"account id must be 12 digits: {text!r}")
    return text


@dataclass(frozen=True)
class RunConfig:
    lake: str
    regions: tuple[str, ...]
    account_id: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None

    def __post_init__(self) -> None:
        parse_regions(",".join(self.regions))
        if self.account_id is not None:
            check_account_id(self.account_id)

    @property
    def discover_regions(self) -> bool:
        return self.regions == (ALL_REGIONS,)
