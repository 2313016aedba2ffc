"""CloudWatch Logs GetLogEvents (AWS JSON 1.1, Logs_20140328) over the plugins' output streams.

Paging is by position in the stream: tokens look like AWS's (`f/<56 digits>/s`
forward, `b/...` backward) and encode the stream and an event index. Without a
token the newest events come back (the oldest with `startFromHead`); a page
holds up to `limit` events (default 10,000) and at most 1 MB, counting each
event as its UTF-8 size plus 26 bytes as CloudWatch does. At the end of the
stream nextForwardToken is the token that was sent, which is how callers know
to stop (there is no botocore paginator for GetLogEvents for that reason).
Which streams exist when is destinations.py's business.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .destinations import Event, events, log_groups
from .fleet import FleetSpec
from .ssm import ApiError, Violations

TARGET_PREFIX = "Logs_20140328."
MAX_EVENTS, MAX_BYTES, EVENT_OVERHEAD = 10_000, 1_048_576, 26
_TOKEN = re.compile(r"^([fb])/(\d{56})/s$")
_GROUP = re.compile(r"^[\.\-_/#A-Za-z0-9]+$")
_STREAM = re.compile(r"^[^:*]*$")


def _invalid(message: str) -> ApiError:
    return ApiError("InvalidParameterException", message)


def _token(direction: str, stream: str, index: int) -> str:
    prefix = int.from_bytes(hashlib.sha256(stream.encode()).digest()[:16]) % 10**40
    return f"{direction}/{prefix:040d}{index:016d}/s"


def _open(token: str, stream: str) -> tuple[str, int]:
    match = _TOKEN.match(token)
    if match is None or _token(match[1], stream, 0)[2:42] != match[2][:40]:
        raise _invalid("The specified nextToken is invalid.")
    return match[1], int(match[2][40:])


def _validate(params: Any) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(params, dict):
        raise ApiError(
            "SerializationException", "Start of structure or map found where not expected."
        )
    errors = Violations()
    group, identifier, stream = (
        params.get(k) for k in ("logGroupName", "logGroupIdentifier", "logStreamName")
    )
    for name, value in (
        ("logGroupName", group),
        ("logGroupIdentifier", identifier),
        ("logStreamName", stream),
    ):
        if value is not None and not isinstance(value, str):
            raise ApiError("SerializationException", f"{name} must be a string")
    if stream is None:
        errors.add(None, "logStreamName", "Member must not be null")
    else:
        errors.bounds(stream, len(stream), "logStreamName", 1, 512, "length")
        if not _STREAM.match(stream):
            errors.add(
                stream, "logStreamName", "Member must satisfy regular expression pattern: [^:*]*"
            )
    if group is not None:
        errors.bounds(group, len(group), "logGroupName", 1, 512, "length")
        if group and not _GROUP.match(group):
            errors.add(
                group,
                "logGroupName",
                "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
            )
    limit = params.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise ApiError("SerializationException", "limit must be an integer")
        errors.bounds(limit, limit, "limit", 1, MAX_EVENTS, "value")
    for name in ("startTime", "endTime"):
        value = params.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ApiError("SerializationException", f"{name} must be an integer")
        if value is not None and value < 0:
            errors.add(value, name, "Member must have value greater than or equal to 0")
    errors.raise_any()
    if group is not None and identifier is not None:
        raise _invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
    if group is None and identifier is None:
        raise _invalid("Should provide either logGroupName or logGroupIdentifier.")
    if group is None:  # an identifier is a name or an ARN ending in log-group:<name>[:*]
        group = str(identifier).split(":log-group:")[-1].removesuffix(":*")
    assert stream is not None
    return group, stream, params


def get_log_events(
    params: Any, *, spec: FleetSpec, account: str, region: str, now: int
) -> dict[str, Any]:
    group, stream, params = _validate(params)
    token = params.get("nextToken")
    if token is not None and not isinstance(token, str):
        raise ApiError("SerializationException", "nextToken must be a string")
    if token:
        _open(token, stream)  # a malformed token is refused before the stream is looked up
    if region not in spec.regions or group not in log_groups():
        raise ApiError("ResourceNotFoundException", "The specified log group does not exist.")
    found = events(spec, account, region, group, stream, now)
    if found is None:
        raise ApiError("ResourceNotFoundException", "The specified log stream does not exist.")
    start, end = params.get("startTime"), params.get("endTime")
    found = [
        e for e in found
        if (start is None or e.timestamp >= start) and (end is None or e.timestamp < end)
    ]  # fmt: skip
    limit = params.get("limit") or MAX_EVENTS
    if token:
        direction, index = _open(token, stream)
        forward = direction == "f"
    else:
        forward = bool(params.get("startFromHead"))
        index = 0 if forward else len(found)
    index = min(index, len(found))
    if forward:
        page = _fit(found[index : index + limit])
        first, last = index, index + len(page)
    else:
        page = _fit(found[max(0, index - limit) : index][::-1])[::-1]
        first, last = index - len(page), index
    forward_token = _token("f", stream, last)
    backward_token = _token("b", stream, first)
    if token and not page:  # the end in the direction of travel: the same token back
        forward_token = token if forward else forward_token
        backward_token = token if not forward else backward_token
    return {
        "events": [
            {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion}
            for e in page
        ],
        "nextForwardToken": forward_token,
        "nextBackwardToken": backward_token,
    }


def _fit(candidates: list[Event]) -> list[Event]:
    """As many events, from the first, as fit in one 1 MB response."""
    size, out = 0, []
    for event in candidates:
        size += len(event.message.encode()) + EVENT_OVERHEAD
        if size > MAX_BYTES:
            break
        out.append(event)
    return out
