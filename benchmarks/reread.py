"""Benchmark: a night that re-reads about 1,000 invocations on the year's lake (issue 12).

On a copy of the query benchmark's lake (its Parquet files hard-linked,
which Delta never modifies; everything else copied), one account/region's
newest 1,000 invocations are served again by the replay (`replay.py`, a
child process) as the API would: in their stored state, except that the
`Delayed` ones among them have now timed out. The invocations of commands
the lake holds open from before that window are served too (the API still
has them), so the night's follow-up finds them. ListCommands and the
inventory come from an emulator of that region whose clock is the lake's
last night. Then the installed CLI runs one night
(`ssm-etl run --since <the oldest of the 1,000>`, no Prefect server
configured), a whole process tree.

Read back from the tables' Delta logs (the commits that carry the run's id):
per table the files each commit removed (rewritten) and added, and the
partitions they are in, against the partitions the table has; and the
commit's duration, from the region's `finished_at` in the ledger to the
ledger's own commit (the last of the batch: plugins, invocations, commands,
inventory, then the ledger).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from emulator import FleetSpec
from pipeline.lake import Lake
from pipeline.schema import COMMAND_PLUGINS, INGEST_RUNS, INVOCATIONS, TABLES

from . import cli
from .generate_lake import LakeSpec, generate
from .queries import lake_path
from .replay import Replay
from .results import Row
from .servers import serve_in_child

REREAD = 1_000
_RUN = re.compile(r"^run (\S+)", re.MULTILINE)
_COMMITTED = re.compile(r"committed \d+ regions \((\d+) rows\) in ([\d.]+) s")
OPEN = ("Pending", "InProgress", "Delayed", "Cancelling")


def linked_copy(source: Path, target: Path) -> None:
    """A copy whose data files are hard links (immutable in Delta) and the rest copies."""

    def link_or_copy(src: str, dst: str) -> None:
        if src.endswith(".parquet"):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, copy_function=link_or_copy)


def _seconds(value: Any) -> float | None:
    return None if value is None else value.timestamp()


def _record(row: dict[str, Any], plugins: list[dict[str, Any]]) -> dict[str, Any]:
    """A stored invocation as ListCommandInvocations (Details=true) returns it."""
    record = {
        "CommandId": row["command_id"], "InstanceId": row["instance_id"],
        "InstanceName": row["instance_name"], "Comment": row["comment"],
        "DocumentName": row["document_name"], "DocumentVersion": row["document_version"],
        "RequestedDateTime": _seconds(row["requested_date_time"]), "Status": row["status"],
        "StatusDetails": row["status_details"], "TraceOutput": row["trace_output"],
        "StandardOutputUrl": row["standard_output_url"],
        "StandardErrorUrl": row["standard_error_url"], "ServiceRole": row["service_role"],
        "NotificationConfig": {
            "NotificationArn": row["notification_arn"],
            "NotificationEvents": row["notification_events"] or [],
            "NotificationType": row["notification_type"],
        },
        "CloudWatchOutputConfig": {
            "CloudWatchLogGroupName": row["cloud_watch_log_group_name"],
            "CloudWatchOutputEnabled": bool(row["cloud_watch_output_enabled"]),
        },
        "CommandPlugins": [
            {
                "Name": p["name"], "Status": p["status"], "StatusDetails": p["status_details"],
                "ResponseCode": p["response_code"],
                "ResponseStartDateTime": _seconds(p["response_start_date_time"]),
                "ResponseFinishDateTime": _seconds(p["response_finish_date_time"]),
                "Output": p["output"], "StandardOutputUrl": p["standard_output_url"],
                "StandardErrorUrl": p["standard_error_url"],
                "OutputS3Region": p["output_s3_region"],
                "OutputS3BucketName": p["output_s3_bucket_name"],
                "OutputS3KeyPrefix": p["output_s3_key_prefix"],
            }
            for p in sorted(plugins, key=lambda p: p["plugin_index"])
        ],
    }  # fmt: skip
    for key in ("ResponseStartDateTime", "ResponseFinishDateTime"):
        for plugin in record["CommandPlugins"]:
            if plugin[key] is None:
                del plugin[key]
    return record


def served_records(lake: Lake, account: str, region: str) -> tuple[list[dict[str, Any]], int, int]:
    """The API's answer for the night: the newest REREAD invocations (Delayed ones timed
    out) and every invocation of the commands still open from before them; newest first.
    Returns the records, the window's count and the open-followed count."""
    snapshot = lake.snapshot()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    for spec in (INVOCATIONS, COMMAND_PLUGINS):
        con.register(spec.name, snapshot.dataset(spec))
    scope = "account_id = ? AND region = ?"
    oldest = con.execute(
        f"SELECT min(t) FROM (SELECT requested_date_time AS t FROM invocations WHERE {scope} "
        f"ORDER BY t DESC LIMIT {REREAD})",
        [account, region],
    ).fetchone()[0]
    rows = con.execute(
        f"""SELECT * FROM invocations WHERE {scope} AND (requested_date_time >= ?
        OR command_id IN (SELECT command_id FROM invocations WHERE {scope}
            AND status IN {OPEN} AND expired_while_open_at IS NULL))
        ORDER BY requested_date_time DESC, command_id, instance_id""",
        [account, region, oldest, account, region],
    ).fetchall()
    columns = [d[0] for d in con.description]
    rows = [dict(zip(columns, row, strict=True)) for row in rows]
    plugins: dict[tuple[str, str], list[dict[str, Any]]] = {}
    found = con.execute(
        f"SELECT * FROM command_plugins WHERE {scope} AND requested_date_time >= ?",
        [account, region, min(r["requested_date_time"] for r in rows)],
    ).fetchall()
    columns = [d[0] for d in con.description]
    for values in found:
        p = dict(zip(columns, values, strict=True))
        plugins.setdefault((p["command_id"], p["instance_id"]), []).append(p)
    records = []
    for row in rows:
        record = _record(row, plugins.get((row["command_id"], row["instance_id"]), []))
        if row["requested_date_time"] >= oldest and record["Status"] == "Delayed":
            record.update(Status="TimedOut", StatusDetails="DeliveryTimedOut")
        records.append(record)
    in_window = sum(1 for r in rows if r["requested_date_time"] >= oldest)
    return records, in_window, len(rows) - in_window


