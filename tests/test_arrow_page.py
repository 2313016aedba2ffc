"""Pages decoded into Arrow flatten exactly as json.loads plus `invocation_row` would.

Every body goes over HTTP to a real client, once per `raw_parsing` mode:
"arrow" (the default), "json" (json.loads, the reference) and False
(botocore's own parser). A page the Arrow path cannot prove storable must
come back as decoded dicts, so the per-record path sets its bad records aside.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.arrow_page import WIRE_SCHEMA, ArrowPage, _check_utf8, decode
from pipeline.errors import ConfigError
from pipeline.extract import AwsSettings, Page, iter_pages, newest_requested_ms
from pipeline.flatten import FlatPage, Lineage, flatten_page
from pipeline.redact import Redactor
from pipeline.walk import BATCH_RECORDS, batches
from tests.conftest_emulator import EMULATOR_ACCOUNT
from tests.strategies import api_records, invocation_shape

LINEAGE = Lineage(
    account_id="012345678901",
    region="eu-central-1",
    run_id="run-0001",
    ingested_at_ms=1772433000000,
)
MODES: tuple[str | bool, ...] = ("arrow", "json", False)
REDACTOR = Redactor.from_options(["aws", r"\d+"])


def record(**fields: Any) -> dict[str, Any]:
    """A valid wire-form record with two plugins; None-valued `fields` are dropped."""
    base = {
        "CommandId": "8c2f1f7e-3b5d-4f0e-9a41-6d2c7b1e0a55",
        "InstanceId": "i-0a1b2c3d4e5f60718",
        "InstanceName": "web-01",
        "DocumentName": "AWS-RunPatchBaseline",
        "RequestedDateTime": 1772431200.123,
        "Status": "Failed",
        "TraceOutput": "key AKIAABCDEFGHIJKLMNOP in trace",
        "CommandPlugins": [plugin(), plugin(Name="aws:runShellScript", ResponseCode=127)],
        "NotificationConfig": {
            "NotificationArn": "arn:aws:sns:eu-central-1:012345678901:ssm",
            "NotificationEvents": ["Failed", "TimedOut"],
            "NotificationType": "Invocation",
        },
        "CloudWatchOutputConfig": {
            "CloudWatchLogGroupName": "/ssm",
            "CloudWatchOutputEnabled": True,
        },
    }
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def plugin(**fields: Any) -> dict[str, Any]:
    base = {
        "Name": "PatchLinux",
        "Status": "Success",
        "ResponseCode": 0,
        "ResponseStartDateTime": 1772431201.25,
        "ResponseFinishDateTime": 1772431203.789,
        "Output": "Installed: 3\nGrüße ✅",
        "OutputS3BucketName": "ssm-output",
    }
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def other(**fields: Any) -> dict[str, Any]:
    """A second valid record, so a page with a bad one still has rows to compare."""
    return record(CommandId="11111111-1111-4111-8111-111111111111", **fields)


def body(records: Any, token: Any = "AAEAAQ==") -> bytes:
    return json.dumps({"CommandInvocations": records, "NextToken": token}).encode()


# --- a server answering ListCommandInvocations with whatever body a test sets -------------


class _Canned(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        payload = self.server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def fetch() -> Iterator[Callable[[bytes, str | bool], Page]]:
    """`fetch(body, mode)`: the first page a client in `mode` makes of `body`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    clients = {}
    for mode in MODES:
        aws = AwsSettings(endpoint_url=url, raw_parsing=mode, max_attempts=1)
        clients[mode] = aws.client(aws.session(), "ssm", "eu-central-1")

    def first_page(payload: bytes, mode: str | bool) -> Page:
        server.body = payload  # type: ignore[attr-defined]
        return next(iter_pages(clients[mode]))

    yield first_page
    server.shutdown()
    server.server_close()


def _flat(page: Page, redactor: Redactor | None = None) -> FlatPage:
    return flatten_page(page.records, LINEAGE, redactor=redactor)


