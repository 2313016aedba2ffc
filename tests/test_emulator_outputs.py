"""The full output of commands, where SSM keeps it: GetCommandInvocation, S3, CloudWatch Logs.

Real boto3 clients over HTTP (and the AWS CLI once per API) against the
emulator, compared with `Emulator.output_ground_truth`, which answers from the
fleet's model.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError, WaiterError

from emulator.outputs import shown
from tests.conftest_emulator import EMULATOR_ACCOUNT
from tests.test_emulator import _aws
from tests.test_fleet import _MODEL, _check

ACCOUNT, REGION = EMULATOR_ACCOUNT, "us-east-1"
SUFFIX = "--output truncated--"
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,3}))?S)?$")
_URL = re.compile(r"^https://s3\.([a-z0-9-]+)\.amazonaws\.com/([^/]+)/(.+)$")


def _finished(emulator, region: str = REGION) -> list[tuple[dict, dict]]:
    """(record, plugin) for every plugin that has finished, in the visible history."""
    return [
        (record, plugin)
        for record in emulator.ground_truth(ACCOUNT, region)
        for plugin in record["CommandPlugins"]
        if "ResponseFinishDateTime" in plugin
    ]


def _truth(emulator, record: dict, plugin: dict, region: str = REGION) -> dict:
    return emulator.output_ground_truth(
        ACCOUNT, region, record["CommandId"], record["InstanceId"], plugin["Name"]
    )


def _where(url: str) -> tuple[str, str, str]:
    """(region, bucket, key) of a StandardOutputUrl."""
    match = _URL.match(url)
    assert match, url
    return match[1], match[2], match[3]


def _error(call, **params) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    return response["Error"]["Code"], status, response["Error"].get("Message", "")


def _span(emulator, kind: str) -> dict:
    return next(s for s in emulator.open_spans(ACCOUNT, REGION) if s["kind"] == kind)


def _moments(span: dict) -> list[datetime]:
    return [datetime.fromisoformat(at) for at, _, _ in span["phases"]]


def _ms(value) -> int:
    return round((value.timestamp() if isinstance(value, datetime) else value) * 1000)


def _at(seconds: float) -> datetime:
    """A wire timestamp (epoch seconds) as an aware datetime, to the millisecond."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=round(seconds * 1000))


def _cut(text: str, limit: int) -> str:
    """The agent's cut: under `limit` whole, else its start and the suffix, `limit` long."""
    return text if len(text) < limit else text[: limit - len(SUFFIX)] + SUFFIX


def _stored(emulator, minimum: int = 100) -> tuple[dict, dict, dict]:
    """A finished plugin whose stdout (longer than `minimum`) is in S3 right now."""
    for record, plugin in _finished(emulator):
        if plugin["StandardOutputUrl"]:
            truth = _truth(emulator, record, plugin)
            if truth["s3"] == "ok" and len(truth["stdout"]) > minimum:
                return record, plugin, truth
    raise AssertionError("no stored output")


def _long(emulator, stream: str = "stdout", minimum: int = 24_000) -> tuple[dict, dict, dict]:
    """A finished plugin whose full `stream` is longer than `minimum` characters."""
    for record, plugin in _finished(emulator):
        if plugin["Output"].endswith("\n---Output truncated---"):
            truth = _truth(emulator, record, plugin)
            if len(truth[stream]) > minimum:
                return record, plugin, truth
    raise AssertionError(f"no {stream} longer than {minimum}")


# ---- GetCommandInvocation -------------------------------------------------------------


def _seconds(elapsed: str) -> float:
    match = _DURATION.match(elapsed)
    assert match, elapsed
    hours, minutes, seconds, millis = match.groups()
    return (
        int(hours or 0) * 3600
        + int(minutes or 0) * 60
        + int(seconds or 0)
        + int((millis or "0").ljust(3, "0")) / 1000
    )


