"""Benchmark: requests of a night on a fleet with many open commands (issue 13, item 2).

An invocation the lake holds open (Pending, InProgress, Delayed, Cancelling)
from before a night's window is read again by command id
(ListCommandInvocations with CommandId, one walk per open command,
`pipeline.walk.follow_commands`), so following costs requests per open
command (one per page of its invocations), whatever the window's width.

The fleet is the emulator's (one region, 30 days, ~20,000 invocations at
scale 1), served by the replay (`replay.py`, in this process, which counts
what it answers). The emulator's own fleet has few commands open at a time
(a handful of episodes per region and month), so to get many, a share of
its commands (every k-th, by time) is served with all its invocations
`InProgress`, night after night. For each share: a backfill, then a night
from a copy of that lake for each of three lookbacks (1 h, 48 h, 7 days).
Counted: window requests (no CommandId) and follow-up requests (with
CommandId), and the open commands from before the window the lake held.
Beside them, the alternative issue 13 names: a window widened to the oldest
open invocation (a night with `--since` that time), counted the same way.

The nights run in this process through `pipeline.night.run_night` with a
thread runner (what the Prefect flow wraps): requests are counted, not
timed, so Prefect would add nothing.
"""

from __future__ import annotations

import copy
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .fleets import ACCOUNT, fleet
from .replay import Replay
from .results import Row

REGION = "eu-west-1"
SHARES = (0, 8, 2, 1)
"""Every k-th command held open (0: none, the emulator's fleet as it is)."""
LOOKBACKS = (1.0, 48.0, 168.0)
OPEN = {"Status": "InProgress", "StatusDetails": "InProgress"}


def held_open(records: list[dict[str, Any]], every: int) -> tuple[list[dict[str, Any]], int]:
    """`records` with every `every`-th command (oldest first) open; and how many commands."""
    if not every:
        return records, 0
    commands = sorted({r["CommandId"]: r["RequestedDateTime"] for r in records}.items(),
                      key=lambda item: item[1])  # fmt: skip
    chosen = {command for index, (command, _) in enumerate(commands) if index % every == 0}
    out = []
    for record in records:
        if record["CommandId"] in chosen:
            record = copy.deepcopy(record)
            record.update(OPEN)
            for plugin in record.get("CommandPlugins") or ():
                plugin.update(OPEN, ResponseCode=-1)
                plugin.pop("ResponseFinishDateTime", None)
        out.append(record)
    return out, len(chosen)


def _night(replay: Replay, lake: Path, **options: Any) -> dict[str, int]:
    from pipeline.config import RunConfig
    from pipeline.night import ThreadRunner, run_night

    config = RunConfig(
        lake=str(lake), regions=(REGION,), account_id=ACCOUNT, endpoint_url=replay.url, **options
    )
    replay.served.clear()
    runner = ThreadRunner(2)
    try:
        summary = run_night(config, config.settings(), runner)
    finally:
        runner.close()
    if summary.exit_code != 0:
        raise RuntimeError(summary.render())
    return {**replay.served, **summary.totals()}


def _open_before(lake: Path, lookback: float) -> tuple[int, int | None]:
    """Open commands the lake holds from before a night's window with `lookback`, and the
    oldest open invocation's time (epoch ms)."""
    from pipeline.config import RunConfig
    from pipeline.lake import Lake
    from pipeline.ledger import region_states

    state = region_states(Lake.open(lake).snapshot())[(ACCOUNT, REGION)]
    config = RunConfig(lake=str(lake), regions=(REGION,), lookback_hours=lookback)
    start = config.window().start_ms(state.watermark_ms)
    before = [c for c in state.open_commands if start is None or c.requested_ms < start]
    oldest = min((c.requested_ms for c in state.open_commands), default=None)
    return len(before), oldest


def run(scale: float = 1.0) -> list[Row]:
    from emulator import Emulator

    spec = fleet(round(20_000 * scale), (REGION,))
    records = Emulator(spec).ground_truth(ACCOUNT, REGION)
    commands = len({r["CommandId"] for r in records})
    rows = []
    for every in SHARES:
        served, opened = held_open(records, every)
        replay = Replay(spec, records={REGION: served}).start()
        share = "the emulator's fleet as is" if not every else f"1 command in {every} held open"
        try:
            with tempfile.TemporaryDirectory(prefix="ssm-bench-open-") as work:
                base = Path(work) / "base"
                backfill = _night(replay, base)
                oldest = None
                for lookback in LOOKBACKS:
                    lake = Path(work) / f"lookback-{lookback:g}"
                    shutil.copytree(base, lake)
                    open_before, oldest = _open_before(lake, lookback)
                    counted = _night(replay, lake, lookback_hours=lookback)
                    rows.append(
                        Row("open", f"{share}, lookback {lookback:g} h",
                            f"{counted.get('follow-up', 0)} follow-up + "
                            f"{counted.get('window', 0)} window requests",
                            f"{open_before} open commands before the window, "
                            f"{counted['followed']:,} invocations followed")
                    )  # fmt: skip
                    print(f"  open: {rows[-1].measure}: {rows[-1].value}; {rows[-1].note}",
                          file=sys.stderr, flush=True)  # fmt: skip
                if oldest is not None:
                    lake = Path(work) / "widened"
                    shutil.copytree(base, lake)
                    since = datetime.fromtimestamp(oldest / 1000, UTC)
                    counted = _night(replay, lake, since=since)
                    rows.append(
                        Row("open", f"{share}: window widened to the oldest open instead",
                            f"{counted.get('window', 0)} window requests",
                            f"from {since:%Y-%m-%d %H:%M}, the alternative (not what runs)")
                    )  # fmt: skip
        finally:
            replay.stop()
        rows.append(
            Row("open", f"{share}: backfill", f"{backfill.get('window', 0)} requests",
                f"{backfill['invocations']:,} invocations, {commands} commands, "
                f"{opened} held open")
        )  # fmt: skip
    return rows