def assert_same(a: FlatPage, b: FlatPage) -> None:
    assert a.invocations.schema.equals(b.invocations.schema, check_metadata=True)
    assert a.plugins.schema.equals(b.plugins.schema, check_metadata=True)
    assert a.invocations.equals(b.invocations)
    assert a.plugins.equals(b.plugins)
    assert a.rejected == b.rejected


def assert_fast_and_same(fetch: Callable[..., Page], payload: bytes, *, botocore: bool) -> None:
    """The Arrow path takes the page and agrees with json.loads (and botocore's parser)."""
    assert decode(payload) is not None
    fast, reference = fetch(payload, "arrow"), fetch(payload, "json")
    assert isinstance(fast.records, ArrowPage) or fast.records == []  # an empty page
    assert fast.next_token == reference.next_token
    for redactor in (None, REDACTOR):
        assert_same(_flat(fast, redactor), _flat(reference, redactor))
    if botocore:
        assert_same(_flat(fetch(payload, False)), _flat(fast))


def assert_declined_and_same(fetch: Callable[..., Page], payload: bytes) -> FlatPage:
    """The Arrow path hands the page to the per-record path: same tables, same reasons."""
    assert decode(payload) is None
    fast, reference = fetch(payload, "arrow"), fetch(payload, "json")
    assert not isinstance(fast.records, ArrowPage)
    assert fast.next_token == reference.next_token
    flat = _flat(fast)
    assert_same(flat, _flat(reference))
    assert_same(_flat(fast, REDACTOR), _flat(reference, REDACTOR))
    return flat


# --- the wire schema ---------------------------------------------------------------------

_KINDS = {"string": "string", "timestamp": "double", "integer": "int32", "boolean": "bool"}


def _wire_type(shape: Any) -> str:
    """The Arrow type the API's shape arrives as, by a rule of this test's own."""
    kind = shape.type_name
    if kind == "list":
        return f"list<item: {_wire_type(shape.member)}>"
    if kind == "structure":
        members = ", ".join(f"{n}: {_wire_type(m)}" for n, m in shape.members.items())
        return f"struct<{members}>"
    return _KINDS[kind]


def test_wire_schema_is_the_api_shape_member_for_member():
    assert str(WIRE_SCHEMA.field("CommandInvocations").type) == (
        f"list<item: {_wire_type(invocation_shape())}>"
    )
    assert WIRE_SCHEMA.field("NextToken").type == "string"


# --- pages the Arrow path takes ----------------------------------------------------------

