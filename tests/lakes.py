"""Small hand-made lakes: API-shaped records through the real flattener and writer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.flatten import Lineage, flatten_page
from pipeline.lake import Lake
from pipeline.schema import COMMAND_PLUGINS, INVOCATIONS

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
    """Write one region's records as one committed run, the way a real run does."""
    lineage = Lineage(account, region, run_id, round(ingested_at.timestamp() * 1000))
    page = flatten_page(records, lineage)
    assert not page.rejected, page.rejected
    writer = lake.writer(run_id, account, region)
    writer.add(INVOCATIONS, page.invocations)
    writer.add(COMMAND_PLUGINS, page.plugins)
    writer.commit()
