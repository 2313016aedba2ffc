"""Injected faults as botocore and raw HTTP see them, and the admin API that sets them."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    PaginationError,
    ReadTimeoutError,
)

from emulator import FaultSpec, RegionFaults, faults
from tests.conftest_emulator import EMULATOR_ACCOUNT

ACCOUNT, REGION, OTHER = EMULATOR_ACCOUNT, "us-east-1", "eu-west-1"
AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260302/us-east-1/ssm/aws4_request, "
    "SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + "0" * 64
)


def _only(region: str = REGION, **fields) -> dict:
    return {"seed": 4, "regions": {region: fields}}


def _code(call, **params) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    return response["Error"]["Code"], status, response["Error"]["Message"]


def _key(record: dict) -> tuple[str, str]:
    return record["CommandId"], record["InstanceId"]


def _faults_logged(emulator) -> list[str | None]:
    return [e["fault"] for e in emulator.request_log if e["service"] == "ssm"]


def _raw_page(url: str, **body) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": AUTH, "X-Amz-Target": "AmazonSSM.ListCommandInvocations"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _raw_walk(url: str, page_size: int) -> list[dict]:
    records, token = [], None
    while True:
        body = {"Details": True, "MaxResults": page_size}
        page = _raw_page(url, **body, **({"NextToken": token} if token else {}))
        records += page["CommandInvocations"]
        token = page.get("NextToken")
        if not token:
            return records


# ---- refusals -------------------------------------------------------------------------


def test_access_denied_and_unrecognized_client_only_in_their_region(emulator, emulator_client):
    emulator.set_faults(
        {"regions": {REGION: {"access_denied": True}, OTHER: {"unrecognized_client": True}}}
    )
    code, status, message = _code(emulator_client().list_command_invocations)
    assert (code, status) == ("AccessDeniedException", 400)
    assert message == (
        f"User: arn:aws:iam::{ACCOUNT}:user/emulator is not authorized to perform: "
        f"ssm:ListCommandInvocations on resource: arn:aws:ssm:{REGION}:{ACCOUNT}:* because "
        "no identity-based policy allows the ssm:ListCommandInvocations action"
    )
    assert _code(emulator_client(region=OTHER).list_command_invocations) == (
        "UnrecognizedClientException",
        400,
        "The security token included in the request is invalid.",
    )
    assert (
        emulator_client(region="us-west-2").list_command_invocations()["CommandInvocations"] == []
    )
    assert emulator_client("sts").get_caller_identity()["Account"] == ACCOUNT
    assert _faults_logged(emulator) == ["access_denied", "unrecognized_client", None]


def test_throttling_is_a_token_bucket_burst_then_rate(emulator, emulator_client, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(faults.time, "monotonic", lambda: now[0])
    emulator.set_faults(_only(throttle_rate=5, throttle_burst=3))
    client = emulator_client()

    def outcomes(n: int) -> list[str]:
        out = []
        for _ in range(n):
            try:
                client.list_command_invocations(MaxResults=1)
                out.append("ok")
            except ClientError as error:
                out.append(error.response["Error"]["Code"])
        return out

    assert outcomes(4) == ["ok", "ok", "ok", "ThrottlingException"]
    now[0] += 0.2  # one token at 5/s
    assert outcomes(2) == ["ok", "ThrottlingException"]
    now[0] += 0.3  # one and a half
    assert outcomes(2) == ["ok", "ThrottlingException"]
    now[0] += 60  # refills only up to the burst
    assert outcomes(4) == ["ok", "ok", "ok", "ThrottlingException"]
    assert _code(client.list_command_invocations)[1:] == (400, "Rate exceeded")
    assert emulator_client(region=OTHER).list_command_invocations(MaxResults=1)
    assert _faults_logged(emulator).count("throttle") == 5


def test_throttling_holds_under_concurrency(emulator, emulator_client, monkeypatch):
    monkeypatch.setattr(faults.time, "monotonic", lambda: 50.0)  # no refill: exactly the burst
    emulator.set_faults(_only(throttle_rate=1, throttle_burst=7))
    client = emulator_client(max_pool_connections=24)  # boto3 clients are thread-safe
    results: list[str] = []

    def call() -> None:
        try:
            client.list_command_invocations(MaxResults=1)
            results.append("ok")
        except ClientError as error:
            results.append(error.response["Error"]["Code"])

    threads = [threading.Thread(target=call) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ThrottlingException"] * 17 + ["ok"] * 7


# ---- rate-based faults ----------------------------------------------------------------


def test_error_rate_gives_500s_in_a_pattern_fixed_by_the_seed(emulator, emulator_client):
    client = emulator_client()

    def pattern() -> list[str]:
        emulator.set_faults(_only(error_rate=0.5))
        out = []
        for _ in range(16):
            try:
                client.list_command_invocations(MaxResults=1)
                out.append("ok")
            except ClientError as error:
                assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 500
                out.append(error.response["Error"]["Code"])
        return out

    first = pattern()
    assert set(first) == {"ok", "InternalServerError"}
    assert pattern() == first
    assert _faults_logged(emulator)[-16:] == [None if o == "ok" else "error" for o in first]


def test_reset_closes_the_connection_without_an_answer(emulator, emulator_client):
    emulator.set_faults(_only(reset_rate=1.0))
    with pytest.raises(ConnectionClosedError):
        emulator_client().list_command_invocations()
    host, port = emulator.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    headers = {"Authorization": AUTH, "X-Amz-Target": "AmazonSSM.ListCommandInvocations"}
    connection.request("POST", "/", body=b"{}", headers=headers)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        connection.getresponse()
    connection.close()
    assert _faults_logged(emulator) == ["reset", "reset"]
    emulator.set_faults(None)
    assert emulator_client().list_command_invocations(MaxResults=1)["CommandInvocations"]


def test_slow_answers_outlast_the_read_timeout(emulator, emulator_client):
    emulator.set_faults(_only(slow_rate=1.0, slow_seconds=0.6))
    with pytest.raises(ReadTimeoutError):
        emulator_client(read_timeout=0.15).list_command_invocations(MaxResults=1)
    assert _faults_logged(emulator) == ["slow"]


# ---- paging faults --------------------------------------------------------------------


def test_empty_pages_carry_a_fresh_token_and_lose_nothing(emulator, emulator_client):
    emulator.set_faults(_only(empty_pages=0.4))
    pages = list(
        emulator_client()
        .get_paginator("list_command_invocations")
        .paginate(Details=True, PaginationConfig={"PageSize": 20})
    )
    empty = [p for p in pages if not p["CommandInvocations"]]
    assert empty and all(p.get("NextToken") for p in empty)
    records = [_key(r) for p in pages for r in p["CommandInvocations"]]
    assert records == [_key(r) for r in emulator.ground_truth(ACCOUNT, REGION)]
    assert _faults_logged(emulator).count("empty_page") == len(empty)


def test_repeat_token_returns_the_same_token_and_page_forever(emulator, emulator_client):
    emulator.set_faults(_only(repeat_token=True))
    client = emulator_client()
    first = client.list_command_invocations(MaxResults=5)
    token = first["NextToken"]
    second = client.list_command_invocations(MaxResults=5, NextToken=token)
    third = client.list_command_invocations(MaxResults=5, NextToken=second["NextToken"])
    assert second["NextToken"] == third["NextToken"] == token
    assert second["CommandInvocations"] == third["CommandInvocations"]
    assert second["CommandInvocations"] != first["CommandInvocations"]
    with pytest.raises(PaginationError, match="same next token"):
        list(client.get_paginator("list_command_invocations").paginate())
    assert "repeat_token" in _faults_logged(emulator)


def test_invalid_token_once_expires_every_earlier_token_and_a_new_walk_works(
    emulator, emulator_client
):
    emulator.set_faults(_only(invalid_token_once=True))
    client = emulator_client()
    token = client.list_command_invocations(MaxResults=50)["NextToken"]
    other = client.list_command_invocations(MaxResults=20)["NextToken"]  # another query's walk
    expired = ("InvalidNextToken", 400, "The specified token is not valid.")
    assert _code(client.list_command_invocations, MaxResults=50, NextToken=token) == expired
    # Expired for good, and so is every token issued before: retrying cannot help.
    assert _code(client.list_command_invocations, MaxResults=50, NextToken=token) == expired
    assert _code(client.list_command_invocations, MaxResults=20, NextToken=other) == expired

    walk = client.get_paginator("list_command_invocations").paginate()  # a new walk works
    records = [_key(r) for page in walk for r in page["CommandInvocations"]]
    assert records == [_key(r) for r in emulator.ground_truth(ACCOUNT, REGION)]
    assert _faults_logged(emulator).count("invalid_token") == 1  # once: the rest is the key


# ---- malformed records ----------------------------------------------------------------


def test_malformed_records_are_the_same_on_every_walk_and_known_to_tests(emulator):
    emulator.set_faults(_only(malformed_rate=0.3))
    truth = emulator.ground_truth(ACCOUNT, REGION)
    first, second = _raw_walk(emulator.url, 50), _raw_walk(emulator.url, 7)
    assert first == second and len(first) == len(truth)
    broken, kinds = set(), set()
    for wire, valid in zip(first, truth, strict=True):
        if wire == valid:
            continue
        broken.add(_key(valid))
        if "CommandId" not in wire:
            kinds.add("missing_command_id")
            assert {**wire, "CommandId": valid["CommandId"]} == valid
        elif wire["RequestedDateTime"] == "not-a-time":
            kinds.add("bad_timestamp")
            assert {**wire, "RequestedDateTime": valid["RequestedDateTime"]} == valid
        else:
            kinds.add("non_numeric_response_code")
            code = wire["CommandPlugins"][0]["ResponseCode"]
            assert isinstance(code, str) and not code.lstrip("-").isdigit()
            plugin = {
                **wire["CommandPlugins"][0],
                "ResponseCode": valid["CommandPlugins"][0]["ResponseCode"],
            }
            assert {**wire, "CommandPlugins": [plugin, *wire["CommandPlugins"][1:]]} == valid
    assert kinds == set(faults.MALFORMED_KINDS)
    assert broken == emulator.malformed_keys(ACCOUNT, REGION)
    assert 0.15 < len(broken) / len(truth) < 0.45
    assert emulator.malformed_keys(ACCOUNT, OTHER) == set()
    assert "malformed" in _faults_logged(emulator)


def test_malformed_kinds_can_be_narrowed(emulator):
    emulator.set_faults(_only(malformed_rate=0.5, malformed_kinds=["bad_timestamp"]))
    records = _raw_walk(emulator.url, 50)
    bad = {
        (r["CommandId"], r["InstanceId"]) for r in records if r["RequestedDateTime"] == "not-a-time"
    }
    assert bad == emulator.malformed_keys(ACCOUNT, REGION) and bad
    assert all("CommandId" in r for r in records)


# ---- the spec -------------------------------------------------------------------------


def test_region_entries_beat_star_which_beats_default():
    spec = FaultSpec.from_dict(
        {
            "regions": {"eu-west-1": {"error_rate": 0.1}, "*": {"error_rate": 0.2}},
            "default": {"error_rate": 0.3},
        }
    )
    assert spec.for_region("eu-west-1") == RegionFaults(error_rate=0.1)
    assert spec.for_region("us-east-1") == RegionFaults(error_rate=0.2)
    assert FaultSpec(default=RegionFaults(access_denied=True)).for_region("x").access_denied
    assert FaultSpec().for_region("us-east-1") is None
    assert FaultSpec.from_dict(spec.to_dict()) == spec
    assert hash(FaultSpec.from_dict(spec.to_dict())) == hash(spec)


@pytest.mark.parametrize(
    "document",
    [
        {"regions": {"us-east-1": {"error_rate": 1.5}}},
        {"regions": {"us-east-1": {"error_rate": "high"}}},
        {"regions": {"us-east-1": {"empty_pages": 1}}},
        {"regions": {"us-east-1": {"throttle_rate": 0}}},
        {"regions": {"us-east-1": {"throttle_burst": 0}}},
        {"regions": {"us-east-1": {"repeat_token": "yes"}}},
        {"regions": {"us-east-1": {"malformed_kinds": ["bad_json"]}}},
        {"regions": {"us-east-1": {"teleport": True}}},
        {"regions": ["us-east-1"]},
        {"seed": "one"},
        {"chaos": True},
    ],
)
def test_bad_fault_documents_are_refused(document):
    with pytest.raises(ValueError):
        FaultSpec.from_dict(document)


def test_faults_given_in_the_fleet_spec(emulator):
    from emulator import Emulator

    spec = type(emulator.spec)(**{**emulator.spec.__dict__, "faults": _only(access_denied=True)})
    with Emulator(spec) as other:
        assert other.faults.for_region(REGION) == RegionFaults(access_denied=True)
        request = urllib.request.Request(
            other.url,
            data=b"{}",
            headers={"Authorization": AUTH, "X-Amz-Target": "AmazonSSM.ListCommandInvocations"},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert json.loads(caught.value.read())["__type"] == "AccessDeniedException"


# ---- the admin API --------------------------------------------------------------------


def _admin(emulator, method: str, path: str, body=None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emulator.url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"] == "application/json"
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_admin_clock_moves_and_ground_truth_follows(emulator):
    assert _admin(emulator, "GET", "/_emulator/clock") == (200, {"now": "2026-03-02T06:00:00.000Z"})
    path = f"/_emulator/ground-truth?account={ACCOUNT}&region={REGION}"
    status, before = _admin(emulator, "GET", path)
    assert status == 200 and before == json.loads(
        json.dumps(emulator.ground_truth(ACCOUNT, REGION))
    )
    assert _admin(emulator, "POST", "/_emulator/clock", {"advance_seconds": 86400}) == (
        200,
        {"now": "2026-03-03T06:00:00.000Z"},
    )
    _, after = _admin(emulator, "GET", f"/_emulator/ground-truth?region={REGION}")
    assert after != before and {_key(r) for r in after} - {_key(r) for r in before}
    assert _admin(emulator, "POST", "/_emulator/clock", {"now": "2026-03-10T00:00:00.5+01:00"}) == (
        200,
        {"now": "2026-03-09T23:00:00.500Z"},
    )
    assert emulator.clock.now() - emulator.spec.now == timedelta(days=7, hours=17, milliseconds=500)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_emulator/clock", {"advance_seconds": "soon"}, 400),
        ("POST", "/_emulator/clock", {"now": "tomorrow"}, 400),
        ("POST", "/_emulator/clock", {"now": "2026-03-10T00:00:00"}, 400),
        ("POST", "/_emulator/clock", {}, 400),
        ("POST", "/_emulator/faults", {"regions": {"us-east-1": {"error_rate": 2}}}, 400),
        ("GET", "/_emulator/requests?since=-1", None, 400),
        ("GET", "/_emulator/ground-truth", None, 400),
        ("GET", "/_emulator/nothing", None, 404),
        ("DELETE", "/_emulator/clock", None, 405),
    ],
)
def test_admin_mistakes_are_json_errors(emulator, method, path, body, status):
    got, answer = _admin(emulator, method, path, body)
    assert got == status and isinstance(answer["error"], str)


def test_admin_faults_round_trip_and_clear(emulator, emulator_client):
    document = {"seed": 9, "regions": {REGION: {"error_rate": 1.0}}, "default": None}
    status, answer = _admin(emulator, "POST", "/_emulator/faults", document)
    assert status == 200 and answer == FaultSpec.from_dict(document).to_dict()
    assert answer["regions"][REGION]["error_rate"] == 1.0
    assert _admin(emulator, "GET", "/_emulator/faults") == (200, answer)
    assert emulator.faults == FaultSpec.from_dict(document)
    assert _code(emulator_client().list_command_invocations)[0] == "InternalServerError"
    empty = {"seed": 0, "regions": {}, "default": None}
    assert _admin(emulator, "DELETE", "/_emulator/faults") == (200, empty)
    assert emulator_client().list_command_invocations(MaxResults=1)["CommandInvocations"]


def test_admin_request_log_since(emulator, emulator_client):
    emulator_client().list_command_invocations(MaxResults=2)
    emulator_client("sts").get_caller_identity()
    status, log = _admin(emulator, "GET", "/_emulator/requests")
    assert status == 200 and [e["operation"] for e in log] == [
        "ListCommandInvocations",
        "GetCallerIdentity",
    ]
    assert log[0] == {
        "service": "ssm",
        "region": REGION,
        "operation": "ListCommandInvocations",
        "params": {"MaxResults": 2},
        "fault": None,
    }
    assert _admin(emulator, "GET", "/_emulator/requests?since=1") == (200, log[1:])
    assert _admin(emulator, "GET", "/_emulator/requests?since=5") == (200, [])
