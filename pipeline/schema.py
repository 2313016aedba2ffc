"""The lake's tables, declared once.

These Arrow schemas are the single source of truth: the flattener builds
columns in this order and type, the writer refuses anything else, the Delta
tables are created from them (`TableSpec.table_schema`, the flattener's
columns plus the `requested_month` partition), and the views, the DDL and the
README's column tables are checked against them in tests.

Adding a column later (the only schema change the lake allows): append a
nullable field to the end of a schema here. The next run adds it to the
existing Delta table (`Lake.ensure_tables`, an ALTER TABLE ADD COLUMN), rows
written before read as NULL, and the views name columns explicitly so nothing
else moves. Until that run (and in time travel to before it) readers see the
column as NULL too (`Snapshot.missing`). Columns are never renamed, retyped or
dropped: add a new one. Delta stores timestamps in microseconds; the values
here are whole milliseconds, as the API sends them, and stay so.
"""

from __future__ import annotations

from collections.abc import Collection
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

_PLUGIN = [
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
]
"""Which plugin a row is about: the leading columns of `command_plugins` and `plugin_outputs`."""

COMMAND_PLUGINS_SCHEMA = pa.schema(
    [
        *_PLUGIN,
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
"""DescribeInstanceInformation: each region's latest inventory, the compliance denominator.
Each run's snapshot replaces its region's rows (earlier ones stay reachable by time travel)."""

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
        pa.field("open_followed", pa.int64()),
        pa.field("expired_while_open", pa.int64()),
        # --full-output: plugins whose full output was stored, and outputs (stdout or
        # stderr) a full source could not give, with "<source> <code>: <count>" reasons.
        pa.field("outputs_fetched", pa.int64()),
        pa.field("outputs_unavailable", pa.int64()),
        pa.field("outputs_unavailable_reasons", pa.list_(pa.string())),
    ]
)
"""The run ledger: one row per run x account x region (and one per purge).

`watermark` is the newest RequestedDateTime committed for the region as of
this run; the next run reads its window from the newest successful one.
"""


def _stream(name: str) -> list[pa.Field]:
    """One stream's stored text and where it came from (see `pipeline.outputs`)."""
    return [
        pa.field(name, pa.string()),
        # s3, cloudwatch or get_command_invocation; NULL when no source could give it.
        pa.field(f"{name}_source", pa.string()),
        pa.field(f"{name}_bytes", pa.int64()),
        # The source's own cut (GetCommandInvocation: 24,000 / 8,000 characters).
        pa.field(f"{name}_truncated", pa.bool_()),
        pa.field(f"{name}_truncated_at", pa.int64()),
        # Our --output-cap, in bytes, when it cut the stored text.
        pa.field(f"{name}_capped_at", pa.int64()),
        # Sources that failed before the one used: "s3 AccessDenied; cloudwatch ...".
        pa.field(f"{name}_unavailable", pa.string()),
    ]


PLUGIN_OUTPUTS_SCHEMA = pa.schema(
    [
        *_PLUGIN,
        # The invocation's status when fetched: a later run fetches again only if it changed.
        pa.field("invocation_status", pa.string()),
        pa.field("status", pa.string()),
        *_stream("stdout"),
        *_stream("stderr"),
        *_LINEAGE,
    ]
)
"""--full-output: the full stdout and stderr of selected plugins, keyed like command_plugins."""


MONTH = pa.field("requested_month", pa.string(), nullable=False)
"""The partition of monthly tables: the UTC month `YYYY-MM` of `TableSpec.month_from`."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    """The rows a flattener builds (everything but the partition column)."""
    key: tuple[str, ...]
    """Columns identifying one row of the current state (partition columns included)."""
    month_from: str | None
    """Column whose UTC month is the `requested_month` partition (None: not by month)."""
    merge: bool = True
    """Rows replace the stored row of the same key (a Delta MERGE); False: appended."""
    kept: tuple[pa.Field, ...] = ()
    """Columns the lake keeps up itself rather than the API (NULL in a flattener's rows)."""
    snapshot: bool = False
    """A run's rows are the whole of its region: stored rows they lack are deleted."""

    @property
    def partition_by(self) -> tuple[str, ...]:
        return PARTITION_COLUMNS if self.month_from else PARTITION_COLUMNS[:2]

    @property
    def table_schema(self) -> pa.Schema:
        """The Delta table's columns: the flattener's, then the month partition if any."""
        schema = pa.schema([*self.schema, *self.kept])
        return schema.append(MONTH) if self.month_from else schema

    def absent_from(self, stored: Collection[str]) -> list[pa.Field]:
        """Columns of the table missing from `stored`, the column names of a version or
        file written before they were added: a run adds them, readers read them as NULL."""
        return [f for f in self.table_schema if f.name not in stored]


INVOCATIONS = TableSpec(
    name="invocations",
    schema=INVOCATIONS_SCHEMA,
    key=("account_id", "region", "requested_month", "command_id", "instance_id"),
    month_from="requested_date_time",
    kept=(
        # When a run found that the API no longer returns an invocation the lake holds
        # as open: it aged out of SSM's retention before reaching a final state.
        pa.field("expired_while_open_at", TIMESTAMP),
    ),
)

COMMAND_PLUGINS = TableSpec(
    name="command_plugins",
    schema=COMMAND_PLUGINS_SCHEMA,
    key=("account_id", "region", "requested_month", "command_id", "instance_id", "plugin_index"),
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
    merge=False,
)

COMMANDS = TableSpec(
    name="commands",
    schema=COMMANDS_SCHEMA,
    key=("account_id", "region", "requested_month", "command_id"),
    month_from="requested_date_time",
)

MANAGED_INSTANCES = TableSpec(
    name="managed_instances",
    schema=MANAGED_INSTANCES_SCHEMA,
    key=("account_id", "region", "instance_id"),
    month_from=None,
    snapshot=True,
)

PLUGIN_OUTPUTS = TableSpec(
    name="plugin_outputs",
    schema=PLUGIN_OUTPUTS_SCHEMA,
    key=COMMAND_PLUGINS.key,
    month_from="requested_date",
)

TABLES = (
    INVOCATIONS,
    COMMAND_PLUGINS,
    COMMANDS,
    MANAGED_INSTANCES,
    QUARANTINE,
    INGEST_RUNS,
    PLUGIN_OUTPUTS,
)
COMMIT_ORDER = (
    COMMAND_PLUGINS,
    PLUGIN_OUTPUTS,
    INVOCATIONS,
    COMMANDS,
    MANAGED_INSTANCES,
    QUARANTINE,
    INGEST_RUNS,
)
"""A batch commits its tables in this order: an invocation's plugins before the invocation,
and the ledger (whose rows carry the regions' new watermarks) last."""
