"""Which accounts a run covers, and how to reach each: AWS Organizations and STS roles."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError
from botocore.regions import EndpointResolver

from .errors import ConfigError
from .extract import AwsSettings
from .paging import PageRetry, aws_error, pages

log = logging.getLogger("ssm_etl")


@dataclass
class OrganizationAccounts:
    active: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(account id, state) of accounts that are not ACTIVE: suspended, closing, closed."""


def account_state(account: dict[str, Any]) -> str:
    """The newer `State` field when present, else the older `Status`."""
    return str(account.get("State") or account.get("Status") or "UNKNOWN")


@cache
def organizations_region(partition: str) -> str:
    """The region that signs Organizations calls in `partition` (us-east-1 in aws,
    cn-northwest-1 in aws-cn, us-gov-west-1 in aws-us-gov): the credential scope of the
    partition's one global endpoint in botocore's endpoint data."""
    core = botocore.session.get_session()
    regions = core.get_available_regions("sts", partition_name=partition)
    resolver = EndpointResolver(core.get_data("endpoints"))
    endpoint = resolver.construct_endpoint("organizations", regions[0]) if regions else None
    region = (endpoint or {}).get("credentialScope", {}).get("region")
    if not region:
        raise ConfigError(
            f"botocore knows no AWS Organizations endpoint in partition {partition!r}"
        )
    return str(region)


def organization_accounts(
    settings: AwsSettings,
    session: boto3.Session,
    partition: str | None = None,
    *,
    retry: PageRetry | None = None,
) -> OrganizationAccounts:
    """Every account of the caller's organization (ListAccounts), split by state.

    `partition` is the caller's (see `caller_partition`); without it, that of the
    session's region.
    """
    if partition is None:
        partition = session.get_partition_for_region(session.region_name or "us-east-1")
    region = organizations_region(partition)
    client = settings.client(session, "organizations", region)
    found = OrganizationAccounts()
    for page in pages(client, "list_accounts", {}, retry=retry or PageRetry(), region=region):
        for account in page.get("Accounts", []):
            state = account_state(account)
            if state == "ACTIVE":
                found.active.append(account["Id"])
            else:
                found.skipped.append((account["Id"], state))
    for account_id, state in found.skipped:
        log.warning("account %s skipped: %s", account_id, state)
    return found


def caller_partition(settings: AwsSettings, session: boto3.Session, region: str) -> str:
    """aws, aws-cn or aws-us-gov: the partition of the caller's own ARN."""
    try:
        arn = settings.client(session, "sts", region).get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, region) from exc
    return str(arn).split(":")[1]


def role_arn(partition: str, account_id: str, role_name: str) -> str:
    return f"arn:{partition}:iam::{account_id}:role/{role_name}"
