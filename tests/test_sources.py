"""Commands (ListCommands) and managed instances (DescribeInstanceInformation):
flattening, and what they change in patch compliance."""

from __future__ import annotations

import pytest
from botocore.awsrequest import AWSResponse
from deltalake import DeltaTable

from pipeline.config import RunConfig
from pipeline.extract import AwsSettings
from pipeline.flatten import Lineage, command_row, flatten_source, instance_row
from pipeline.lake import Lake
from pipeline.night import ThreadRunner, run_night
from pipeline.redact import Redactor
from pipeline.schema import COMMANDS, MANAGED_INSTANCES
from pipeline.views import connect
from tests.conftest_emulator import EMULATOR_ACCOUNT, EMULATOR_REGIONS
from tests.lakes import ACCOUNT, REGION, at, commit_regions, commit_rows, ingest, invocation, wire

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


def _rows(table: str, records: list[dict], run_id: str = "run-1", region: str = REGION):
    lineage = Lineage(ACCOUNT, region, run_id, 1_710_000_000_000)
    rows, rejected = flatten_source(table, records, lineage)
    assert not rejected, rejected
    return rows


def _write(lake: Lake, commands: list[dict], instances: list[dict], run_id: str = "run-1") -> None:
    commit_rows(
        lake,
        [
            (COMMANDS, _rows("commands", commands, run_id)),
            (MANAGED_INSTANCES, _rows("managed_instances", instances, run_id)),
        ],
        run_id=run_id,
    )


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


OTHER = "us-east-1"


def _inventory(region: str, run_id: str, *records: dict) -> list:
    """A region's whole DescribeInstanceInformation snapshot (no records: an empty one)."""
    return [(MANAGED_INSTANCES, _rows("managed_instances", list(records), run_id, region))]


def _stored(lake: Lake, version: int | None = None) -> list[tuple]:
    """The Delta table's own rows (not the view's): (region, instance, ping, run)."""
    uri, options = lake.table_uri(MANAGED_INSTANCES), lake.storage.delta_options()
    rows = DeltaTable(uri, version=version, storage_options=options).to_pyarrow_table().to_pylist()
    return sorted((r["region"], r["instance_id"], r["ping_status"], r["run_id"]) for r in rows)


def _viewed(lake: Lake) -> list[tuple]:
    sql = "SELECT region, instance_id, ping_status, run_id FROM managed_instances ORDER BY ALL"
    return connect(lake).sql(sql).fetchall()


def test_each_runs_snapshot_replaces_the_regions_rows(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    commit_regions(
        lake,
        {
            (ACCOUNT, REGION): _inventory(REGION, "run-1", instance("i-gone"), instance("i-kept")),
            (ACCOUNT, OTHER): _inventory(OTHER, "run-1", instance("i-far")),
        },
        run_id="run-1",
    )
    first = lake.table(MANAGED_INSTANCES).version()
    inventory = _inventory(REGION, "run-2", instance("i-kept", "ConnectionLost"), instance("i-new"))
    commit_regions(lake, {(ACCOUNT, REGION): inventory}, run_id="run-2")
    expected = [
        (REGION, "i-kept", "ConnectionLost", "run-2"),  # i-gone left the inventory and the table
        (REGION, "i-new", "Online", "run-2"),
        (OTHER, "i-far", "Online", "run-1"),  # not in run-2: untouched
    ]
    assert _stored(lake) == expected
    assert _viewed(lake) == expected
    assert _stored(lake, first) == [
        (REGION, "i-gone", "Online", "run-1"),
        (REGION, "i-kept", "Online", "run-1"),
        (OTHER, "i-far", "Online", "run-1"),
    ], "the earlier snapshot stays reachable by time travel"


def test_an_empty_snapshot_empties_the_region(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    commit_regions(
        lake,
        {
            (ACCOUNT, REGION): _inventory(REGION, "run-1", instance("i-1"), instance("i-2")),
            (ACCOUNT, OTHER): _inventory(OTHER, "run-1", instance("i-far"), instance("i-near")),
        },
        run_id="run-1",
    )
    commit_regions(
        lake,
        {
            (ACCOUNT, REGION): _inventory(REGION, "run-2"),  # every node deregistered
            (ACCOUNT, OTHER): _inventory(OTHER, "run-2", instance("i-far")),
        },
        run_id="run-2",
    )
    assert _stored(lake) == [(OTHER, "i-far", "Online", "run-2")]
    assert _viewed(lake) == _stored(lake)


def test_a_region_without_a_snapshot_keeps_its_rows(tmp_path):
    """A region that hands over no snapshot (inventory denied) keeps its rows, in the same
    batch as a region whose snapshot shrank."""
    lake = Lake.create(tmp_path / "lake")
    commit_regions(
        lake,
        {
            (ACCOUNT, REGION): _inventory(REGION, "run-1", instance("i-1"), instance("i-2")),
            (ACCOUNT, OTHER): _inventory(OTHER, "run-1", instance("i-far"), instance("i-near")),
        },
        run_id="run-1",
    )
    commit_regions(
        lake,
        {
            (ACCOUNT, REGION): [(COMMANDS, _rows("commands", [command("c1", "Install")], "run-2"))],
            (ACCOUNT, OTHER): _inventory(OTHER, "run-2", instance("i-far")),
        },
        run_id="run-2",
    )
    assert _stored(lake) == [
        (REGION, "i-1", "Online", "run-1"),
        (REGION, "i-2", "Online", "run-1"),
        (OTHER, "i-far", "Online", "run-2"),
    ]


DENIED = REGION


class InventoryDenied(AwsSettings):
    """The emulator, but DescribeInstanceInformation answers AccessDenied in one region."""

    def client(self, session, service, region):
        client = super().client(session, service, region)
        if service == "ssm" and region == DENIED:
            client.meta.events.register("before-call.ssm.DescribeInstanceInformation", _deny)
        return client


def _deny(**_):
    message = "not authorized to perform: ssm:DescribeInstanceInformation"
    error = {
        "Error": {"Code": "AccessDeniedException", "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return AWSResponse("https://ssm", 400, {}, None), error


def _night(config: RunConfig, settings: AwsSettings):
    runner = ThreadRunner(2)
    try:
        summary = run_night(config, settings, runner)
    finally:
        runner.close()
    assert summary.exit_code == 0, summary.render()
    return summary


def test_a_region_whose_inventory_call_is_denied_keeps_its_rows(emulator, tmp_path):
    """Over the emulator: the denied region still commits its invocations; its managed
    instances stay those of the last run that could read them, the other region's are new."""
    config = RunConfig(lake=str(tmp_path / "lake"), regions=EMULATOR_REGIONS, slices=1)
    first = _night(config, AwsSettings(endpoint_url=emulator.url))
    second = _night(config, InventoryDenied(endpoint_url=emulator.url))
    counts = {r.region: (r.managed_instances, r.invocations > 0) for r in second.results}
    truth = {
        region: sorted(
            i["InstanceId"] for i in emulator.instances_ground_truth(EMULATOR_ACCOUNT, region)
        )
        for region in EMULATOR_REGIONS
    }
    assert counts == {DENIED: (None, True), OTHER: (len(truth[OTHER]), True)}
    runs = {DENIED: first.run_id, OTHER: second.run_id}
    expected = sorted((r, i, runs[r]) for r in EMULATOR_REGIONS for i in truth[r])
    got = connect(Lake.open(tmp_path / "lake")).sql(
        "SELECT region, instance_id, run_id FROM managed_instances ORDER BY ALL"
    )
    assert got.fetchall() == expected
