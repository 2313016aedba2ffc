"""ListCommandInvocations answered in-process, behind a real botocore client.

botocore's `before-send` event lets a handler answer a request instead of the
network, so everything else stays real: the paginator, the decoding hook,
retries, error parsing. The emulator treats InvokedAfter/InvokedBefore as
inclusive; this fake can treat them either way, which is what the slice tests
need (nothing confirms which one AWS does).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from botocore.awsrequest import AWSResponse

from pipeline.extract import AwsSettings

Failure = Callable[[dict[str, Any]], tuple[int, dict[str, Any]] | None]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def response(url: str, status: int, payload: dict[str, Any] | bytes) -> AWSResponse:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "fake"}
    return AWSResponse(url, status, headers, _Raw(body))


def error(code: str, message: str = "", status: int = 400) -> tuple[int, dict[str, Any]]:
    return status, {"__type": code, "message": message}


def _at(record: dict[str, Any]) -> int:
    """When a record was requested, in ms: `PlacedAt` for one whose RequestedDateTime is bad."""
    return record.get("PlacedAt") or round(record["RequestedDateTime"] * 1000)


def _ms(value: str) -> int:
    return round(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


class FakeSsm:
    """Serves `records` newest first, `MaxResults` at a time; NextToken is an offset.

    `inclusive` says whether a record requested exactly at an InvokedAfter or
    InvokedBefore bound is returned. `fail(request)` may answer a request with
    an error instead, as (status, body).
    """

    def __init__(
        self, records: list[dict[str, Any]], *, inclusive: bool = True, fail: Failure | None = None
    ) -> None:
        self.records = sorted(
            records, key=lambda r: (-_at(r), r.get("CommandId", ""), r.get("InstanceId", ""))
        )
        self.inclusive = inclusive
        self.fail = fail
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def client(self, **settings: Any) -> Any:
        aws = AwsSettings(endpoint_url="http://ssm.fake.invalid", **settings)
        client = aws.client(aws.session(), "ssm", "us-east-1")
        client.meta.events.register("before-send.ssm.ListCommandInvocations", self.answer)
        return client

    def answer(self, request: Any, **_: Any) -> AWSResponse:
        body = json.loads(request.body or b"{}")
        with self._lock:
            self.requests.append(body)
        failure = self.fail(body) if self.fail else None
        if failure is not None:
            return response(request.url, *failure)
        matches = [r for r in self.records if self._matches(r, body)]
        start = int(body.get("NextToken") or 0)
        end = start + int(body.get("MaxResults") or 50)
        page: dict[str, Any] = {"CommandInvocations": matches[start:end]}
        if end < len(matches):
            page["NextToken"] = str(end)
        return response(request.url, 200, page)

    def _matches(self, record: dict[str, Any], request: dict[str, Any]) -> bool:
        if "CommandId" in request and record.get("CommandId") != request["CommandId"]:
            return False
        ms = _at(record)
        for item in request.get("Filters", ()):
            bound = _ms(item["value"])
            if item["key"] == "InvokedAfter" and not (
                ms >= bound if self.inclusive else ms > bound
            ):
                return False
            if item["key"] == "InvokedBefore" and not (
                ms <= bound if self.inclusive else ms < bound
            ):
                return False
        return True


class Collected:
    """A writer that keeps what it is given: `add(spec, table, stream)`, as a walk writes."""

    def __init__(self) -> None:
        self.tables: dict[str, list[Any]] = {}
        self.streams: dict[str, set[int]] = {}

    def add(self, spec: Any, table: Any, stream: int = 0) -> None:
        self.tables.setdefault(spec.name, []).append(table)
        self.streams.setdefault(spec.name, set()).add(stream)

    def rows(self, name: str) -> list[dict[str, Any]]:
        return [row for table in self.tables.get(name, ()) for row in table.to_pylist()]
