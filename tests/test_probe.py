"""The preflight probe: nothing reachable, or credentials that do not work, in one line."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from pipeline.errors import NothingReachedError
from pipeline.extract import AwsSettings
from pipeline.probe import explain, probe
from tests.conftest_emulator import EMULATOR_ACCOUNT

REGION = "us-east-1"


def _refused(settings: AwsSettings, region: str = REGION, **timeouts: float) -> str:
    with pytest.raises(NothingReachedError) as failure:
        probe(settings, region, **timeouts)
    message = str(failure.value)
    assert "\n" not in message, "one line"
    assert failure.value.exit_code == 4
    return message


def test_a_working_endpoint_and_credentials_pass_and_name_the_account(emulator):
    assert probe(AwsSettings(endpoint_url=emulator.url), REGION) == EMULATOR_ACCOUNT
    sent = [(e["service"], e["operation"]) for e in emulator.request_log]
    assert sent == [("ssm", "ListCommandInvocations"), ("sts", "GetCallerIdentity")]
    assert emulator.request_log[0]["params"] == {"MaxResults": 1}


def test_without_a_region_the_sessions_own_is_asked(emulator):
    assert probe(AwsSettings(endpoint_url=emulator.url), None) == EMULATOR_ACCOUNT
    assert {e["region"] for e in emulator.request_log} == {"us-east-1"}  # AWS_DEFAULT_REGION


def test_a_given_account_id_needs_no_sts_call(emulator):
    assert probe(AwsSettings(endpoint_url=emulator.url), REGION, "111111111111") == "111111111111"
    assert [e["service"] for e in emulator.request_log] == ["ssm"]


def test_throttling_counts_as_reached(emulator, emulator_client):
    emulator.set_faults({"seed": 1, "regions": {REGION: {"throttle_rate": 0.01}}})
    emulator_client().list_command_invocations(MaxResults=1)  # the bucket's one token
    assert probe(AwsSettings(endpoint_url=emulator.url), REGION) == EMULATOR_ACCOUNT
    faults = [e["fault"] for e in emulator.request_log if e["service"] == "ssm"]
    assert faults == [None, "throttle", "throttle"]


def test_a_closed_port_names_the_url_and_the_fix():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    message = _refused(AwsSettings(endpoint_url=url))
    assert url in message and "connection refused" in message
    assert "--endpoint-url" in message and "AWS_ENDPOINT_URL" in message


@pytest.fixture
def silent() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_an_endpoint_that_never_answers_fails_after_two_short_attempts(silent):
    started = time.monotonic()
    message = _refused(AwsSettings(endpoint_url=silent), read_timeout=0.3)
    assert silent in message and "no answer in time" in message
    assert time.monotonic() - started < 5  # two attempts of 0.3 s, not 3 x 60 s


def test_a_host_that_does_not_resolve_says_so():
    failure = EndpointConnectionError(
        endpoint_url="https://ssm.nowhere.invalid",
        error=OSError("[Errno -2] Name or service not known"),
    )
    message = str(
        explain(failure, source="x", region=REGION, endpoint="https://ssm.nowhere.invalid")
    )
    assert "https://ssm.nowhere.invalid" in message and "does not resolve" in message


def test_no_credentials_names_the_chain_and_the_fix(emulator, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    message = _refused(AwsSettings(endpoint_url=emulator.url))
    assert "no AWS credentials" in message and "boto3's credential chain" in message
    assert "--profile" in message and "AWS_PROFILE" in message
    assert emulator.request_log == [], "nothing was sent"


def test_no_credentials_to_assume_a_role_with(emulator, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    settings = AwsSettings(endpoint_url=emulator.url).assuming("arn:aws:iam::210987654321:role/R")
    assert "no AWS credentials" in _refused(settings)


def test_keys_the_service_does_not_accept(emulator):
    emulator.set_faults({"seed": 1, "regions": {REGION: {"unrecognized_client": True}}})
    message = _refused(AwsSettings(endpoint_url=emulator.url))
    assert "does not accept the credentials from the environment" in message
    assert "UnrecognizedClientException" in message and emulator.url in message
    assert "--profile" in message


def test_access_denied_names_the_call_and_the_region(emulator):
    emulator.set_faults({"seed": 1, "regions": {REGION: {"access_denied": True}}})
    message = _refused(AwsSettings(endpoint_url=emulator.url))
    assert "may not call ListCommandInvocations in us-east-1" in message


def test_session_credentials_that_expired(emulator, emulator_client, monkeypatch):
    role = f"arn:aws:iam::{EMULATOR_ACCOUNT}:role/Reader"
    sts = emulator_client("sts")
    issued = sts.assume_role(RoleArn=role, RoleSessionName="probe")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", issued["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", issued["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", issued["SessionToken"])
    emulator.expire_credentials()
    message = _refused(AwsSettings(endpoint_url=emulator.url))
    assert "the AWS credentials from the environment (AWS_ACCESS_KEY_ID) have expired" in message


def _client_error(operation: str, code: str, service: str = "sts") -> ClientError:
    client = boto3.client(service, region_name=REGION)
    with Stubber(client) as stub, pytest.raises(ClientError) as failure:
        stub.add_client_error(operation, code, "the message")
        getattr(client, operation)()
    return failure.value


@pytest.mark.parametrize("code", ["ExpiredToken", "ExpiredTokenException", "RequestExpired"])
def test_an_expired_token_says_to_refresh_it(code):
    message = str(explain(_client_error("get_caller_identity", code), source="SSO", region=REGION))
    assert f"the AWS credentials from SSO have expired ({code})" in message
    assert "aws sso login" in message


def test_an_odd_answer_asks_whether_the_endpoint_is_right():
    error = _client_error("get_caller_identity", "UnknownOperationException")
    message = str(explain(error, source="x", region=REGION, endpoint="http://localhost:9"))
    assert "http://localhost:9 answered GetCallerIdentity" in message
    assert "--endpoint-url" in message
