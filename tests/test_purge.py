"""`ssm-etl purge` covers every table (issue 14.11), run as the installed command."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from pipeline.lake import Lake
from pipeline.schema import COMMANDS, MANAGED_INSTANCES, QUARANTINE
from pipeline.views import connect
from tests.lakes import ACCOUNT, commit_rows, ingest, invocation, plugin, record_run
from tests.truth import view_rows

SSM_ETL = str(Path(sys.executable).with_name("ssm-etl"))
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=400)  # a whole month, long ended
RECENT = NOW - timedelta(days=2)
EAST, WEST = "us-east-1", "eu-west-1"


def _ledger(run_id: str, region: str, finished: datetime, status: str) -> dict:
    return {
        "run_id": run_id, "account_id": ACCOUNT, "region": region,
        "started_at": finished - timedelta(minutes=1), "finished_at": finished,
        "window_start": None, "window_end": None, "pages": 1, "invocations": 1, "plugins": 1,
        "quarantined": 0, "status": status, "error": None, "watermark": None,
        "purged_months": None, "commands": None, "managed_instances": None,
        "open_followed": None, "expired_while_open": None,
    }  # fmt: skip


def _rows(spec, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=spec.schema)


def _lineage(moment: datetime) -> dict:
    return {"account_id": ACCOUNT, "run_id": f"run-{moment:%Y%m%d}", "ingested_at": moment}


def _build(lake_dir: Path) -> None:
    lake = Lake.create(lake_dir)
    for moment, command in ((OLD, "c-old"), (RECENT, "c-new")):
        records = [
            invocation(command, "i-01", moment, "Failed", plugins=[plugin("s", "Failed", 1)])
        ]
        ingest(lake, records, run_id=f"run-{moment:%Y%m%d}", ingested_at=moment, region=WEST)
        commands = [{**_lineage(moment), "region": WEST, "command_id": command,
                     "requested_date_time": moment, "requested_date": moment.date()}]  # fmt: skip
        quarantined = [{**_lineage(moment), "region": WEST, "reason": "bad",
                        "raw_json": f'{{"seen": "{moment:%Y-%m-%d}"}}'}]  # fmt: skip
        commit_rows(
            lake,
            [(COMMANDS, _rows(COMMANDS, commands)), (QUARANTINE, _rows(QUARANTINE, quarantined))],
            run_id=f"run-{moment:%Y%m%d}",
            region=WEST,
        )
    # Inventories: us-east-1 was last read long ago, eu-west-1 recently.
    for moment, region in ((OLD, EAST), (RECENT, WEST)):
        instances = [{**_lineage(moment), "region": region, "instance_id": "i-01"}]
        commit_rows(lake, [(MANAGED_INSTANCES, _rows(MANAGED_INSTANCES, instances))], region=region)
    record_run(lake, _ledger("run-a", WEST, OLD - timedelta(days=1), "failed"))
    record_run(lake, _ledger("run-b", WEST, OLD, "succeeded"))
    record_run(lake, _ledger("run-c", WEST, RECENT, "succeeded"))
    record_run(lake, _ledger("run-d", EAST, OLD, "succeeded"))  # the region's newest success


def test_purge_removes_what_is_older_from_every_table(tmp_path):
    lake = tmp_path / "lake"
    _build(lake)
    old_month = lake / "invocations" / f"account_id={ACCOUNT}" / f"region={WEST}"
    old_month = old_month / f"requested_month={OLD:%Y-%m}"
    assert list(old_month.glob("*.parquet")), "the old month is on disk before the purge"

    done = subprocess.run(
        [SSM_ETL, "purge", "--lake", str(lake), "--older-than", "30", "--keep-days", "0"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""

    def only(table: str, column: str) -> list:
        return sorted(row[column] for row in view_rows(lake, table))

    assert only("invocations", "command_id") == ["c-new"]
    assert only("command_plugins", "command_id") == ["c-new"]
    assert only("commands", "command_id") == ["c-new"]
    assert only("quarantine", "raw_json") == [f'{{"seen": "{RECENT:%Y-%m-%d}"}}']
    assert only("managed_instances", "region") == [WEST], "the inventory nobody reads is gone"
    views = connect(Lake.open(lake))
    ledger = dict(
        ((run, region), status)
        for run, region, status in views.sql(
            "SELECT run_id, region, status FROM ingest_runs"
        ).fetchall()
    )
    assert ("run-c", WEST) in ledger and ("run-d", EAST) in ledger, "newest successes stay"
    assert ("run-a", WEST) not in ledger and ("run-b", WEST) not in ledger
    purges = [key for key, status in ledger.items() if status == "purged"]
    assert purges and all(region == WEST for _, region in purges)
    assert not list(old_month.glob("*.parquet")), "--keep-days 0 vacuumed the purged files"