ACCEPTED = [
    pytest.param(body([record(), other()]), True, id="full-records"),
    pytest.param(body([]), True, id="empty-page-with-token"),
    pytest.param(body([], token=None), True, id="empty-page-null-token"),
    pytest.param(b'{"CommandInvocations":[]}', True, id="empty-page-no-token"),
    pytest.param(body([record()], token=""), True, id="empty-token-is-no-token"),
    pytest.param(b'{"NextToken":"x"}', True, id="no-invocations-member"),
    pytest.param(body(None), True, id="null-invocations"),
    pytest.param(body([record(CommandPlugins=[])]), True, id="empty-plugin-list"),
    pytest.param(body([record(CommandPlugins=None)]), True, id="missing-plugin-list"),
    pytest.param(
        b'{"CommandInvocations":[{"CommandId":"c","InstanceId":"i","RequestedDateTime":1,'
        b'"CommandPlugins":null,"NotificationConfig":null,"CloudWatchOutputConfig":null,'
        b'"Comment":null,"CommandPlugins2":1}]}',
        True,
        id="nulls-for-members",
    ),
    pytest.param(
        body(
            [
                record(
                    CommandPlugins=[
                        {"Name": "minimal"},
                        {},
                        plugin(Output=None, ResponseCode=None, ResponseStartDateTime=None),
                    ]
                )
            ]
        ),
        True,
        id="plugins-with-missing-members",
    ),
    pytest.param(body([record(NotificationConfig={})]), True, id="empty-notification-config"),
    pytest.param(
        body([record(NotificationConfig={"NotificationEvents": []})]), True, id="no-events"
    ),
    pytest.param(
        body([record(NotificationConfig={"NotificationEvents": ["All", "", "Success"]})]),
        True,
        id="notification-events",
    ),
    pytest.param(
        body([record(CloudWatchOutputConfig={"CloudWatchOutputEnabled": False})]),
        True,
        id="cloud-watch-false",
    ),
    pytest.param(
        body([record(InstanceName="Grüße ✅ 日本語 👩\u200d💻", Comment='\u0000\t\n"\\/')]),
        True,
        id="unicode-and-escapes",
    ),
    pytest.param(
        b'{"CommandInvocations":[{"Command\\u0049d":"\\u00e9\\ud83d\\ude00\\u0000",'
        b'"InstanceId":"i","RequestedDateTime":1772431200.5}],"NextToken":"\\u0041"}',
        True,
        id="unicode-escapes-in-keys-and-values",
    ),
    pytest.param(
        body(
            [record(RequestedDateTime=1772431200, CommandPlugins=[plugin(ResponseStartDateTime=1)])]
        ),
        True,
        id="integer-timestamps",
    ),
    pytest.param(
        body(
            [
                record(RequestedDateTime=-86400.001),
                other(RequestedDateTime=-0.0),
                record(InstanceId="i-2", RequestedDateTime=1e13),
                record(InstanceId="i-3", RequestedDateTime=-1e13),
            ]
        ),
        False,
        id="timestamps-before-1970-and-at-the-limits",
    ),
    pytest.param(
        body(
            [
                record(
                    CommandPlugins=[
                        plugin(ResponseCode=-(2**31)),
                        plugin(ResponseCode=2**31 - 1),
                        plugin(ResponseCode=None),
                    ]
                )
            ]
        ),
        True,
        id="response-code-int32-limits",
    ),
    pytest.param(
        b'{"CommandInvocations":[{"CommandId":"c","InstanceId":"i","RequestedDateTime":1.5,'
        b'"CommandPlugins":[{"ResponseCode":-0}]}]}',
        True,
        id="response-code-minus-zero",
    ),
    pytest.param(
        body(
            [
                record(
                    Extra={"Nested": [1, "x", None]},
                    CommandPlugins=[plugin(Unknown=[1, 2])],
                    NotificationConfig={"NotificationArn": "a", "Other": 5},
                )
            ],
        )[:-1]
        + b',"Unknown":{"a":1},"Unknown":2}',
        True,
        id="unknown-members-anywhere-even-twice",
    ),
    pytest.param(
        json.dumps({"CommandInvocations": [record()]}, indent=2).encode(), True, id="pretty-printed"
    ),
    pytest.param(b'\xef\xbb\xbf{"CommandInvocations":[]}', False, id="utf8-bom"),
    pytest.param(
        body(
            [
                record(InstanceId=f"i-{n}", CommandPlugins=[plugin(Output="ü" * 2500)] * 10)
                for n in range(20)
            ]
        ),
        False,
        id="larger-than-a-default-block",
    ),
]


@pytest.mark.parametrize(("payload", "botocore"), ACCEPTED)
def test_arrow_path_takes_valid_pages_and_agrees(fetch, payload, botocore):
    assert_fast_and_same(fetch, payload, botocore=botocore)


def test_rounding_is_pythons_round_of_the_same_product(fetch):
    """Ties and near-ties in milliseconds, which only the two raw parsers see alike."""
    values = [0.0005, 0.0015, 0.0025, 1.0005, 1772431200.0005, 1772431200.1235, -0.0005, -1.0015]
    values += [1772431200 + n / 8000 for n in range(64)]
    records = [
        record(
            InstanceId=f"i-{n}",
            RequestedDateTime=v,
            CommandPlugins=[plugin(ResponseStartDateTime=v)],
        )
        for n, v in enumerate(values)
    ]
    assert_fast_and_same(fetch, body(records), botocore=False)


