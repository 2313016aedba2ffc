"""SSM ListCommands: one record per command in the visible history, newest first.

A command's status and counts are worked out from its invocations as of the
clock, so they always agree with ListCommandInvocations. What the history does
not carry (parameters, targets, timeouts) comes from a generator seeded with
the CommandId. About one AWS-RunPatchBaseline command in ten is a `Scan`: its
invocations look like any successful patch run, and only `Parameters` says
nothing was installed.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from typing import Any

from .episodes import MIGRATION, SENSOR
from .fleet import Command, Invocation, Window
from .ssm import ApiError, Request, Tokens, parse_timestamp, status_as_of, wire_time

SCAN_SHARE = 0.1
STATUSES = ("Pending", "InProgress", "Success", "Cancelled", "Failed", "TimedOut", "Cancelling")
STAGES = ("Executing", "Complete")
_TERMINAL = ("Success", "Failed", "TimedOut", "Cancelled")
_SHELL = (
    ["df -h /"],
    ["systemctl is-active amazon-ssm-agent"],
    ["find /var/cache/app -mtime +7 -delete", "du -sh /var/cache/app"],
    ["logrotate -f /etc/logrotate.d/app"],
    ["uptime"],
    ["./deploy.sh --revision 4f2a9c1"],
)
_POWERSHELL = (["Get-Service AmazonSSMAgent"], ["Get-PSDrive C"], ["Get-HotFix -Id KB5034441"])
_TARGETS = {
    "AWS-RunPatchBaseline": [{"Key": "tag:PatchGroup", "Values": ["prod", "stage", "dev", "qa"]}],
    "Acme-CollectInventory": [{"Key": "tag:Inventory", "Values": ["enabled"]}],
    "AWS-UpdateSSMAgent": [{"Key": "InstanceIds", "Values": ["*"]}],
}


def operation(command: Command) -> str | None:
    """Install or Scan for a patch command; None for other documents."""
    if command.document != "AWS-RunPatchBaseline":
        return None
    scan = random.Random(f"{command.command_id}:operation").random() < SCAN_SHARE
    return "Scan" if scan else "Install"


def _parameters(command: Command) -> dict[str, list[str]]:
    rng = random.Random(f"{command.command_id}:parameters")
    document = command.document
    if document == "AWS-RunPatchBaseline":
        return {"Operation": [operation(command) or "Install"], "RebootOption": ["RebootIfNeeded"]}
    if document == "Acme-CollectInventory":
        return {"applications": ["Enabled"], "networkConfig": ["Enabled"]}
    if document == "AWS-UpdateSSMAgent":
        return {"allowDowngrade": ["false"], "version": [""]}
    if document == MIGRATION:
        return {"sourceVolume": ["/srv/data"], "targetCluster": ["replica-2"]}
    if document == SENSOR:
        return {"sensorVersion": ["7.3.1"], "action": ["Install"]}
    if document == "AWS-RunPowerShellScript":
        lines, timeout = list(rng.choice(_POWERSHELL)), "3600"
    elif command.comment.startswith("full backup"):
        lines, timeout = (
            ["tar czf - /srv/data | aws s3 cp - s3://acme-backups/$(hostname)/full.tgz"],
            "108000",
        )
    elif command.comment.startswith("legacy cron"):
        lines, timeout = ["/usr/sbin/logrotate -f /etc/logrotate.conf"], "3600"
    else:
        lines, timeout = list(rng.choice(_SHELL)), "3600"
    return {"commands": lines, "workingDirectory": [""], "executionTimeout": [timeout]}


def _status(states: list[tuple[str, str]]) -> tuple[str, str]:
    statuses = [status for status, _ in states]
    if all(status == "Pending" for status in statuses):
        return "Pending", "Pending"
    if any(status not in _TERMINAL for status in statuses):
        return "InProgress", "InProgress"
    if all(status == "Success" for status in statuses):
        return "Success", "Success"
    details = {detail for _, detail in states}
    if "Failed" in statuses:
        return "Failed", "Failed"
    if "ExecutionTimedOut" in details:
        return "TimedOut", "Execution Timed Out"
    if "DeliveryTimedOut" in details:
        return "TimedOut", "Delivery Timed Out"
    return "Failed", "Incomplete"  # some cancelled, none failed: MaxErrors was not reached


def render_command(invocations: list[Invocation], now: int) -> dict[str, Any]:
    """A command as ListCommands serialises it at `now`, from all its invocations."""
    command = invocations[0].command
    states = [status_as_of(inv, now) for inv in invocations]
    status, details = _status(states)
    targets = _TARGETS.get(command.document)
    record: dict[str, Any] = {
        "CommandId": command.command_id,
        "DocumentName": command.document,
        "DocumentVersion": command.version,
        "Comment": command.comment,
        "ExpiresAfter": wire_time(command.requested + command.timeout * 1000),
        "Parameters": _parameters(command),
        "InstanceIds": [] if targets else [inv.instance.instance_id for inv in invocations],
        "Targets": targets or [],
        "RequestedDateTime": wire_time(command.requested),
        "Status": status,
        "StatusDetails": details,
        "OutputS3Region": command.region,
        "OutputS3BucketName": command.s3_bucket,
        "OutputS3KeyPrefix": command.s3_prefix,
        "MaxConcurrency": "50",
        "MaxErrors": "0",
        "TargetCount": len(invocations),
        "CompletedCount": sum(s in _TERMINAL for s, _ in states),
        "ErrorCount": sum(s == "Failed" or d == "ExecutionTimedOut" for s, d in states),
        "DeliveryTimedOutCount": sum(d == "DeliveryTimedOut" for _, d in states),
        "ServiceRole": command.service_role,
    }
    if command.notification is not None:
        record["NotificationConfig"] = command.notification
    if command.cloud_watch is not None:
        record["CloudWatchOutputConfig"] = command.cloud_watch
    record["TimeoutSeconds"] = command.timeout
    return record


def grouped(window: Window) -> list[list[Invocation]]:
    """The window's invocations by command, newest command first."""
    out: list[list[Invocation]] = []
    for inv in window.invocations:  # sorted by (-requested, CommandId, InstanceId)
        if out and out[-1][0].command.command_id == inv.command.command_id:
            out[-1].append(inv)
        else:
            out.append([inv])
    return out


