"""The lake's tables, declared once.

These Arrow schemas are the single source of truth: the flattener builds
columns in this order and type, the writer refuses anything else, the views
and the README's column tables are checked against them in tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("ms", tz="UTC")
"""The API sends epoch seconds with millisecond precision; keep exactly that."""

PARTITION_COLUMNS = ("account_id", "region", "requested_month")
"""Hive path segments, in path order. `requested_month` is the UTC month `YYYY-MM`."""

_LINEAGE = [
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("ingested_at", TIMESTAMP, nullable=False),
]

INVOCATIONS_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("command_id", pa.string(), nullable=False),
        pa.field("instance_id", pa.string(), nullable=False),
        pa.field("instance_name", pa.string()),
        pa.field("comment", pa.string()),
        pa.field("document_name", pa.string()),
        pa.field("document_version", pa.string()),
        pa.field("requested_date_time", TIMESTAMP, nullable=False),
        pa.field("requested_date", pa.date32(), nullable=False),
        pa.field("status", pa.string()),
        pa.field("status_details", pa.string()),
        pa.field("trace_output", pa.string()),
        pa.field("standard_output_url", pa.string()),
        pa.field("standard_error_url", pa.string()),
        pa.field("service_role", pa.string()),
        pa.field("notification_arn", pa.string()),
        pa.field("notification_events", pa.list_(pa.string())),
        pa.field("notification_type", pa.string()),
        pa.field("cloud_watch_log_group_name", pa.string()),
        pa.field("cloud_watch_output_enabled", pa.bool_()),
        # Derived from the invocation's plugins at flatten time, so run times need no join.
        pa.field("plugins_started_date_time", TIMESTAMP),
        pa.field("plugins_finished_date_time", TIMESTAMP),
        *_LINEAGE,
    ]
)

COMMAND_PLUGINS_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("command_id", pa.string(), nullable=False),
        pa.field("instance_id", pa.string(), nullable=False),
        pa.field("requested_date", pa.date32(), nullable=False),
        # Copied from the plugin's invocation, so plugin reports need no join.
        pa.field("requested_date_time", TIMESTAMP, nullable=False),
        pa.field("document_name", pa.string()),
        pa.field("plugin_index", pa.int32(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("status", pa.string()),
        pa.field("status_details", pa.string()),
        pa.field("response_code", pa.int32()),
        pa.field("response_start_date_time", TIMESTAMP),
        pa.field("response_finish_date_time", TIMESTAMP),
        pa.field("output", pa.string()),
        pa.field("standard_output_url", pa.string()),
        pa.field("standard_error_url", pa.string()),
        pa.field("output_s3_region", pa.string()),
        pa.field("output_s3_bucket_name", pa.string()),
        pa.field("output_s3_key_prefix", pa.string()),
        *_LINEAGE,
    ]
)


_NOTIFY_AND_CLOUDWATCH = [
    pa.field("notification_arn", pa.string()),
    pa.field("notification_events", pa.list_(pa.string())),
    pa.field("notification_type", pa.string()),
    pa.field("cloud_watch_log_group_name", pa.string()),
    pa.field("cloud_watch_output_enabled", pa.bool_()),
]

COMMANDS_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("command_id", pa.string(), nullable=False),
        pa.field("document_name", pa.string()),
        pa.field("document_version", pa.string()),
        pa.field("comment", pa.string()),
        pa.field("expires_after", TIMESTAMP),
        pa.field("parameters", pa.map_(pa.string(), pa.list_(pa.string()))),
        pa.field("instance_ids", pa.list_(pa.string())),
        pa.field(
            "targets",
            pa.list_(pa.struct([("key", pa.string()), ("values", pa.list_(pa.string()))])),
        ),
        pa.field("requested_date_time", TIMESTAMP, nullable=False),
        pa.field("requested_date", pa.date32(), nullable=False),
        pa.field("status", pa.string()),
        pa.field("status_details", pa.string()),
        pa.field("output_s3_region", pa.string()),
        pa.field("output_s3_bucket_name", pa.string()),
        pa.field("output_s3_key_prefix", pa.string()),
        pa.field("max_concurrency", pa.string()),
        pa.field("max_errors", pa.string()),
        pa.field("target_count", pa.int32()),
        pa.field("completed_count", pa.int32()),
        pa.field("error_count", pa.int32()),
        pa.field("delivery_timed_out_count", pa.int32()),
        pa.field("service_role", pa.string()),
        *_NOTIFY_AND_CLOUDWATCH,
        pa.field("timeout_seconds", pa.int32()),
        *_LINEAGE,
    ]
)
"""ListCommands: the command behind each invocation (document parameters such as
AWS-RunPatchBaseline's `Operation`, targets, counts)."""

MANAGED_INSTANCES_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("instance_id", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("computer_name", pa.string()),
        pa.field("ping_status", pa.string()),
        pa.field("last_ping_date_time", TIMESTAMP),
        pa.field("agent_version", pa.string()),
        pa.field("is_latest_version", pa.bool_()),
        pa.field("platform_type", pa.string()),
        pa.field("platform_name", pa.string()),
        pa.field("platform_version", pa.string()),
        pa.field("resource_type", pa.string()),
        pa.field("ip_address", pa.string()),
        pa.field("association_status", pa.string()),
        pa.field("registration_date", TIMESTAMP),
        pa.field("source_id", pa.string()),
        pa.field("source_type", pa.string()),
        *_LINEAGE,
    ]
)
"""DescribeInstanceInformation, one snapshot per run: the compliance denominator."""

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw_json", pa.string(), nullable=False),
        *_LINEAGE,
    ]
)

