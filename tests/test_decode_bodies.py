"""Response bodies: the two roads to one decoded page, and botocore handing them over.

A body pyarrow.json can prove storable takes the fast road; any other body
takes json.loads and the per-record check, which sets bad records aside. The
edge cases below (wrong kinds, duplicate members, bad UTF-8, NaN and absurd
timestamps, nulls) pin which road a body takes and what comes out of the one
function either way. Bodies also go over HTTP to a real client, whose
`before-parse` hook hands them to the decoder.
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
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.decode import (
    WIRE_SCHEMA,
    Page,
    _check_utf8,
    decode_page,
    flatten,
    parse_page,
    read_arrow,
    read_page,
    read_records,
    settle,
)
from pipeline.errors import MalformedResponseError
from pipeline.extract import PAGE, AwsSettings, decoding, invocation_pages, newest_requested_ms
from pipeline.flatten import FlatPage, Lineage
from pipeline.paging import PageRetry
from pipeline.redact import Redactor
from pipeline.walk import BATCH_RECORDS, batches
from tests import truth
from tests.conftest_emulator import EMULATOR_ACCOUNT
from tests.strategies import invocation_shape

LINEAGE = Lineage(
    account_id="012345678901",
    region="eu-central-1",
    run_id="run-0001",
    ingested_at_ms=1772433000000,
)
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
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def canned() -> Iterator[Callable[[bytes, int], Any]]:
    """`canned(body, status)`: a real client whose endpoint answers every request so."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    aws = AwsSettings(endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", max_attempts=1)
    client = decoding(aws.client(aws.session(), "ssm", "eu-central-1"))

    def answer(payload: bytes, status: int = 200) -> Any:
        server.body, server.status = payload, status  # type: ignore[attr-defined]
        return client

    yield answer
    server.shutdown()
    server.server_close()


def _flat(page: Page, redactor: Redactor | None = None) -> FlatPage:
    return flatten(page, LINEAGE, redactor)


def assert_same(a: FlatPage, b: FlatPage) -> None:
    assert a.invocations.schema.equals(b.invocations.schema, check_metadata=True)
    assert a.plugins.schema.equals(b.plugins.schema, check_metadata=True)
    assert a.invocations.equals(b.invocations)
    assert a.plugins.equals(b.plugins)
    assert a.rejected == b.rejected
    assert a.next_token == b.next_token


def assert_fast(payload: bytes) -> None:
    """The fast road takes the page, and the per-record road agrees with it."""
    fast = read_arrow(payload)
    assert fast is not None
    assert read_page(payload) == fast
    for redactor in (None, REDACTOR):
        assert_same(_flat(fast, redactor), _flat(read_records(payload), redactor))


def assert_declined(payload: bytes) -> FlatPage:
    """The fast road hands the page over: what comes out is the per-record road's."""
    assert read_arrow(payload) is None
    flat = decode_page(payload, LINEAGE)
    assert_same(flat, _flat(read_records(payload)))
    return flat


# --- the wire schema ---------------------------------------------------------------------

_KINDS = {"string": "string", "timestamp": "double", "integer": "int32", "boolean": "bool"}


def _wire_type(shape: Any) -> Any:
    """The Arrow type the API's shape arrives as, by a rule of this test's own."""
    kind = shape.type_name
    if kind == "list":
        return [_wire_type(shape.member)]
    if kind == "structure":
        return {name: _wire_type(member) for name, member in shape.members.items()}
    return _KINDS[kind]


def _arrow_type(kind: pa.DataType) -> Any:
    if pa.types.is_list(kind):
        return [_arrow_type(kind.value_type)]
    if pa.types.is_struct(kind):
        return {f.name: _arrow_type(f.type) for f in kind}
    return str(kind)


def test_wire_schema_is_the_api_shape_member_for_member():
    assert _arrow_type(WIRE_SCHEMA.field("CommandInvocations").type) == [
        _wire_type(invocation_shape())
    ]
    assert WIRE_SCHEMA.field("NextToken").type == "string"


# --- pages the fast road takes -------------------------------------------------------------

