"""AmazonSSM.ListCommandInvocations over AWS JSON 1.1, validated the way the service does it.

Paging tokens are stateless: an HMAC-signed record of the last sort key
returned (and of the request they belong to), so a page can be fetched from any
thread, in any order, and stays correct while new invocations arrive. A token
that follows an empty page also counts hops, so it differs from the one before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .destinations import urls
from .fleet import Invocation, Step, Window, to_ms

TARGET_PREFIX = "AmazonSSM."
MAX_RESULTS = 50
FILTER_KEYS = ("InvokedAfter", "InvokedBefore", "Status", "ExecutionStage", "DocumentName")
STATUS_FILTER_VALUES = (
    "Pending", "InProgress", "Delayed", "Success", "Cancelled", "Failed", "TimedOut",
    "AccessDenied", "DeliveryTimedOut", "ExecutionTimedOut", "Undeliverable",
    "InvalidPlatform", "Terminated",
)  # fmt: skip
_INSTANCE_ID = re.compile(r"(^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)")
_TIMESTAMP = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?$"
)
_MAC_BYTES = 16


class ApiError(Exception):
    """An error the service reports to the caller: code, message, HTTP status."""

    def __init__(
        self, code: str, message: str, status: int = 400, extra: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra or {}  # more members of a JSON error, e.g. Organizations' Reason


class Violations:
    """Collects constraint failures into AWS's '<n> validation error(s) detected: ...'."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, value: Any, path: str, constraint: str) -> None:
        shown = "null" if value is None else f"'{_show(value)}'"
        self.items.append(f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}")

    def bounds(self, value: Any, size: int, path: str, low: int, high: int, what: str) -> None:
        if size < low:
            self.add(value, path, f"Member must have {what} greater than or equal to {low}")
        elif size > high:
            self.add(value, path, f"Member must have {what} less than or equal to {high}")

    def raise_any(self) -> None:
        if self.items:
            n = len(self.items)
            noun = "error" if n == 1 else "errors"
            raise ApiError(
                "ValidationException", f"{n} validation {noun} detected: " + "; ".join(self.items)
            )


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _serialization(message: str) -> ApiError:
    return ApiError("SerializationException", message)


def parse_timestamp(text: str) -> int:
    """An ISO-8601 filter value to epoch microseconds; a missing zone means UTC."""
    match = _TIMESTAMP.match(text)
    if not match:
        raise ValueError(text)
    day, clock, fraction, zone = match.groups()
    moment = datetime.fromisoformat(f"{day}T{clock}")
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(text)
        moment -= sign * timedelta(hours=hours, minutes=minutes)
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return to_ms(moment.replace(tzinfo=UTC)) * 1000 + micros


