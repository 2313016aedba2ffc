"""ListCommandInvocations pages decoded by pyarrow.json and flattened with Arrow compute.

Decoding into Python dicts and flattening them one record at a time costs
several milliseconds a page; reading the body straight into columns and
flattening those with compute kernels costs a fraction of that. The result
must be exactly what `flatten.invocation_row` makes of the same body, so a
page is taken only when every check below proves it; any doubt returns None
and the caller decodes the page with json.loads for the per-record path,
which also sets aside the records it cannot store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from .schema import COMMAND_PLUGINS_SCHEMA, INVOCATIONS_SCHEMA, TIMESTAMP

if TYPE_CHECKING:
    from .flatten import Lineage

_SECONDS = pa.float64()
"""Wire timestamps: epoch seconds as JSON numbers (integers convert exactly below 2**53)."""
_LARGEST_SECONDS = 1e13
"""As `flatten.to_epoch_ms`: beyond this a timestamp is absurd and its record is set aside."""

_PLUGIN = pa.struct(
    [
        ("Name", pa.string()),
        ("Status", pa.string()),
        ("StatusDetails", pa.string()),
        ("ResponseCode", pa.int32()),
        ("ResponseStartDateTime", _SECONDS),
        ("ResponseFinishDateTime", _SECONDS),
        ("Output", pa.string()),
        ("StandardOutputUrl", pa.string()),
        ("StandardErrorUrl", pa.string()),
        ("OutputS3Region", pa.string()),
        ("OutputS3BucketName", pa.string()),
        ("OutputS3KeyPrefix", pa.string()),
    ]
)
_INVOCATION = pa.struct(
    [
        ("CommandId", pa.string()),
        ("InstanceId", pa.string()),
        ("InstanceName", pa.string()),
        ("Comment", pa.string()),
        ("DocumentName", pa.string()),
        ("DocumentVersion", pa.string()),
        ("RequestedDateTime", _SECONDS),
        ("Status", pa.string()),
        ("StatusDetails", pa.string()),
        ("TraceOutput", pa.string()),
        ("StandardOutputUrl", pa.string()),
        ("StandardErrorUrl", pa.string()),
        ("CommandPlugins", pa.list_(_PLUGIN)),
        ("ServiceRole", pa.string()),
        (
            "NotificationConfig",
            pa.struct(
                [
                    ("NotificationArn", pa.string()),
                    ("NotificationEvents", pa.list_(pa.string())),
                    ("NotificationType", pa.string()),
                ]
            ),
        ),
        (
            "CloudWatchOutputConfig",
            pa.struct(
                [
                    ("CloudWatchLogGroupName", pa.string()),
                    ("CloudWatchOutputEnabled", pa.bool_()),
                ]
            ),
        ),
    ]
)
WIRE_SCHEMA = pa.schema([("CommandInvocations", pa.list_(_INVOCATION)), ("NextToken", pa.string())])
"""The successful response body as it arrives; members outside the model are ignored,
as the per-record path ignores them."""

# pyarrow.json refuses a value of the wrong JSON kind for its field (a number
# for a string, a float or an out-of-range number for an int32, a string for a
# timestamp, an object where a list belongs) and a member given twice, where
# json.loads would keep the last. Those pages fall back without a check here.
_PARSE = pj.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="ignore")
_MIN_BLOCK = 1 << 20

_INVOCATION_MEMBERS = {
    "command_id": "CommandId",
    "instance_id": "InstanceId",
    "instance_name": "InstanceName",
    "comment": "Comment",
    "document_name": "DocumentName",
    "document_version": "DocumentVersion",
    "status": "Status",
    "status_details": "StatusDetails",
    "trace_output": "TraceOutput",
    "standard_output_url": "StandardOutputUrl",
    "standard_error_url": "StandardErrorUrl",
    "service_role": "ServiceRole",
    "notification_arn": "NotificationConfig.NotificationArn",
    "notification_events": "NotificationConfig.NotificationEvents",
    "notification_type": "NotificationConfig.NotificationType",
    "cloud_watch_log_group_name": "CloudWatchOutputConfig.CloudWatchLogGroupName",
    "cloud_watch_output_enabled": "CloudWatchOutputConfig.CloudWatchOutputEnabled",
}
_PLUGIN_MEMBERS = {
    "name": "Name",
    "status": "Status",
    "status_details": "StatusDetails",
    "response_code": "ResponseCode",
    "output": "Output",
    "standard_output_url": "StandardOutputUrl",
    "standard_error_url": "StandardErrorUrl",
    "output_s3_region": "OutputS3Region",
    "output_s3_bucket_name": "OutputS3BucketName",
    "output_s3_key_prefix": "OutputS3KeyPrefix",
}


@dataclass(frozen=True)
class ArrowPage:
    """One page's invocations as a struct array, every record known to be storable."""

    invocations: pa.StructArray
    next_token: str | None

    def __len__(self) -> int:
        return len(self.invocations)

    @classmethod
    def concat(cls, pages: list[ArrowPage]) -> ArrowPage:
        """Consecutive pages as one, to be flattened at once; the last page's token."""
        if len(pages) == 1:
            return pages[0]
        invocations = pa.concat_arrays([page.invocations for page in pages])
        return cls(invocations, pages[-1].next_token)

    def first_requested_seconds(self) -> float | None:
        """RequestedDateTime of the first record, as json.loads would give it (a float)."""
        if not len(self.invocations):
            return None
        return float(self.invocations.field("RequestedDateTime")[0].as_py())


