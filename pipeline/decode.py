"""ListCommandInvocations pages: response body to the invocations and command_plugins tables.

One column definition below (`INVOCATION_COLUMNS`, `PLUGIN_COLUMNS`: API member
path, lake column, kind, required, redacted) is the only description of a
CommandInvocation in the code. Derived from it: `WIRE_SCHEMA` (what
pyarrow.json reads a body into), the per-record check (`check_record`) and
the Arrow flattener (`flatten`).

A body takes one of two roads to the same struct array of storable records:
pyarrow.json, when every check below proves each record storable (the common
case, a fraction of json.loads plus per-record flattening), or json.loads and
`check_record` one record at a time, which sets each record it cannot store
aside with a reason. Either way one function flattens the result, so the two
roads cannot disagree on a row. The walk reads each body as it arrives
(`parse_page`) and proves a run of pages storable at once (`settle`): the
check costs the same few dozen Arrow calls for ten pages as for one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from .errors import BadRecordError, MalformedResponseError
from .flatten import (
    EARLIEST_SECONDS,
    LATEST_SECONDS,
    FlatPage,
    Lineage,
    Rejected,
    check_bool,
    check_int32,
    check_object,
    check_strings,
    check_text,
    check_timestamp,
)
from .redact import Redactor
from .schema import COMMAND_PLUGINS_SCHEMA, INVOCATIONS_SCHEMA, TIMESTAMP

Kind = Literal["string", "timestamp", "int32", "bool", "strings"]


@dataclass(frozen=True)
class Column:
    """One lake column read from one API member."""

    name: str
    path: tuple[str, ...]
    """The member, from the record (or the plugin): ("NotificationConfig", "NotificationArn")."""
    kind: Kind
    required: bool = False
    """The record cannot be stored without it (null, missing or "")."""
    redacted: bool = False
    """Command output: the run's redactor masks secrets in it before storage."""

    @property
    def key(self) -> str:
        return ".".join(self.path)


def _columns(*specs: tuple[Any, ...]) -> tuple[Column, ...]:
    return tuple(Column(*spec) for spec in specs)


PLUGINS = "CommandPlugins"
INVOCATION_COLUMNS = _columns(
    ("command_id", ("CommandId",), "string", True),
    ("instance_id", ("InstanceId",), "string", True),
    ("instance_name", ("InstanceName",), "string"),
    ("comment", ("Comment",), "string"),
    ("document_name", ("DocumentName",), "string"),
    ("document_version", ("DocumentVersion",), "string"),
    ("requested_date_time", ("RequestedDateTime",), "timestamp", True),
    ("status", ("Status",), "string"),
    ("status_details", ("StatusDetails",), "string"),
    ("trace_output", ("TraceOutput",), "string", False, True),
    ("standard_output_url", ("StandardOutputUrl",), "string"),
    ("standard_error_url", ("StandardErrorUrl",), "string"),
    ("service_role", ("ServiceRole",), "string"),
    ("notification_arn", ("NotificationConfig", "NotificationArn"), "string"),
    ("notification_events", ("NotificationConfig", "NotificationEvents"), "strings"),
    ("notification_type", ("NotificationConfig", "NotificationType"), "string"),
    ("cloud_watch_log_group_name", ("CloudWatchOutputConfig", "CloudWatchLogGroupName"), "string"),
    ("cloud_watch_output_enabled", ("CloudWatchOutputConfig", "CloudWatchOutputEnabled"), "bool"),
)
"""An invocation's members, `CommandPlugins` aside (a list of `PLUGIN_COLUMNS`)."""
PLUGIN_COLUMNS = _columns(
    ("name", ("Name",), "string"),
    ("status", ("Status",), "string"),
    ("status_details", ("StatusDetails",), "string"),
    ("response_code", ("ResponseCode",), "int32"),
    ("response_start_date_time", ("ResponseStartDateTime",), "timestamp"),
    ("response_finish_date_time", ("ResponseFinishDateTime",), "timestamp"),
    ("output", ("Output",), "string", False, True),
    ("standard_output_url", ("StandardOutputUrl",), "string"),
    ("standard_error_url", ("StandardErrorUrl",), "string"),
    ("output_s3_region", ("OutputS3Region",), "string"),
    ("output_s3_bucket_name", ("OutputS3BucketName",), "string"),
    ("output_s3_key_prefix", ("OutputS3KeyPrefix",), "string"),
)
DERIVED_INVOCATION = ("requested_date", "plugins_started_date_time", "plugins_finished_date_time")
"""Invocation columns computed from others: the UTC day, and the plugins' time span."""
DERIVED_PLUGIN = (
    "command_id",
    "instance_id",
    "requested_date",
    "requested_date_time",
    "document_name",
    "plugin_index",
)
"""Plugin columns copied from the plugin's invocation, and its place in the list."""

