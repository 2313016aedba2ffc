"""Time slices of a region's window, a walk's stop, and following open commands.

Slices must give every record exactly one owner whether the API treats
InvokedAfter/InvokedBefore as inclusive or exclusive (or cuts them to the
second): nothing here can confirm which AWS does.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import Emulator, FleetSpec
from pipeline.errors import FatalAwsError, Interrupted
from pipeline.extract import AwsSettings
from pipeline.flatten import Lineage
from pipeline.pacing import Pacer
from pipeline.paging import PageRetry
from pipeline.walk import (
    FOLLOW_STREAM,
    HOUR_MS,
    MIN_SLICE_MS,
    OVERLAP_MS,
    RETENTION_MS,
    Slice,
    follow_commands,
    slice_count,
    slices,
    walk_region,
)
from tests import truth
from tests.fake_ssm import Collected, FakeSsm, error

NOW = 1_772_416_800_000  # 2026-03-02T02:00:00Z
ACCOUNT, REGION = "123456789012", "us-east-1"
LINEAGE = Lineage(ACCOUNT, REGION, "run-1", NOW)
NO_WAIT = PageRetry(attempts=0)


def _owners(parts: list[Slice], ms: int) -> int:
    return sum(part.owns(ms) for part in parts)


@pytest.mark.parametrize("start", [None, NOW - 48 * HOUR_MS, NOW - 7 * HOUR_MS])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_slices_are_contiguous_half_open_ranges(start, count):
    parts = slices(start, NOW, count)
    assert parts[0].after_ms == start, "the oldest slice starts at the window's start"
    assert parts[-1].before_ms is None, "the newest slice is open-ended"
    for left, right in zip(parts, parts[1:], strict=False):
        assert right.after_ms == left.before_ms
    lower = start if start is not None else NOW - RETENTION_MS
    probes = {lower, NOW, NOW + HOUR_MS}
    for part in parts[1:]:
        probes |= {part.after_ms - 1, part.after_ms, part.after_ms + 1}
    for ms in probes:
        assert _owners(parts, ms) == 1, ms
    if start is None:
        assert _owners(parts, lower - 10 * HOUR_MS) == 1, "a backfill reaches back past retention"
    else:
        assert _owners(parts, start - 1) == 0, "nothing before the window's start"


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


# --- one owner per record, whatever the API's bounds mean ---------------------------------


def _bounds(part: Slice) -> tuple[int | None, int | None]:
    """The InvokedAfter and InvokedBefore a slice sends, back in epoch ms."""
    found: dict[str, int] = {}
    for item in part.request().get("Filters", ()):
        moment = datetime.fromisoformat(item["value"].replace("Z", "+00:00"))
        found[item["key"]] = round(moment.timestamp() * 1000)
    return found.get("InvokedAfter"), found.get("InvokedBefore")


def _returned(ms: int, after: int | None, before: int | None, semantics: str) -> bool:
    """Whether an API reading its bounds by `semantics` returns a record requested at `ms`."""
    if semantics == "seconds":  # bounds cut to the second, then inclusive
        after = None if after is None else after // 1000 * 1000
        before = None if before is None else before // 1000 * 1000 + 999
    if semantics == "exclusive":
        return (after is None or ms > after) and (before is None or ms < before)
    return (after is None or ms >= after) and (before is None or ms <= before)


@settings(max_examples=300, deadline=None)
@given(
    start=st.none() | st.integers(NOW - RETENTION_MS, NOW - 1),
    count=st.integers(1, 12),
    offsets=st.lists(st.integers(-2 * OVERLAP_MS, 2 * OVERLAP_MS), max_size=20),
    spread=st.lists(st.integers(NOW - RETENTION_MS - HOUR_MS, NOW + HOUR_MS), max_size=20),
    semantics=st.sampled_from(["inclusive", "exclusive", "seconds"]),
)
def test_any_cut_gives_every_record_one_owner_under_any_bound_semantics(
    start, count, offsets, spread, semantics
):
    parts = slices(start, NOW, count)
    edges = [p.after_ms for p in parts if p.after_ms is not None]
    times = set(spread) | {edge + offset for edge in edges for offset in offsets}
    for ms in times:
        owners = [p for p in parts if _returned(ms, *_bounds(p), semantics) and p.owns(ms)]
        expected = 0 if start is not None and ms < start else 1
        assert len(owners) == expected, (ms, semantics)


def _record(ms: int, command: str, instance: str = "i-0123456789abcdef0") -> dict[str, Any]:
    return {"CommandId": command, "InstanceId": instance, "RequestedDateTime": ms / 1000}


def _edge_records(parts: list[Slice]) -> list[dict[str, Any]]:
    """Records at and around every edge, the window's start included."""
    records = []
    edges = [p.after_ms for p in parts if p.after_ms is not None]
    for n, edge in enumerate(edges):
        for offset in (-1001, -1000, -999, -1, 0, 1, 999, 1000, 1001):
            records.append(_record(edge + offset, f"c-{n}-{offset}"))
    return records