ACCEPTED = [
    pytest.param(body([record(), other()]), id="full-records"),
    pytest.param(body([]), id="empty-page-with-token"),
    pytest.param(body([], token=None), id="empty-page-null-token"),
    pytest.param(b'{"CommandInvocations":[]}', id="empty-page-no-token"),
    pytest.param(body([record()], token=""), id="empty-token-is-no-token"),
    pytest.param(b'{"NextToken":"x"}', id="no-invocations-member"),
    pytest.param(body(None), id="null-invocations"),
    pytest.param(body([record(CommandPlugins=[])]), id="empty-plugin-list"),
    pytest.param(body([record(CommandPlugins=None)]), id="missing-plugin-list"),
    pytest.param(
        b'{"CommandInvocations":[{"CommandId":"c","InstanceId":"i","RequestedDateTime":1,'
        b'"CommandPlugins":null,"NotificationConfig":null,"CloudWatchOutputConfig":null,'
        b'"Comment":null,"CommandPlugins2":1}]}',
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
        id="plugins-with-missing-members",
    ),
    pytest.param(body([record(NotificationConfig={})]), id="empty-notification-config"),
    pytest.param(body([record(NotificationConfig={"NotificationEvents": []})]), id="no-events"),
    pytest.param(
        body([record(NotificationConfig={"NotificationEvents": ["All", "", "Success"]})]),
        id="notification-events",
    ),
    pytest.param(
        body([record(CloudWatchOutputConfig={"CloudWatchOutputEnabled": False})]),
        id="cloud-watch-false",
    ),
    pytest.param(
        body([record(InstanceName="Grüße ✅ 日本語 👩\u200d💻", Comment='\u0000\t\n"\\/')]),
        id="unicode-and-escapes",
    ),
    pytest.param(
        b'{"CommandInvocations":[{"Command\\u0049d":"\\u00e9\\ud83d\\ude00\\u0000",'
        b'"InstanceId":"i","RequestedDateTime":1772431200.5}],"NextToken":"\\u0041"}',
        id="unicode-escapes-in-keys-and-values",
    ),
    pytest.param(
        body(
            [record(RequestedDateTime=1772431200, CommandPlugins=[plugin(ResponseStartDateTime=1)])]
        ),
        id="integer-timestamps",
    ),
    pytest.param(
        body(
            [
                record(RequestedDateTime=-86400.001),
                other(RequestedDateTime=-0.0),
                record(InstanceId="i-2", RequestedDateTime=253402300799.999),
                record(InstanceId="i-3", RequestedDateTime=-62135596800),
            ]
        ),
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
        id="response-code-int32-limits",
    ),
    pytest.param(
        b'{"CommandInvocations":[{"CommandId":"c","InstanceId":"i","RequestedDateTime":1.5,'
        b'"CommandPlugins":[{"ResponseCode":-0}]}]}',
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
        id="unknown-members-anywhere-even-twice",
    ),
    pytest.param(
        json.dumps({"CommandInvocations": [record()]}, indent=2).encode(), id="pretty-printed"
    ),
    pytest.param(b'\xef\xbb\xbf{"CommandInvocations":[]}', id="utf8-bom"),
    pytest.param(
        body(
            [
                record(InstanceId=f"i-{n}", CommandPlugins=[plugin(Output="ü" * 2500)] * 10)
                for n in range(20)
            ]
        ),
        id="larger-than-a-default-block",
    ),
]


@pytest.mark.parametrize("payload", ACCEPTED)
def test_fast_road_takes_valid_pages_and_agrees(payload):
    assert_fast(payload)


def test_rounding_is_pythons_round_of_the_same_product():
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
    assert_fast(body(records))
    page = decode_page(body(records), LINEAGE)
    expected = [round(v * 1000) for v in values]
    assert truth.plain_rows(
        page.invocations.select(["requested_date_time", "run_id", "ingested_at"])
    ) == [{"requested_date_time": ms} for ms in expected]