def test_get_command_invocation_reports_each_plugin_as_the_list_does(emulator, emulator_client):
    client = emulator_client()
    pairs = _finished(emulator)
    assert len({r["DocumentName"] for r, _ in pairs}) >= 5
    shape = _MODEL["operations"]["GetCommandInvocation"]["output"]["shape"]
    for record, plugin in pairs[::7]:
        answer = client.get_command_invocation(
            CommandId=record["CommandId"],
            InstanceId=record["InstanceId"],
            PluginName=plugin["Name"],
        )
        answer.pop("ResponseMetadata")
        # The model's StringDateTime pattern allows one fractional digit; AWS sends three
        # (2020-02-19T18:18:03.419Z in its examples), so dates are checked on their own.
        dates = {k for k in answer if k.startswith("Execution")}
        _check({k: v for k, v in answer.items() if v != "" and k not in dates}, shape, "result")
        for key in ("ExecutionStartDateTime", "ExecutionEndDateTime"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", answer[key])
        truth = _truth(emulator, record, plugin)
        start, finish = _ms(plugin["ResponseStartDateTime"]), _ms(plugin["ResponseFinishDateTime"])
        assert answer == {
            "CommandId": record["CommandId"],
            "InstanceId": record["InstanceId"],
            "Comment": record["Comment"],
            "DocumentName": record["DocumentName"],
            "DocumentVersion": record["DocumentVersion"],
            "PluginName": plugin["Name"],
            "ResponseCode": plugin["ResponseCode"],
            "ExecutionStartDateTime": answer["ExecutionStartDateTime"],
            "ExecutionElapsedTime": answer["ExecutionElapsedTime"],
            "ExecutionEndDateTime": answer["ExecutionEndDateTime"],
            "Status": plugin["Status"],
            "StatusDetails": plugin["StatusDetails"],
            "StandardOutputContent": _cut(truth["stdout"], 24_000),
            "StandardOutputUrl": plugin["StandardOutputUrl"],
            "StandardErrorContent": _cut(truth["stderr"], 8_000),
            "StandardErrorUrl": plugin["StandardErrorUrl"],
            "CloudWatchOutputConfig": record.get(
                "CloudWatchOutputConfig",
                {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
            ),
        }
        assert datetime.fromisoformat(answer["ExecutionStartDateTime"]).timestamp() * 1000 == start
        assert datetime.fromisoformat(answer["ExecutionEndDateTime"]).timestamp() * 1000 == finish
        assert (
            answer["ExecutionStartDateTime"].endswith("Z")
            and len(answer["ExecutionEndDateTime"]) == 24
        )
        assert _seconds(answer["ExecutionElapsedTime"]) == pytest.approx((finish - start) / 1000)


@pytest.mark.parametrize(
    ("elapsed_ms", "text"),
    [(0, "PT0S"), (91, "PT0.091S"), (2440, "PT2.44S"), (3_600_271, "PT1H0.271S"), (3_660_000, "PT1H1M")],
)  # fmt: skip
def test_elapsed_times_are_printed_like_java_durations(elapsed_ms, text):
    from emulator.command_invocation import duration

    assert duration(elapsed_ms) == text


def test_content_is_cut_at_24000_and_8000_characters_with_the_agents_suffix(
    emulator, emulator_client
):
    client = emulator_client()
    for stream, limit, member in (
        ("stdout", 24_000, "StandardOutputContent"),
        ("stderr", 8_000, "StandardErrorContent"),
    ):
        record, plugin, truth = _long(emulator, stream, limit)
        answer = client.get_command_invocation(
            CommandId=record["CommandId"],
            InstanceId=record["InstanceId"],
            PluginName=plugin["Name"],
        )
        assert len(answer[member]) == limit
        assert answer[member] == truth[stream][: limit - len(SUFFIX)] + SUFFIX
    short = next(
        _truth(emulator, r, p) | {"key": (r, p)}
        for r, p in _finished(emulator)
        if 0 < len(_truth(emulator, r, p)["stdout"]) < 100
    )
    record, plugin = short["key"]
    answer = client.get_command_invocation(
        CommandId=record["CommandId"], InstanceId=record["InstanceId"], PluginName=plugin["Name"]
    )
    assert answer["StandardOutputContent"] == short["stdout"]


def test_output_is_empty_until_the_plugin_finished(emulator, emulator_client):
    client = emulator_client()
    run = _span(emulator, "long-run")
    requested, started, done = _moments(run)
    emulator.clock.set(started + timedelta(hours=3))
    answer = client.get_command_invocation(
        CommandId=run["CommandId"], InstanceId=run["InstanceId"], PluginName="exportSnapshot"
    )
    assert (answer["Status"], answer["ResponseCode"]) == ("InProgress", -1)
    assert answer["StandardOutputContent"] == answer["ExecutionEndDateTime"] == ""
    assert datetime.fromisoformat(answer["ExecutionStartDateTime"]) == started
    assert _seconds(answer["ExecutionElapsedTime"]) == 3 * 3600
    truth = emulator.output_ground_truth(
        ACCOUNT, REGION, run["CommandId"], run["InstanceId"], "exportSnapshot"
    )
    assert truth["stdout"] and truth["cloudwatch"] == "ok" and truth["s3"] == "missing"
    later = client.get_command_invocation(
        CommandId=run["CommandId"], InstanceId=run["InstanceId"], PluginName="verifyChecksums"
    )
    assert (later["Status"], later["ExecutionStartDateTime"]) == ("Pending", "")

    waiting = _span(emulator, "offline-returns")
    _, delayed, *_ = _moments(waiting)
    emulator.clock.set(delayed + timedelta(hours=1))
    answer = client.get_command_invocation(
        CommandId=waiting["CommandId"], InstanceId=waiting["InstanceId"]
    )
    assert (answer["Status"], answer["StatusDetails"], answer["ResponseCode"]) == (
        "Delayed", "Delayed", -1,
    )  # fmt: skip
    assert answer["ExecutionStartDateTime"] == answer["ExecutionElapsedTime"] == ""

    cancelled = next(
        s for s in emulator.open_spans(ACCOUNT, REGION) if "Cancelling" in str(s["phases"])
    )
    _, _, cancelling, end = _moments(cancelled)
    emulator.clock.set(cancelling + (end - cancelling) / 2)
    record = next(
        r for r in emulator.ground_truth(ACCOUNT, REGION)
        if (r["CommandId"], r["InstanceId"]) == (cancelled["CommandId"], cancelled["InstanceId"])
    )  # fmt: skip
    running = next(p for p in record["CommandPlugins"] if p["Status"] == "InProgress")
    answer = client.get_command_invocation(
        CommandId=cancelled["CommandId"],
        InstanceId=cancelled["InstanceId"],
        PluginName=running["Name"],
    )
    assert (answer["Status"], answer["StandardOutputContent"]) == ("Cancelling", "")


def test_the_command_executed_waiter_works(emulator, emulator_client):
    client = emulator_client()
    records = emulator.ground_truth(ACCOUNT, REGION)
    success = next(r for r in records if r["Status"] == "Success" and len(r["CommandPlugins"]) == 1)
    waiter = client.get_waiter("command_executed")
    waiter.wait(CommandId=success["CommandId"], InstanceId=success["InstanceId"])
    failed = next(r for r in records if r["Status"] == "Failed" and len(r["CommandPlugins"]) == 1)
    with pytest.raises(WaiterError, match="terminal failure state"):
        waiter.wait(CommandId=failed["CommandId"], InstanceId=failed["InstanceId"])


def _ids(emulator) -> dict[str, str]:
    records = emulator.ground_truth(ACCOUNT, REGION)
    single = next(r for r in records if len(r["CommandPlugins"]) == 1)
    multi = next(r for r in records if r["DocumentName"] == "AWS-RunPatchBaseline")
    targeted = {r["InstanceId"] for r in records if r["CommandId"] == single["CommandId"]}
    other = next(r["InstanceId"] for r in records if r["InstanceId"] not in targeted)
    return {
        "command": single["CommandId"],
        "instance": single["InstanceId"],
        "multi": multi["CommandId"],
        "multi_instance": multi["InstanceId"],
        "other_instance": other,
    }


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"InstanceId": "{instance}"}, "ValidationException",
         "1 validation error detected: Value null at 'commandId' failed to satisfy constraint: Member must not be null"),
        ({"CommandId": "{command}"}, "ValidationException", None),
        ({"CommandId": "abc", "InstanceId": "{instance}"}, "ValidationException",
         "1 validation error detected: Value 'abc' at 'commandId' failed to satisfy constraint: Member must have length greater than or equal to 36"),
        ({"CommandId": "{command}", "InstanceId": "i-123"}, "ValidationException", None),
        ({"CommandId": "{command}", "InstanceId": "{instance}", "PluginName": "abc"}, "ValidationException", None),
        ({"CommandId": "x" * 36, "InstanceId": "{instance}"}, "InvalidCommandId", ""),
        ({"CommandId": "00000000-0000-4000-8000-000000000000", "InstanceId": "{instance}"}, "InvocationDoesNotExist", ""),
        ({"CommandId": "{command}", "InstanceId": "i-0000000000000000f"}, "InvalidInstanceId", None),
        ({"CommandId": "{command}", "InstanceId": "{other_instance}"}, "InvocationDoesNotExist", ""),
        ({"CommandId": "{multi}", "InstanceId": "{multi_instance}"}, "InvalidPluginName", ""),
        ({"CommandId": "{multi}", "InstanceId": "{multi_instance}", "PluginName": "aws:runShellScript"}, "InvalidPluginName", ""),
        ({"CommandId": "{command}", "InstanceId": "{instance}", "PluginName": "PatchLinux"}, "InvalidPluginName", ""),
    ],
)  # fmt: skip
def test_get_command_invocation_refuses_what_the_service_refuses(
    emulator, emulator_client, params, code, message
):
    ids = _ids(emulator)
    params = {k: v.format(**ids) for k, v in params.items()}
    client = emulator_client(parameter_validation=False)
    got = _error(client.get_command_invocation, **params)
    assert got[:2] == (code, 400)
    if message is not None:
        assert got[2] == message