class CommandsRequest(Request):
    """ListCommands takes ListCommandInvocations' parameters, ExecutionStage included."""

    def _conditions(self) -> list[Any]:
        self.checks = [_check(key, value) for key, value in self.filters]
        return []

    def scope(self, account: str, region: str) -> bytes:
        text = json.dumps(
            ["ListCommands", account, region, self.command_id, self.instance_id, self.filters]
        )
        return hashlib.sha256(text.encode()).digest()[:8]


def _check(key: str, value: str) -> Callable[[dict[str, Any]], bool]:
    if key in ("InvokedAfter", "InvokedBefore"):
        try:
            bound = parse_timestamp(value)
        except ValueError:
            raise ApiError(
                "ValidationException",
                f"Invalid value for filter {key}: '{value}' is not an ISO-8601 timestamp, e.g. 2021-07-07T00:00:00Z",
            ) from None
        if key == "InvokedAfter":
            return lambda record: round(record["RequestedDateTime"] * 1000) * 1000 >= bound
        return lambda record: round(record["RequestedDateTime"] * 1000) * 1000 <= bound
    if key in ("Status", "ExecutionStage"):
        allowed = STATUSES if key == "Status" else STAGES
        if value not in allowed:
            raise ApiError(
                "ValidationException",
                f"Invalid value for filter {key}: '{value}'. Valid values: {', '.join(allowed)}",
            )
        if key == "Status":
            return lambda record: record["Status"] == value
        executing = value == "Executing"
        return lambda record: (
            (record["Status"] in ("Pending", "InProgress", "Cancelling")) == executing
        )
    return lambda record: record["DocumentName"] == value


def list_commands(
    params: Any, *, window: Window, now: int, tokens: Tokens, account: str, region: str
) -> dict[str, Any]:
    """One page of commands visible at `now`, newest first."""
    request = CommandsRequest(params)
    scope = request.scope(account, region)
    last = tokens.open(request.next_token, scope)[0] if request.next_token else None
    page: list[dict[str, Any]] = []
    result: dict[str, Any] = {"Commands": page}
    previous = last
    for group in grouped(window):
        command = group[0].command
        key = (-command.requested, command.command_id, "")
        if last is not None and key <= last:
            continue
        if request.command_id is not None and command.command_id != request.command_id:
            continue
        if request.instance_id is not None and all(
            inv.instance.instance_id != request.instance_id for inv in group
        ):
            continue
        record = render_command(group, now)
        if not all(check(record) for check in request.checks):
            continue
        if len(page) == request.max_results and previous is not None:
            result["NextToken"] = tokens.issue(scope, previous)
            break
        page.append(record)
        previous = key
    return result