def decode(body: bytes | None) -> ArrowPage | None:
    """The page in `body`, or None when only the per-record path can be trusted with it."""
    if not body:
        return None
    # One block for the whole body: a body split across blocks is refused, not misread.
    read = pj.ReadOptions(use_threads=False, block_size=max(_MIN_BLOCK, len(body) + 1))
    try:
        _check_utf8(body)  # pyarrow.json does not validate UTF-8; json.loads does
        table = pj.read_json(pa.BufferReader(body), read_options=read, parse_options=_PARSE)
    except pa.ArrowException:  # bad UTF-8, invalid JSON, wrong kinds
        return None
    if table.num_rows != 1:  # json.loads takes exactly one value
        return None
    invocations = pc.list_flatten(table.column("CommandInvocations").combine_chunks())
    if not _storable(invocations):
        return None
    return ArrowPage(invocations, table.column("NextToken")[0].as_py())


def _check_utf8(body: bytes) -> None:
    """Raise ArrowInvalid unless `body` is UTF-8 as strict as `bytes.decode` wants it.

    Arrow's validator refuses what Python refuses (surrogates, overlong forms,
    code points past U+10FFFF, truncated sequences) at a tenth of the cost of
    decoding to a str, which would be thrown away.
    """
    if body.isascii():
        return
    offsets = pa.array([0, len(body)], pa.int32()).buffers()[1]
    pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(body)]).validate(full=True)


def _storable(invocations: pa.StructArray) -> bool:
    """Whether `invocation_row` would take every record as is (no BadRecordError).

    What parsing leaves to check: nulls where the per-record path wants a
    value or an object, empty ids, and timestamps `to_epoch_ms` refuses.
    """
    if invocations.null_count:
        return False
    records = _members(invocations)
    for key in ("CommandId", "InstanceId"):
        ids = records[key]
        if ids.null_count or pc.min(ids).as_py() == "":  # "" sorts first
            return False
    if records["RequestedDateTime"].null_count:
        return False
    if pc.list_flatten(records["NotificationConfig.NotificationEvents"]).null_count:
        return False
    plugins = pc.list_flatten(records["CommandPlugins"])
    if plugins.null_count:
        return False
    seconds = _timestamps(records, _members(plugins))
    within = pc.all(pc.less_equal(pc.abs(seconds), _LARGEST_SECONDS)).as_py()
    return within is not False  # NaN compares false; nulls are skipped; None: no values


def _members(structs: pa.StructArray) -> dict[str, pa.Array]:
    """Every member by dotted path, null wherever its record or an enclosing object is null."""
    members: dict[str, pa.Array] = {}
    for name, child in zip(structs.type.names, structs.flatten(), strict=True):
        members[name] = child
        if isinstance(child, pa.StructArray):
            members.update({f"{name}.{k}": v for k, v in _members(child).items()})
    return members


def _timestamps(records: dict[str, pa.Array], plugins: dict[str, pa.Array]) -> pa.Array:
    """Every timestamp of the page in one array, so each kernel runs once: requested, then
    the plugins' starts, then their finishes."""
    return pa.concat_arrays(
        [
            records["RequestedDateTime"],
            plugins["ResponseStartDateTime"],
            plugins["ResponseFinishDateTime"],
        ]
    )


