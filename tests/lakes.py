"""Small hand-made lakes: API-shaped records through the real flattener and writer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from pipeline.commit import Committer, Pending
from pipeline.decode import flatten_page
from pipeline.flatten import Lineage
from pipeline.lake import Lake
from pipeline.schema import COMMAND_PLUGINS, INVOCATIONS, TIMESTAMP, TableSpec
from pipeline.spool import RegionWriter

ACCOUNT = "012345678901"
REGION = "eu-west-1"


def at(text: str) -> datetime:
    """An ISO time, read as UTC: `at("2024-03-05T10:00:00")`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def wire(moment: datetime) -> float:
    """A time as the API sends it: epoch seconds with millisecond precision."""
    return round(moment.timestamp(), 3)


def plugin(
    name: str,
    status: str,
    code: int | None = None,
    *,
    start: datetime | None = None,
    seconds: float | None = None,
    output: str | None = None,
) -> dict[str, Any]:
    """One CommandPlugins entry; `seconds` after `start` it finished."""
    entry: dict[str, Any] = {"Name": name, "Status": status, "StatusDetails": status}
    if code is not None:
        entry["ResponseCode"] = code
    if start is not None:
        entry["ResponseStartDateTime"] = wire(start)
        if seconds is not None:
            entry["ResponseFinishDateTime"] = wire(start + timedelta(seconds=seconds))
    if output is not None:
        entry["Output"] = output
    return entry


def invocation(
    command_id: str,
    instance_id: str,
    requested: datetime,
    status: str | None,
    *,
    document: str = "AWS-RunShellScript",
    details: str | None = None,
    instance_name: str | None = None,
    plugins: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One ListCommandInvocations record (Details=true), as decoded from the wire."""
    record: dict[str, Any] = {
        "CommandId": command_id,
        "InstanceId": instance_id,
        "DocumentName": document,
        "DocumentVersion": "1",
        "RequestedDateTime": wire(requested),
        "StatusDetails": details if details is not None else status,
        "CommandPlugins": list(plugins),
    }
    if status is not None:
        record["Status"] = status
    if instance_name is not None:
        record["InstanceName"] = instance_name
    return record


def ingest(
    lake: Lake,
    records: list[dict[str, Any]],
    *,
    run_id: str = "run-1",
    ingested_at: datetime = datetime(2024, 6, 1, tzinfo=UTC),
    account: str = ACCOUNT,
    region: str = REGION,
) -> None:
    """Commit one region's records the way a run does (spooled, then one batch), no ledger row."""
    lineage = Lineage(account, region, run_id, round(ingested_at.timestamp() * 1000))
    page = flatten_page(records, lineage)
    assert not page.rejected, page.rejected
    rows = [(INVOCATIONS, page.invocations), (COMMAND_PLUGINS, page.plugins)]
    commit_rows(lake, rows, run_id=run_id, account=account, region=region)


def commit_rows(
    lake: Lake,
    rows: list[tuple[TableSpec, pa.Table]],
    *,
    run_id: str = "run-1",
    account: str = ACCOUNT,
    region: str = REGION,
) -> None:
    """Commit flattened rows of one region as one batch, as a run's committer does.

    A snapshot table's rows (`managed_instances`) replace the region's stored ones.
    """
    with lake.lock() as lease:  # the lock clears the spool: take it first, as a run does
        lake.ensure_tables()
        writer = RegionWriter(lake.storage, run_id, account, region)
        for spec, table in rows:
            writer.add(spec, table)
            if spec.snapshot:
                writer.snapshot_taken(spec)
        committer = Committer(lake, run_id, lease)
        committer.add(Pending(writer.close(), None))
        committer.commit()


def record_run(lake: Lake, row: dict[str, Any]) -> None:
    """One ledger row, committed the way a run (or a purge) commits it."""
    with lake.lock() as lease:
        lake.ensure_tables()
        committer = Committer(lake, str(row["run_id"]), lease)
        committer.add(Pending(None, row))
        committer.commit()


def expire(
    lake: Lake,
    keys: list[tuple[str, str, datetime]],
    *,
    when: datetime,
    run_id: str = "run-expire",
    account: str = ACCOUNT,
    region: str = REGION,
) -> None:
    """Mark stored invocations (command id, instance id, requested) expired while open,
    as a run does when the API no longer returns them."""
    table = pa.table(
        {
            "account_id": [account] * len(keys),
            "region": [region] * len(keys),
            "requested_month": [r.strftime("%Y-%m") for _, _, r in keys],
            "command_id": [c for c, _, _ in keys],
            "instance_id": [i for _, i, _ in keys],
            "expired_while_open_at": pa.array([when] * len(keys), TIMESTAMP),
        }
    )
    with lake.lock() as lease:
        writer = RegionWriter(lake.storage, run_id, account, region)
        writer.expire(INVOCATIONS, table)
        committer = Committer(lake, run_id, lease)
        committer.add(Pending(writer.close(), None))
        committer.commit()


def commit_regions(
    lake: Lake,
    regions: dict[tuple[str, str], list[tuple[TableSpec, pa.Table]]],
    *,
    run_id: str = "run-1",
) -> None:
    """Commit several regions' rows as one batch, as a night's committer does.

    `regions` maps (account, region) to its flattened rows. A snapshot table
    listed for a region (even with no rows) is that region's whole snapshot
    and replaces its stored rows; a region that does not list it (its
    DescribeInstanceInformation was denied) hands over no snapshot, as
    `pipeline.ingest` does, and keeps what it had.
    """
    with lake.lock() as lease:
        lake.ensure_tables()
        committer = Committer(lake, run_id, lease)
        for (account, region), rows in regions.items():
            writer = RegionWriter(lake.storage, run_id, account, region)
            for spec, table in rows:
                writer.add(spec, table)
                if spec.snapshot:
                    writer.snapshot_taken(spec)
            committer.add(Pending(writer.close(), None))
        committer.commit()