class Request:
    """A validated ListCommandInvocations request."""

    def __init__(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _serialization("Start of structure or map found where not expected.")
        errors = Violations()
        self.command_id = _string(body, "CommandId")
        self.instance_id = _string(body, "InstanceId")
        self.next_token = _string(body, "NextToken")
        details = body.get("Details")
        self.details = bool(details)
        if details is not None and not isinstance(details, bool):
            raise _serialization("Details must be a boolean")
        max_results = body.get("MaxResults")
        if max_results is not None and (
            isinstance(max_results, bool)
            or not isinstance(max_results, int | float)
            or max_results != int(max_results)
        ):
            raise _serialization("MaxResults must be an integer")
        self.max_results = MAX_RESULTS if max_results is None else int(max_results)
        filters = body.get("Filters")
        if filters is not None and not isinstance(filters, list):
            raise _serialization("Start of list found where not expected")

        if self.command_id is not None:
            errors.bounds(self.command_id, len(self.command_id), "commandId", 36, 36, "length")
        if self.instance_id is not None and not _INSTANCE_ID.match(self.instance_id):
            errors.add(
                self.instance_id,
                "instanceId",
                "Member must satisfy regular expression pattern: " + _INSTANCE_ID.pattern,
            )
        errors.bounds(self.max_results, self.max_results, "maxResults", 1, MAX_RESULTS, "value")
        self.filters: list[tuple[str, str]] = []
        if filters is not None:
            errors.bounds(filters, len(filters), "filters", 1, 5, "length")
            for index, item in enumerate(filters, start=1):
                self.filters.append(_filter(item, index, errors))
        errors.raise_any()
        self.conditions = self._conditions()

    def _conditions(self) -> list[Callable[[Invocation, int], bool]]:
        return [_condition(key, value) for key, value in self.filters]

    def scope(self, account: str, region: str) -> bytes:
        """What a NextToken is bound to: the same query in the same place."""
        text = json.dumps([account, region, self.command_id, self.instance_id, self.filters])
        return hashlib.sha256(text.encode()).digest()[:8]

    def matches(self, inv: Invocation, now: int) -> bool:
        if self.command_id is not None and inv.command.command_id != self.command_id:
            return False
        if self.instance_id is not None and inv.instance.instance_id != self.instance_id:
            return False
        return all(condition(inv, now) for condition in self.conditions)


def _string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise _serialization(f"{name} must be a string")
    return value


def _filter(item: Any, index: int, errors: Violations) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise _serialization("Start of structure or map found where not expected.")
    key, value = item.get("key"), item.get("value")
    if not isinstance(key, str | None) or not isinstance(value, str | None):
        raise _serialization("CommandFilter key and value must be strings")
    where = f"filters.{index}.member"
    if key is None:
        errors.add(None, f"{where}.key", "Member must not be null")
    elif key not in FILTER_KEYS:
        errors.add(
            key, f"{where}.key", f"Member must satisfy enum value set: [{', '.join(FILTER_KEYS)}]"
        )
    if value is None:
        errors.add(None, f"{where}.value", "Member must not be null")
    else:
        errors.bounds(value, len(value), f"{where}.value", 1, 128, "length")
    return key or "", value or ""


def _condition(key: str, value: str) -> Callable[[Invocation, int], bool]:
    if key == "ExecutionStage":
        raise ApiError(
            "InvalidFilterKey", "ExecutionStage filter is supported by ListCommands only"
        )
    if key in ("InvokedAfter", "InvokedBefore"):
        try:
            bound = parse_timestamp(value)
        except ValueError:
            raise ApiError(
                "ValidationException",
                f"Invalid value for filter {key}: '{value}' is not an ISO-8601 timestamp, "
                "e.g. 2021-07-07T00:00:00Z",
            ) from None
        if key == "InvokedAfter":
            return lambda inv, now: inv.command.requested * 1000 >= bound
        return lambda inv, now: inv.command.requested * 1000 <= bound
    if key == "Status":
        if value not in STATUS_FILTER_VALUES:
            raise ApiError(
                "ValidationException",
                f"Invalid value for filter Status: '{value}'. Valid values: "
                + ", ".join(STATUS_FILTER_VALUES),
            )
        return lambda inv, now: value in status_as_of(inv, now)
    return lambda inv, now: inv.command.document == value


def wire_time(ms: int) -> float:
    """Epoch seconds with millisecond precision, as SSM puts timestamps on the wire."""
    return ms / 1000


def status_as_of(inv: Invocation, now: int) -> tuple[str, str]:
    return inv.state(now)


def _plugin(inv: Invocation, name: str, step: Step | None, now: int) -> dict[str, Any]:
    command = inv.command
    out: dict[str, Any] = {"Name": name}
    finished = False
    if step is not None and step.start is not None and now >= step.start:
        finished = step.finish is not None and now >= step.finish
        if finished:
            out.update(Status=step.status, StatusDetails=step.details, ResponseCode=step.code)
        else:
            out.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1)
        out["ResponseStartDateTime"] = wire_time(step.start)
        if finished and step.finish is not None:
            out["ResponseFinishDateTime"] = wire_time(step.finish)
    elif step is not None and inv.is_final(now):  # final, but the step never ran
        out.update(Status=step.status, StatusDetails=step.details, ResponseCode=step.code)
    else:
        out.update(Status="Pending", StatusDetails="Pending", ResponseCode=-1)
    stdout, stderr = urls(command, inv.instance.instance_id, name)
    out.update(
        Output=step.output if step is not None and finished else "",
        StandardOutputUrl=stdout,
        StandardErrorUrl=stderr,
        OutputS3Region=command.region,
        OutputS3BucketName=command.s3_bucket,
        OutputS3KeyPrefix=command.s3_prefix,
    )
    return out