# --- pages the fast road hands over --------------------------------------------------------


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
        _plugin_with(ResponseCode=1.0), "ResponseCode is not an int32: 1.0", id="float-1.0-code"
    ),
    pytest.param(
        _plugin_with(ResponseCode=1.5), "ResponseCode is not an int32: 1.5", id="float-code"
    ),
    pytest.param(
        _raw(
            b'{"CommandId":"c","InstanceId":"i","RequestedDateTime":1,"CommandPlugins":[{"ResponseCode":1e2}]}'
        ),
        "ResponseCode is not an int32: 100.0",
        id="exponent-code",
    ),
    pytest.param(
        _plugin_with(ResponseCode=True), "ResponseCode is not an int32: True", id="bool-code"
    ),
    pytest.param(
        _plugin_with(ResponseCode="0"), "ResponseCode is not an int32: '0'", id="string-code"
    ),
    pytest.param(
        _plugin_with(ResponseCode=2**31),
        "ResponseCode is not an int32: 2147483648",
        id="code-above-int32",
    ),
    pytest.param(
        _plugin_with(ResponseCode=-(2**31) - 1),
        "ResponseCode is not an int32: -2147483649",
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
        "RequestedDateTime is missing",
        id="no-requested-time",
    ),
    pytest.param(
        _raw(b'{"CommandId":"c","InstanceId":"i","RequestedDateTime":null}'),
        "RequestedDateTime is missing",
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
    # text pyarrow.json refuses and json.loads takes
    pytest.param(
        _raw(b'{"CommandId":"\\ud800","InstanceId":"i","RequestedDateTime":1}'),
        "CommandId is not a string: '\\ud800'",
        id="lone-surrogate",
    ),
    pytest.param(
        _with(RequestedDateTime=253402300800.0),
        "RequestedDateTime is not a timestamp: 253402300800.0",
        id="just-after-year-9999",
    ),
    pytest.param(
        _with(RequestedDateTime=-62135596800.001),
        "RequestedDateTime is not a timestamp: -62135596800.001",
        id="just-before-year-1",
    ),
]


@pytest.mark.parametrize(("payload", "reason"), DECLINED)
def test_fast_road_hands_doubtful_pages_to_the_per_record_road(payload, reason):
    flat = assert_declined(payload)
    assert [r.reason for r in flat.rejected] == ([reason] if reason else [])
    if reason:
        assert flat.invocations.num_rows == 2, "the valid records around the bad one are kept"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"CommandInvocations":[]}\n{"CommandInvocations":[]}', id="two-values"),
        pytest.param(b'{"CommandInvocations":[]} x', id="trailing-garbage"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"CommandInvocations":[{"CommandId":"a\tb"}]}', id="raw-control-char"),
        pytest.param(b'{"CommandInvocations":[{"CommandId":"\xff"}]}', id="invalid-utf8"),
        pytest.param(body("abc"), id="string-invocations"),
        pytest.param(body({}), id="object-invocations"),
        pytest.param(body([record()], token=5), id="number-token"),
        pytest.param(b"<html>502 Bad Gateway</html>", id="a-proxy-page"),
    ],
)
def test_a_body_that_is_not_a_page_fails_the_page(payload):
    """Not one record can be trusted: the page is retried (a 5xx's budget), never half-read."""
    with pytest.raises(MalformedResponseError, match="page") as failure:
        decode_page(payload, LINEAGE)
    assert failure.value.code == "MalformedResponse"


def test_an_empty_body_is_an_empty_last_page_as_for_botocore():
    page = decode_page(b"", LINEAGE)
    assert page.invocations.num_rows == page.plugins.num_rows == 0
    assert page.next_token is None and page.rejected == []


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


# --- through botocore ------------------------------------------------------------------------


def test_botocore_hands_the_body_to_the_decoder_and_parses_nothing(canned):
    payload = body([record(), other()], token="next-one")
    response = canned(payload).list_command_invocations(MaxResults=2)
    assert "CommandInvocations" not in response, "botocore's parser was given no body"
    assert response["NextToken"] == "next-one"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert_same(_flat(response[PAGE]), decode_page(payload, LINEAGE))


def test_errors_are_still_parsed_by_botocore(canned):
    payload = json.dumps({"__type": "InvalidNextToken", "message": "The token is not valid."})
    with pytest.raises(ClientError) as failure:
        canned(payload.encode(), 400).list_command_invocations(NextToken="x")
    assert failure.value.response["Error"]["Code"] == "InvalidNextToken"
    assert PAGE not in failure.value.response


def test_the_hook_is_registered_once_however_often_asked(canned):
    client = canned(body([record()]))
    decoding(decoding(client))
    assert len(_flat(client.list_command_invocations()[PAGE]).invocations) == 1


def _walk(emulator, region: str, settled: bool = True) -> list[Page]:
    aws = AwsSettings(endpoint_url=emulator.url, max_attempts=1)
    client = aws.client(aws.session(), "ssm", region)
    retry = PageRetry(attempts=0)
    return list(invocation_pages(client, {}, retry=retry, region=region, settled=settled))


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_emulator_pages_decode_to_the_ground_truth(emulator, region):
    pages = _walk(emulator, region)
    assert len(pages) > 3
    flat = _concat([_flat(p) for p in pages])
    records = emulator.ground_truth(EMULATOR_ACCOUNT, region)
    lineage = LINEAGE.account_id, LINEAGE.region
    expected = [truth.expected_invocation(r, *lineage) for r in records]
    plugins = [p for r in records for p in truth.expected_plugins(r, *lineage)]
    assert truth.plain_rows(flat.invocations) == _without_month(expected)
    assert truth.plain_rows(flat.plugins) == _without_month(plugins)