def test_get_command_invocation_sees_the_30_day_retention(emulator, emulator_client):
    client = emulator_client()
    oldest = emulator.ground_truth(ACCOUNT, REGION)[-1]
    requested = _at(oldest["RequestedDateTime"])
    params = {"CommandId": oldest["CommandId"], "InstanceId": oldest["InstanceId"]}
    if len(oldest["CommandPlugins"]) > 1:
        params["PluginName"] = oldest["CommandPlugins"][0]["Name"]
    emulator.clock.set(requested + timedelta(days=30))
    assert client.get_command_invocation(**params)["CommandId"] == oldest["CommandId"]
    emulator.clock.set(requested + timedelta(days=30, milliseconds=1))
    assert _error(client.get_command_invocation, **params)[0] == "InvocationDoesNotExist"


def test_get_command_invocation_is_faulted_like_the_list(emulator, emulator_client):
    client = emulator_client()
    record = next(
        r for r in emulator.ground_truth(ACCOUNT, REGION) if len(r["CommandPlugins"]) == 1
    )
    params = {"CommandId": record["CommandId"], "InstanceId": record["InstanceId"]}
    emulator.set_faults({"regions": {REGION: {"throttle_rate": 0.001, "throttle_burst": 2}}})
    client.get_command_invocation(**params)
    client.get_command_invocation(**params)
    assert _error(client.get_command_invocation, **params)[:2] == ("ThrottlingException", 400)
    client.list_command_invocations(MaxResults=1)  # its own bucket: not throttled yet
    emulator.set_faults({"regions": {REGION: {"access_denied": True}}})
    code, _, message = _error(client.get_command_invocation, **params)
    assert code == "AccessDeniedException" and "ssm:GetCommandInvocation" in message
    emulator.set_faults({"regions": {REGION: {"error_rate": 1}}})
    assert _error(client.get_command_invocation, **params)[:2] == ("InternalServerError", 500)
    faults = [e["fault"] for e in emulator.request_log if e["operation"] == "GetCommandInvocation"]
    assert faults == [None, None, "throttle", "access_denied", "error"]
    emulator.set_faults({"regions": {"eu-west-1": {"error_rate": 1}}})
    assert client.get_command_invocation(**params)["CommandId"] == record["CommandId"]


