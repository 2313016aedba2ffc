"""Decoding ListCommandInvocations records into the invocation and plugin tables.

Golden values are written out here; the property tests compare with
`tests/truth.py`'s field-by-field mapping, and judge mutated records with an
oracle of their own over botocore's model, not with the decoder's code.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.decode import (
    DERIVED_INVOCATION,
    DERIVED_PLUGIN,
    INVOCATION_COLUMNS,
    PLUGIN_COLUMNS,
    PLUGINS,
    decode_page,
    flatten_page,
    read_arrow,
    read_records,
)
from pipeline.flatten import FlatPage, Lineage
from pipeline.schema import COMMAND_PLUGINS_SCHEMA, INVOCATIONS_SCHEMA
from tests import truth
from tests.strategies import api_records, invocation_shape

ACCOUNT = "012345678901"
LINEAGE = Lineage(
    account_id=ACCOUNT, region="eu-central-1", run_id="run-0001", ingested_at_ms=1772433000000
)
INGESTED_AT = datetime(2026, 3, 2, 6, 30, tzinfo=UTC)
COMMAND_ID = "8c2f1f7e-3b5d-4f0e-9a41-6d2c7b1e0a55"
INSTANCE_ID = "i-0a1b2c3d4e5f60718"
REQUESTED_AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
REQUESTED_DATE = date(2026, 3, 2)
STARTED_AT = datetime(2026, 3, 2, 6, 0, 1, 250000, tzinfo=UTC)
FINISHED_AT = datetime(2026, 3, 2, 6, 0, 3, 789000, tzinfo=UTC)
ABSENT = object()

UNICODE_OUTPUT = "Grüße aus Köln: Größe 5 µs, Maß ß\n日本語の出力です。完了\nDone ✅🚀👩\u200d💻\n"
TRUNCATION_MARK = "\n---Output truncated---"
TRUNCATED_OUTPUT = ("Größe ✓ line\n" * 200)[: 2500 - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def invocation(**fields: Any) -> dict[str, Any]:
    """A wire-form record: 2026-03-02T06:00:00Z, Success; `ABSENT` drops a key."""
    record = {
        "CommandId": COMMAND_ID,
        "InstanceId": INSTANCE_ID,
        "RequestedDateTime": 1772431200.0,
        "Status": "Success",
        **fields,
    }
    return {k: v for k, v in record.items() if v is not ABSENT}


def plugin(**fields: Any) -> dict[str, Any]:
    record = {
        "Name": "aws:runShellScript",
        "Status": "Success",
        "ResponseCode": 0,
        "ResponseStartDateTime": 1772431201.25,
        "ResponseFinishDateTime": 1772431203.789,
        "Output": "ok\n",
        **fields,
    }
    return {k: v for k, v in record.items() if v is not ABSENT}


def flat_one(record: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    page = flatten_page([record], LINEAGE)
    assert page.rejected == []
    assert page.invocations.schema.equals(INVOCATIONS_SCHEMA, check_metadata=True)
    assert page.plugins.schema.equals(COMMAND_PLUGINS_SCHEMA, check_metadata=True)
    return page.invocations.to_pylist(), page.plugins.to_pylist()


def pick(row: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in expected}


# --- golden rows -------------------------------------------------------------------------

FULL_RECORD = {
    "CommandId": COMMAND_ID,
    "InstanceId": INSTANCE_ID,
    "InstanceName": "web-01.example.internal",
    "Comment": "nightly patch scan",
    "DocumentName": "AWS-RunPatchBaseline",
    "DocumentVersion": "$DEFAULT",
    "RequestedDateTime": 1772431200.0,
    "Status": "Failed",
    "StatusDetails": "Failed",
    "TraceOutput": "",
    "StandardOutputUrl": "https://s3.eu-central-1.amazonaws.com/ssm-out/stdout",
    "StandardErrorUrl": "https://s3.eu-central-1.amazonaws.com/ssm-out/stderr",
    "CommandPlugins": [
        {
            "Name": "PatchLinux",
            "Status": "Success",
            "StatusDetails": "Success",
            "ResponseCode": 0,
            "ResponseStartDateTime": 1772431201.25,
            "ResponseFinishDateTime": 1772431203.789,
            "Output": "Installed: 3\n",
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "OutputS3Region": "eu-central-1",
            "OutputS3BucketName": "ssm-output-012345678901",
            "OutputS3KeyPrefix": "patch/",
        },
        {
            "Name": "aws:runShellScript",
            "Status": "Failed",
            "StatusDetails": "Failed",
            "ResponseCode": 127,
            "ResponseStartDateTime": 1772431203.789,
            "ResponseFinishDateTime": 1772431204.0,
            "Output": "sh: 1: yum: not found\n\n----------ERROR-------\nfailed to run commands: exit status 127",
            "StandardOutputUrl": "https://s3.eu-central-1.amazonaws.com/ssm-out/1/stdout",
            "StandardErrorUrl": "https://s3.eu-central-1.amazonaws.com/ssm-out/1/stderr",
            "OutputS3Region": "eu-central-1",
            "OutputS3BucketName": "ssm-output-012345678901",
            "OutputS3KeyPrefix": "patch/",
        },
    ],
    "ServiceRole": "arn:aws:iam::012345678901:role/ssm-notify",
    "NotificationConfig": {
        "NotificationArn": "arn:aws:sns:eu-central-1:012345678901:ssm",
        "NotificationEvents": ["Failed", "TimedOut"],
        "NotificationType": "Invocation",
    },
    "CloudWatchOutputConfig": {
        "CloudWatchLogGroupName": "/aws/ssm/AWS-RunPatchBaseline",
        "CloudWatchOutputEnabled": True,
    },
}

_PLUGIN_KEY = {
    "account_id": ACCOUNT,
    "region": "eu-central-1",
    "command_id": COMMAND_ID,
    "instance_id": INSTANCE_ID,
    "requested_date": REQUESTED_DATE,
    "requested_date_time": REQUESTED_AT,
}
_LINEAGE_COLUMNS = {"run_id": "run-0001", "ingested_at": INGESTED_AT}


def test_full_record_golden_rows():
    invocations, plugins = flat_one(FULL_RECORD)
    assert invocations == [
        {
            "account_id": ACCOUNT,
            "region": "eu-central-1",
            "command_id": COMMAND_ID,
            "instance_id": INSTANCE_ID,
            "instance_name": "web-01.example.internal",
            "comment": "nightly patch scan",
            "document_name": "AWS-RunPatchBaseline",
            "document_version": "$DEFAULT",
            "requested_date_time": REQUESTED_AT,
            "requested_date": REQUESTED_DATE,
            "status": "Failed",
            "status_details": "Failed",
            "trace_output": "",
            "standard_output_url": "https://s3.eu-central-1.amazonaws.com/ssm-out/stdout",
            "standard_error_url": "https://s3.eu-central-1.amazonaws.com/ssm-out/stderr",
            "service_role": "arn:aws:iam::012345678901:role/ssm-notify",
            "notification_arn": "arn:aws:sns:eu-central-1:012345678901:ssm",
            "notification_events": ["Failed", "TimedOut"],
            "notification_type": "Invocation",
            "cloud_watch_log_group_name": "/aws/ssm/AWS-RunPatchBaseline",
            "cloud_watch_output_enabled": True,
            # The earliest plugin start and the latest plugin finish (the second plugin's).
            "plugins_started_date_time": STARTED_AT,
            "plugins_finished_date_time": datetime(2026, 3, 2, 6, 0, 4, tzinfo=UTC),
            **_LINEAGE_COLUMNS,
        }
    ]
    assert plugins == [
        {
            **_PLUGIN_KEY,
            "document_name": "AWS-RunPatchBaseline",
            "plugin_index": 0,
            "name": "PatchLinux",
            "status": "Success",
            "status_details": "Success",
            "response_code": 0,
            "response_start_date_time": STARTED_AT,
            "response_finish_date_time": FINISHED_AT,
            "output": "Installed: 3\n",
            "standard_output_url": "",
            "standard_error_url": "",
            "output_s3_region": "eu-central-1",
            "output_s3_bucket_name": "ssm-output-012345678901",
            "output_s3_key_prefix": "patch/",
            **_LINEAGE_COLUMNS,
        },
        {
            **_PLUGIN_KEY,
            "document_name": "AWS-RunPatchBaseline",
            "plugin_index": 1,
            "name": "aws:runShellScript",
            "status": "Failed",
            "status_details": "Failed",
            "response_code": 127,
            "response_start_date_time": FINISHED_AT,
            "response_finish_date_time": datetime(2026, 3, 2, 6, 0, 4, tzinfo=UTC),
            "output": "sh: 1: yum: not found\n\n----------ERROR-------\nfailed to run commands: exit status 127",
            "standard_output_url": "https://s3.eu-central-1.amazonaws.com/ssm-out/1/stdout",
            "standard_error_url": "https://s3.eu-central-1.amazonaws.com/ssm-out/1/stderr",
            "output_s3_region": "eu-central-1",
            "output_s3_bucket_name": "ssm-output-012345678901",
            "output_s3_key_prefix": "patch/",
            **_LINEAGE_COLUMNS,
        },
    ]


def test_minimal_record_leaves_every_optional_column_null():
    invocations, plugins = flat_one(
        {"CommandId": COMMAND_ID, "InstanceId": INSTANCE_ID, "RequestedDateTime": 1772431200}
    )
    assert invocations == [
        {
            "account_id": ACCOUNT,
            "region": "eu-central-1",
            "command_id": COMMAND_ID,
            "instance_id": INSTANCE_ID,
            "instance_name": None,
            "comment": None,
            "document_name": None,
            "document_version": None,
            "requested_date_time": REQUESTED_AT,
            "requested_date": REQUESTED_DATE,
            "status": None,
            "status_details": None,
            "trace_output": None,
            "standard_output_url": None,
            "standard_error_url": None,
            "service_role": None,
            "notification_arn": None,
            "notification_events": None,
            "notification_type": None,
            "cloud_watch_log_group_name": None,
            "cloud_watch_output_enabled": None,
            "plugins_started_date_time": None,
            "plugins_finished_date_time": None,
            **_LINEAGE_COLUMNS,
        }
    ]
    assert plugins == []


# --- named edge cases --------------------------------------------------------------------

_NO_NOTIFICATION = {
    "notification_arn": None,
    "notification_events": None,
    "notification_type": None,
}

EDGE_CASES = [
    pytest.param(
        invocation(CommandPlugins=[]),
        {"command_id": COMMAND_ID, "instance_id": INSTANCE_ID, "status": "Success"},
        [],
        id="no-plugins-empty-list",
    ),
    pytest.param(
        # What ListCommandInvocations(Details=false) returns: an empty plugin list.
        invocation(CommandPlugins=[], TraceOutput="", StandardOutputUrl="", StandardErrorUrl=""),
        {"trace_output": "", "standard_output_url": "", "standard_error_url": ""},
        [],
        id="details-false",
    ),
    pytest.param(
        invocation(CommandPlugins=ABSENT),
        {"command_id": COMMAND_ID, "requested_date_time": REQUESTED_AT},
        [],
        id="command-plugins-absent",
    ),
    pytest.param(
        invocation(
            Status="Pending",
            StatusDetails="Pending",
            CommandPlugins=[
                plugin(
                    Status="Pending",
                    StatusDetails="Pending",
                    ResponseCode=-1,
                    ResponseStartDateTime=ABSENT,
                    ResponseFinishDateTime=ABSENT,
                    Output="",
                )
            ],
        ),
        {"status": "Pending", "status_details": "Pending"},
        [
            {
                "plugin_index": 0,
                "status": "Pending",
                "response_code": -1,
                "response_start_date_time": None,
                "response_finish_date_time": None,
                "output": "",
            }
        ],
        id="pending-plugin-without-times",
    ),
    pytest.param(
        invocation(
            Status="InProgress",
            CommandPlugins=[
                plugin(Status="InProgress", ResponseCode=-1, ResponseFinishDateTime=ABSENT)
            ],
        ),
        {"status": "InProgress"},
        [
            {
                "status": "InProgress",
                "response_code": -1,
                "response_start_date_time": STARTED_AT,
                "response_finish_date_time": None,
            }
        ],
        id="in-progress-started-not-finished",
    ),
    pytest.param(
        invocation(
            CommandPlugins=[
                plugin(Name="aws:configurePackage"),
                plugin(Name="aws:runShellScript"),
                plugin(Name="aws:runPowerShellScript"),
            ]
        ),
        {},
        [
            {"plugin_index": 0, "name": "aws:configurePackage", **_PLUGIN_KEY},
            {"plugin_index": 1, "name": "aws:runShellScript", **_PLUGIN_KEY},
            {"plugin_index": 2, "name": "aws:runPowerShellScript", **_PLUGIN_KEY},
        ],
        id="plugin-index-zero-based-in-api-order",
    ),
    pytest.param(
        invocation(
            Comment="Größe prüfen — 日本 🚀", CommandPlugins=[plugin(Output=UNICODE_OUTPUT)]
        ),
        {"comment": "Größe prüfen — 日本 🚀"},
        [
            {
                "output": "Grüße aus Köln: Größe 5 µs, Maß ß\n日本語の出力です。完了\nDone ✅🚀👩\u200d💻\n"
            }
        ],
        id="unicode-output",
    ),
    pytest.param(
        invocation(CommandPlugins=[plugin(Output=TRUNCATED_OUTPUT)]),
        {},
        [{"output": TRUNCATED_OUTPUT}],
        id="truncated-output-2500-chars",
    ),
    pytest.param(
        invocation(NotificationConfig=ABSENT),
        _NO_NOTIFICATION,
        [],
        id="notification-config-absent",
    ),
    pytest.param(
        invocation(NotificationConfig={}),
        _NO_NOTIFICATION,
        [],
        id="notification-config-empty-object",
    ),
    pytest.param(
        invocation(
            NotificationConfig={
                "NotificationArn": "",
                "NotificationEvents": [],
                "NotificationType": "",
            }
        ),
        {"notification_arn": "", "notification_events": [], "notification_type": ""},
        [],
        id="notification-config-empty-values",
    ),
    pytest.param(
        invocation(
            NotificationConfig={
                "NotificationArn": "arn:aws:sns:eu-central-1:012345678901:ssm",
                "NotificationEvents": ["All"],
                "NotificationType": "Command",
            }
        ),
        {
            "notification_arn": "arn:aws:sns:eu-central-1:012345678901:ssm",
            "notification_events": ["All"],
            "notification_type": "Command",
        },
        [],
        id="notification-config-set",
    ),
    pytest.param(
        invocation(
            CloudWatchOutputConfig={"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False}
        ),
        {"cloud_watch_log_group_name": "", "cloud_watch_output_enabled": False},
        [],
        id="cloudwatch-output-enabled-false",
    ),
    pytest.param(
        invocation(CloudWatchOutputConfig={"CloudWatchLogGroupName": "/aws/ssm/run"}),
        {"cloud_watch_log_group_name": "/aws/ssm/run", "cloud_watch_output_enabled": None},
        [],
        id="cloudwatch-output-enabled-absent",
    ),
    pytest.param(
        invocation(CloudWatchOutputConfig=ABSENT),
        {"cloud_watch_log_group_name": None, "cloud_watch_output_enabled": None},
        [],
        id="cloudwatch-output-config-absent",
    ),
    pytest.param(
        invocation(
            RequestedDateTime=1772323199.999,
            CommandPlugins=[
                plugin(ResponseStartDateTime=1772323199.999, ResponseFinishDateTime=1772323200.0)
            ],
        ),
        {
            "requested_date_time": datetime(2026, 2, 28, 23, 59, 59, 999000, tzinfo=UTC),
            "requested_date": date(2026, 2, 28),
        },
        [
            {
                "requested_date": date(2026, 2, 28),
                "response_start_date_time": datetime(2026, 2, 28, 23, 59, 59, 999000, tzinfo=UTC),
                "response_finish_date_time": datetime(2026, 3, 1, tzinfo=UTC),
            }
        ],
        id="month-boundary-last-ms-of-february",
    ),
    pytest.param(
        invocation(RequestedDateTime=1772323200.0, CommandPlugins=[plugin()]),
        {
            "requested_date_time": datetime(2026, 3, 1, tzinfo=UTC),
            "requested_date": date(2026, 3, 1),
        },
        [{"requested_date": date(2026, 3, 1)}],
        id="month-boundary-first-ms-of-march",
    ),
    pytest.param(
        # The double is 1767225599.99900007...: just above the intended millisecond.
        invocation(RequestedDateTime=1767225599.999),
        {
            "requested_date_time": datetime(2025, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            "requested_date": date(2025, 12, 31),
        },
        [],
        id="epoch-float-noise-above",
    ),
    pytest.param(
        # The double is 1764201600.12299990...: just below the intended millisecond.
        invocation(RequestedDateTime=1764201600.123),
        {
            "requested_date_time": datetime(2025, 11, 27, 0, 0, 0, 123000, tzinfo=UTC),
            "requested_date": date(2025, 11, 27),
        },
        [],
        id="epoch-float-noise-below",
    ),
    pytest.param(
        invocation(RequestedDateTime=1772431200),
        {"requested_date_time": REQUESTED_AT, "requested_date": REQUESTED_DATE},
        [],
        id="epoch-integer-seconds",
    ),
    pytest.param(
        invocation(Status="Rebooting", CommandPlugins=[plugin(Status="Rebooting")]),
        {"status": "Rebooting"},
        [{"status": "Rebooting"}],
        id="unknown-status-verbatim",
    ),
    pytest.param(
        invocation(
            TriggeredBy="EventBridge",
            Targets=[{"Key": "tag:Role", "Values": ["web"]}],
            CommandPlugins=[plugin(ExitSignal=9, Architecture={"Arch": "arm64"})],
        ),
        {"command_id": COMMAND_ID, "status": "Success"},
        [{"name": "aws:runShellScript", "response_code": 0, "output": "ok\n"}],
        id="unknown-extra-fields-ignored",
    ),
    pytest.param(
        invocation(CommandPlugins=[plugin(ResponseCode=-2147483648)]),
        {},
        [{"response_code": -2147483648}],
        id="response-code-int32-min",
    ),
    pytest.param(
        invocation(CommandPlugins=[plugin(ResponseCode=2147483647)]),
        {},
        [{"response_code": 2147483647}],
        id="response-code-int32-max",
    ),
    pytest.param(
        invocation(InstanceName="", Comment="", StatusDetails="", ServiceRole="", TraceOutput=""),
        {
            "instance_name": "",
            "comment": "",
            "status_details": "",
            "service_role": "",
            "trace_output": "",
            "document_name": None,
        },
        [],
        id="empty-strings-stay-empty",
    ),
    pytest.param(
        invocation(CommandPlugins=[plugin()]),
        {"account_id": "012345678901", "region": "eu-central-1"},
        [{"account_id": "012345678901", "region": "eu-central-1"}],
        id="account-id-leading-zero-kept-as-text",
    ),
]


@pytest.mark.parametrize(("record", "expected", "expected_plugins"), EDGE_CASES)
def test_edge_case(record, expected, expected_plugins):
    invocations, plugins = flat_one(record)
    assert len(invocations) == 1
    assert pick(invocations[0], expected) == expected
    assert len(plugins) == len(expected_plugins)
    assert [
        pick(row, exp) for row, exp in zip(plugins, expected_plugins, strict=True)
    ] == expected_plugins


def test_truncated_output_is_byte_exact():
    assert len(TRUNCATED_OUTPUT) == 2500
    assert TRUNCATED_OUTPUT.endswith("\n---Output truncated---")
    page = flatten_page([invocation(CommandPlugins=[plugin(Output=TRUNCATED_OUTPUT)])], LINEAGE)
    stored = page.plugins.column("output")[0].as_buffer().to_pybytes()
    assert stored == TRUNCATED_OUTPUT.encode("utf-8")


# --- malformed records -------------------------------------------------------------------

VALID_A = invocation(CommandId="11111111-1111-4111-8111-111111111111", CommandPlugins=[plugin()])
VALID_B = invocation(
    CommandId="22222222-2222-4222-8222-222222222222",
    CommandPlugins=[plugin(), plugin(Name="aws:runPowerShellScript")],
)

MALFORMED = [
    pytest.param(invocation(CommandId=ABSENT), "CommandId", id="missing-command-id"),
    pytest.param(invocation(CommandId=""), "CommandId", id="empty-command-id"),
    pytest.param(invocation(CommandId=123), "CommandId", id="command-id-not-text"),
    pytest.param(invocation(InstanceId=ABSENT), "InstanceId", id="missing-instance-id"),
    pytest.param(
        invocation(RequestedDateTime=ABSENT), "RequestedDateTime", id="missing-requested-date-time"
    ),
    pytest.param(
        invocation(RequestedDateTime="yesterday"), "RequestedDateTime", id="requested-string"
    ),
    pytest.param(invocation(RequestedDateTime=math.nan), "RequestedDateTime", id="requested-nan"),
    pytest.param(
        invocation(RequestedDateTime=math.inf), "RequestedDateTime", id="requested-infinity"
    ),
    pytest.param(invocation(RequestedDateTime=True), "RequestedDateTime", id="requested-bool"),
    pytest.param(
        invocation(CommandPlugins=[plugin(ResponseCode="0")]),
        "ResponseCode",
        id="response-code-string",
    ),
    pytest.param(
        invocation(CommandPlugins=[plugin(ResponseCode=1.5)]),
        "ResponseCode",
        id="response-code-float",
    ),
    pytest.param(
        invocation(CommandPlugins=[plugin(ResponseCode=True)]),
        "ResponseCode",
        id="response-code-bool",
    ),
    pytest.param(
        invocation(CommandPlugins=[plugin(ResponseCode=2**31)]),
        "ResponseCode",
        id="response-code-beyond-int32",
    ),
    pytest.param(
        invocation(CommandPlugins=[plugin(ResponseStartDateTime="2026-03-02T06:00:01Z")]),
        "ResponseStartDateTime",
        id="plugin-timestamp-string",
    ),
    pytest.param(
        invocation(CommandPlugins=[plugin(), "aws:runShellScript"]),
        "CommandPlugins",
        id="plugin-not-an-object",
    ),
    pytest.param(
        invocation(CommandPlugins="aws:runShellScript"),
        "CommandPlugins",
        id="command-plugins-not-a-list",
    ),
    pytest.param(
        invocation(CommandPlugins={}),
        "CommandPlugins",
        id="command-plugins-empty-object",
    ),
    pytest.param(
        invocation(CommandPlugins=""),
        "CommandPlugins",
        id="command-plugins-empty-string",
    ),
    pytest.param(
        invocation(NotificationConfig={"NotificationEvents": "All"}),
        "NotificationEvents",
        id="notification-events-not-a-list",
    ),
    pytest.param(
        invocation(NotificationConfig={"NotificationEvents": ["All", 3]}),
        "NotificationEvents",
        id="notification-events-not-strings",
    ),
    pytest.param(
        invocation(NotificationConfig="arn:aws:sns:eu-central-1:012345678901:ssm"),
        "NotificationConfig",
        id="notification-config-not-an-object",
    ),
    pytest.param(
        invocation(CloudWatchOutputConfig={"CloudWatchOutputEnabled": "false"}),
        "CloudWatchOutputEnabled",
        id="cloudwatch-enabled-string",
    ),
    pytest.param("i-0a1b2c3d4e5f60718", "record", id="record-is-a-string"),
    pytest.param([FULL_RECORD], "record", id="record-is-a-list"),
    pytest.param(None, "record", id="record-is-null"),
]


@pytest.mark.parametrize(("bad", "field_name"), MALFORMED)
def test_malformed_record_is_rejected_and_page_survives(bad, field_name):
    page = flatten_page([VALID_A, bad, VALID_B], LINEAGE)
    assert [(_json(r.record), field_name in r.reason) for r in page.rejected] == [
        (_json(bad), True)
    ]
    assert page.invocations.column("command_id").to_pylist() == [
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
    ]
    assert page.plugins.select(["command_id", "plugin_index"]).to_pylist() == [
        {"command_id": "11111111-1111-4111-8111-111111111111", "plugin_index": 0},
        {"command_id": "22222222-2222-4222-8222-222222222222", "plugin_index": 0},
        {"command_id": "22222222-2222-4222-8222-222222222222", "plugin_index": 1},
    ]


def _json(value: Any) -> str:
    """A value as canonical JSON text: equal for equal records, NaN included."""
    return json.dumps(value, sort_keys=True)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        pytest.param(invocation(RequestedDateTime="yesterday"), "RequestedDateTime is not a timestamp: 'yesterday'", id="timestamp"),
        pytest.param(invocation(RequestedDateTime=None), "RequestedDateTime is missing", id="required-timestamp"),
        pytest.param(invocation(InstanceId=""), "InstanceId is missing", id="required-text"),
        pytest.param(invocation(CommandPlugins=[plugin(ResponseCode=2**31)]), "ResponseCode is not an int32: 2147483648", id="int32"),
        pytest.param(invocation(NotificationConfig=[]), "NotificationConfig is not an object: []", id="object"),
        pytest.param(invocation(CommandPlugins=[plugin(), 7]), "CommandPlugins[1] is not an object", id="plugin"),
        pytest.param(invocation(Comment="\ud800"), "Comment is not a string: '\\ud800'", id="lone-surrogate"),
    ],
)  # fmt: skip
def test_reason_names_the_member_in_words(record, reason):
    page = flatten_page([record], LINEAGE)
    assert [r.reason for r in page.rejected] == [reason]


# --- the column definition ---------------------------------------------------------------


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _leaves(shape: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], str]:
    """Each leaf member of the API shape by path, with its type; structures lifted."""
    leaves: dict[tuple[str, ...], str] = {}
    for name, member in shape.members.items():
        if name == PLUGINS:
            continue
        if member.type_name == "structure":
            leaves.update(_leaves(member, (*path, name)))
        else:
            kind = member.type_name
            leaves[(*path, name)] = f"list<{member.member.type_name}>" if kind == "list" else kind
    return leaves


_KINDS = {"string": "string", "timestamp": "timestamp", "int32": "integer", "bool": "boolean", "strings": "list<string>"}  # fmt: skip


@pytest.mark.parametrize(
    ("columns", "shape"),
    [
        pytest.param(INVOCATION_COLUMNS, lambda: invocation_shape(), id="invocation"),
        pytest.param(
            PLUGIN_COLUMNS, lambda: invocation_shape().members[PLUGINS].member, id="plugin"
        ),
    ],
)
def test_columns_are_every_leaf_of_the_api_shape_in_snake_case(columns, shape):
    """A member AWS adds to the model fails this test on the next botocore upgrade."""
    assert {c.path: _KINDS[c.kind] for c in columns} == _leaves(shape())
    assert [c.name for c in columns] == [snake(c.path[-1]) for c in columns]


def test_columns_and_derived_columns_are_the_schemas():
    lineage = {"account_id", "region", "run_id", "ingested_at"}
    assert {c.name for c in INVOCATION_COLUMNS} | set(DERIVED_INVOCATION) | lineage == set(
        INVOCATIONS_SCHEMA.names
    )
    assert {c.name for c in PLUGIN_COLUMNS} | set(DERIVED_PLUGIN) | lineage == set(
        COMMAND_PLUGINS_SCHEMA.names
    )


# --- the properties ------------------------------------------------------------------------


def _body(records: list[Any]) -> bytes:
    return json.dumps({"CommandInvocations": records, "NextToken": "AAEAAQ=="}).encode()


def _truth(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows `tests/truth.py` expects of `records`, without the partition month."""
    region, account = LINEAGE.region, LINEAGE.account_id
    invocations = [truth.expected_invocation(r, account, region) for r in records]
    plugins = [p for r in records for p in truth.expected_plugins(r, account, region)]
    return _without_month(invocations), _without_month(plugins)


