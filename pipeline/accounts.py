"""Which accounts a run covers, and how to reach each: AWS Organizations and STS roles."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from .extract import AwsSettings, aws_error

log = logging.getLogger("ssm_etl")


@dataclass
class OrganizationAccounts:
    active: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(account id, state) of accounts that are not ACTIVE: suspended, closing, closed."""


def account_state(account: dict[str, Any]) -> str:
    """The newer `State` field when present, else the older `Status`."""
    return str(account.get("State") or account.get("Status") or "UNKNOWN")


def organization_accounts(settings: AwsSettings, session: boto3.Session) -> OrganizationAccounts:
    """Every account of the caller's organization (ListAccounts), split by state."""
    client = settings.client(session, "organizations", "us-east-1")
    found = OrganizationAccounts()
    try:
        for page in client.get_paginator("list_accounts").paginate():
            for account in page.get("Accounts", []):
                state = account_state(account)
                if state == "ACTIVE":
                    found.active.append(account["Id"])
                else:
                    found.skipped.append((account["Id"], state))
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, "us-east-1") from exc
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