_WIRE_KINDS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "timestamp": pa.float64(),  # epoch seconds; integers convert exactly below 2**53
    "int32": pa.int32(),
    "bool": pa.bool_(),
    "strings": pa.list_(pa.string()),
}
_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "string": check_text,
    "timestamp": check_timestamp,
    "int32": check_int32,
    "bool": check_bool,
    "strings": check_strings,
}


def _struct(
    columns: Iterable[Column], extra: dict[str, pa.DataType] | None = None
) -> pa.StructType:
    tree: dict[str, Any] = {}
    for column in columns:
        node = tree
        for name in column.path[:-1]:
            node = node.setdefault(name, {})
        node[column.path[-1]] = _WIRE_KINDS[column.kind]

    def build(node: dict[str, Any]) -> pa.StructType:
        return pa.struct([(k, build(v) if isinstance(v, dict) else v) for k, v in node.items()])

    return build({**tree, **(extra or {})})


PLUGIN_WIRE = _struct(PLUGIN_COLUMNS)
INVOCATION_WIRE = _struct(INVOCATION_COLUMNS, {PLUGINS: pa.list_(PLUGIN_WIRE)})
WIRE_SCHEMA = pa.schema(
    [("CommandInvocations", pa.list_(INVOCATION_WIRE)), ("NextToken", pa.string())]
)
"""A successful body as pyarrow.json reads it; members outside the model are ignored,
as `check_record` ignores them."""

# pyarrow.json refuses a value of the wrong JSON kind for its field (a number for
# a string, a float or an out-of-range number for an int32, a string for a
# timestamp, an object where a list belongs), a lone surrogate, and a member
# given twice where json.loads keeps the last: such pages take the other road.
_PARSE = pj.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="ignore")


@dataclass(frozen=True)
class Page:
    """One page (or a run of pages) read but not yet flattened."""

    records: pa.StructArray
    """Every storable record, as `INVOCATION_WIRE` structs (every record, while `body` is set)."""
    rejected: tuple[Rejected, ...] = ()
    next_token: str | None = None
    body: bytes | None = None
    """The body, while pyarrow.json has read it but `settle` has not yet proven every record
    storable: until then `records` may hold records `check_record` would set aside."""

    def __len__(self) -> int:
        return len(self.records)


EMPTY = Page(pa.array([], INVOCATION_WIRE))


def settle(pages: list[Page]) -> Page:
    """Consecutive pages as one, every record proven storable; the last page's token.

    The check costs dozens of small Arrow calls whatever the number of records, so the
    pages pyarrow.json read are checked together; only when that fails is each page
    checked alone, and a page that fails alone takes the per-record road.
    """
    records = _joined(pages)
    if any(page.body is not None for page in pages) and not _storable(records):
        pages = [_settled(page) for page in pages]
        records = _joined(pages)
    rejected = tuple(r for page in pages for r in page.rejected)
    return Page(records, rejected, pages[-1].next_token)


def _joined(pages: list[Page]) -> pa.StructArray:
    if len(pages) == 1:
        return pages[0].records
    return pa.concat_arrays([page.records for page in pages])


def _settled(page: Page) -> Page:
    if page.body is None or _storable(page.records):
        return replace(page, body=None)
    return read_records(page.body)


def decode_page(body: bytes, lineage: Lineage, redactor: Redactor | None = None) -> FlatPage:
    """A ListCommandInvocations body as rows of the lake, rejected records, and NextToken.

    The composition of what the walk does apart (`parse_page` in botocore's
    before-parse hook, `settle` and `flatten` a few pages at a time). Raises
    MalformedResponseError for a body that is not a page at all.
    """
    return flatten(read_page(body), lineage, redactor)


def flatten_page(
    records: Iterable[Any], lineage: Lineage, redactor: Redactor | None = None
) -> FlatPage:
    """Records already decoded from JSON (wire form), decoded as the page holding them."""
    body = json.dumps({"CommandInvocations": list(records)}, allow_nan=True).encode()
    return decode_page(body, lineage, redactor)


def read_page(body: bytes) -> Page:
    """The storable records of a body, the rejected ones, and the NextToken."""
    return settle([parse_page(body)])


def parse_page(body: bytes) -> Page:
    """A body read by pyarrow.json when it can (not yet `settle`d), else by the per-record
    road. Raises MalformedResponseError for a body that is not a page at all."""
    if not body:
        return EMPTY  # botocore reads an empty success body as {}; so do we
    page = parse_arrow(body)
    return page if page is not None else read_records(body)


def read_arrow(body: bytes) -> Page | None:
    """The page, when pyarrow.json reads it and every record is provably storable."""
    page = parse_arrow(body)
    return None if page is None or not _storable(page.records) else replace(page, body=None)