# --- pages the Arrow path hands back -------------------------------------------------------


def _raw(record_json: bytes) -> bytes:
    """A page of a valid record, then `record_json` verbatim, then another valid record."""
    valid = [json.dumps(r).encode() for r in (record(), other())]
    return b'{"CommandInvocations":[' + b",".join([valid[0], record_json, valid[1]]) + b"]}"


def _with(**fields: Any) -> bytes:
    return _raw(json.dumps(record(**{"InstanceId": "i-bad", **fields})).encode())


def _plugin_with(**fields: Any) -> bytes:
    return _with(CommandPlugins=[plugin(), plugin(**fields)])


DECLINED = [
    # wrong JSON kinds, refused by pyarrow.json's explicit schema
    pytest.param(_with(CommandId=5), "CommandId is not a string: 5", id="number-for-string"),
    pytest.param(_with(Comment=True), "Comment is not a string: True", id="bool-for-string"),
    pytest.param(
        _with(DocumentName={}), "DocumentName is not a string: {}", id="object-for-string"
    ),
    pytest.param(
        _with(RequestedDateTime="yesterday"),
        "RequestedDateTime is not a timestamp: 'yesterday'",
        id="string-for-timestamp",
    ),
    pytest.param(
        _with(RequestedDateTime=True),
        "RequestedDateTime is not a timestamp: True",
        id="bool-for-timestamp",
    ),
    pytest.param(
        _plugin_with(ResponseStartDateTime="x"),
        "ResponseStartDateTime is not a timestamp: 'x'",
        id="string-for-plugin-timestamp",
    ),
    pytest.param(
        _plugin_with(ResponseCode=1.0), "ResponseCode is not an integer: 1.0", id="float-1.0-code"
    ),
    pytest.param(
        _plugin_with(ResponseCode=1.5), "ResponseCode is not an integer: 1.5", id="float-code"
    ),
    pytest.param(
        _raw(
            b'{"CommandId":"c","InstanceId":"i","RequestedDateTime":1,"CommandPlugins":[{"ResponseCode":1e2}]}'
        ),
        "ResponseCode is not an integer: 100.0",
        id="exponent-code",
    ),
    pytest.param(
        _plugin_with(ResponseCode=True), "ResponseCode is not an integer: True", id="bool-code"
    ),
    pytest.param(
        _plugin_with(ResponseCode="0"), "ResponseCode is not an integer: '0'", id="string-code"
    ),
    pytest.param(
        _plugin_with(ResponseCode=2**31),
        "ResponseCode is out of int32 range: 2147483648",
        id="code-above-int32",
    ),
    pytest.param(
        _plugin_with(ResponseCode=-(2**31) - 1),
        "ResponseCode is out of int32 range: -2147483649",
        id="code-below-int32",
    ),
    pytest.param(
        _with(CloudWatchOutputConfig={"CloudWatchOutputEnabled": "true"}),
        "CloudWatchOutputEnabled is not a boolean: 'true'",
        id="string-for-bool",
    ),
    pytest.param(
        _with(CloudWatchOutputConfig={"CloudWatchOutputEnabled": 1}),
        "CloudWatchOutputEnabled is not a boolean: 1",
        id="number-for-bool",
    ),
    pytest.param(
        _with(NotificationConfig=[]),
        "NotificationConfig is not an object: []",
        id="list-for-config",
    ),
    pytest.param(
        _with(NotificationConfig="SNS"),
        "NotificationConfig is not an object: 'SNS'",
        id="string-for-config",
    ),
    pytest.param(
        _with(CloudWatchOutputConfig=5),
        "CloudWatchOutputConfig is not an object: 5",
        id="number-for-config",
    ),
    pytest.param(
        _with(CommandPlugins={}), "CommandPlugins is not a list: {}", id="object-for-plugins"
    ),
    pytest.param(
        _with(CommandPlugins="x"), "CommandPlugins is not a list: 'x'", id="string-for-plugins"
    ),
    pytest.param(
        _with(CommandPlugins=["x"]), "CommandPlugins[0] is not an object", id="string-plugin"
    ),
    pytest.param(
        _with(CommandPlugins=[[]]), "CommandPlugins[0] is not an object", id="list-plugin"
    ),
    pytest.param(
        _with(NotificationConfig={"NotificationEvents": "Failed"}),
        "NotificationEvents is not a list of strings: 'Failed'",
        id="string-for-events",
    ),
    pytest.param(
        _with(NotificationConfig={"NotificationEvents": ["Failed", 1]}),
        "NotificationEvents is not a list of strings: ['Failed', 1]",
        id="number-event",
    ),
    pytest.param(_raw(b'"x"'), "record is not an object: str", id="string-record"),
    pytest.param(_raw(b"1"), "record is not an object: int", id="number-record"),
    pytest.param(_raw(b"[]"), "record is not an object: list", id="list-record"),
    # parsed, then refused by the checks after parsing
    pytest.param(_raw(b"null"), "record is not an object: NoneType", id="null-record"),
    pytest.param(
        _with(CommandPlugins=[plugin(), None]),
        "CommandPlugins[1] is not an object",
        id="null-plugin",
    ),
    pytest.param(
        _with(NotificationConfig={"NotificationEvents": ["Failed", None]}),
        "NotificationEvents is not a list of strings: ['Failed', None]",
        id="null-event",
    ),
    pytest.param(_with(CommandId=""), "CommandId is missing", id="empty-command-id"),
    pytest.param(
        _raw(b'{"InstanceId":"i","RequestedDateTime":1}'),
        "CommandId is missing",
        id="no-command-id",
    ),
    pytest.param(
        _raw(b'{"CommandId":null,"InstanceId":"i","RequestedDateTime":1}'),
        "CommandId is missing",
        id="null-command-id",
    ),
    pytest.param(_with(InstanceId=""), "InstanceId is missing", id="empty-instance-id"),
    pytest.param(
        _raw(b'{"CommandId":"c","RequestedDateTime":1}'),
        "InstanceId is missing",
        id="no-instance-id",
    ),
    pytest.param(
        _raw(b'{"CommandId":"c","InstanceId":"i"}'),
        "RequestedDateTime is not a timestamp: None",
        id="no-requested-time",
    ),
    pytest.param(
        _raw(b'{"CommandId":"c","InstanceId":"i","RequestedDateTime":null}'),
        "RequestedDateTime is not a timestamp: None",
        id="null-requested-time",
    ),
    pytest.param(
        _raw(b'{"CommandId":"c","InstanceId":"i","RequestedDateTime":NaN}'),
        "RequestedDateTime is not a timestamp: nan",
        id="nan-requested-time",
    ),
    pytest.param(
        _raw(b'{"CommandId":"c","InstanceId":"i","RequestedDateTime":Infinity}'),
        "RequestedDateTime is not a timestamp: inf",
        id="infinite-requested-time",
    ),
    pytest.param(
        _raw(b'{"CommandId":"c","InstanceId":"i","RequestedDateTime":-1e400}'),
        "RequestedDateTime is not a timestamp: -inf",
        id="overflowing-requested-time",
    ),
    pytest.param(
        _with(RequestedDateTime=1e13 + 0.01),
        "RequestedDateTime is not a timestamp: 10000000000000.01",
        id="absurd-requested-time",
    ),
    pytest.param(
        _with(RequestedDateTime=-(10**13) - 1),
        "RequestedDateTime is not a timestamp: -10000000000001",
        id="absurd-negative-integer-time",
    ),
    pytest.param(
        _plugin_with(ResponseFinishDateTime=math.nan),
        "ResponseFinishDateTime is not a timestamp: nan",
        id="nan-plugin-time",
    ),
    pytest.param(
        _plugin_with(ResponseStartDateTime=1e14),
        "ResponseStartDateTime is not a timestamp: 100000000000000.0",
        id="absurd-plugin-time",
    ),
    # a member given twice: json.loads keeps the last, pyarrow.json refuses
    pytest.param(
        _raw(b'{"CommandId":"c","InstanceId":"i","RequestedDateTime":1,"CommandId":5}'),
        "CommandId is not a string: 5",
        id="duplicate-member-last-is-bad",
    ),
    pytest.param(
        _raw(b'{"CommandId":"c","InstanceId":"i","RequestedDateTime":1,"CommandId":"d"}'),
        None,
        id="duplicate-member-both-good",
    ),
    pytest.param(
        _raw(
            b'{"CommandId":"c","InstanceId":"i","RequestedDateTime":1,'
            b'"CommandPlugins":[{"Name":"a","Name":"b"}],'
            b'"NotificationConfig":{"NotificationType":"x"},"NotificationConfig":null}'
        ),
        None,
        id="duplicate-nested-members",
    ),
    pytest.param(body([record()])[:-1] + b',"NextToken":"other"}', None, id="duplicate-next-token"),
    pytest.param(
        body([record()])[:-1] + b',"CommandInvocations":[]}', None, id="duplicate-invocations"
    ),
    # bodies json.loads reads differently from a single JSON object per line
    pytest.param(b"", None, id="empty-body"),
    pytest.param(body("abc"), ["record is not an object: str"] * 3, id="string-invocations"),
    pytest.param(body({}), None, id="empty-object-invocations"),
    pytest.param(body([record()], token=5), None, id="number-token"),
]


