"""Commands (ListCommands) and managed instances (DescribeInstanceInformation):
flattening, and what they change in patch compliance."""

from __future__ import annotations

import pytest

from pipeline.flatten import Lineage, command_row, flatten_source, instance_row
from pipeline.lake import Lake
from pipeline.redact import Redactor
from pipeline.schema import COMMANDS, MANAGED_INSTANCES
from pipeline.views import connect
from tests.lakes import ACCOUNT, REGION, at, ingest, invocation, wire

PATCH = "AWS-RunPatchBaseline"
AS_OF = "TIMESTAMPTZ '2024-03-10 12:00:00+00'"
LINEAGE = Lineage(ACCOUNT, REGION, "run-1", 1_710_000_000_000)


def command(command_id: str, operation: str | None, **extra) -> dict:
    record = {
        "CommandId": command_id,
        "DocumentName": PATCH,
        "RequestedDateTime": wire(at("2024-03-09T02:00:00")),
        "Status": "Success",
        "TargetCount": 3,
        "Targets": [{"Key": "tag:PatchGroup", "Values": ["prod"]}],
        **extra,
    }
    if operation is not None:
        record["Parameters"] = {"Operation": [operation], "RebootOption": ["RebootIfNeeded"]}
    return record


def instance(instance_id: str, ping: str = "Online") -> dict:
    return {
        "InstanceId": instance_id,
        "PingStatus": ping,
        "LastPingDateTime": wire(at("2024-03-10T11:00:00")),
        "PlatformType": "Linux",
        "ResourceType": "EC2Instance",
        "AgentVersion": "3.3.1142.0",
        "IsLatestVersion": True,
    }


def test_command_row_keeps_parameters_targets_and_counts():
    row = command_row(command("c1", "Scan", NotificationConfig={"NotificationEvents": []}))
    assert row["parameters"] == [("Operation", ["Scan"]), ("RebootOption", ["RebootIfNeeded"])]
    assert row["targets"] == [{"key": "tag:PatchGroup", "values": ["prod"]}]
    assert row["target_count"] == 3 and row["notification_events"] == []
    assert command_row(command("c2", None))["parameters"] is None


def test_command_parameters_are_redacted_like_output():
    record = command(
        "c1", None, Parameters={"commands": ["export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE"]}
    )
    row = command_row(record, Redactor.from_options(["aws"]))
    assert row["parameters"] == [("commands", ["export AWS_ACCESS_KEY_ID=[REDACTED]"])]


@pytest.mark.parametrize(
    ("table", "record", "field"),
    [
        pytest.param("commands", {"DocumentName": PATCH, "RequestedDateTime": 1.0}, "CommandId", id="command-without-id"),
        pytest.param("commands", command("c1", None, TargetCount="3"), "TargetCount", id="count-as-text"),
        pytest.param("commands", command("c1", None, Parameters={"Operation": "Install"}), "Parameters", id="parameter-not-a-list"),
        pytest.param("managed_instances", {"PingStatus": "Online"}, "InstanceId", id="instance-without-id"),
        pytest.param("managed_instances", dict(instance("i-1"), LastPingDateTime="now"), "LastPingDateTime", id="bad-ping-time"),
    ],
)  # fmt: skip
def test_bad_source_records_are_set_aside(table, record, field):
    good = command("c9", "Install") if table == "commands" else instance("i-9")
    rows, rejected = flatten_source(table, [good, record], LINEAGE)
    assert rows.num_rows == 1
    assert len(rejected) == 1 and field in rejected[0].reason


def test_instance_row():
    row = instance_row(
        dict(instance("mi-0123456789abcdef0"), Name="edge-router", ResourceType="ManagedInstance")
    )
    assert row["instance_id"] == "mi-0123456789abcdef0" and row["name"] == "edge-router"
    assert row["last_ping_date_time"] == 1_710_068_400_000


def _write(lake: Lake, commands: list[dict], instances: list[dict], run_id: str = "run-1") -> None:
    lineage = Lineage(ACCOUNT, REGION, run_id, 1_710_000_000_000)
    writer = lake.writer(run_id, ACCOUNT, REGION)
    writer.add(COMMANDS, flatten_source("commands", commands, lineage)[0])
    writer.add(MANAGED_INSTANCES, flatten_source("managed_instances", instances, lineage)[0])
    writer.commit()


def test_inventory_and_scan_operations_shape_patch_compliance(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    ingest(lake, [
        # A Scan reports Success but patches nothing.
        invocation("scan-cmd", "i-scanned", at("2024-03-09T02:00:00"), "Success", document=PATCH),
        invocation("install-cmd", "i-patched", at("2024-03-09T02:00:00"), "Success", document=PATCH),
        invocation("install-cmd", "i-retired", at("2024-03-09T02:00:00"), "Failed", document=PATCH),
        # No command record for this one: the run counts as an Install.
        invocation("unknown-cmd", "i-unknown", at("2024-03-09T02:00:00"), "Success", document=PATCH),
    ])  # fmt: skip
    _write(
        lake,
        [command("scan-cmd", "Scan"), command("install-cmd", "Install")],
        # i-retired has left the inventory; i-new never ran a command.
        [instance("i-scanned"), instance("i-patched"), instance("i-unknown"), instance("i-new")],
    )
    con = connect(lake)
    got = con.sql(
        "SELECT instance_id, latest_patch_status, in_inventory, compliant "
        f"FROM patch_compliance_within(7, as_of := {AS_OF}) ORDER BY instance_id"
    ).fetchall()
    assert got == [
        ("i-new", None, True, False),
        ("i-patched", "Success", True, True),
        ("i-retired", "Failed", False, None),
        ("i-scanned", None, True, False),
        ("i-unknown", "Success", True, True),
    ]
    out_of_compliance = con.sql(
        f"SELECT instance_id FROM patch_compliance_within(7, as_of := {AS_OF}) WHERE NOT compliant ORDER BY 1"
    ).fetchall()
    assert out_of_compliance == [("i-new",), ("i-scanned",)]


def test_the_latest_snapshot_is_the_inventory(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    _write(lake, [], [instance("i-old"), instance("i-kept")], run_id="run-1")
    lineage = Lineage(ACCOUNT, REGION, "run-2", 1_710_100_000_000)
    writer = lake.writer("run-2", ACCOUNT, REGION)
    writer.add(
        MANAGED_INSTANCES,
        flatten_source("managed_instances", [instance("i-kept", "ConnectionLost")], lineage)[0],
    )
    writer.commit()
    got = (
        connect(lake)
        .sql("SELECT instance_id, ping_status, run_id FROM managed_instances")
        .fetchall()
    )
    assert got == [("i-kept", "ConnectionLost", "run-2")]
