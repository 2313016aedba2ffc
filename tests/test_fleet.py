"""The fleet generator: deterministic, state as of the clock, the edge cases, botocore's shapes."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import botocore
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import Emulator, FleetSpec
from emulator.fleet import DAY_MS, RETENTION_MS, history, to_ms
from emulator.outputs import TRUNCATED
from emulator.sources import open_spans
from emulator.ssm import render

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SPEC = FleetSpec(seed=5, now=NOW, regions=("us-east-1",), instances_per_region=30)
ACCOUNT, REGION = SPEC.account_id, "us-east-1"


def _records(spec: FleetSpec = SPEC, now: datetime = NOW, account: str = ACCOUNT) -> list[dict]:
    moment = to_ms(now)
    return [render(inv, moment) for inv in history(spec, account, REGION, moment).invocations]


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return _records()


def _plugins(records: list[dict]) -> list[dict]:
    return [plugin for record in records for plugin in record["CommandPlugins"]]


# ---- determinism ----------------------------------------------------------------------


def test_same_spec_same_records_and_the_emulator_agrees(records):
    assert _records(FleetSpec(**{**SPEC.__dict__})) == records
    with Emulator(SPEC) as emulator:
        assert emulator.ground_truth(ACCOUNT, REGION) == records


def test_seed_and_account_change_the_fleet(records):
    assert (
        _records(FleetSpec(seed=6, now=NOW, regions=(REGION,), instances_per_region=30)) != records
    )
    other = _records(account="210987654321")
    assert other and {r["InstanceId"] for r in other}.isdisjoint({r["InstanceId"] for r in records})


def test_regions_without_a_fleet_have_no_history():
    assert _records(FleetSpec(now=NOW, regions=("eu-west-1",))) == []


# ---- state as of the clock ------------------------------------------------------------


def _timeline(records):
    """A successful single-plugin invocation that takes a while: its three moments."""
    for record in records:
        plugins = record["CommandPlugins"]
        if record["Status"] == "Success" and len(plugins) == 1:
            start, finish = (
                plugins[0]["ResponseStartDateTime"],
                plugins[0]["ResponseFinishDateTime"],
            )
            if finish - start > 2:
                return record, round(start * 1000), round(finish * 1000)
    raise AssertionError("no long-running invocation")


def _find(now_ms: int, key: tuple[str, str]) -> dict | None:
    for inv in history(SPEC, ACCOUNT, REGION, now_ms).invocations:
        if (inv.command.command_id, inv.instance.instance_id) == key:
            return render(inv, now_ms)
    return None


def test_an_invocation_is_pending_then_in_progress_then_final(records):
    final, start, finish = _timeline(records)
    key = (final["CommandId"], final["InstanceId"])
    requested = round(final["RequestedDateTime"] * 1000)
    assert _find(requested - 1, key) is None  # not yet requested

    pending = _find(requested, key)
    assert (pending["Status"], pending["StatusDetails"]) == ("Pending", "Pending")
    assert pending["CommandPlugins"] == [_without_times(final["CommandPlugins"][0], "Pending")]

    running = _find(start, key)
    assert (running["Status"], running["StatusDetails"]) == ("InProgress", "InProgress")
    plugin = running["CommandPlugins"][0]
    assert plugin["ResponseCode"] == -1 and plugin["ResponseStartDateTime"] == start / 1000
    assert "ResponseFinishDateTime" not in plugin and plugin["Output"] == ""

    assert _find(finish - 1, key)["Status"] == "InProgress"
    assert _find(finish, key) == final


def _without_times(plugin: dict, status: str) -> dict:
    out = dict(plugin, Status=status, StatusDetails=status, ResponseCode=-1, Output="")
    out.pop("ResponseStartDateTime")
    out.pop("ResponseFinishDateTime")
    return out


def test_retention_is_thirty_days_to_the_millisecond(records):
    oldest = records[-1]
    key = (oldest["CommandId"], oldest["InstanceId"])
    requested = round(oldest["RequestedDateTime"] * 1000)
    assert requested >= to_ms(NOW) - RETENTION_MS
    assert _find(requested + RETENTION_MS, key) is not None
    assert _find(requested + RETENTION_MS + 1, key) is None


def test_advancing_the_clock_keeps_finished_history_and_settles_what_was_in_flight(records):
    later = {(r["CommandId"], r["InstanceId"]): r for r in _records(now=NOW + timedelta(days=3))}
    cutoff = (to_ms(NOW + timedelta(days=3)) - RETENTION_MS) / 1000
    kept = [r for r in records if r["RequestedDateTime"] >= cutoff]
    open_for_days = {
        (s["CommandId"], s["InstanceId"])
        for s in open_spans(SPEC, ACCOUNT, REGION, to_ms(NOW) - RETENTION_MS, to_ms(NOW))
        if s["open_days"] is None or s["open_days"] > 3
    }
    in_flight = [r for r in kept if r["Status"] in ("Pending", "InProgress", "Delayed")]
    settling = [r for r in in_flight if (r["CommandId"], r["InstanceId"]) not in open_for_days]
    assert settling  # the long-running daily backup at least
    assert all(later[(r["CommandId"], r["InstanceId"])]["Status"] == "Success" for r in settling)
    finished = [r for r in kept if r not in in_flight]
    assert all(later[(r["CommandId"], r["InstanceId"])] == r for r in finished)


# ---- the edge-case mix ----------------------------------------------------------------


def test_undeliverable_invocations_have_no_plugins_even_with_details(records):
    undeliverable = [r for r in records if r["StatusDetails"] == "Undeliverable"]
    assert undeliverable
    assert all(r["Status"] == "Failed" and r["CommandPlugins"] == [] for r in undeliverable)


def _while_delayed() -> list[dict]:
    """Every invocation of the last 30 days as it looks in the middle of its Delayed phase."""
    out = []
    for inv in history(SPEC, ACCOUNT, REGION, to_ms(NOW)).invocations:
        for (at, status, _), (until, _, _) in zip(inv.phases, inv.phases[1:], strict=False):
            if status == "Delayed":
                out.append(render(inv, (at + until) // 2))
    return out


def test_delayed_invocations_have_pending_plugins_without_times():
    delayed = _while_delayed()
    assert len(delayed) >= 5 and {r["Status"] for r in delayed} == {"Delayed"}
    for plugin in _plugins(delayed):
        assert (plugin["Status"], plugin["ResponseCode"]) == ("Pending", -1)
        assert "ResponseStartDateTime" not in plugin and "ResponseFinishDateTime" not in plugin


def test_every_outcome_occurs(records):
    pairs = {(r["Status"], r["StatusDetails"]) for r in records}
    assert pairs >= {
        ("Success", "Success"),
        ("Failed", "Failed"),
        ("Failed", "Undeliverable"),
        ("TimedOut", "DeliveryTimedOut"),
        ("TimedOut", "ExecutionTimedOut"),
        ("Cancelled", "Cancelled"),
    }
    assert ("InProgress", "InProgress") in pairs  # Delayed, Cancelling: see test_timelines.py
    codes = {p["ResponseCode"] for p in _plugins(records) if p["Status"] == "Failed"}
    assert {1, 2, 127} <= codes
    skipped = [p for p in _plugins(records) if p["Output"].startswith("Step execution skipped")]
    assert skipped and all((p["Status"], p["ResponseCode"]) == ("Success", 0) for p in skipped)


def test_documents_and_plugin_names(records):
    plugins = {}
    for record in records:
        plugins.setdefault(record["DocumentName"], set()).add(
            tuple(p["Name"] for p in record["CommandPlugins"])
        )
    assert plugins["AWS-RunPatchBaseline"] >= {("PatchWindows", "PatchLinux", "PatchMacOS")}
    assert ("aws:runShellScript",) in plugins["AWS-RunShellScript"]
    assert ("aws:runPowerShellScript",) in plugins["AWS-RunPowerShellScript"]
    assert ("aws:updateSsmAgent",) in plugins["AWS-UpdateSSMAgent"]
    assert ("collectInventory", "uploadInventory") in plugins["Acme-CollectInventory"]


def test_outputs_are_capped_at_2500_with_the_marker_and_include_non_ascii(records):
    outputs = [p["Output"] for p in _plugins(records)]
    truncated = [o for o in outputs if o.endswith(TRUNCATED)]
    assert TRUNCATED == "\n---Output truncated---"
    assert truncated and all(len(o) == 2500 for o in truncated)
    assert max(len(o) for o in outputs) == 2500
    assert any(not o.isascii() for o in truncated)
    text = "".join(outputs)
    assert "Größe" in text and "日本語" in text and "🚀" in text


def test_notification_and_cloud_watch_configs_come_in_three_variants(records):
    variants = {json.dumps(r.get("NotificationConfig"), sort_keys=True) for r in records}
    assert "null" in variants
    assert (
        json.dumps(
            {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""},
            sort_keys=True,
        )
        in variants
    )
    assert any(
        r.get("NotificationConfig", {}).get("NotificationArn", "").startswith("arn:aws:sns:")
        for r in records
    )
    watch = [r.get("CloudWatchOutputConfig") for r in records]
    assert None in watch
    assert {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False} in watch
    assert any(w and w["CloudWatchOutputEnabled"] for w in watch)
    assert all(("NotificationConfig" in r) == ("CloudWatchOutputConfig" in r) for r in records)


def test_s3_urls_are_on_plugins_and_on_single_plugin_invocations(records):
    with_s3 = [
        r for r in records if r["CommandPlugins"] and r["CommandPlugins"][0]["OutputS3BucketName"]
    ]
    assert with_s3
    for record in with_s3:
        assert all(
            p["StandardOutputUrl"].startswith("https://s3.") for p in record["CommandPlugins"]
        )
        single = len(record["CommandPlugins"]) == 1
        assert bool(record["StandardOutputUrl"]) == single
    assert any(r["ServiceRole"] for r in records) and any(not r["ServiceRole"] for r in records)
    assert any(r["Comment"] for r in records) and any(not r["Comment"] for r in records)


def test_instance_ids_names_and_platforms(records):
    ids = {r["InstanceId"] for r in records}
    assert any(re.fullmatch(r"i-[0-9a-f]{17}", i) for i in ids)
    assert any(re.fullmatch(r"i-[0-9a-f]{8}", i) for i in ids)
    assert any(re.fullmatch(r"mi-[0-9a-f]{17}", i) for i in ids)
    names = {r["InstanceName"] for r in records}
    assert "" in names and any(not name.isascii() for name in names)
    patched = {p["Name"] for p in _plugins(records) if not p["Output"].startswith("Step execution")}
    assert {"PatchWindows", "PatchLinux", "PatchMacOS"} <= patched


def test_month_boundary_milliseconds_are_present(records):
    requested = {round(r["RequestedDateTime"] * 1000) for r in records}
    assert to_ms(datetime(2026, 3, 1, tzinfo=UTC)) in requested
    assert to_ms(datetime(2026, 3, 1, tzinfo=UTC)) - 1 in requested
    assert any(round(r["RequestedDateTime"] * 1000) % 1000 for r in records)


# ---- chronic non-compliance -----------------------------------------------------------


def test_the_default_fleet_has_instances_out_of_patch_compliance_for_each_reason():
    """Out of compliance: no successful AWS-RunPatchBaseline in the last seven days."""
    spec = FleetSpec(now=NOW)
    assert spec.offline_since == datetime(2026, 2, 20, tzinfo=UTC).date()
    moment = to_ms(NOW)
    for region in spec.regions:
        records = [
            render(inv, moment) for inv in history(spec, ACCOUNT, region, moment).invocations
        ]
        by_instance = defaultdict(list)
        for record in records:
            by_instance[record["InstanceId"]].append(record)
        compliant = {
            r["InstanceId"]
            for r in records
            if r["DocumentName"] == "AWS-RunPatchBaseline"
            and r["Status"] == "Success"
            and r["RequestedDateTime"] * 1000 >= moment - 7 * DAY_MS
        }
        out = set(by_instance) - compliant

        def failing(rs: list[dict]) -> bool:
            patches = [r for r in rs if r["DocumentName"] == "AWS-RunPatchBaseline"]
            failed = [p for r in patches for p in r["CommandPlugins"] if p["Status"] == "Failed"]
            return (
                bool(patches)
                and len(failed) == len(patches)
                and all(
                    p["ResponseCode"] == 1
                    and (
                        "Package manager lock held" in p["Output"]
                        or "Insufficient disk space" in p["Output"]
                    )
                    for p in failed
                )
            )

        def unreachable(rs: list[dict]) -> bool:
            recent = [
                r for r in rs if r["RequestedDateTime"] * 1000 >= to_ms(NOW - timedelta(days=10))
            ]
            return bool(recent) and all(
                r["StatusDetails"] == "Undeliverable" and not r["CommandPlugins"] for r in recent
            )

        def unmanaged(rs: list[dict]) -> bool:
            return {r["DocumentName"] for r in rs} == {"AWS-RunShellScript"}

        def offline(rs: list[dict]) -> bool:  # in an outage of days (episodes.py)
            week = [
                r
                for r in rs
                if r["DocumentName"] == "AWS-RunPatchBaseline"
                and r["RequestedDateTime"] * 1000 >= moment - 7 * DAY_MS
            ]
            return bool(week) and all(
                r["StatusDetails"] in ("DeliveryTimedOut", "Delayed", "Pending") for r in week
            )

        reasons = {
            name: {i for i in out if check(by_instance[i])}
            for name, check in (
                ("failing", failing),
                ("unreachable", unreachable),
                ("unmanaged", unmanaged),
                ("offline", offline),
            )
        }
        assert all(v for k, v in reasons.items() if k != "offline"), (region, reasons)
        assert out == set().union(*reasons.values())
        assert len(out) <= 0.08 * spec.instances_per_region


def test_on_the_wall_clock_the_emulator_starts_the_outage_ten_days_ago():
    before = datetime.now(UTC)
    emulator = Emulator(FleetSpec(regions=()))
    days = {(moment - timedelta(days=10)).date() for moment in (before, datetime.now(UTC))}
    assert emulator.spec.offline_since in days


# ---- botocore's output shape ----------------------------------------------------------

_MODEL_PATH = os.path.join(
    os.path.dirname(botocore.__file__), "data/ssm/2014-11-06/service-2.json.gz"
)
with gzip.open(_MODEL_PATH) as _model:
    _MODEL = json.load(_model)
_SHAPES = _MODEL["shapes"]
# AWS itself sends these empty when a command has no notification, CloudWatch or S3
# settings, though the model's enum and min length do not allow it.
_AWS_EMPTY = {"NotificationType", "CloudWatchLogGroupName", "S3BucketName"}


def _check(value, shape_name: str, path: str) -> None:
    shape = _SHAPES[shape_name]
    kind = shape["type"]
    if kind == "structure":
        assert isinstance(value, dict), path
        unknown = set(value) - set(shape["members"])
        assert not unknown, f"{path}: unknown keys {unknown}"
        for key, item in value.items():
            _check(item, shape["members"][key]["shape"], f"{path}.{key}")
    elif kind == "list":
        assert isinstance(value, list), path
        for index, item in enumerate(value):
            _check(item, shape["member"]["shape"], f"{path}[{index}]")
    elif kind == "string":
        assert isinstance(value, str), path
        if value == "" and shape_name in _AWS_EMPTY:
            return
        assert value in shape.get("enum", [value]), f"{path}: {value!r} not in enum"
        assert shape.get("min", 0) <= len(value) <= shape.get("max", len(value)), path
        if "pattern" in shape:
            assert re.search(shape["pattern"], value), f"{path}: {value!r}"
    elif kind == "timestamp":
        assert isinstance(value, int | float) and not isinstance(value, bool), path
        assert f"{value:.3f}" == f"{round(value * 1000) / 1000:.3f}", path  # millisecond precision
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), path
    elif kind == "boolean":
        assert isinstance(value, bool), path


def test_every_record_fits_botocores_output_shape(records):
    output = _MODEL["operations"]["ListCommandInvocations"]["output"]["shape"]
    _check({"CommandInvocations": records, "NextToken": "x"}, output, "result")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    size=st.integers(1, 6),
    offset=st.integers(0, 40 * 86_400_000),
)
def test_any_fleet_at_any_instant_fits_the_shape_and_is_newest_first(seed, size, offset):
    now = NOW + timedelta(milliseconds=offset)
    spec = FleetSpec(seed=seed, now=now, regions=(REGION,), instances_per_region=size)
    records = _records(spec, now)
    output = _MODEL["operations"]["ListCommandInvocations"]["output"]["shape"]
    _check({"CommandInvocations": records}, output, "result")
    keys = [(-r["RequestedDateTime"], r["CommandId"], r["InstanceId"]) for r in records]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    oldest = (to_ms(now) - RETENTION_MS) / 1000
    assert all(oldest <= r["RequestedDateTime"] <= to_ms(now) / 1000 for r in records)