@pytest.mark.parametrize(("payload", "reason"), DECLINED)
def test_arrow_path_hands_doubtful_pages_to_the_per_record_path(fetch, payload, reason):
    flat = assert_declined_and_same(fetch, payload)
    expected = reason if isinstance(reason, list) else [reason] if reason else []
    assert [r.reason for r in flat.rejected] == expected


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"CommandInvocations":[]}\n{"CommandInvocations":[]}', id="two-values"),
        pytest.param(b'{"CommandInvocations":[]} x', id="trailing-garbage"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"CommandInvocations":[{"CommandId":"a\tb"}]}', id="raw-control-char"),
        pytest.param(b'{"CommandInvocations":[{"CommandId":"\xff"}]}', id="invalid-utf8"),
        pytest.param(
            b'{"CommandInvocations":[{"CommandId":"\\ud800","InstanceId":"i",'
            b'"RequestedDateTime":1}]}',
            id="lone-surrogate",
        ),
    ],
)
def test_bodies_the_per_record_path_refuses_fail_the_same_way(fetch, payload):
    outcomes = []
    for mode in ("arrow", "json"):
        try:
            outcomes.append(("flat", _flat(fetch(payload, mode))))
        except Exception as exc:  # noqa: BLE001 (the failure itself is compared)
            outcomes.append(("error", (type(exc), str(exc))))
    (kind, fast), (reference_kind, reference) = outcomes
    assert kind == reference_kind
    if kind == "error":
        assert fast == reference
    else:
        assert_same(fast, reference)