def render(inv: Invocation, now: int, details: bool = True) -> dict[str, Any]:
    """The record exactly as ListCommandInvocations serialises it at `now`."""
    command = inv.command
    status, status_details = status_as_of(inv, now)
    final = inv.is_final(now)
    stdout, stderr = ("", "")
    if len(command.plugins) == 1:
        stdout, stderr = urls(command, inv.instance.instance_id, command.plugins[0])
    record: dict[str, Any] = {
        "CommandId": command.command_id,
        "InstanceId": inv.instance.instance_id,
        "InstanceName": inv.instance.name,
        "Comment": command.comment,
        "DocumentName": command.document,
        "DocumentVersion": command.version,
        "RequestedDateTime": wire_time(command.requested),
        "Status": status,
        "StatusDetails": status_details,
        "TraceOutput": inv.trace if final else "",
        "StandardOutputUrl": stdout,
        "StandardErrorUrl": stderr,
        "CommandPlugins": [],
        "ServiceRole": command.service_role,
    }
    if details and not (final and not inv.steps):  # undeliverable: no plugins at all
        started = final or (inv.start is not None and now >= inv.start)
        steps = {step.name: step for step in inv.steps} if started else {}
        record["CommandPlugins"] = [
            _plugin(inv, name, steps.get(name), now) for name in command.plugins
        ]
    if command.notification is not None:
        record["NotificationConfig"] = command.notification
    if command.cloud_watch is not None:
        record["CloudWatchOutputConfig"] = command.cloud_watch
    return record


class Tokens:
    """Signs and opens NextTokens with a secret that lives as long as the emulator."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, scope: bytes, key: tuple[int, str, str], hops: int = 0) -> str:
        position = [*key, hops] if hops else list(key)
        payload = scope + json.dumps(position, separators=(",", ":")).encode()
        return base64.b64encode(self._mac(payload) + payload).decode()

    def open(self, token: str, scope: bytes) -> tuple[tuple[int, str, str], int]:
        """The sort key a token resumes after, and how many empty pages led to it."""
        invalid = ApiError("InvalidNextToken", "The specified token is not valid.")
        try:
            raw = base64.b64decode(token.encode(), validate=True)
        except (binascii.Error, ValueError, UnicodeError):
            raise invalid from None
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)) or payload[: len(scope)] != scope:
            raise invalid
        key = json.loads(payload[len(scope) :])
        hops = int(key[3]) if len(key) > 3 else 0
        return (int(key[0]), str(key[1]), str(key[2])), hops


def list_command_invocations(
    request: Request,
    *,
    window: Window,
    now: int,
    tokens: Tokens,
    account: str,
    region: str,
    empty: bool = False,
    repeat_token: bool = False,
) -> dict[str, Any]:
    """One page of the region's invocations visible at `now`, newest first.

    `empty` answers a page that has records with none and a token for the same
    position instead; `repeat_token` echoes the request's NextToken back (an
    SSM bug), so a client that follows it gets the same page forever.
    """
    scope = request.scope(account, region)
    last: tuple[int, str, str] | None = None
    hops = 0
    if request.next_token:
        last, hops = tokens.open(request.next_token, scope)
    start = last
    page: list[dict[str, Any]] = []
    more = False
    invocations = window.invocations
    for index in range(window.after(last), len(invocations)):
        inv = invocations[index]
        if not request.matches(inv, now):
            continue
        if len(page) == request.max_results:
            more = True
            break
        page.append(render(inv, now, details=request.details))
        last = inv.key
    result: dict[str, Any] = {"CommandInvocations": page}
    if empty and page:
        here = start if start is not None else (-now, "", "")  # before everything visible now
        return {"CommandInvocations": [], "NextToken": tokens.issue(scope, here, hops + 1)}
    if repeat_token and request.next_token:
        result["NextToken"] = request.next_token
    elif more and last is not None:
        result["NextToken"] = tokens.issue(scope, last)
    return result