def _without_month(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "requested_month"} for row in rows]


def assert_rows(page: FlatPage, records: list[dict[str, Any]]) -> None:
    invocations, plugins = _truth(records)
    assert page.invocations.schema.equals(INVOCATIONS_SCHEMA, check_metadata=True)
    assert page.plugins.schema.equals(COMMAND_PLUGINS_SCHEMA, check_metadata=True)
    assert truth.plain_rows(page.invocations) == invocations
    assert truth.plain_rows(page.plugins) == plugins


@settings(max_examples=200, deadline=None)
@given(records=st.lists(api_records(), max_size=4))
def test_any_valid_page_decodes_to_the_expected_rows_on_the_fast_road(records):
    body = _body(records)
    page = decode_page(body, LINEAGE)
    assert page.rejected == [] and page.next_token == "AAEAAQ=="
    assert_rows(page, records)
    assert read_arrow(body) is not None, "a valid page takes the fast road"
    assert read_records(body).records.equals(read_arrow(body).records)
    with tempfile.TemporaryDirectory() as tmp:
        for name, table in (("invocations", page.invocations), ("plugins", page.plugins)):
            path = os.path.join(tmp, f"{name}.parquet")
            pq.write_table(table, path)
            assert pq.read_table(path).equals(table)


_INT32 = (-(2**31), 2**31 - 1)