INGEST_RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("started_at", TIMESTAMP, nullable=False),
        pa.field("finished_at", TIMESTAMP, nullable=False),
        pa.field("window_start", TIMESTAMP),
        pa.field("window_end", TIMESTAMP),
        pa.field("pages", pa.int64(), nullable=False),
        pa.field("invocations", pa.int64(), nullable=False),
        pa.field("plugins", pa.int64(), nullable=False),
        pa.field("quarantined", pa.int64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("watermark", TIMESTAMP),
        pa.field("purged_months", pa.list_(pa.string())),
        pa.field("commands", pa.int64()),
        pa.field("managed_instances", pa.int64()),
    ]
)
"""The run ledger: one row per run x account x region (and one per purge).

`watermark` is the newest RequestedDateTime committed for the region as of
this run; the next run reads its window from the newest successful one.
"""


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    """Columns identifying one row of the latest state."""
    month_from: str | None
    """Column whose UTC month is the `requested_month` partition (None: not by month)."""

    @property
    def partition_by(self) -> tuple[str, ...]:
        return PARTITION_COLUMNS if self.month_from else PARTITION_COLUMNS[:2]

    @property
    def file_schema(self) -> pa.Schema:
        """What a Parquet file holds: the partition columns live in its path instead."""
        return pa.schema([f for f in self.schema if f.name not in PARTITION_COLUMNS])


INVOCATIONS = TableSpec(
    name="invocations",
    schema=INVOCATIONS_SCHEMA,
    key=("account_id", "region", "command_id", "instance_id"),
    month_from="requested_date_time",
)

COMMAND_PLUGINS = TableSpec(
    name="command_plugins",
    schema=COMMAND_PLUGINS_SCHEMA,
    key=("account_id", "region", "command_id", "instance_id", "plugin_index"),
    month_from="requested_date",
)

QUARANTINE = TableSpec(
    name="quarantine",
    schema=QUARANTINE_SCHEMA,
    key=("account_id", "region", "raw_json"),
    month_from=None,
)

INGEST_RUNS = TableSpec(
    name="ingest_runs",
    schema=INGEST_RUNS_SCHEMA,
    key=("run_id", "account_id", "region"),
    month_from=None,
)

COMMANDS = TableSpec(
    name="commands",
    schema=COMMANDS_SCHEMA,
    key=("account_id", "region", "command_id"),
    month_from="requested_date_time",
)

MANAGED_INSTANCES = TableSpec(
    name="managed_instances",
    schema=MANAGED_INSTANCES_SCHEMA,
    key=("account_id", "region", "run_id", "instance_id"),
    month_from=None,
)

TABLES = (INVOCATIONS, COMMAND_PLUGINS, COMMANDS, MANAGED_INSTANCES, QUARANTINE, INGEST_RUNS)
