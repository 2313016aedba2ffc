"""Pure functions from ListCommandInvocations records to Arrow tables.

Records arrive either from our own JSON decoding (timestamps as epoch seconds)
or from botocore's parser (timestamps as datetimes); both flatten to the same
values. A ListCommandInvocations page may also arrive whole in Arrow
(`arrow_page`), already proven storable; it flattens there, with compute
kernels, to the same tables. A record that cannot be flattened is set aside
with a reason rather than failing its page, so one malformed invocation never
costs the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from . import arrow_page
from .arrow_page import ArrowPage
from .errors import BadRecordError
from .redact import Redactor
from .schema import (
    COMMAND_PLUGINS_SCHEMA,
    COMMANDS_SCHEMA,
    INVOCATIONS_SCHEMA,
    MANAGED_INSTANCES_SCHEMA,
    QUARANTINE_SCHEMA,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MS_PER_DAY = 86_400_000
_INT32 = (-(2**31), 2**31 - 1)


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


def to_epoch_ms(value: Any, what: str) -> int:
    """Epoch seconds (API wire format) or an aware datetime (botocore) to epoch ms."""
    if isinstance(value, bool):
        raise BadRecordError(f"{what} is not a timestamp: {value!r}")
    if isinstance(value, int | float):
        if value != value or abs(value) > 1e13:  # NaN or absurd
            raise BadRecordError(f"{what} is not a timestamp: {value!r}")
        return round(value * 1000)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return (value - _EPOCH) // _MS
    raise BadRecordError(f"{what} is not a timestamp: {value!r}")


def _text(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value
    raise BadRecordError(f"{key} is not a string: {value!r}")


def _required_text(record: Mapping[str, Any], key: str) -> str:
    value = _text(record, key)
    if not value:
        raise BadRecordError(f"{key} is missing")
    return value


def _struct(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = record.get(key)
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    raise BadRecordError(f"{key} is not an object: {value!r}")


def _bool(record: Mapping[str, Any], key: str) -> bool | None:
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise BadRecordError(f"{key} is not a boolean: {value!r}")


def _response_code(plugin: Mapping[str, Any]) -> int | None:
    value = plugin.get("ResponseCode")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRecordError(f"ResponseCode is not an integer: {value!r}")
    if not _INT32[0] <= value <= _INT32[1]:
        raise BadRecordError(f"ResponseCode is out of int32 range: {value!r}")
    return value


def _optional_ms(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    return None if value is None else to_epoch_ms(value, key)


def invocation_row(
    record: Mapping[str, Any], redactor: Redactor | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One API record to an invocation row and its plugin rows (without lineage).

    Raises BadRecordError when the record cannot be stored faithfully.
    `redactor`, if given, masks secrets in command output before storage.
    """
    scrub = redactor or _keep
    if not isinstance(record, Mapping):
        raise BadRecordError(f"record is not an object: {type(record).__name__}")
    requested_ms = to_epoch_ms(record.get("RequestedDateTime"), "RequestedDateTime")
    requested_day = requested_ms // _MS_PER_DAY
    notification = _struct(record, "NotificationConfig")
    cloud_watch = _struct(record, "CloudWatchOutputConfig")
    events = notification.get("NotificationEvents")
    if events is not None and not (
        isinstance(events, list) and all(isinstance(e, str) for e in events)
    ):
        raise BadRecordError(f"NotificationEvents is not a list of strings: {events!r}")
    row = {
        "command_id": _required_text(record, "CommandId"),
        "instance_id": _required_text(record, "InstanceId"),
        "instance_name": _text(record, "InstanceName"),
        "comment": _text(record, "Comment"),
        "document_name": _text(record, "DocumentName"),
        "document_version": _text(record, "DocumentVersion"),
        "requested_date_time": requested_ms,
        "requested_date": requested_day,
        "status": _text(record, "Status"),
        "status_details": _text(record, "StatusDetails"),
        "trace_output": scrub(_text(record, "TraceOutput")),
        "standard_output_url": _text(record, "StandardOutputUrl"),
        "standard_error_url": _text(record, "StandardErrorUrl"),
        "service_role": _text(record, "ServiceRole"),
        "notification_arn": _text(notification, "NotificationArn"),
        "notification_events": events,
        "notification_type": _text(notification, "NotificationType"),
        "cloud_watch_log_group_name": _text(cloud_watch, "CloudWatchLogGroupName"),
        "cloud_watch_output_enabled": _bool(cloud_watch, "CloudWatchOutputEnabled"),
    }
    plugins = record.get("CommandPlugins")
    if plugins is None:
        plugins = []
    elif not isinstance(plugins, list):
        raise BadRecordError(f"CommandPlugins is not a list: {plugins!r}")
    plugin_rows = []
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, Mapping):
            raise BadRecordError(f"CommandPlugins[{index}] is not an object")
        plugin_rows.append(
            {
                "command_id": row["command_id"],
                "instance_id": row["instance_id"],
                "requested_date": requested_day,
                "requested_date_time": requested_ms,
                "document_name": row["document_name"],
                "plugin_index": index,
                "name": _text(plugin, "Name"),
                "status": _text(plugin, "Status"),
                "status_details": _text(plugin, "StatusDetails"),
                "response_code": _response_code(plugin),
                "response_start_date_time": _optional_ms(plugin, "ResponseStartDateTime"),
                "response_finish_date_time": _optional_ms(plugin, "ResponseFinishDateTime"),
                "output": scrub(_text(plugin, "Output")),
                "standard_output_url": _text(plugin, "StandardOutputUrl"),
                "standard_error_url": _text(plugin, "StandardErrorUrl"),
                "output_s3_region": _text(plugin, "OutputS3Region"),
                "output_s3_bucket_name": _text(plugin, "OutputS3BucketName"),
                "output_s3_key_prefix": _text(plugin, "OutputS3KeyPrefix"),
            }
        )
    starts = [p["response_start_date_time"] for p in plugin_rows]
    finishes = [p["response_finish_date_time"] for p in plugin_rows]
    row["plugins_started_date_time"] = min((t for t in starts if t is not None), default=None)
    row["plugins_finished_date_time"] = max((t for t in finishes if t is not None), default=None)
    return row, plugin_rows