def _storable(value: Any, shape: Any) -> bool:
    """Whether `value` can stand for `shape` in the lake: this test's own reading of the model."""
    if value is None:
        return True
    kind = shape.type_name
    if kind == "string":
        return isinstance(value, str) and not any("\ud800" <= c <= "\udfff" for c in value)
    if kind == "timestamp":
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and math.isfinite(value) and -62135596800 <= value <= 253402300799.999
    if kind == "integer":
        return type(value) is int and _INT32[0] <= value <= _INT32[1]
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list) and all(
            item is not None and _storable(item, shape.member) for item in value
        )
    return isinstance(value, dict) and all(
        _storable(value.get(name), member) for name, member in shape.members.items()
    )


def storable(record: Any) -> bool:
    required = ("CommandId", "InstanceId", "RequestedDateTime")
    return (
        isinstance(record, dict)
        and _storable(record, invocation_shape())
        and all(record.get(name) not in (None, "") for name in required)
    )


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.just("a\ud800"),
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
    ("NotificationConfig", "NotificationEvents", 0),
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


@settings(max_examples=300, deadline=None)
@given(
    records=st.lists(api_records(), max_size=3),
    mutations=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(_PATHS), _JSON | st.just(_DROP)), max_size=3
    ),
)
def test_a_mutated_page_quarantines_exactly_its_bad_records(records, mutations):
    """Every record the oracle finds storable is decoded as truth.py expects, in order;
    every other record is set aside, as it came, with a reason."""
    for index, path, new in mutations:
        if index < len(records):
            records[index] = _mutated(records[index], path, new)
    page = decode_page(_body(records), LINEAGE)
    good = [r for r in records if storable(r)]
    assert_rows(page, good)
    assert [_json(r.record) for r in page.rejected] == [
        _json(r) for r in records if not storable(r)
    ]
    assert all(r.reason for r in page.rejected)


def test_empty_page_gives_empty_tables_with_the_schemas():
    page = flatten_page([], LINEAGE)
    assert page.invocations.equals(INVOCATIONS_SCHEMA.empty_table())
    assert page.plugins.equals(COMMAND_PLUGINS_SCHEMA.empty_table())
    assert isinstance(page.invocations, pa.Table)