@pytest.mark.parametrize("inclusive", [True, False], ids=["inclusive", "exclusive"])
def test_a_walk_writes_each_record_once_whatever_the_bounds_mean(inclusive):
    start = NOW - 48 * HOUR_MS
    window = slices(start, NOW, 4)
    records = _edge_records(window)
    bad_at_edge = {"InstanceId": "i-1", "RequestedDateTime": window[1].after_ms / 1000}
    records.append(bad_at_edge)  # no CommandId, but a time: one owner
    fake = FakeSsm(records, inclusive=inclusive)
    writer = Collected()
    stats = walk_region(fake.client(), writer, LINEAGE, window, retry=NO_WAIT)
    written = Counter(row["command_id"] for row in writer.rows("invocations"))
    expected = {
        r["CommandId"]
        for r in records
        if "CommandId" in r and r["RequestedDateTime"] * 1000 >= start
    }
    assert set(written) == expected and set(written.values()) == {1}
    assert stats.invocations == len(expected)
    assert stats.quarantined == 1 and len(writer.rows("quarantine")) == 1
    widened = sum(1 for r in fake.requests if r.get("Filters"))
    assert widened == len(window), "one request a slice: every slice's records fit a page"


def test_a_record_without_a_usable_time_is_quarantined_once():
    """Returned by two overlapping slices (at an edge), it has no time to own it by."""
    window = slices(NOW - 48 * HOUR_MS, NOW, 2)
    edge = window[1].after_ms
    bad = {"CommandId": "c-bad", "InstanceId": "i-1", "RequestedDateTime": "soon", "PlacedAt": edge}
    fake = FakeSsm([_record(edge, "c-good"), bad], inclusive=True)
    writer = Collected()
    walk_region(fake.client(), writer, LINEAGE, window, retry=NO_WAIT)
    assert [row["command_id"] for row in writer.rows("invocations")] == ["c-good"]
    assert len(writer.rows("quarantine")) == 1


# --- failures and stops -------------------------------------------------------------------


def test_the_first_failing_slice_stops_the_others():
    going = threading.Event()
    records = [_record(NOW - n, f"c-{n}") for n in range(1000)]  # all in the open-ended slice

    def refuse_the_older_slice(request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        keys = {f["key"] for f in request.get("Filters", ())}
        if "InvokedBefore" in keys:
            going.wait(10)
            return error("AccessDeniedException", "not allowed")
        if request.get("NextToken") == "150":
            going.set()
        time.sleep(0.002)
        return None

    fake = FakeSsm(records, fail=refuse_the_older_slice)
    window = slices(None, NOW, 2)
    with pytest.raises(FatalAwsError, match="AccessDenied") as failure:
        walk_region(fake.client(), Collected(), LINEAGE, window, retry=NO_WAIT)
    assert window[failure.value.slice].before_ms is not None  # it names the slice that failed
    open_ended = [r for r in fake.requests if "InvokedBefore" not in str(r)]
    assert len(open_ended) < 10  # not all 20 pages: it stopped at the failure


def _emulator(instances: int = 8, **faults: Any) -> Emulator:
    spec = FleetSpec(
        seed=5,
        now=datetime.fromtimestamp(NOW / 1000, UTC),
        regions=(REGION,),
        instances_per_region=instances,
        account_id=ACCOUNT,
        faults={"seed": 1, "regions": {REGION: faults}} if faults else None,
    )
    return Emulator(spec)


@pytest.mark.parametrize(
    ("faults", "retry", "rate", "what"),
    [
        pytest.param({"slow_rate": 1.0, "slow_seconds": 2.0}, NO_WAIT, None, "request", id="in-flight-request"),
        pytest.param({"error_rate": 1.0}, PageRetry(attempts=3, base_seconds=60), None, "page retry", id="page-retry-sleep"),
        pytest.param({}, NO_WAIT, 0.1, "pacer", id="pacer-wait"),
    ],
)  # fmt: skip
def test_a_set_stop_ends_the_walk_within_a_second(faults, retry, rate, what):
    stop = threading.Event()
    with _emulator(**faults) as emulator:
        aws = AwsSettings(endpoint_url=emulator.url, max_attempts=1)
        client = aws.client(aws.session(), "ssm", REGION)
        Pacer(rate, burst=1, stop=stop).attach(client)
        window = slices(None, NOW, 3)
        timer = threading.Timer(0.5, stop.set)
        timer.start()
        started = time.monotonic()
        with pytest.raises(Interrupted):
            walk_region(client, Collected(), LINEAGE, window, retry=retry, stop=stop)
        ended = time.monotonic()
        timer.join()
        sent = _hot(emulator)
        time.sleep(2.5)  # anything abandoned in flight has come back by now
        assert _hot(emulator) == sent, f"no request after the stop ({what})"
    assert ended - started < 0.5 + 1.0, what


def _hot(emulator: Emulator) -> int:
    return sum(e["operation"] == "ListCommandInvocations" for e in emulator.request_log)


def test_a_stop_set_before_the_walk_sends_nothing():
    fake = FakeSsm([_record(NOW, "c-1")])
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted):
        walk_region(
            fake.client(), Collected(), LINEAGE, slices(None, NOW, 2), retry=NO_WAIT, stop=stop
        )
    assert fake.requests == []


