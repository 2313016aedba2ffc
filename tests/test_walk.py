"""Time slices of a region's window: contiguous to the millisecond, no overlap, nothing outside."""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

from pipeline.errors import FatalAwsError
from pipeline.extract import PageRetry
from pipeline.flatten import Lineage
from pipeline.lake import Lake
from pipeline.walk import (
    HOUR_MS,
    MIN_SLICE_MS,
    RETENTION_MS,
    Slice,
    slice_count,
    slices,
    walk_region,
)

NOW = 1_772_416_800_000  # 2026-03-02T02:00:00Z


def _covers(parts: list[Slice], ms: int) -> int:
    """How many slices an invocation requested at `ms` falls into (filters are inclusive)."""
    return sum(
        (p.after_ms is None or ms >= p.after_ms) and (p.before_ms is None or ms <= p.before_ms)
        for p in parts
    )


@pytest.mark.parametrize("start", [None, NOW - 48 * HOUR_MS, NOW - 7 * HOUR_MS])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_every_millisecond_falls_in_exactly_one_slice(start, count):
    parts = slices(start, NOW, count)
    assert parts[0].after_ms == start, "the oldest slice starts at the window's start"
    assert parts[-1].before_ms is None, "the newest slice is open-ended"
    for left, right in zip(parts, parts[1:], strict=False):
        assert right.after_ms == left.before_ms + 1
    lower = start if start is not None else NOW - RETENTION_MS
    probes = {lower, NOW, NOW + HOUR_MS}
    for part in parts[1:]:
        probes |= {part.after_ms - 1, part.after_ms, part.after_ms + 1}
    for ms in probes:
        assert _covers(parts, ms) == 1, ms
    if start is None:
        assert _covers(parts, lower - 10 * HOUR_MS) == 1, "a backfill reaches back past retention"


def test_short_windows_are_not_cut():
    assert slices(NOW - MIN_SLICE_MS + 1, NOW, 4) == [Slice(NOW - MIN_SLICE_MS + 1, None)]
    assert len(slices(NOW - 2 * MIN_SLICE_MS, NOW, 4)) == 2


@pytest.mark.parametrize(
    ("round_trip", "most", "expected"),
    [
        (0.002, 8, 2),  # a local endpoint: more threads would only contend
        (0.02, 8, 2),
        (0.05, 8, 4),  # a 50 ms probe: about 200 ms a full page, four in flight fill 20/s
        (0.2, 8, 8),  # slow: every slice allowed
        (0.2, 3, 3),
    ],
)
def test_slices_follow_the_round_trip_up_to_the_limit(round_trip, most, expected):
    assert slice_count(round_trip, most) == expected


class _OneSliceFails:
    """A client whose bounded slice is refused at once while the open-ended one pages on."""

    PAGES = 1000

    def __init__(self) -> None:
        self.open_ended_calls = 0
        self._going = threading.Event()

    def list_command_invocations(self, **request):
        keys = {f["key"] for f in request.get("Filters", ())}
        if "InvokedBefore" in keys:  # the older slice: refused once the other one is going
            self._going.wait(10)
            error = {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}
            raise ClientError(error, "ListCommandInvocations")
        self.open_ended_calls += 1
        if self.open_ended_calls == 3:
            self._going.set()
        token = int(request.get("NextToken", 0)) + 1
        time.sleep(0.002)
        record = {"CommandId": f"c-{token}", "InstanceId": "i-1", "RequestedDateTime": NOW / 1000}
        response = {"CommandInvocations": [record]}
        return {**response, "NextToken": str(token)} if token < self.PAGES else response


def test_the_first_failing_slice_stops_the_others(tmp_path):
    client = _OneSliceFails()
    lake = Lake.create(tmp_path / "lake")
    writer = lake.writer("run-1", "111111111111", "us-east-1")
    lineage = Lineage("111111111111", "us-east-1", "run-1", NOW)
    window = slices(None, NOW, 2)
    with pytest.raises(FatalAwsError, match="AccessDenied") as failure:
        walk_region(client, writer, lineage, window, retry=PageRetry(attempts=0))
    writer.abort()
    assert window[failure.value.slice].before_ms is not None  # it names the slice that failed
    assert client.open_ended_calls < 50  # not all 1000 pages: it stopped at the failure
