"""Paged calls: the retry budget of a page, resuming from its token, the one pager, stops."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pipeline.errors import FatalAwsError, Interrupted
from pipeline.extract import AwsSettings, invocation_pages
from pipeline.paging import PageRetry, pager, pages, pause
from tests.fake_ssm import FakeSsm, error

REGION = "us-east-1"


def _records(n: int) -> list[dict[str, Any]]:
    return [
        {"CommandId": f"c-{i:03}", "InstanceId": "i-1", "RequestedDateTime": 1772400000 + i}
        for i in range(n)
    ]


@pytest.mark.parametrize(("max_attempts", "page_retries"), [(1, 0), (2, 2), (3, 1)])
def test_a_page_costs_at_most_attempts_times_page_retries(emulator, max_attempts, page_retries):
    """The documented bound: (1 + page retries) x botocore's attempts, then the region fails."""
    emulator.set_faults({"seed": 1, "regions": {REGION: {"error_rate": 1.0}}})
    aws = AwsSettings(endpoint_url=emulator.url, max_attempts=max_attempts)
    client = aws.client(aws.session(), "ssm", REGION)
    retry = PageRetry(attempts=page_retries, base_seconds=0)
    with pytest.raises(FatalAwsError, match="InternalServerError") as failure:
        list(invocation_pages(client, {}, retry=retry, region=REGION))
    assert f"failed {page_retries + 1} times" in str(failure.value)
    sent = [e for e in emulator.request_log if e["operation"] == "ListCommandInvocations"]
    assert len(sent) == (1 + page_retries) * max_attempts


def test_the_default_budget_is_what_the_docs_say():
    """15 attempts and at most 30 s of our own waiting a page (pipeline/paging.py, README)."""
    retry = PageRetry()
    assert AwsSettings().max_attempts * (1 + retry.attempts) == 15
    longest = [min(retry.cap_seconds, retry.base_seconds * 2**k) for k in range(retry.attempts)]
    assert longest == [2, 4, 8, 16]
    assert all(retry.delay(k) <= longest[k] for k in range(retry.attempts) for _ in range(100))


def test_a_failed_page_is_asked_for_again_from_its_own_token():
    failures = {"50": 2}

    def flaky(request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        token = request.get("NextToken")
        if failures.get(token):
            failures[token] -= 1
            return error("ThrottlingException", "Rate exceeded")
        return None

    fake = FakeSsm(_records(120), fail=flaky)
    got = list(invocation_pages(fake.client(max_attempts=1), {}, retry=PageRetry(base_seconds=0)))
    assert [len(page) for page in got] == [50, 50, 20]
    assert [r.get("NextToken") for r in fake.requests] == [None, "50", "50", "50", "100"]
    ids = [c for page in got for c in page.records.field("CommandId").to_pylist()]
    assert len(ids) == len(set(ids)) == 120


def test_credentials_that_expired_on_the_way_are_a_retried_page():
    """Re-sent, the request is signed again, with refreshed credentials."""
    expired = [
        error("ExpiredTokenException", "The security token included in the request is expired")
    ]
    fake = FakeSsm(_records(3), fail=lambda request: expired.pop() if expired else None)
    got = list(invocation_pages(fake.client(max_attempts=1), {}, retry=PageRetry(base_seconds=0)))
    assert [len(page) for page in got] == [3] and len(fake.requests) == 2


def test_a_token_repeated_by_the_api_fails_the_walk(emulator):
    emulator.set_faults({"seed": 1, "regions": {REGION: {"repeat_token": True}}})
    aws = AwsSettings(endpoint_url=emulator.url, max_attempts=1)
    client = aws.client(aws.session(), "ssm", REGION)
    with pytest.raises(FatalAwsError, match="same NextToken") as failure:
        list(invocation_pages(client, {}, retry=PageRetry(base_seconds=0), region=REGION))
    assert failure.value.code == "RepeatedNextToken"
    # The second answer repeats the token it was asked with: the paginator stops there.
    assert sum(e["operation"] == "ListCommandInvocations" for e in emulator.request_log) == 2


def test_paginators_page_the_other_sources(emulator_client):
    client = emulator_client("ssm")
    commands = list(pages(client, "list_commands", {}, retry=PageRetry(), page_size=7))
    assert len(commands) > 1 and all(len(p["Commands"]) <= 7 for p in commands)


# --- the one pager, for calls without a paginator -----------------------------------------


def _logs() -> Any:
    return boto3.client("logs", region_name=REGION)


def test_the_pager_follows_a_token_until_it_repeats():
    logs = _logs()
    request = {"logGroupName": "/ssm", "logStreamName": "run", "startFromHead": True}
    with Stubber(logs) as stub:
        for token, events in (("f1", ["a"]), ("f2", ["b", "c"]), ("f2", [])):
            answer = {"events": [{"message": m} for m in events], "nextForwardToken": token}
            sent = request if token == "f1" else {**request, "nextToken": "f1" if events else "f2"}
            stub.add_response("get_log_events", answer, sent)
        got = list(
            pager(
                logs.get_log_events,
                request,
                input_token="nextToken",
                output_token="nextForwardToken",
                retry=PageRetry(),
            )
        )
        stub.assert_no_pending_responses()
    assert [[e["message"] for e in page["events"]] for page in got] == [["a"], ["b", "c"], []]


def test_the_pager_asks_for_a_failed_page_again_with_the_same_token():
    logs = _logs()
    request = {"logGroupName": "/ssm", "logStreamName": "run", "nextToken": "f1"}
    with Stubber(logs) as stub:
        stub.add_client_error("get_log_events", "ThrottlingException", expected_params=request)
        stub.add_response("get_log_events", {"events": [], "nextForwardToken": "f1"}, request)
        got = list(
            pager(
                logs.get_log_events,
                request,
                input_token="nextToken",
                output_token="nextForwardToken",
                retry=PageRetry(base_seconds=0),
            )
        )
        stub.assert_no_pending_responses()
    assert len(got) == 1


# --- stops ----------------------------------------------------------------------------------


def test_a_pause_ends_when_its_stop_is_set():
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        pause(30, stop)
    assert time.monotonic() - started < 1.0
    pause(0, None)


def test_no_request_starts_once_stop_is_set():
    stop = threading.Event()
    fake = FakeSsm(_records(120))
    walk = invocation_pages(fake.client(), {}, retry=PageRetry(), stop=stop)
    next(walk)
    stop.set()
    with pytest.raises(Interrupted):
        next(walk)
    assert len(fake.requests) == 1