def _commits(lake: Lake, run_id: str) -> list[dict[str, Any]]:
    """Every commit of the run, with the files it added and removed (from the log itself)."""
    out = []
    for spec in TABLES:
        table = lake.table(spec)
        for entry in table.history():
            if (entry.get("ssm_etl") or {}).get("run_id") != run_id:
                continue
            version = int(entry["version"])
            log = Path(lake.table_uri(spec).removeprefix("file://")) / "_delta_log"
            actions = [json.loads(line) for line in (log / f"{version:020d}.json").open()]
            added = [a["add"] for a in actions if "add" in a]
            removed = [a["remove"] for a in actions if "remove" in a]
            out.append({
                "table": spec.name, "version": version, "timestamp": entry["timestamp"],
                "operation": entry["ssm_etl"].get("operation"), "added": added,
                "removed": removed,
            })  # fmt: skip
    return out


def _partitions(actions: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {tuple(sorted((a.get("partitionValues") or {}).items())) for a in actions}


def run(scale: float, work: Path) -> list[Row]:
    spec = LakeSpec(scale=scale)
    source = generate(lake_path(work, scale), spec)
    target = work / "reread-lake"
    linked_copy(source, target)
    lake = Lake.open(target)
    account, region = spec.account_ids()[0], spec.regions[0]
    records, in_window, followed = served_records(lake, account, region)
    last_night = datetime.fromisoformat(spec.last_day).replace(tzinfo=UTC) + timedelta(hours=26)
    instances = max(16, round(spec.per_day / 1.35))
    fleet = FleetSpec(now=last_night, regions=(region,), account_id=account,
                      instances_per_region=instances)  # fmt: skip
    since = datetime.fromtimestamp(
        min(r["RequestedDateTime"] for r in records[:in_window]), UTC
    ).isoformat()
    partitions_before = {t.name: _partitions_of(lake, t) for t in TABLES}
    with serve_in_child(Replay, fleet, "127.0.0.1", {region: records}) as url:
        argv = [cli.ssm_etl(), "run", "--regions", region, "--lake", str(target),
                "--account-id", account, "--endpoint-url", url, "--since", since]  # fmt: skip
        measured = cli.run(argv, cli.environment()).check()
    ended = datetime.now(UTC).timestamp() * 1000
    run_id = _RUN.search(measured.stdout)
    assert run_id, measured.stdout
    lake = Lake.open(target)
    commits = _commits(lake, run_id[1])
    ledger = next(c for c in commits if c["table"] == INGEST_RUNS.name)
    finished = _region_finished(lake, run_id[1])
    rows = [
        Row("night", "re-read night, whole CLI (s)", f"{measured.wall:.1f}",
            f"{account}/{region}: {in_window:,} invocations in the window since {since[:16]}, "
            f"{followed:,} of open commands followed; no Prefect server configured"),
        Row("night", "commit: region finished to ledger committed (s)",
            f"{(ledger['timestamp'] - finished) / 1000:.1f}",
            "every table's merge, then the ledger"
            + _logged(measured.stderr)),
        Row("night", "after the commit: optimize, vacuum, exit (s)",
            f"{(ended - ledger['timestamp']) / 1000:.1f}", ""),
    ]  # fmt: skip
    for table in TABLES:
        mine = [c for c in commits if c["table"] == table.name and c["operation"] != "vacuum"]
        if not mine:
            continue
        removed = [a for c in mine for a in c["removed"]]
        added = [a for c in mine for a in c["added"]]
        touched = _partitions(removed) | _partitions(added)
        ops = ", ".join(f"{c['operation']} v{c['version']}" for c in mine)
        rows.append(
            Row("night", f"{table.name}: files rewritten / added",
                f"{len(removed)} / {len(added)}",
                f"in {len(touched)} of {len(partitions_before[table.name])} partitions "
                f"({_describe(touched)}); commits: {ops}")
        )  # fmt: skip
    return rows


def _partitions_of(lake: Lake, spec: Any) -> set[tuple[str, ...]]:
    import pyarrow as pa

    actions = pa.table(lake.table(spec).get_add_actions(flatten=True))
    columns = [actions.column(f"partition.{c}").to_pylist() for c in spec.partition_by]
    return set(zip(*columns, strict=True)) if columns else set()


def _region_finished(lake: Lake, run_id: str) -> float:
    con = duckdb.connect()
    con.register("ledger", lake.snapshot().dataset(INGEST_RUNS))
    row = con.execute(
        "SELECT epoch_ms(max(finished_at)) FROM ledger WHERE run_id = ?", [run_id]
    ).fetchone()
    return float(row[0])


def _logged(stderr: str) -> str:
    found = _COMMITTED.search(stderr)
    return f"; the committer's own log: {found[2]} s for {int(found[1]):,} rows" if found else ""


def _describe(partitions: set[tuple[str, ...]]) -> str:
    months = sorted({v for p in partitions for k, v in p if k == "requested_month"})
    return "months " + ", ".join(months) if months else "account/region"