def _utf8_verdicts(data: bytes) -> tuple[bool, bool]:
    """(Arrow's validator accepts `data`, bytes.decode accepts it)."""
    try:
        _check_utf8(data)
        arrow = True
    except pa.ArrowInvalid:
        arrow = False
    try:
        data.decode("utf-8")
        python = True
    except UnicodeDecodeError:
        python = False
    return arrow, python


@pytest.mark.parametrize(
    "data",
    [
        b"plain ascii",
        "h\u00e9, \u4e16\u754c, \U0001f600".encode(),
        b"\xed\xa0\x80",  # an encoded surrogate
        b"\xc0\xaf",  # overlong
        b"\xe0\x80\xaf",  # overlong, three bytes
        b"\xf4\x90\x80\x80",  # past U+10FFFF
        b"\xf5\x80\x80\x80",
        b"\xe2\x82",  # truncated
        b"\x80",  # a lone continuation byte
        b"\xff",
        b"\xed\x9f\xbf\xee\x80\x80",  # both sides of the surrogate range
    ],
)
def test_utf8_check_is_as_strict_as_python(data):
    arrow, python = _utf8_verdicts(data)
    assert arrow == python


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.binary(max_size=3)
        | st.text(max_size=3).map(lambda t: t.encode("utf-8", "surrogatepass")),
        max_size=6,
    ).map(b"".join)
)
def test_utf8_check_agrees_with_python_on_any_bytes(data):
    arrow, python = _utf8_verdicts(data)
    assert arrow == python