def parse_arrow(body: bytes) -> Page | None:
    """The page as pyarrow.json reads it (kinds checked, records not yet `settle`d)."""
    # One block for the whole body: a body split across blocks is refused, not misread.
    read = pj.ReadOptions(use_threads=False, block_size=len(body) + 1)
    try:
        _check_utf8(body)  # pyarrow.json does not validate UTF-8; json.loads does
        table = pj.read_json(pa.BufferReader(body), read_options=read, parse_options=_PARSE)
    except pa.ArrowException:  # bad UTF-8, invalid JSON, wrong kinds, duplicate members
        return None
    if table.num_rows != 1:  # json.loads takes exactly one value
        return None
    records = pc.list_flatten(table.column("CommandInvocations").combine_chunks())
    return Page(records, (), table.column("NextToken")[0].as_py() or None, body)


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


def _storable(records: pa.StructArray) -> bool:
    """Whether `check_record` would take every record as it is.

    Parsing has checked the kinds; what is left: null records and plugins,
    required members null or "", null list items, and timestamps out of range.
    """
    if records.null_count:
        return False
    members = _members(records)
    plugins = pc.list_flatten(members[PLUGINS])
    if plugins.null_count:
        return False
    plugin_members = _members(plugins)
    for columns, values in ((INVOCATION_COLUMNS, members), (PLUGIN_COLUMNS, plugin_members)):
        for column in columns:
            array = values[column.key]
            if column.required and (array.null_count or _has_empty(array)):
                return False
            if column.kind == "strings" and pc.list_flatten(array).null_count:
                return False
    seconds = pa.concat_arrays(_timestamps(members, plugin_members))
    within = pc.and_(
        pc.greater_equal(seconds, EARLIEST_SECONDS), pc.less_equal(seconds, LATEST_SECONDS)
    )
    return pc.all(within).as_py() is not False  # NaN compares false; nulls are skipped


def _has_empty(array: pa.Array) -> bool:
    return pa.types.is_string(array.type) and pc.min(array).as_py() == ""  # "" sorts first


def read_records(body: bytes) -> Page:
    """The per-record road: json.loads, then `check_record` on each record."""
    try:
        document = json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError included
        message = f"the page is not JSON: {exc}"
        raise MalformedResponseError(message, code="MalformedResponse") from None
    if not isinstance(document, dict):
        raise MalformedResponseError("the page is not a JSON object", code="MalformedResponse")
    records = document.get("CommandInvocations")
    token = document.get("NextToken")
    if not isinstance(records, list | None) or not isinstance(token, str | None):
        raise MalformedResponseError(
            "the page's CommandInvocations is not a list or its NextToken not a string",
            code="MalformedResponse",
        )
    kept, rejected = [], []
    for record in records or ():
        try:
            check_record(record)
        except BadRecordError as exc:
            rejected.append(Rejected(record, str(exc)))
        else:
            kept.append(record)
    return Page(pa.array(kept, INVOCATION_WIRE), tuple(rejected), token or None)


def check_record(record: Any) -> None:
    """Raise BadRecordError, naming the first member that cannot be stored as it is."""
    if not isinstance(record, Mapping):
        raise BadRecordError(f"record is not an object: {type(record).__name__}")
    _check(record, INVOCATION_COLUMNS)
    plugins = record.get(PLUGINS)
    if plugins is None:
        return
    if not isinstance(plugins, list):
        raise BadRecordError(f"{PLUGINS} is not a list: {plugins!r}")
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, Mapping):
            raise BadRecordError(f"{PLUGINS}[{index}] is not an object")
        _check(plugin, PLUGIN_COLUMNS)


def _check(record: Mapping[str, Any], columns: tuple[Column, ...]) -> None:
    for column in columns:
        value: Any = record
        for name in column.path[:-1]:
            value = check_object(value.get(name), name) or {}
        value = value.get(column.path[-1])
        what = column.path[-1]
        if column.required and (value is None or value == ""):
            raise BadRecordError(f"{what} is missing")
        _CHECKS[column.kind](value, what)


# --- the flattener -------------------------------------------------------------------------


def _members(structs: pa.StructArray) -> dict[str, pa.Array]:
    """Every member by dotted path, null wherever its record or an enclosing object is null."""
    members: dict[str, pa.Array] = {}
    for name, child in zip(structs.type.names, structs.flatten(), strict=True):
        members[name] = child
        if isinstance(child, pa.StructArray):
            members.update({f"{name}.{k}": v for k, v in _members(child).items()})
    return members


def _timestamps(records: dict[str, pa.Array], plugins: dict[str, pa.Array]) -> list[pa.Array]:
    """Every timestamp column of the page, invocations' then plugins', in column order."""
    return [
        found[column.key]
        for columns, found in ((INVOCATION_COLUMNS, records), (PLUGIN_COLUMNS, plugins))
        for column in columns
        if column.kind == "timestamp"
    ]