# ---- S3 -------------------------------------------------------------------------------


def test_s3_objects_hold_the_full_output_of_finished_plugins(emulator, emulator_client):
    s3 = emulator_client("s3")
    states: Counter = Counter()
    for record, plugin in _finished(emulator):
        if not plugin["StandardOutputUrl"] or plugin["OutputS3BucketName"].startswith(
            "acme-secops"
        ):
            continue
        truth = _truth(emulator, record, plugin)
        for stream, url in (
            ("stdout", plugin["StandardOutputUrl"]),
            ("stderr", plugin["StandardErrorUrl"]),
        ):
            _, bucket, key = _where(url)
            state = truth["s3" if stream == "stdout" else "s3_stderr"]
            patch = key.startswith("run-command/aws-runpatchbaseline/")
            states[(stream, state, patch)] += 1
            if state == "ok":
                answer = s3.get_object(Bucket=bucket, Key=key)
                body = answer["Body"].read()
                assert body.decode() == truth[stream]
                assert answer["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
                assert (
                    _ms(answer["LastModified"])
                    == _ms(plugin["ResponseFinishDateTime"]) // 1000 * 1000
                )
                assert (
                    answer["ContentLength"]
                    == len(body)
                    == s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
                )
            else:
                assert state == "missing"
                assert _error(s3.get_object, Bucket=bucket, Key=key)[:2] == ("NoSuchKey", 404)
                assert _error(s3.head_object, Bucket=bucket, Key=key)[:2] == ("404", 404)
    assert states[("stdout", "ok", False)] and states[("stdout", "ok", True)]
    assert states[("stderr", "missing", False)]  # nothing printed: nothing uploaded
    assert states[("stdout", "missing", True)]  # the patch prefix expires after 7 days


def test_lifecycle_rules_expire_objects_at_midnight_after_7_or_30_days(emulator, emulator_client):
    s3 = emulator_client("s3")
    record, plugin = next(
        (r, p) for r, p in _finished(emulator)
        if p["StandardOutputUrl"] and "aws-runpatchbaseline" in p["StandardOutputUrl"]
        and _truth(emulator, r, p)["s3"] == "ok"
    )  # fmt: skip
    _, bucket, key = _where(plugin["StandardOutputUrl"])
    answer = s3.get_object(Bucket=bucket, Key=key)
    expiry = re.match(r'expiry-date="([^"]+)", rule-id="expire-patch-output"', answer["Expiration"])
    assert expiry
    moment = datetime.strptime(expiry[1], "%a, %d %b %Y %H:%M:%S GMT").replace(
        tzinfo=answer["LastModified"].tzinfo
    )
    assert (moment.hour, moment.minute) == (0, 0)
    assert timedelta(days=7) < moment - answer["LastModified"] <= timedelta(days=8)
    emulator.clock.set(moment - timedelta(milliseconds=1))
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    emulator.clock.set(moment)
    assert _error(s3.get_object, Bucket=bucket, Key=key)[0] == "NoSuchKey"
    assert _truth(emulator, record, plugin)["s3"] == "missing"


def test_objects_outlive_the_invocation_in_list_command_invocations(emulator, emulator_client):
    s3, ssm = emulator_client("s3"), emulator_client()
    record, plugin = next(
        (r, p) for r, p in _finished(emulator)
        if p["StandardOutputUrl"] and "run-command/aws-runshellscript" in p["StandardOutputUrl"]
        and _truth(emulator, r, p)["s3"] == "ok"
    )  # fmt: skip
    _, bucket, key = _where(plugin["StandardOutputUrl"])
    emulator.clock.set(_at(record["RequestedDateTime"]) + timedelta(days=30, milliseconds=1))
    gone = ssm.list_command_invocations(CommandId=record["CommandId"])["CommandInvocations"]
    assert gone == []
    code = _error(
        ssm.get_command_invocation, CommandId=record["CommandId"], InstanceId=record["InstanceId"]
    )[0]
    assert code == "InvocationDoesNotExist"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    emulator.clock.advance(timedelta(days=2))
    assert _error(s3.get_object, Bucket=bucket, Key=key)[0] == "NoSuchKey"


def test_the_security_teams_bucket_denies_every_get(emulator, emulator_client):
    s3 = emulator_client("s3")
    sensor = [
        (r, p) for r, p in _finished(emulator)
        if r["DocumentName"] == "Acme-InstallSensor" and r["Status"] == "Success"
    ]  # fmt: skip
    assert sensor
    for record, plugin in sensor:
        assert plugin["OutputS3BucketName"] == f"acme-secops-ssm-output-{ACCOUNT}-{REGION}"
        assert _truth(emulator, record, plugin)["s3"] == "denied"
        _, bucket, key = _where(plugin["StandardOutputUrl"])
        assert _error(s3.get_object, Bucket=bucket, Key=key) == (
            "AccessDenied",
            403,
            "Access Denied",
        )
        assert _error(s3.head_object, Bucket=bucket, Key=key)[:2] == ("403", 403)
        assert _error(s3.get_object, Bucket=bucket, Key="no/such/key")[0] == "AccessDenied"


def _raw(url: str, method: str = "GET", region: str = REGION) -> tuple[int, dict, bytes]:
    auth = (
        f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260302/{region}/s3/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    )
    request = urllib.request.Request(url, headers={"Authorization": auth}, method=method)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_s3_errors_are_s3s_xml(emulator):
    bucket = f"acme-ssm-output-{ACCOUNT}-{REGION}"
    status, headers, body = _raw(f"{emulator.url}/no-such-bucket/some/key")
    assert status == 404 and headers["Content-Type"] == "application/xml"
    assert re.fullmatch(
        rb'<\?xml version="1.0" encoding="UTF-8"\?>\n<Error><Code>NoSuchBucket</Code>'
        rb"<Message>The specified bucket does not exist</Message><BucketName>no-such-bucket"
        rb"</BucketName><RequestId>[0-9A-F]{16}</RequestId><HostId>[A-Za-z0-9+/=]+</HostId></Error>",
        body,
    )
    assert re.fullmatch(r"[0-9A-F]{16}", headers["x-amz-request-id"])
    status, _, body = _raw(f"{emulator.url}/{bucket}/run-command/x/stdout")
    assert (
        status == 404
        and b"<Code>NoSuchKey</Code>" in body
        and b"<Key>run-command/x/stdout</Key>" in body
    )
    status, headers, body = _raw(f"{emulator.url}/{bucket}/run-command/x/stdout", "HEAD")
    assert (status, body) == (404, b"")
    status, headers, body = _raw(
        f"{emulator.url}/{bucket}/run-command/x/stdout", region="eu-west-1"
    )
    assert status == 400 and headers["x-amz-bucket-region"] == REGION
    assert (
        b"<Code>AuthorizationHeaderMalformed</Code>" in body
        and b"<Region>us-east-1</Region>" in body
    )
    status, _, body = _raw(f"{emulator.url}/{bucket}")
    assert status == 501 and b"<Code>NotImplemented</Code>" in body
    request = urllib.request.Request(f"{emulator.url}/{bucket}/run-command/x/stdout")
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(request)
    assert anonymous.value.code == 403 and b"<Code>AccessDenied</Code>" in anonymous.value.read()


def test_ranges_region_redirects_and_presigned_urls(emulator, emulator_client):
    record, plugin, truth = _stored(emulator)
    region, bucket, key = _where(plugin["StandardOutputUrl"])
    text = truth["stdout"].encode()
    s3 = emulator_client("s3", region=region)
    part = s3.get_object(Bucket=bucket, Key=key, Range="bytes=10-19")
    assert part["Body"].read() == text[10:20] and part["ContentRange"] == f"bytes 10-19/{len(text)}"
    assert s3.get_object(Bucket=bucket, Key=key, Range="bytes=-5")["Body"].read() == text[-5:]
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    assert s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"].read() == text
    assert _error(s3.get_object, Bucket=bucket, Key=key, IfMatch='"0"')[:2] == (
        "PreconditionFailed", 412,
    )  # fmt: skip
    assert _error(s3.get_object, Bucket=bucket, Key=key, Range=f"bytes={len(text)}-")[:2] == (
        "InvalidRange",
        416,
    )
    elsewhere = emulator_client("s3", region="eu-west-1")
    before = len(emulator.request_log)
    assert elsewhere.get_object(Bucket=bucket, Key=key)["Body"].read() == text
    assert [e["region"] for e in emulator.request_log[before:]] == ["eu-west-1", region]
    for signer in ("s3", "s3v4"):
        signed = emulator_client("s3", region=region, signature_version=signer)
        url = signed.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
        with urllib.request.urlopen(url) as response:
            assert response.read() == text


# ---- CloudWatch Logs ------------------------------------------------------------------


def _finished_run(emulator) -> dict:
    """A long run whose copyToReplica step printed a long log, with the clock just after it."""
    run = next(
        s for s in emulator.open_spans(ACCOUNT, REGION)
        if s["kind"] == "long-run" and s["closed"] is not None
    )  # fmt: skip
    emulator.clock.set(datetime.fromisoformat(run["closed"]) + timedelta(minutes=1))
    return run | emulator.output_ground_truth(
        ACCOUNT, REGION, run["CommandId"], run["InstanceId"], "copyToReplica"
    )


def test_log_events_page_forward_to_the_end_where_the_token_repeats(emulator, emulator_client):
    logs = emulator_client("logs")
    run = _finished_run(emulator)
    assert run["log_group"] == "/acme/migrations" and run["cloudwatch"] == "ok"
    lines = run["stdout"].splitlines(keepends=True)
    assert len(run["stdout"]) > 24_000 and len(lines) > 300
    params = {"logGroupName": run["log_group"], "logStreamName": run["stdout_stream"]}
    events, token, calls = [], None, 0
    while True:
        page = logs.get_log_events(
            **params, startFromHead=True, limit=100, **({"nextToken": token} if token else {})
        )
        calls += 1
        events += page["events"]
        if page["nextForwardToken"] == token:
            assert page["events"] == []
            break
        token = page["nextForwardToken"]
        assert re.fullmatch(r"f/\d{56}/s", token)
    assert calls == -(-len(lines) // 100) + 1
    assert [e["message"] for e in events] == lines and "".join(e["message"] for e in events) == run[
        "stdout"
    ]
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps) and all(e["ingestionTime"] > e["timestamp"] for e in events)
    assert _ms(datetime.fromisoformat(run["phases"][1][0])) <= stamps[0]
    answer = emulator_client().get_command_invocation(
        CommandId=run["CommandId"], InstanceId=run["InstanceId"], PluginName="copyToReplica"
    )
    assert (
        len(answer["StandardOutputContent"]) == 24_000 < len(run["stdout"])
    )  # CloudWatch has more
    requests = Counter((e["service"], e["operation"]) for e in emulator.request_log)
    assert requests[("logs", "GetLogEvents")] == calls
    assert requests[("ssm", "GetCommandInvocation")] == 1


def test_without_start_from_head_the_newest_come_back_and_pages_go_backward(
    emulator, emulator_client
):
    logs = emulator_client("logs")
    run = _finished_run(emulator)
    lines = run["stdout"].splitlines(keepends=True)
    params = {"logGroupName": run["log_group"], "logStreamName": run["stdout_stream"], "limit": 250}
    newest = logs.get_log_events(**params)
    assert [e["message"] for e in newest["events"]] == lines[-250:]
    assert logs.get_log_events(**params, nextToken=newest["nextForwardToken"])["events"] == []
    collected, token = newest["events"], newest["nextBackwardToken"]
    while True:
        page = logs.get_log_events(**params, nextToken=token)
        if page["nextBackwardToken"] == token:
            break
        collected = page["events"] + collected
        token = page["nextBackwardToken"]
    assert "".join(e["message"] for e in collected) == run["stdout"]
    everything = logs.get_log_events(
        logGroupName=run["log_group"], logStreamName=run["stdout_stream"]
    )
    assert len(everything["events"]) == len(lines)  # the default page takes up to 10,000 events


def test_a_running_plugin_streams_what_it_printed_so_far_and_streams_expire(
    emulator, emulator_client
):
    logs = emulator_client("logs")
    run = _span(emulator, "long-run")
    _, started, done = _moments(run)
    emulator.clock.set(started + (done - started) / 2)
    truth = emulator.output_ground_truth(
        ACCOUNT, REGION, run["CommandId"], run["InstanceId"], "copyToReplica"
    )
    full = _finished_run(emulator)["stdout"]
    emulator.clock.set(started + (done - started) / 2)
    assert truth["cloudwatch"] == "ok" and 0 < len(truth["stdout"]) < len(full)
    assert full.startswith(truth["stdout"])
    page = logs.get_log_events(
        logGroupName=truth["log_group"], logStreamName=truth["stdout_stream"], startFromHead=True
    )
    assert "".join(e["message"] for e in page["events"]) == truth["stdout"]
    emulator.clock.set(done + timedelta(days=14))
    with pytest.raises(ClientError, match="ResourceNotFoundException") as caught:
        logs.get_log_events(logGroupName=truth["log_group"], logStreamName=truth["stdout_stream"])
    assert caught.value.response["Error"]["Message"] == "The specified log stream does not exist."
    truth = emulator.output_ground_truth(
        ACCOUNT, REGION, run["CommandId"], run["InstanceId"], "copyToReplica"
    )
    assert truth["cloudwatch"] == "missing" and truth["s3"] == "ok"


def test_streams_of_the_fleet_and_the_ones_that_are_missing(emulator, emulator_client):
    logs = emulator_client("logs")
    states: Counter = Counter()
    for record, plugin in _finished(emulator):
        truth = _truth(emulator, record, plugin)
        if truth["log_group"] is None:
            assert truth["cloudwatch"] == "none"
            continue
        states[truth["cloudwatch"]] += 1
        assert truth["stdout_stream"] == (
            f"{record['CommandId']}/{record['InstanceId']}/{plugin['Name'].replace(':', '-')}/stdout"
        )
        params = {"logGroupName": truth["log_group"], "logStreamName": truth["stdout_stream"]}
        if truth["cloudwatch"] == "ok":
            text = "".join(
                e["message"] for e in logs.get_log_events(**params, startFromHead=True)["events"]
            )
            assert text == truth["stdout"]
        else:
            assert _error(logs.get_log_events, **params)[:2] == ("ResourceNotFoundException", 400)
    assert states["ok"] and states["missing"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"logGroupName": "/aws/ssm/Nope", "logStreamName": "a/b"}, "ResourceNotFoundException"),
        ({"logGroupName": "/aws/ssm/AWS-RunShellScript", "logStreamName": "a/b/c/stdout"}, "ResourceNotFoundException"),
        ({"logGroupName": "/aws/ssm/AWS-RunShellScript", "logGroupIdentifier": "x", "logStreamName": "a"}, "InvalidParameterException"),
        ({"logStreamName": "a"}, "InvalidParameterException"),
        ({"logGroupName": "/aws/ssm/AWS-RunShellScript", "logStreamName": "a:b"}, "ValidationException"),
        ({"logGroupName": "/aws/ssm/AWS-RunShellScript", "logStreamName": "a", "limit": 0}, "ValidationException"),
        ({"logGroupName": "/aws/ssm/AWS-RunShellScript", "logStreamName": "a", "nextToken": "f/1/s"}, "InvalidParameterException"),
    ],
)  # fmt: skip
def test_get_log_events_refuses_what_the_service_refuses(emulator_client, params, code):
    logs = emulator_client("logs", parameter_validation=False)
    assert _error(logs.get_log_events, **params)[:2] == (code, 400)


