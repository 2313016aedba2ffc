"""Ground truth for end-to-end tests: the emulator's records mapped to lake rows.

The mapping is written out here, field by field, independently of
`pipeline.flatten`, so a flattening bug cannot hide behind itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from pipeline.lake import Lake
from pipeline.views import connect


def _ms(value):
    return None if value is None else round(value * 1000)


def expected_invocation(record: dict, account: str, region: str) -> dict:
    notification = record.get("NotificationConfig") or {}
    cloud_watch = record.get("CloudWatchOutputConfig") or {}
    requested = _ms(record["RequestedDateTime"])
    return {
        "account_id": account,
        "region": region,
        "command_id": record["CommandId"],
        "instance_id": record["InstanceId"],
        "instance_name": record.get("InstanceName"),
        "comment": record.get("Comment"),
        "document_name": record.get("DocumentName"),
        "document_version": record.get("DocumentVersion"),
        "requested_date_time": requested,
        "requested_date": datetime.fromtimestamp(requested / 1000, UTC).date().isoformat(),
        "requested_month": datetime.fromtimestamp(requested / 1000, UTC).strftime("%Y-%m"),
        "status": record.get("Status"),
        "status_details": record.get("StatusDetails"),
        "trace_output": record.get("TraceOutput"),
        "standard_output_url": record.get("StandardOutputUrl"),
        "standard_error_url": record.get("StandardErrorUrl"),
        "service_role": record.get("ServiceRole"),
        "notification_arn": notification.get("NotificationArn"),
        "notification_events": notification.get("NotificationEvents"),
        "notification_type": notification.get("NotificationType"),
        "cloud_watch_log_group_name": cloud_watch.get("CloudWatchLogGroupName"),
        "cloud_watch_output_enabled": cloud_watch.get("CloudWatchOutputEnabled"),
        "plugins_started_date_time": _span(record, "ResponseStartDateTime", min),
        "plugins_finished_date_time": _span(record, "ResponseFinishDateTime", max),
    }


def _span(record: dict, key: str, pick) -> int | None:
    """The earliest (`min`) or latest (`max`) of the plugins' `key` times, in ms."""
    times = [_ms(p.get(key)) for p in record.get("CommandPlugins") or []]
    return pick((t for t in times if t is not None), default=None)


def expected_plugins(record: dict, account: str, region: str) -> list[dict]:
    requested = _ms(record["RequestedDateTime"])
    day = datetime.fromtimestamp(requested / 1000, UTC)
    return [
        {
            "account_id": account,
            "region": region,
            "command_id": record["CommandId"],
            "instance_id": record["InstanceId"],
            "requested_date": day.date().isoformat(),
            "requested_date_time": requested,
            "document_name": record.get("DocumentName"),
            "requested_month": day.strftime("%Y-%m"),
            "plugin_index": index,
            "name": plugin.get("Name"),
            "status": plugin.get("Status"),
            "status_details": plugin.get("StatusDetails"),
            "response_code": plugin.get("ResponseCode"),
            "response_start_date_time": _ms(plugin.get("ResponseStartDateTime")),
            "response_finish_date_time": _ms(plugin.get("ResponseFinishDateTime")),
            "output": plugin.get("Output"),
            "standard_output_url": plugin.get("StandardOutputUrl"),
            "standard_error_url": plugin.get("StandardErrorUrl"),
            "output_s3_region": plugin.get("OutputS3Region"),
            "output_s3_bucket_name": plugin.get("OutputS3BucketName"),
            "output_s3_key_prefix": plugin.get("OutputS3KeyPrefix"),
        }
        for index, plugin in enumerate(record.get("CommandPlugins") or [])
    ]


LAKE_ONLY = ("run_id", "ingested_at", "expired_while_open_at")
"""Columns the API does not send: lineage, and the lake's own mark on expired invocations."""


def view_rows(lake: Path, view: str) -> list[dict]:
    """A view's rows with timestamps as epoch ms and dates as ISO text, lake-only columns dropped."""
    con = connect(Lake.open(lake))
    columns = [c for c in con.sql(f"SELECT * FROM {view} LIMIT 0").columns if c not in LAKE_ONLY]
    table = con.sql(f"SELECT {', '.join(columns)} FROM {view}").to_arrow_table()
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        elif pa.types.is_date(column.type):
            column = column.cast(pa.string())
        columns[name] = column
    return pa.table(columns).to_pylist()


def key(row: dict) -> tuple:
    return (row["region"], row["command_id"], row["instance_id"], row.get("plugin_index", -1))


def ground_truth(emulator, account: str, regions) -> tuple[list[dict], list[dict]]:
    invocations, plugins = [], []
    for region in regions:
        for record in emulator.ground_truth(account, region):
            invocations.append(expected_invocation(record, account, region))
            plugins.extend(expected_plugins(record, account, region))
    return sorted(invocations, key=key), sorted(plugins, key=key)


def plain_rows(table: pa.Table) -> list[dict]:
    """A decoded table's rows as the expectations above write them: timestamps as epoch
    ms, dates as ISO text, the run's lineage (run_id, ingested_at) dropped."""
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name in ("run_id", "ingested_at"):
            continue
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        elif pa.types.is_date(column.type):
            column = column.cast(pa.string())
        columns[name] = column
    return pa.table(columns).to_pylist()