# --- following commands -------------------------------------------------------------------


def test_follow_commands_reads_each_command_by_id():
    with _emulator(instances=60) as emulator:
        records = emulator.ground_truth(ACCOUNT, REGION)
        by_command: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_command.setdefault(record["CommandId"], []).append(record)
        big = max(by_command, key=lambda c: len(by_command[c]))
        small = min(by_command, key=lambda c: len(by_command[c]))
        gone = str(uuid.uuid4())
        assert len(by_command[big]) > 50, "a command of two pages"
        commands = [
            (c, round(by_command[c][0]["RequestedDateTime"] * 1000)) for c in (big, small)
        ] + [(gone, NOW - 40 * 24 * HOUR_MS)]
        aws = AwsSettings(endpoint_url=emulator.url, max_attempts=1)
        client = aws.client(aws.session(), "ssm", REGION)
        writer = Collected()
        emulator.request_log.clear()
        found = follow_commands(client, writer, LINEAGE, commands, retry=NO_WAIT)
        sent = [
            e["params"] for e in emulator.request_log if e["operation"] == "ListCommandInvocations"
        ]
    for command in (big, small):
        pages = math.ceil(len(by_command[command]) / 50)
        assert found[command].instance_ids == {r["InstanceId"] for r in by_command[command]}
        assert found[command].requests == pages
    assert found[gone].instance_ids == frozenset() and found[gone].requests == 1
    assert (
        len(sent)
        == sum(f.requests for f in found.values())
        == math.ceil(len(by_command[big]) / 50) + 2
    )
    assert all(p["CommandId"] in (big, small, gone) and p["Details"] is True for p in sent)
    expected = [
        truth.expected_invocation(r, ACCOUNT, REGION) for c in (big, small) for r in by_command[c]
    ]
    rows = truth.plain_rows(_table(writer, "invocations"))
    assert sorted(rows, key=truth.key) == sorted(_without_month(expected), key=truth.key)
    assert writer.streams["invocations"] == {FOLLOW_STREAM}


def _table(writer: Collected, name: str) -> pa.Table:
    return pa.concat_tables(writer.tables[name])


def _without_month(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "requested_month"} for row in rows]


def test_a_command_the_api_no_longer_knows_is_an_empty_set_not_an_error():
    known, unknown = str(uuid.uuid4()), str(uuid.uuid4())

    def invalid(request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if request.get("CommandId") == unknown:
            return error("InvalidCommandId", "")
        return None

    fake = FakeSsm([_record(NOW, known, "i-1"), _record(NOW, known, "i-2")], fail=invalid)
    commands = [(unknown, NOW - HOUR_MS), (known, NOW)]
    found = follow_commands(fake.client(), Collected(), LINEAGE, commands, retry=NO_WAIT)
    assert found[unknown].instance_ids == frozenset() and found[unknown].requests == 1
    assert found[known].instance_ids == {"i-1", "i-2"}
    assert "i-1" in found[known] and "i-3" not in found[known]
    assert [r["CommandId"] for r in fake.requests] == [known, unknown], "newest command first"


def test_following_stops_before_the_next_command():
    stop = threading.Event()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    fake = FakeSsm([_record(NOW, first)], fail=lambda request: stop.set())
    commands = [(first, NOW), (second, NOW - 1)]
    with pytest.raises(Interrupted):
        follow_commands(fake.client(), Collected(), LINEAGE, commands, retry=NO_WAIT, stop=stop)
    assert len(fake.requests) == 1