def _epoch_ms(seconds: pa.Array) -> pa.Array:
    """round(seconds * 1000) as Python computes it: the same float product, ties to even."""
    product = pc.multiply(seconds, 1000.0)
    return pc.cast(pc.round(product, round_mode="half_to_even"), pa.int64()).view(TIMESTAMP)


def requested_ms(page: Page) -> pa.Array:
    """Each record's RequestedDateTime in epoch ms (int64), as the flattener stores it."""
    return _epoch_ms(page.records.field("RequestedDateTime")).view(pa.int64())


def _redacted(strings: pa.Array, redactor: Callable[[str | None], str | None] | None) -> pa.Array:
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


def _plugin_span(counts: np.ndarray, plugins: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """Each invocation's earliest plugin start and latest plugin finish (null without any).

    A page's plugins come grouped by invocation, in order, so one `reduceat`
    over the run boundaries does what a group-by would, without hashing.
    """
    lowest, highest = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    starts = pc.fill_null(plugins["response_start_date_time"].cast(pa.int64()), highest)
    finishes = pc.fill_null(plugins["response_finish_date_time"].cast(pa.int64()), lowest)
    has = counts > 0
    first = np.full(len(counts), highest, dtype=np.int64)
    last = np.full(len(counts), lowest, dtype=np.int64)
    if has.any():
        bounds = (np.cumsum(counts) - counts)[has]
        first[has] = np.minimum.reduceat(starts.to_numpy(), bounds)
        last[has] = np.maximum.reduceat(finishes.to_numpy(), bounds)
    return {
        "plugins_started_date_time": pa.array(first, mask=first == highest).view(TIMESTAMP),
        "plugins_finished_date_time": pa.array(last, mask=last == lowest).view(TIMESTAMP),
    }


def _read_columns(
    columns: tuple[Column, ...],
    members: dict[str, pa.Array],
    stamps: dict[str, pa.Array],
    redactor: Redactor | None,
) -> dict[str, pa.Array]:
    out = {}
    for column in columns:
        values = stamps[column.key] if column.kind == "timestamp" else members[column.key]
        out[column.name] = _redacted(values, redactor) if column.redacted else values
    return out


def flatten(page: Page, lineage: Lineage, redactor: Redactor | None = None) -> FlatPage:
    """The invocations and command_plugins tables of a page (`settle`d first if need be)."""
    if page.body is not None:
        page = settle([page])
    records = _members(page.records)
    lists = records[PLUGINS]
    plugins = pc.list_flatten(lists)  # a null list adds no plugins, as []
    plugin_members = _members(plugins)
    rows, plugin_rows = len(page.records), len(plugins)

    # Every timestamp of the page converted in one kernel call, then cut back into columns.
    ms = _epoch_ms(pa.concat_arrays(_timestamps(records, plugin_members)))
    stamps: tuple[dict[str, pa.Array], dict[str, pa.Array]] = ({}, {})
    offset = 0
    for found, columns, n in (
        (stamps[0], INVOCATION_COLUMNS, rows),
        (stamps[1], PLUGIN_COLUMNS, plugin_rows),
    ):
        for column in columns:
            if column.kind == "timestamp":
                found[column.key] = ms[offset : offset + n]
                offset += n

    invocations = _read_columns(INVOCATION_COLUMNS, records, stamps[0], redactor)
    requested = invocations["requested_date_time"]
    invocations["requested_date"] = pc.cast(requested, pa.date32())  # floors, as // would
    invocations.update(_lineage(lineage, rows))

    plugin_columns = _read_columns(PLUGIN_COLUMNS, plugin_members, stamps[1], redactor)
    counts = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    parents = pa.array(np.repeat(np.arange(rows, dtype=np.int32), counts))
    plugin_columns["plugin_index"] = pa.array(
        np.arange(plugin_rows, dtype=np.int32) - np.repeat(np.cumsum(counts) - counts, counts),
        pa.int32(),
    )
    for name in ("command_id", "instance_id", "requested_date", "requested_date_time"):
        plugin_columns[name] = pc.take(invocations[name], parents)
    plugin_columns["document_name"] = pc.take(invocations["document_name"], parents)
    invocations.update(_plugin_span(counts, plugin_columns))
    plugin_columns.update(_lineage(lineage, plugin_rows))
    return FlatPage(
        invocations=_table(invocations, INVOCATIONS_SCHEMA),
        plugins=_table(plugin_columns, COMMAND_PLUGINS_SCHEMA),
        rejected=list(page.rejected),
        next_token=page.next_token,
    )


def _table(columns: dict[str, pa.Array], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)
