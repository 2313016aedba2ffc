"""Open invocations are followed until they end, whatever the lookback (issue 13).

Forty simulated nights through the flow. After every night, every invocation
the API still returns is in the lake exactly as the API reports it, including
the emulator's long-open cases: executions of about 2 days, nodes offline
for about 5 days that come back, deliveries that wait 20 days and time out.
An invocation still open when it leaves SSM's retention keeps its last state
and is marked expired while open.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from emulator import Emulator
from pipeline.lake import Lake
from pipeline.views import connect
from tests.nights import ACCOUNT, night, spec
from tests.truth import expected_invocation, expected_plugins, key, view_rows

REGION = "eu-west-1"
NIGHTS = 40
OPEN = ("Pending", "InProgress", "Delayed", "Cancelling")
LONG_OPEN = {"long-run", "offline-returns", "offline-timeout"}
"""The emulator's cases that stay open about 2, 5 and 20 days (see its README)."""


def _by_key(rows: list[dict]) -> dict[tuple, list[dict]]:
    grouped: dict[tuple, list[dict]] = {}
    for row in rows:
        grouped.setdefault(key(row)[:3], []).append(row)
    return grouped


@pytest.mark.parametrize("lookback", [48.0, 1.0], ids=["default-lookback", "lookback-1h"])
def test_open_invocations_reach_the_state_the_api_reports_last(tmp_path, prefect_api, lookback):
    lake = tmp_path / "lake"
    followed: set[tuple] = set()  # invocations the lake held open, seen final later
    requests = 0
    with Emulator(spec(regions=(REGION,))) as emulator:
        kinds = {
            (REGION, s["CommandId"], s["InstanceId"]): s["kind"]
            for s in emulator.open_spans(
                ACCOUNT, REGION, emulator.clock.now() - timedelta(days=30),
                emulator.clock.now() + timedelta(days=NIGHTS),
            )
        }  # fmt: skip
        held_open: set[tuple] = set()
        for number in range(NIGHTS):
            if number:
                emulator.clock.advance(timedelta(days=1))
            first = len(emulator.request_log)
            night(emulator, lake, regions=(REGION,), lookback_hours=lookback)
            requests += sum(
                1
                for r in emulator.request_log[first:]
                if r["operation"] == "ListCommandInvocations" and "CommandId" in (r["params"] or {})
            )
            records = emulator.ground_truth(ACCOUNT, REGION)
            api = {
                key(row)[:3]: row
                for row in (expected_invocation(r, ACCOUNT, REGION) for r in records)
            }
            plugins = _by_key([p for r in records for p in expected_plugins(r, ACCOUNT, REGION)])
            stored = {key(row)[:3]: row for row in view_rows(lake, "invocations")}
            stored_plugins = _by_key(view_rows(lake, "command_plugins"))
            for k, row in api.items():  # every invocation the API still returns, exactly
                assert stored.get(k) == row, (number, k)
                assert sorted(stored_plugins.get(k, []), key=key) == sorted(
                    plugins.get(k, []), key=key
                )
            now_open = {k for k, row in stored.items() if row["status"] in OPEN}
            followed |= {k for k in held_open if k in api and api[k]["status"] not in OPEN}
            held_open = now_open
    assert {kinds.get(k) for k in followed} >= LONG_OPEN, (
        "each long-open case was followed to its end"
    )
    assert requests, "open invocations from before the window were read by command id"

    con = connect(Lake.open(lake))
    expired = con.sql(
        "SELECT command_id, instance_id, status FROM invocations "
        "WHERE expired_while_open_at IS NOT NULL"
    ).fetchall()
    stuck = [(c, i) for c, i, _ in expired if kinds.get((REGION, c, i)) == "stuck"]
    assert stuck, "an invocation that left the retention still open is marked"
    assert all(status in OPEN for _, _, status in expired), "its last state is kept"
    assert {k[1:] for k in api}.isdisjoint(set(stuck)), "only invocations the API no longer has"
    counted = con.sql("SELECT sum(expired), sum(open) FROM compliance_daily").fetchall()[0]
    assert counted[0] == len(expired)