def _table(rows: list[dict[str, Any]], schema: pa.Schema, lineage: Lineage) -> pa.Table:
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


def flatten_page(
    records: Iterable[Any] | ArrowPage, lineage: Lineage, redactor: Redactor | None = None
) -> FlatPage:
    """Flatten one page of CommandInvocations into the two tables of the lake."""
    if isinstance(records, ArrowPage):
        invocations_table, plugins_table = arrow_page.flatten(records, lineage, redactor)
        return FlatPage(invocations=invocations_table, plugins=plugins_table)
    invocations: list[dict[str, Any]] = []
    plugins: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    for record in records:
        try:
            row, plugin_rows = invocation_row(record, redactor)
        except BadRecordError as exc:
            rejected.append(Rejected(record, str(exc)))
            continue
        invocations.append(row)
        plugins.extend(plugin_rows)
    return FlatPage(
        invocations=_table(invocations, INVOCATIONS_SCHEMA, lineage),
        plugins=_table(plugins, COMMAND_PLUGINS_SCHEMA, lineage),
        rejected=rejected,
    )


def quarantine_table(
    rejected: list[Rejected], lineage: Lineage, redactor: Redactor | None = None
) -> pa.Table:
    """Rejected records as rows of the quarantine table, raw JSON kept (but redacted)."""
    scrub = redactor or _keep
    rows = [
        {
            "reason": item.reason,
            "raw_json": scrub(
                json.dumps(item.record, sort_keys=True, ensure_ascii=False, default=str)
            ),
        }
        for item in rejected
    ]
    return _table(rows, QUARANTINE_SCHEMA, lineage)


def _int32(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not _INT32[0] <= value <= _INT32[1]:
        raise BadRecordError(f"{key} is not an int32: {value!r}")
    return value


def _strings(record: Mapping[str, Any], key: str) -> list[str] | None:
    value = record.get(key)
    if value is None:
        return None
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise BadRecordError(f"{key} is not a list of strings: {value!r}")
    return value


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
        if not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
            raise BadRecordError(f"Parameters[{name!r}] is not a list of strings")
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
    return _table(rows, schema, lineage), rejected
