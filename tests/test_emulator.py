"""The emulator over HTTP, through the real boto3 client and the real AWS CLI."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from emulator import server
from tests.conftest_emulator import EMULATOR_ACCOUNT, EMULATOR_NOW, EMULATOR_REGIONS

ACCOUNT = EMULATOR_ACCOUNT
REGION = "us-east-1"
AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260302/us-east-1/ssm/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64
)
SSM_HEADERS = {"Authorization": AUTH, "X-Amz-Target": "AmazonSSM.ListCommandInvocations"}


def _ms(value) -> int:
    """Epoch ms from the wire (seconds) or from botocore (an aware datetime)."""
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    return round(value * 1000)


def _normalise(record: dict) -> dict:
    out = dict(record, RequestedDateTime=_ms(record["RequestedDateTime"]))
    plugins = []
    for plugin in record["CommandPlugins"]:
        plugin = dict(plugin)
        for key in ("ResponseStartDateTime", "ResponseFinishDateTime"):
            if key in plugin:
                plugin[key] = _ms(plugin[key])
        plugins.append(plugin)
    out["CommandPlugins"] = plugins
    return out


def _key(record: dict) -> tuple[str, str]:
    return record["CommandId"], record["InstanceId"]


def _walk(client, **params) -> list[dict]:
    pages = client.get_paginator("list_command_invocations").paginate(**params)
    return [record for page in pages for record in page["CommandInvocations"]]


def _iso(ms: int, style: str = "Z") -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}"
    return text + ("Z" if style == "Z" else "+00:00")


def _error(call, *args, **params) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(*args, **params)
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


# ---- paging ---------------------------------------------------------------------------


def test_paginator_walks_everything_over_many_pages_and_equals_ground_truth(
    emulator, emulator_client
):
    client = emulator_client()
    pages = list(
        client.get_paginator("list_command_invocations").paginate(
            Details=True, PaginationConfig={"PageSize": 50}
        )
    )
    records = [r for page in pages for r in page["CommandInvocations"]]
    truth = emulator.ground_truth(ACCOUNT, REGION)
    assert len(pages) >= 5
    assert all(len(page["CommandInvocations"]) == 50 for page in pages[:-1])
    assert "NextToken" not in pages[-1]
    assert [_normalise(r) for r in records] == [_normalise(r) for r in truth]
    requested = [r["RequestedDateTime"] for r in truth]
    assert requested == sorted(requested, reverse=True)


def test_ground_truth_is_the_json_on_the_wire(emulator):
    request = urllib.request.Request(
        emulator.url,
        data=json.dumps({"Details": True, "MaxResults": 50}).encode(),
        headers={
            "Authorization": AUTH,
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AmazonSSM.ListCommandInvocations",
        },
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Type"] == "application/x-amz-json-1.1"
        assert len(response.headers["x-amzn-RequestId"]) == 36
        body = json.loads(response.read())
    assert body["CommandInvocations"] == emulator.ground_truth(ACCOUNT, REGION)[:50]
    assert isinstance(body["NextToken"], str)


def test_details_false_or_absent_gives_empty_plugin_lists(emulator_client):
    client = emulator_client()
    assert all(r["CommandPlugins"] == [] for r in _walk(client, Details=False))
    first = client.list_command_invocations()
    assert len(first["CommandInvocations"]) == 50  # MaxResults defaults to the maximum
    assert all(r["CommandPlugins"] == [] for r in first["CommandInvocations"])


def test_regions_are_separate_and_empty_regions_answer_empty(emulator, emulator_client):
    us = {_key(r) for r in emulator.ground_truth(ACCOUNT, "us-east-1")}
    eu = {_key(r) for r in _walk(emulator_client(region="eu-west-1"))}
    assert us and eu and not us & eu
    assert (
        emulator_client(region="ca-central-1").list_command_invocations()["CommandInvocations"]
        == []
    )


def test_paging_stays_correct_when_the_clock_moves_between_pages(emulator, emulator_client):
    client = emulator_client()
    before = {_key(r) for r in emulator.ground_truth(ACCOUNT, REGION)}
    first = client.list_command_invocations(Details=True, MaxResults=50)
    emulator.clock.advance(timedelta(days=1, hours=3))
    after = {_key(r) for r in emulator.ground_truth(ACCOUNT, REGION)}
    assert after - before and before - after  # new ones arrived, old ones expired
    rest = _walk(client, Details=True, PaginationConfig={"StartingToken": first["NextToken"]})
    seen = [_key(r) for r in first["CommandInvocations"] + rest]
    assert len(seen) == len(set(seen))
    assert before & after <= set(seen)
    assert not (after - before) & set(seen)  # newer than the first page: not this walk's


# ---- validation -----------------------------------------------------------------------

_FILTER = {"key": "Status", "value": "Success"}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"MaxResults": 0}, "ValidationException"),
        ({"MaxResults": 51}, "ValidationException"),
        ({"Filters": []}, "ValidationException"),
        ({"Filters": [_FILTER] * 6}, "ValidationException"),
        ({"Filters": [{"key": "Bogus", "value": "x"}]}, "ValidationException"),
        ({"Filters": [{"key": "ExecutionStage", "value": "Executing"}]}, "InvalidFilterKey"),
        ({"Filters": [{"key": "Status", "value": ""}]}, "ValidationException"),
        ({"Filters": [{"key": "DocumentName", "value": "x" * 129}]}, "ValidationException"),
        ({"Filters": [{"key": "InvokedAfter", "value": "yesterday"}]}, "ValidationException"),
        ({"Filters": [{"key": "InvokedBefore", "value": "2026-13-01T00:00:00Z"}]}, "ValidationException"),
        ({"Filters": [{"key": "Status", "value": "Incomplete"}]}, "ValidationException"),
        ({"CommandId": "abc"}, "ValidationException"),
        ({"CommandId": "a" * 37}, "ValidationException"),
        ({"InstanceId": "i-123"}, "ValidationException"),
        ({"InstanceId": "mi-0123456789abcdef"}, "ValidationException"),
        ({"NextToken": "garbage"}, "InvalidNextToken"),
        ({"NextToken": "QUFBQUFBQUFBQUFBQUFBQUFBQUFB"}, "InvalidNextToken"),
    ],
)  # fmt: skip
def test_invalid_requests_fail_like_the_service(emulator_client, params, code):
    client = emulator_client(parameter_validation=False)
    assert _error(client.list_command_invocations, **params)[:2] == (code, 400)


def test_validation_messages_follow_the_aws_style(emulator_client):
    client = emulator_client(parameter_validation=False)
    _, _, message = _error(client.list_command_invocations, MaxResults=0)
    assert message == (
        "1 validation error detected: Value '0' at 'maxResults' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )
    _, _, message = _error(
        client.list_command_invocations, MaxResults=99, Filters=[{"key": "Nope", "value": "x"}]
    )
    assert message.startswith("2 validation errors detected: Value '99' at 'maxResults'")
    assert "Value 'Nope' at 'filters.1.member.key' failed to satisfy constraint: Member must " \
        "satisfy enum value set: [InvokedAfter, InvokedBefore, Status, ExecutionStage, " \
        "DocumentName]" in message  # fmt: skip


def test_valid_but_unknown_ids_give_an_empty_list(emulator_client):
    client = emulator_client()
    for params in (
        {"CommandId": "00000000-0000-4000-8000-000000000000"},
        {"InstanceId": "i-0000000000000000f"},
        {"InstanceId": "mi-0123456789abcdef0"},
    ):
        response = client.list_command_invocations(**params)
        assert response["CommandInvocations"] == []
        assert "NextToken" not in response


def test_command_and_instance_ids_select_their_records(emulator, emulator_client):
    truth = emulator.ground_truth(ACCOUNT, REGION)
    command_id, instance_id = truth[10]["CommandId"], truth[10]["InstanceId"]
    by_command = _walk(emulator_client(), CommandId=command_id)
    assert {_key(r) for r in by_command} == {_key(r) for r in truth if r["CommandId"] == command_id}
    by_instance = _walk(emulator_client(), InstanceId=instance_id, Details=True)
    expected = [r for r in truth if r["InstanceId"] == instance_id]
    assert [_normalise(r) for r in by_instance] == [_normalise(r) for r in expected]


def test_tampered_and_foreign_tokens_are_refused(emulator_client):
    client = emulator_client()
    token = client.list_command_invocations(MaxResults=5)["NextToken"]
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    assert _error(client.list_command_invocations, NextToken=flipped)[0] == "InvalidNextToken"
    other_region = emulator_client(region="eu-west-1")
    assert _error(other_region.list_command_invocations, NextToken=token)[0] == "InvalidNextToken"
    other_query = {"NextToken": token, "Filters": [_FILTER]}
    assert _error(client.list_command_invocations, **other_query)[0] == "InvalidNextToken"


def test_a_token_from_another_emulator_is_refused(emulator_client, emulator):
    token = emulator_client().list_command_invocations(MaxResults=5)["NextToken"]
    with server.Emulator(emulator.spec) as other:
        body = json.dumps({"NextToken": token, "MaxResults": 5}).encode()
        status, answer = _raw(other.url, SSM_HEADERS, body)
    assert (status, json.loads(answer)["__type"]) == (400, "InvalidNextToken")


def test_internal_errors_are_500s(emulator_client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(server, "history", broken)
    code, status, _ = _error(emulator_client().list_command_invocations)
    assert (code, status) == ("InternalServerError", 500)


def test_unknown_operations_and_bad_json(emulator, emulator_client):
    client = emulator_client()
    code, status, _ = _error(
        client._make_api_call, "DescribeDocument", {"Name": "AWS-RunShellScript"}
    )
    assert (code, status) == ("UnknownOperationException", 400)
    request = urllib.request.Request(
        emulator.url,
        data=b"{not json",
        headers={"Authorization": AUTH, "X-Amz-Target": "AmazonSSM.ListCommandInvocations"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["__type"] == "SerializationException"


def test_regions_that_are_not_enabled_refuse_the_credentials(emulator_client):
    client = emulator_client(region="af-south-1")
    assert _error(client.list_command_invocations)[:2] == ("UnrecognizedClientException", 400)


# ---- filters --------------------------------------------------------------------------


def _filtered(client, *filters: tuple[str, str]) -> set[tuple[str, str]]:
    pairs = [{"key": key, "value": value} for key, value in filters]
    return {_key(r) for r in _walk(client, Filters=pairs)}


def test_invoked_after_and_before_are_inclusive_to_the_millisecond(emulator, emulator_client):
    client = emulator_client()
    truth = emulator.ground_truth(ACCOUNT, REGION)
    ms = _ms(truth[len(truth) // 2]["RequestedDateTime"])
    at = {_key(r) for r in truth if _ms(r["RequestedDateTime"]) == ms}
    assert _filtered(client, ("InvokedAfter", _iso(ms)), ("InvokedBefore", _iso(ms, "+"))) == at
    assert not _filtered(client, ("InvokedAfter", _iso(ms + 1)), ("InvokedBefore", _iso(ms + 1)))
    newer = {_key(r) for r in truth if _ms(r["RequestedDateTime"]) >= ms}
    older = {_key(r) for r in truth if _ms(r["RequestedDateTime"]) <= ms}
    assert _filtered(client, ("InvokedAfter", _iso(ms))) == newer
    assert _filtered(client, ("InvokedBefore", _iso(ms))) == older
    assert _filtered(client, ("InvokedAfter", _iso(ms + 1))) == newer - at
    assert _filtered(client, ("InvokedBefore", _iso(ms - 1))) == older - at


def test_month_boundary_records_sit_on_the_exact_milliseconds(emulator_client):
    client = emulator_client()
    last = "2026-02-28T23:59:59.999Z"
    first = "2026-03-01T00:00:00Z"
    assert len(_filtered(client, ("InvokedAfter", last), ("InvokedBefore", last))) >= 1
    assert len(_filtered(client, ("InvokedAfter", first), ("InvokedBefore", first))) >= 1
    assert not _filtered(
        client, ("InvokedAfter", "2026-02-28T23:59:59.9995Z"), ("InvokedBefore", "2026-02-28T23:59:59.99999Z")
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        ("Success", lambda r: r["Status"] == "Success"),
        ("Failed", lambda r: r["Status"] == "Failed"),
        ("Undeliverable", lambda r: r["StatusDetails"] == "Undeliverable"),
        ("TimedOut", lambda r: r["Status"] == "TimedOut"),
        ("DeliveryTimedOut", lambda r: r["StatusDetails"] == "DeliveryTimedOut"),
        ("ExecutionTimedOut", lambda r: r["StatusDetails"] == "ExecutionTimedOut"),
        ("Cancelled", lambda r: r["Status"] == "Cancelled"),
        ("Delayed", lambda r: r["Status"] == "Delayed"),
        ("AccessDenied", lambda r: False),
    ],
)
def test_status_filter_matches_status_or_status_details(emulator, emulator_client, value, matches):
    delayed = next(  # Delayed does not last: go to a moment when one is
        (datetime.fromisoformat(at), datetime.fromisoformat(until))
        for span in emulator.open_spans(ACCOUNT, REGION)
        for (at, status, _), (until, _, _) in zip(span["phases"], span["phases"][1:], strict=False)
        if status == "Delayed"
    )
    emulator.clock.set(delayed[0] + (delayed[1] - delayed[0]) / 2)
    expected = {_key(r) for r in emulator.ground_truth(ACCOUNT, REGION) if matches(r)}
    assert value == "AccessDenied" or expected
    assert _filtered(emulator_client(), ("Status", value)) == expected


def test_document_name_and_several_filters_and_together(emulator, emulator_client):
    client = emulator_client()
    truth = emulator.ground_truth(ACCOUNT, REGION)
    patch = {_key(r) for r in truth if r["DocumentName"] == "AWS-RunPatchBaseline"}
    assert patch and _filtered(client, ("DocumentName", "AWS-RunPatchBaseline")) == patch
    assert not _filtered(client, ("DocumentName", "aws-runpatchbaseline"))
    cutoff = _ms(truth[len(truth) // 3]["RequestedDateTime"])
    expected = {
        _key(r)
        for r in truth
        if r["DocumentName"] == "AWS-RunPatchBaseline"
        and r["Status"] == "Success"
        and _ms(r["RequestedDateTime"]) >= cutoff
    }
    got = _filtered(
        client,
        ("DocumentName", "AWS-RunPatchBaseline"),
        ("Status", "Success"),
        ("InvokedAfter", _iso(cutoff, "+")),
    )
    assert got == expected and expected


# ---- the HTTP surface -----------------------------------------------------------------


def _raw(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_missing_or_malformed_authorization_is_refused(emulator):
    headers = {"X-Amz-Target": "AmazonSSM.ListCommandInvocations"}
    status, body = _raw(emulator.url, headers, b"{}")
    assert status == 400
    assert json.loads(body) == {
        "__type": "MissingAuthenticationTokenException",
        "message": "Missing Authentication Token",
    }
    for bad in ("AWS4-HMAC-SHA256 Credential=AKID", "Bearer abc", AUTH.replace(", Sig", ", Sag")):
        status, body = _raw(emulator.url, {**headers, "Authorization": bad}, b"{}")
        assert (status, json.loads(body)["__type"]) == (400, "IncompleteSignatureException")


def test_query_protocol_errors_are_xml(emulator):
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    status, body = _raw(emulator.url, form, b"Action=GetCallerIdentity&Version=2011-06-15")
    assert status == 400 and b"<Code>MissingAuthenticationTokenException</Code>" in body
    assert body.startswith(b"<ErrorResponse")
    status, body = _raw(emulator.url, form, b"Action=DescribeRegions&Version=2016-11-15")
    assert status == 400 and body.startswith(b"<?xml") and b"<Errors><Error><Code>" in body


def test_unknown_service_is_refused(emulator):
    auth = AUTH.replace("/ssm/", "/lambda/")
    status, body = _raw(emulator.url, {"Authorization": auth}, b"{}")
    assert (status, json.loads(body)["__type"]) == (400, "UnknownOperationException")


def test_keep_alive_serves_many_requests_on_one_connection(emulator):
    host, port = emulator.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Authorization": AUTH, "X-Amz-Target": "AmazonSSM.ListCommandInvocations"}
    try:
        for _ in range(3):
            connection.request("POST", "/", body=b'{"MaxResults": 3}', headers=headers)
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200
            assert int(response.headers["Content-Length"]) == len(body)
            assert len(json.loads(body)["CommandInvocations"]) == 3
    finally:
        connection.close()


def test_sts_get_caller_identity(emulator, emulator_client):
    identity = emulator_client("sts", region="eu-west-1").get_caller_identity()
    assert identity["Account"] == ACCOUNT
    assert identity["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/emulator"
    assert identity["UserId"].startswith("AIDA")
    assert len(identity["ResponseMetadata"]["RequestId"]) == 36
    assert emulator.request_log[-1] == {
        "service": "sts",
        "region": "eu-west-1",
        "operation": "GetCallerIdentity",
        "params": {"Action": "GetCallerIdentity", "Version": "2011-06-15"},
        "fault": None,
    }
    code, status, _ = _error(emulator_client("sts")._make_api_call, "GetSessionToken", {})
    assert (code, status) == ("InvalidAction", 400)


def test_ec2_describe_regions(emulator, emulator_client):
    ec2 = emulator_client("ec2", region="us-east-2")
    regions = ec2.describe_regions()["Regions"]
    names = [r["RegionName"] for r in regions]
    assert tuple(names) == emulator.enabled_regions
    assert set(EMULATOR_REGIONS) < set(names) and len(names) >= len(EMULATOR_REGIONS) + 10
    assert {r["OptInStatus"] for r in regions} == {"opt-in-not-required"}
    assert all(r["Endpoint"] == f"ec2.{r['RegionName']}.amazonaws.com" for r in regions)
    every = ec2.describe_regions(AllRegions=True)["Regions"]
    disabled = {r["RegionName"] for r in every if r["OptInStatus"] == "not-opted-in"}
    assert {"af-south-1", "me-south-1"} <= disabled and not disabled & set(names)
    picked = ec2.describe_regions(RegionNames=["eu-west-1", "af-south-1"])["Regions"]
    assert [r["RegionName"] for r in picked] == ["af-south-1", "eu-west-1"]
    code, status, _ = _error(ec2.describe_instances)
    assert (code, status) == ("InvalidAction", 400)


def test_request_log_records_every_request(emulator, emulator_client):
    emulator_client(region="eu-west-1").list_command_invocations(MaxResults=7, Details=True)
    assert emulator.request_log[-1] == {
        "service": "ssm",
        "region": "eu-west-1",
        "operation": "ListCommandInvocations",
        "params": {"MaxResults": 7, "Details": True},
        "fault": None,
    }


# ---- the AWS CLI ----------------------------------------------------------------------


def _aws(emulator, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "emulator-secret-not-a-real-key",
        "AWS_CONFIG_FILE": str(tmp_path / "absent-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.pop("AWS_PROFILE", None)
    command = [sys.executable, "-m", "awscli", *args, "--endpoint-url", emulator.url]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_the_aws_cli_pages_through_everything(emulator, tmp_path):
    region = "eu-west-1"
    done = _aws(
        emulator, tmp_path, "ssm", "list-command-invocations", "--details",
        "--region", region, "--output", "json", "--page-size", "7",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)["CommandInvocations"]
    truth = emulator.ground_truth(ACCOUNT, region)
    assert len(records) == len(truth) > 7 * 20
    assert {_key(r) for r in records} == {_key(r) for r in truth}
    assert sum(e["operation"] == "ListCommandInvocations" for e in emulator.request_log) > 20


def test_the_aws_cli_reports_service_errors(emulator, tmp_path):
    done = _aws(
        emulator, tmp_path, "ssm", "list-command-invocations", "--instance-id", "i-bogus",
        "--region", "us-east-1",
    )  # fmt: skip
    assert done.returncode != 0
    assert "ValidationException" in done.stderr


def test_clock_starts_where_the_spec_says(emulator):
    assert emulator.clock.now() == EMULATOR_NOW