def _epoch_ms(seconds: pa.Array) -> pa.Array:
    """round(seconds * 1000) as `to_epoch_ms` computes it: the same float product, ties to even."""
    product = pc.multiply(seconds, 1000.0)
    return pc.cast(pc.round(product, round_mode="half_to_even"), pa.int64()).view(TIMESTAMP)


def _redacted(strings: pa.Array, redactor: Callable[[str | None], str | None] | None) -> pa.Array:
    """The redactor applied value by value, exactly as the per-record path applies it."""
    if redactor is None:
        return strings
    return pa.array([redactor(text) for text in strings.to_pylist()], pa.string())


def _lineage(lineage: Lineage, rows: int) -> dict[str, pa.Array]:
    values = {
        "account_id": pa.scalar(lineage.account_id, pa.string()),
        "region": pa.scalar(lineage.region, pa.string()),
        "run_id": pa.scalar(lineage.run_id, pa.string()),
        "ingested_at": pa.scalar(lineage.ingested_at_ms, TIMESTAMP),
    }
    return {name: pa.repeat(value, rows) for name, value in values.items()}


def _plugin_span(counts: list[int], plugins: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """Each invocation's earliest plugin start and latest plugin finish (null without any).

    A page's plugins come grouped by invocation, in order, so one `reduceat`
    over the run boundaries does what a group-by would, without hashing.
    """
    lowest, highest = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    starts = pc.fill_null(plugins["response_start_date_time"].cast(pa.int64()), highest)
    finishes = pc.fill_null(plugins["response_finish_date_time"].cast(pa.int64()), lowest)
    sizes = np.asarray(counts, dtype=np.int64)
    has = sizes > 0
    first = np.full(len(sizes), highest, dtype=np.int64)
    last = np.full(len(sizes), lowest, dtype=np.int64)
    if has.any():
        bounds = (np.cumsum(sizes) - sizes)[has]
        first[has] = np.minimum.reduceat(starts.to_numpy(), bounds)
        last[has] = np.maximum.reduceat(finishes.to_numpy(), bounds)
    return {
        "plugins_started_date_time": pa.array(first, mask=first == highest).view(TIMESTAMP),
        "plugins_finished_date_time": pa.array(last, mask=last == lowest).view(TIMESTAMP),
    }


def _table(columns: dict[str, pa.Array], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def flatten(
    page: ArrowPage,
    lineage: Lineage,
    redactor: Callable[[str | None], str | None] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """The invocations and command_plugins tables of a page, as `flatten_page` builds them."""
    records = _members(page.invocations)
    lists = records["CommandPlugins"]
    plugin_members = _members(pc.list_flatten(lists))  # a null list adds no plugins, as []
    rows, plugin_rows = len(page.invocations), len(plugin_members["Name"])
    ms = _epoch_ms(_timestamps(records, plugin_members))
    requested = ms[:rows]
    requested_date = pc.cast(requested, pa.date32())  # floors, as ms // 86_400_000 does

    invocations = {name: records[path] for name, path in _INVOCATION_MEMBERS.items()}
    invocations["trace_output"] = _redacted(invocations["trace_output"], redactor)
    invocations["requested_date_time"] = requested
    invocations["requested_date"] = requested_date
    invocations.update(_lineage(lineage, rows))

    counts = [n or 0 for n in pc.list_value_length(lists).to_pylist()]
    parents = pa.array([r for r, n in enumerate(counts) for _ in range(n)], pa.int32())
    plugins = {name: plugin_members[path] for name, path in _PLUGIN_MEMBERS.items()}
    plugins["output"] = _redacted(plugins["output"], redactor)
    plugins["plugin_index"] = pa.array([i for n in counts for i in range(n)], pa.int32())
    plugins["response_start_date_time"] = ms[rows : rows + plugin_rows]
    plugins["response_finish_date_time"] = ms[rows + plugin_rows :]
    for name in ("command_id", "instance_id"):
        plugins[name] = pc.take(invocations[name], parents)
    plugins["requested_date"] = pc.take(requested_date, parents)
    plugins["requested_date_time"] = pc.take(requested, parents)
    plugins["document_name"] = pc.take(invocations["document_name"], parents)
    invocations.update(_plugin_span(counts, plugins))
    plugins.update(_lineage(lineage, plugin_rows))
    return _table(invocations, INVOCATIONS_SCHEMA), _table(plugins, COMMAND_PLUGINS_SCHEMA)