def _without_month(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "requested_month"} for row in rows]


def test_emulator_pages_with_malformed_records_set_exactly_those_aside(emulator):
    emulator.set_faults({"seed": 4, "regions": {"us-east-1": {"malformed_rate": 0.01}}})
    bad = emulator.malformed_keys(EMULATOR_ACCOUNT, "us-east-1")
    pages = _walk(emulator, "us-east-1")
    rejected = [r.record for p in pages for r in p.rejected]
    keys = {(r.get("CommandId"), r.get("InstanceId")) for r in rejected}
    assert len(rejected) == len(bad) > 0
    assert {i for _, i in keys} == {i for _, i in bad}
    stored = {(c, i) for p in pages for c, i in zip(*_ids(p), strict=True)}
    assert not stored & bad
    assert len(stored) + len(bad) == len(emulator.ground_truth(EMULATOR_ACCOUNT, "us-east-1"))


def _ids(page: Page) -> tuple[list[str], list[str]]:
    return page.records.field("CommandId").to_pylist(), page.records.field("InstanceId").to_pylist()


def test_redaction_masks_output_and_trace_on_both_roads():
    payload = body([record()])
    for page in (read_arrow(payload), read_records(payload)):
        assert page is not None
        flat = _flat(page, REDACTOR)
        assert flat.invocations["trace_output"].to_pylist() == ["key [REDACTED] in trace"]
        assert flat.plugins["output"].to_pylist() == ["Installed: [REDACTED]\nGrüße ✅"] * 2


def test_newest_requested_ms_is_the_first_record_of_the_newest_page(emulator):
    aws = AwsSettings(endpoint_url=emulator.url, max_attempts=1)
    newest = newest_requested_ms(aws.client(aws.session(), "ssm", "us-east-1"))
    records = emulator.ground_truth(EMULATOR_ACCOUNT, "us-east-1")
    assert newest == round(max(r["RequestedDateTime"] for r in records) * 1000)


# --- pages flattened together, as the walk does ----------------------------------------------


def _concat(flats: list[FlatPage]) -> FlatPage:
    return FlatPage(
        invocations=pa.concat_tables([f.invocations for f in flats]).combine_chunks(),
        plugins=pa.concat_tables([f.plugins for f in flats]).combine_chunks(),
        rejected=[r for f in flats for r in f.rejected],
        next_token=flats[-1].next_token,
    )


def test_a_run_of_pages_is_checked_at_once_and_only_a_bad_page_goes_record_by_record():
    bad = [record(CommandId=""), other()]
    bodies = [body([record()]), body(bad), body([other()], token=None)]
    pages = [parse_page(b) for b in bodies]
    assert all(page.body is not None for page in pages), "pyarrow.json reads all three"
    joined = settle(pages)
    one_by_one = [read_page(b) for b in bodies]
    assert joined.body is None and joined.next_token is None
    assert joined.records.equals(pa.concat_arrays([page.records for page in one_by_one]))
    assert joined.rejected == one_by_one[1].rejected
    assert [r.reason for r in joined.rejected] == ["CommandId is missing"]
    assert len(joined) == 3
    # An unsettled page is never flattened as it stands.
    assert_same(_flat(pages[1]), decode_page(bodies[1], LINEAGE))


@pytest.mark.parametrize("most", [1, 120, BATCH_RECORDS, 10**9])
def test_batched_pages_flatten_as_page_by_page(emulator, most):
    emulator.set_faults({"seed": 4, "regions": {"us-east-1": {"malformed_rate": 0.01}}})
    pages = _walk(emulator, "us-east-1", settled=False)
    assert any(settle([page]).rejected for page in pages), "some pages hold bad records"
    joined = list(batches(pages, most))
    assert sum(count for _, count in joined) == len(pages)
    if most > 1:
        assert len(joined) < len(pages)
    for page, count in joined:
        if count > 1:
            assert len(page) - 50 < most  # a run stops at the page that reaches `most`
    by_page = _concat([_flat(settle([p]), REDACTOR) for p in pages])
    by_batch = _concat([_flat(p, REDACTOR) for p, _ in joined])
    assert_same(by_batch, by_page)
