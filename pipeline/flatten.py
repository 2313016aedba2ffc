"""Rows of the lake from API records: the pieces every source shares, and the flat sources.

ListCommandInvocations pages have their own decoder (`pipeline.decode`); this
module holds what it shares with the other sources (lineage, rejected
records, the quarantine table, the checks of one value of each kind) and the
per-record flatteners of ListCommands and DescribeInstanceInformation. A
record that cannot be flattened is set aside with a reason rather than
failing its page, so one malformed record never costs the others.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from .errors import BadRecordError
from .redact import Redactor
from .schema import COMMANDS_SCHEMA, MANAGED_INSTANCES_SCHEMA, QUARANTINE_SCHEMA

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MS_PER_DAY = 86_400_000
_INT32 = (-(2**31), 2**31 - 1)
EARLIEST_SECONDS = -62_135_596_800.0  # 0001-01-01T00:00:00Z
LATEST_SECONDS = 253_402_300_799.999  # 9999-12-31T23:59:59.999Z
"""Timestamps outside Python's datetime range are absurd, and every reader of the lake
(Python, DuckDB, Arrow's conversions) can hold the ones inside: records with others are
set aside."""
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Lineage:
    account_id: str
    region: str
    run_id: str
    ingested_at_ms: int


@dataclass
class Rejected:
    """A record set aside: the raw value and why."""

    record: Any
    reason: str


@dataclass
class FlatPage:
    invocations: pa.Table
    plugins: pa.Table
    rejected: list[Rejected] = field(default_factory=list)
    next_token: str | None = None


# --- one value of each kind, as JSON decodes it ------------------------------------------


def _is_text(value: Any) -> bool:
    """A str Arrow can store: every str but one holding a lone surrogate."""
    return isinstance(value, str) and (value.isascii() or not _SURROGATE.search(value))


def check_text(value: Any, what: str) -> str | None:
    if value is None or _is_text(value):
        return value
    raise BadRecordError(f"{what} is not a string: {value!r}")


def check_timestamp(value: Any, what: str) -> float | int | None:
    """Epoch seconds as the JSON wire sends them: a finite number, not absurd."""
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and EARLIEST_SECONDS <= value <= LATEST_SECONDS:  # NaN compares false
        return value
    raise BadRecordError(f"{what} is not a timestamp: {value!r}")


def check_int32(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not _INT32[0] <= value <= _INT32[1]:
        raise BadRecordError(f"{what} is not an int32: {value!r}")
    return value


def check_bool(value: Any, what: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise BadRecordError(f"{what} is not a boolean: {value!r}")


def check_strings(value: Any, what: str) -> list[str] | None:
    if value is None or (isinstance(value, list) and all(_is_text(v) for v in value)):
        return value
    raise BadRecordError(f"{what} is not a list of strings: {value!r}")


def check_object(value: Any, what: str) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, Mapping):
        return value
    raise BadRecordError(f"{what} is not an object: {value!r}")


def to_epoch_ms(value: Any, what: str) -> int:
    """Epoch seconds (API wire format) or an aware datetime (botocore) to epoch ms."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return (value - _EPOCH) // _MS
    seconds = check_timestamp(value, what)
    if seconds is None:
        raise BadRecordError(f"{what} is not a timestamp: {value!r}")
    return round(seconds * 1000)


def _text(record: Mapping[str, Any], key: str) -> str | None:
    return check_text(record.get(key), key)


def _required_text(record: Mapping[str, Any], key: str) -> str:
    value = _text(record, key)
    if not value:
        raise BadRecordError(f"{key} is missing")
    return value


def _struct(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return check_object(record.get(key), key) or {}


def _bool(record: Mapping[str, Any], key: str) -> bool | None:
    return check_bool(record.get(key), key)


def _optional_ms(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    return None if value is None else to_epoch_ms(value, key)


def lineage_table(rows: list[dict[str, Any]], schema: pa.Schema, lineage: Lineage) -> pa.Table:
    """`rows` (without lineage) as a table of `schema`, the lineage columns filled in."""
    constant = {
        "account_id": lineage.account_id,
        "region": lineage.region,
        "run_id": lineage.run_id,
        "ingested_at": lineage.ingested_at_ms,
    }
    arrays = []
    for f in schema:
        if f.name in constant:
            arrays.append(pa.array([constant[f.name]] * len(rows), type=f.type))
        else:
            arrays.append(pa.array([r[f.name] for r in rows], type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _keep(text: str | None) -> str | None:
    return text


def quarantine_table(
    rejected: list[Rejected], lineage: Lineage, redactor: Redactor | None = None
) -> pa.Table:
    """Rejected records as rows of the quarantine table, raw JSON kept (but redacted)."""
    scrub = redactor or _keep
    rows = [{"reason": item.reason, "raw_json": scrub(raw_json(item.record))} for item in rejected]
    return lineage_table(rows, QUARANTINE_SCHEMA, lineage)


def raw_json(record: Any) -> str:
    """A rejected record as canonical JSON text; escaped where it holds no valid Unicode."""
    text = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return json.dumps(record, sort_keys=True, default=str)


def _int32(record: Mapping[str, Any], key: str) -> int | None:
    return check_int32(record.get(key), key)


def _strings(record: Mapping[str, Any], key: str) -> list[str] | None:
    return check_strings(record.get(key), key)


def command_row(record: Mapping[str, Any], redactor: Redactor | None = None) -> dict[str, Any]:
    """One ListCommands record to a `commands` row (without lineage).

    Parameter values go through the redactor: `commands` of a shell script can
    hold secrets as easily as its output can.
    """
    if not isinstance(record, Mapping):
        raise BadRecordError(f"record is not an object: {type(record).__name__}")
    scrub = redactor or _keep
    requested = to_epoch_ms(record.get("RequestedDateTime"), "RequestedDateTime")
    parameters = _struct(record, "Parameters")
    params = []
    for name, values in parameters.items():
        if values is None:
            raise BadRecordError(f"Parameters[{name!r}] is not a list of strings: None")
        check_strings(values, f"Parameters[{name!r}]")
        params.append((name, [scrub(v) for v in values]))
    targets = record.get("Targets")
    if targets is not None:
        if not isinstance(targets, list) or not all(isinstance(t, Mapping) for t in targets):
            raise BadRecordError(f"Targets is not a list of objects: {targets!r}")
        targets = [{"key": _text(t, "Key"), "values": _strings(t, "Values")} for t in targets]
    notification = _struct(record, "NotificationConfig")
    cloud_watch = _struct(record, "CloudWatchOutputConfig")
    expires = record.get("ExpiresAfter")
    return {
        "command_id": _required_text(record, "CommandId"),
        "document_name": _text(record, "DocumentName"),
        "document_version": _text(record, "DocumentVersion"),
        "comment": _text(record, "Comment"),
        "expires_after": None if expires is None else to_epoch_ms(expires, "ExpiresAfter"),
        "parameters": params if "Parameters" in record else None,
        "instance_ids": _strings(record, "InstanceIds"),
        "targets": targets,
        "requested_date_time": requested,
        "requested_date": requested // _MS_PER_DAY,
        "status": _text(record, "Status"),
        "status_details": _text(record, "StatusDetails"),
        "output_s3_region": _text(record, "OutputS3Region"),
        "output_s3_bucket_name": _text(record, "OutputS3BucketName"),
        "output_s3_key_prefix": _text(record, "OutputS3KeyPrefix"),
        "max_concurrency": _text(record, "MaxConcurrency"),
        "max_errors": _text(record, "MaxErrors"),
        "target_count": _int32(record, "TargetCount"),
        "completed_count": _int32(record, "CompletedCount"),
        "error_count": _int32(record, "ErrorCount"),
        "delivery_timed_out_count": _int32(record, "DeliveryTimedOutCount"),
        "service_role": _text(record, "ServiceRole"),
        "notification_arn": _text(notification, "NotificationArn"),
        "notification_events": _strings(notification, "NotificationEvents"),
        "notification_type": _text(notification, "NotificationType"),
        "cloud_watch_log_group_name": _text(cloud_watch, "CloudWatchLogGroupName"),
        "cloud_watch_output_enabled": _bool(cloud_watch, "CloudWatchOutputEnabled"),
        "timeout_seconds": _int32(record, "TimeoutSeconds"),
    }


def instance_row(record: Mapping[str, Any], redactor: Redactor | None = None) -> dict[str, Any]:
    """One DescribeInstanceInformation record to a `managed_instances` row."""
    if not isinstance(record, Mapping):
        raise BadRecordError(f"record is not an object: {type(record).__name__}")
    return {
        "instance_id": _required_text(record, "InstanceId"),
        "name": _text(record, "Name"),
        "computer_name": _text(record, "ComputerName"),
        "ping_status": _text(record, "PingStatus"),
        "last_ping_date_time": _optional_ms(record, "LastPingDateTime"),
        "agent_version": _text(record, "AgentVersion"),
        "is_latest_version": _bool(record, "IsLatestVersion"),
        "platform_type": _text(record, "PlatformType"),
        "platform_name": _text(record, "PlatformName"),
        "platform_version": _text(record, "PlatformVersion"),
        "resource_type": _text(record, "ResourceType"),
        "ip_address": _text(record, "IPAddress"),
        "association_status": _text(record, "AssociationStatus"),
        "registration_date": _optional_ms(record, "RegistrationDate"),
        "source_id": _text(record, "SourceId"),
        "source_type": _text(record, "SourceType"),
    }


RowFunction = Callable[[Mapping[str, Any], Redactor | None], dict[str, Any]]
SOURCES: dict[str, tuple[RowFunction, pa.Schema]] = {
    "commands": (command_row, COMMANDS_SCHEMA),
    "managed_instances": (instance_row, MANAGED_INSTANCES_SCHEMA),
}


def flatten_source(
    table: str, records: Iterable[Any], lineage: Lineage, redactor: Redactor | None = None
) -> tuple[pa.Table, list[Rejected]]:
    """Flatten a page of one of the flat `SOURCES`; bad records are set aside as for invocations."""
    row_function, schema = SOURCES[table]
    rows, rejected = [], []
    for record in records:
        try:
            rows.append(row_function(record, redactor))
        except BadRecordError as exc:
            rejected.append(Rejected(record, f"{table}: {exc}"))
    return lineage_table(rows, schema, lineage), rejected