# --- any page, valid or not ----------------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_PATHS = [
    (name,)
    for name in (
        "CommandId",
        "InstanceId",
        "RequestedDateTime",
        "Comment",
        "TraceOutput",
        "CommandPlugins",
        "NotificationConfig",
        "CloudWatchOutputConfig",
    )
] + [
    ("CommandPlugins", 0, "ResponseCode"),
    ("CommandPlugins", 0, "ResponseStartDateTime"),
    ("CommandPlugins", 0, "Output"),
    ("CommandPlugins", 0),
    ("NotificationConfig", "NotificationEvents"),
    ("CloudWatchOutputConfig", "CloudWatchOutputEnabled"),
]
_DROP = object()


def _mutated(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """`value` with the member at `path` set to `new` (dropped for `_DROP`), where it exists."""
    head, *rest = path
    if isinstance(value, dict) and isinstance(head, str) and (head in value or not rest):
        if rest:
            return {**value, head: _mutated(value[head], tuple(rest), new)}
        if new is _DROP:
            return {k: v for k, v in value.items() if k != head}
        return {**value, head: new}
    if isinstance(value, list) and isinstance(head, int) and head < len(value):
        inner = _mutated(value[head], tuple(rest), new) if rest else new
        return value[:head] + ([] if inner is _DROP else [inner]) + value[head + 1 :]
    return value


@settings(max_examples=150, deadline=None)
@given(
    records=st.lists(api_records(), max_size=3),
    mutations=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(_PATHS), _JSON | st.just(_DROP)), max_size=2
    ),
)
def test_any_page_flattens_as_the_per_record_path_would(fetch, records, mutations):
    for index, path, new in mutations:
        if index < len(records):
            records[index] = _mutated(records[index], path, new)
    payload = body(records)
    fast, reference = fetch(payload, "arrow"), fetch(payload, "json")
    assert_same(_flat(fast), _flat(reference))
    if records and not mutations:
        assert isinstance(fast.records, ArrowPage)


# --- real pages from the emulator ----------------------------------------------------------


def _walk(emulator, mode: str | bool, region: str) -> list[Page]:
    aws = AwsSettings(endpoint_url=emulator.url, raw_parsing=mode, max_attempts=1)
    return list(iter_pages(aws.client(aws.session(), "ssm", region), region=region))


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_emulator_pages_flatten_identically_three_ways(emulator, region):
    walks = {mode: _walk(emulator, mode, region) for mode in MODES}
    assert len(walks["arrow"]) > 3
    assert all(isinstance(page.records, ArrowPage) for page in walks["arrow"])
    rows = 0
    for fast, reference, botocore in zip(*walks.values(), strict=True):
        assert fast.next_token == reference.next_token == botocore.next_token
        flat = _flat(fast)
        assert_same(flat, _flat(reference))
        assert_same(flat, _flat(botocore))
        assert_same(_flat(fast, REDACTOR), _flat(reference, REDACTOR))
        rows += flat.invocations.num_rows
    assert rows == len(emulator.ground_truth(EMULATOR_ACCOUNT, region))