def test_the_default_log_group_is_named_after_the_document(emulator):
    stuck = _span(emulator, "stuck")
    emulator.clock.set(datetime.fromisoformat(stuck["phases"][1][0]) + timedelta(minutes=5))
    truth = emulator.output_ground_truth(
        ACCOUNT, REGION, stuck["CommandId"], stuck["InstanceId"], "aws:runShellScript"
    )
    assert truth["log_group"] == "/aws/ssm/AWS-RunShellScript"
    assert truth["cloudwatch"] == "ok" and truth["stdout"].startswith("stopping fluent-bit")


# ---- what the outputs contain ---------------------------------------------------------


def test_list_command_invocations_output_is_the_full_text_cut_as_ssm_cuts_it(emulator):
    for region in ("us-east-1", "eu-west-1"):
        pairs = _finished(emulator, region)
        assert any(p["Output"].endswith("---Output truncated---") for _, p in pairs)
        for record, plugin in pairs:
            truth = _truth(emulator, record, plugin, region)
            assert plugin["Output"] == shown(truth["stdout"], truth["stderr"])


def test_secrets_are_printed_past_the_first_2500_characters(emulator, emulator_client):
    s3 = emulator_client("s3")
    secrets = emulator.planted_secrets(ACCOUNT, REGION)
    assert len(secrets) >= 3
    outputs = "".join(p["Output"] for _, p in _finished(emulator))
    checked = 0
    for secret in secrets:
        assert re.fullmatch(r"AKIA[A-Z2-7]{16}", secret["access_key_id"])
        assert re.fullmatch(r"[A-Za-z0-9/+]{40}", secret["secret_access_key"])
        assert secret["access_key_id"] not in outputs
        truth = emulator.output_ground_truth(
            ACCOUNT, REGION, secret["CommandId"], secret["InstanceId"], secret["PluginName"]
        )
        text = truth[secret["stream"]]
        assert text.index(secret["access_key_id"]) == secret["offset"]
        assert secret["secret_access_key"] in text
        assert secret["stream"] == "stderr" or secret["offset"] >= 2_500
        if truth["s3" if secret["stream"] == "stdout" else "s3_stderr"] == "ok":
            key = truth[f"{secret['stream']}_key"]
            body = s3.get_object(Bucket=truth["bucket"], Key=key)["Body"].read().decode()
            assert secret["access_key_id"] in body
            checked += 1
    assert checked