def test_emulator_pages_with_malformed_records_fall_back_page_by_page(emulator):
    emulator.set_faults({"seed": 4, "regions": {"us-east-1": {"malformed_rate": 0.01}}})
    fast, reference = _walk(emulator, "arrow", "us-east-1"), _walk(emulator, "json", "us-east-1")
    declined = 0
    for page, expected in zip(fast, reference, strict=True):
        flat = _flat(page)
        assert_same(flat, _flat(expected))
        assert isinstance(page.records, ArrowPage) == (not flat.rejected)
        declined += not isinstance(page.records, ArrowPage)
    assert 0 < declined < len(fast)


def test_redaction_masks_the_same_text_in_both_paths(fetch):
    payload = body([record()])
    flat = _flat(fetch(payload, "arrow"), REDACTOR)
    assert flat.invocations["trace_output"].to_pylist() == ["key [REDACTED] in trace"]
    assert flat.plugins["output"].to_pylist() == ["Installed: [REDACTED]\nGrüße ✅"] * 2


def test_newest_requested_ms_reads_both_kinds_of_page(emulator):
    newest = set()
    for mode in MODES:
        aws = AwsSettings(endpoint_url=emulator.url, raw_parsing=mode, max_attempts=1)
        newest.add(newest_requested_ms(aws.client(aws.session(), "ssm", "us-east-1")))
    truth = emulator.ground_truth(EMULATOR_ACCOUNT, "us-east-1")
    assert newest == {round(max(r["RequestedDateTime"] for r in truth) * 1000)}


def test_raw_parsing_true_still_means_arrow(emulator):
    assert all(isinstance(page.records, ArrowPage) for page in _walk(emulator, True, "us-east-1"))
    with pytest.raises(ConfigError, match="raw_parsing"):
        AwsSettings(raw_parsing="orjson")  # type: ignore[arg-type]


# --- pages flattened together, as the walk does ----------------------------------------------


def _concat(flats: list[FlatPage]) -> FlatPage:
    return FlatPage(
        invocations=pa.concat_tables([f.invocations for f in flats]).combine_chunks(),
        plugins=pa.concat_tables([f.plugins for f in flats]).combine_chunks(),
        rejected=[r for f in flats for r in f.rejected],
    )


@pytest.mark.parametrize("most", [1, 120, BATCH_RECORDS, 10**9])
def test_batched_pages_flatten_as_page_by_page(emulator, most):
    emulator.set_faults({"seed": 4, "regions": {"us-east-1": {"malformed_rate": 0.01}}})
    pages = _walk(emulator, "arrow", "us-east-1")
    assert any(not isinstance(p.records, ArrowPage) for p in pages)  # runs get interrupted
    joined = list(batches(pages, most))
    assert sum(count for _, count in joined) == len(pages)
    if most > 1:
        assert len(joined) < len(pages)
    for records, count in joined:
        if isinstance(records, ArrowPage) and count > 1:
            assert len(records) - 50 < most  # a run stops at the page that reaches `most`
    by_page = _concat([_flat(p, REDACTOR) for p in pages])
    by_batch = _concat([flatten_page(r, LINEAGE, redactor=REDACTOR) for r, _ in joined])
    assert_same(by_batch, by_page)


def test_batches_keep_order_and_leave_other_pages_alone():
    def arrow(first: int, size: int) -> Page:
        ids = [{"CommandId": f"c{first + i}"} for i in range(size)]
        invocations = pa.array(ids, pa.struct([("CommandId", pa.string())]))
        return Page(ArrowPage(invocations, next_token=str(first)), None)

    pages = [
        arrow(0, 2),
        arrow(2, 2),
        Page([{"CommandId": "dict"}], None),
        arrow(4, 3),
        arrow(7, 1),
    ]
    joined = list(batches(pages, most=3))
    shapes = [
        (r.invocations.field("CommandId").to_pylist(), r.next_token, n)
        if isinstance(r, ArrowPage)
        else (r, n)
        for r, n in joined
    ]
    assert shapes == [
        (["c0", "c1", "c2", "c3"], "2", 2),
        ([{"CommandId": "dict"}], 1),
        (["c4", "c5", "c6"], "4", 1),
        (["c7"], "7", 1),
    ]