# ---- the admin API and the AWS CLI ----------------------------------------------------


def _admin(url: str, path: str):
    with urllib.request.urlopen(url + path, timeout=10) as response:
        return json.loads(response.read())


def test_the_admin_api_answers_the_test_facing_calls(emulator):
    record, plugin = _finished(emulator)[0]
    query = f"region={REGION}&command={record['CommandId']}&instance={record['InstanceId']}&plugin={quote(plugin['Name'])}"
    assert _admin(emulator.url, f"/_emulator/outputs?{query}") == _truth(emulator, record, plugin)
    assert _admin(emulator.url, f"/_emulator/open-spans?region={REGION}") == emulator.open_spans(
        ACCOUNT, REGION
    )
    assert _admin(emulator.url, f"/_emulator/secrets?region={REGION}") == emulator.planted_secrets(
        ACCOUNT, REGION
    )
    since = "2026-02-20T00:00:00Z"
    spans = _admin(emulator.url, f"/_emulator/open-spans?region={REGION}&since={since}")
    assert spans and all(s["requested"] >= since for s in spans)


def test_the_aws_cli_reads_all_three(emulator, tmp_path):
    run = _finished_run(emulator)
    done = _aws(
        emulator, tmp_path, "ssm", "get-command-invocation", "--command-id", run["CommandId"],
        "--instance-id", run["InstanceId"], "--plugin-name", "copyToReplica", "--region", REGION,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["StandardOutputContent"].endswith(SUFFIX)
    done = _aws(
        emulator,
        tmp_path,
        "s3",
        "cp",
        f"s3://{run['bucket']}/{run['stdout_key']}",
        "-",
        "--region",
        REGION,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == run["stdout"]
    done = _aws(
        emulator, tmp_path, "logs", "get-log-events", "--log-group-name", run["log_group"],
        "--log-stream-name", run["stdout_stream"], "--start-from-head", "--region", REGION,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "".join(e["message"] for e in json.loads(done.stdout)["events"]) == run["stdout"]
    denied = f"s3://acme-secops-ssm-output-{ACCOUNT}-{REGION}/sensor-install/x/stdout"
    done = _aws(emulator, tmp_path, "s3", "cp", denied, "-", "--region", REGION)
    assert done.returncode != 0 and "403" in done.stderr
