"""Synthetic Run Command history for one account, region and UTC day, as Arrow tables.

Why not the emulator: a year of ten accounts in four regions is 5 million
invocations, hours of per-record Python. This draws whole columns with numpy
instead, in the shapes the views care about: nightly patching of most of a
fleet, inventory, scripts; the status mix of real fleets (failures,
time-outs, cancellations, undeliverable, a few in flight); three plugins per
invocation with start/finish times and output. Tables come newest first,
without account, region or lineage columns, in the project's declared schemas.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.schema import COMMAND_PLUGINS, COMMANDS, INVOCATIONS, MANAGED_INSTANCES, TableSpec

DAY_MS = 86_400_000
NOT_DRAWN = ("account_id", "region", "run_id", "ingested_at")
"""Columns the generator adds to a drawn table: its partition and the night that wrote it."""


def _core(spec: TableSpec) -> pa.Schema:
    return pa.schema([f for f in spec.schema if f.name not in NOT_DRAWN])


INVOCATION_CORE = _core(INVOCATIONS)
PLUGIN_CORE = _core(COMMAND_PLUGINS)
COMMAND_CORE = _core(COMMANDS)
INSTANCE_CORE = _core(MANAGED_INSTANCES)
SPAN = ("plugins_started_date_time", "plugins_finished_date_time")
"""Derived from the plugins (see pipeline.flatten), so drawn after them."""
INVOCATION_DRAWN = pa.schema([f for f in INVOCATION_CORE if f.name not in SPAN])
PLUGINS_PER_INVOCATION = 3
INVOCATIONS_PER_INSTANCE_DAY = 1.35

DOCUMENTS = ("AWS-RunPatchBaseline", "Acme-CollectInventory", "AWS-RunShellScript",
             "AWS-RunPowerShellScript")  # fmt: skip
STEPS = (
    ("PatchWindows", "PatchLinux", "PatchMacOS"),
    ("collectInventory", "uploadInventory", "aws:softwareInventory"),
    ("aws:downloadContent", "aws:runShellScript", "aws:uploadOutput"),
    ("aws:downloadContent", "aws:runPowerShellScript", "aws:uploadOutput"),
)
# (status, status details, weight) of an invocation
OUTCOMES = (
    ("Success", "Success", 86), ("Failed", "Failed", 5), ("TimedOut", "ExecutionTimedOut", 2),
    ("TimedOut", "DeliveryTimedOut", 2), ("Cancelled", "Cancelled", 2),
    ("Failed", "Undeliverable", 2), ("Delayed", "Delayed", 1),
)  # fmt: skip
# (status, details, response code, ran) of a plugin
STEP_STATES = (
    ("Success", "Success", 0, True), ("Failed", "Failed", 1, True),
    ("TimedOut", "ExecutionTimedOut", 124, True), ("TimedOut", "DeliveryTimedOut", -1, False),
    ("Cancelled", "Cancelled", -1, True), ("Cancelled", "Cancelled", -1, False),
    ("Failed", "Undeliverable", -1, False), ("Pending", "Pending", -1, False),
)  # fmt: skip
# STEP_STATES index per outcome, for plugins before / at / after the one that broke
STEP_PLAN = np.array([[0, 0, 0], [0, 1, 0], [0, 2, 5], [3, 3, 3], [4, 4, 5], [6, 6, 6], [7, 7, 7]])
_WORDS = ("Installed", "kernel", "openssl", "KB5034441", "yum", "apt", "ok", "Success", "bytes",
          "completed", "Größe", "skipped", "reboot", "0", "42", "package", "–", "✅")  # fmt: skip


@dataclass(frozen=True)
class Fleet:
    ids: pa.Array
    names: pa.Array
    windows: np.ndarray


def fleet(rng: np.random.Generator, invocations_per_day: int) -> Fleet:
    size = max(16, int(np.ceil(invocations_per_day / INVOCATIONS_PER_INSTANCE_DAY)))
    digits = rng.integers(0, 16, (size, 17))
    ids = ["i-" + "".join("0123456789abcdef"[d] for d in row) for row in digits]
    names = [f"web-prod-{i:04d}" if i % 5 else "" for i in range(size)]
    return Fleet(pa.array(ids), pa.array(names), rng.random(size) < 0.28)


def outputs(rng: np.random.Generator, count: int = 64) -> pa.Array:
    """A pool of command outputs, 40 to 1,200 characters; each use gets a unique suffix."""
    words = np.array(_WORDS)
    texts = []
    for length in rng.integers(40, 1200, count):
        text = " ".join(words[rng.integers(0, len(words), length // 6 + 1)])
        texts.append(text[:length])
    return pa.array(texts)


def _commands(rng: np.random.Generator, fleet: Fleet, day: date, count: int):  # noqa: ANN202
    """(document, requested ms, target instance indices) of each command of the day."""
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    size = len(fleet.ids)
    patch, inventory = round(0.67 * count), round(0.22 * count)
    plan = [
        (0, midnight + 7_200_000 + int(rng.integers(0, 1_200_000)), rng.choice(size, patch, False)),
        (1, midnight + 43_200_000 + int(rng.integers(0, 600_000)),
         rng.choice(size, inventory, False)),
    ]  # fmt: skip
    left = count - patch - inventory
    while left > 0:
        targets = rng.choice(size, min(left, int(rng.integers(1, 9))), False)
        document = 3 if fleet.windows[targets[0]] else 2
        plan.append((document, midnight + int(rng.integers(0, DAY_MS)), targets))
        left -= len(targets)
    return plan


def _table(schema: pa.Schema, rows: int, columns: dict[str, pa.Array]) -> pa.Table:
    """`columns` in `schema`, every other column null."""
    return pa.Table.from_arrays(
        [columns.get(f.name, pa.nulls(rows, f.type)) for f in schema], schema=schema
    )


def snapshot(rng: np.random.Generator, fleet: Fleet, at_ms: int) -> pa.Table:
    """The fleet as DescribeInstanceInformation lists it at `at_ms`, without lineage columns."""
    n = len(fleet.ids)
    windows = pa.array(fleet.windows)
    online = pa.array(rng.random(n) < 0.97)
    seen = pa.array(np.full(n, at_ms) - rng.integers(0, 300_000, n), pa.int64())
    return _table(INSTANCE_CORE, n, {
        "instance_id": fleet.ids,
        "name": fleet.names,
        "ping_status": pc.if_else(online, "Online", "ConnectionLost"),
        "last_ping_date_time": seen.cast(pa.timestamp("ms", tz="UTC")),
        "agent_version": pa.array(["3.3.1345.0"] * n),
        "is_latest_version": pa.array(np.ones(n, dtype=bool)),
        "platform_type": pc.if_else(windows, "Windows", "Linux"),
        "platform_name": pc.if_else(windows, "Microsoft Windows Server 2022 Datacenter",
                                    "Amazon Linux"),
        "resource_type": pa.array(["EC2Instance"] * n),
    })  # fmt: skip


def _command_table(
    plan: list[tuple[int, int, np.ndarray]], ids: list[str], fleet: Fleet
) -> pa.Table:
    """ListCommands' rows of the day's commands, newest first; patching is Operation=Install."""
    order = np.argsort([-requested for _, requested, _ in plan], kind="stable")
    plan, ids = [plan[i] for i in order], [ids[i] for i in order]
    n = len(plan)
    requested = pa.array([r for _, r, _ in plan], pa.int64())
    install = [("Operation", ["Install"]), ("RebootOption", ["RebootIfNeeded"])]
    return _table(COMMAND_CORE, n, {
        "command_id": pa.array(ids),
        "document_name": pa.array(DOCUMENTS).take(pa.array([d for d, _, _ in plan])),
        "parameters": pa.array([install if d == 0 else [] for d, _, _ in plan],
                               COMMAND_CORE.field("parameters").type),
        "instance_ids": pa.array([fleet.ids.take(pa.array(t)).to_pylist() for _, _, t in plan]),
        "requested_date_time": requested.cast(pa.timestamp("ms", tz="UTC")),
        "requested_date": pc.divide(requested, DAY_MS).cast(pa.int32()).cast(pa.date32()),
        "status": pa.array(["Success"] * n),
        "target_count": pa.array([len(t) for _, _, t in plan], pa.int32()),
        "completed_count": pa.array([len(t) for _, _, t in plan], pa.int32()),
    })  # fmt: skip


def day_tables(
    rng: np.random.Generator, fleet: Fleet, texts: pa.Array, day: date, count: int
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """One day's invocations, plugins and commands, newest first, without lineage columns."""
    plan = _commands(rng, fleet, day, count)
    sizes = [len(t) for _, _, t in plan]
    command = np.repeat(np.arange(len(plan)), sizes)
    instance = np.concatenate([t for _, _, t in plan])
    requested = np.repeat(np.array([r for _, r, _ in plan], dtype=np.int64), sizes)
    document = np.repeat(np.array([d for d, _, _ in plan]), sizes)
    order = np.lexsort((instance, command, -requested))
    command, instance, requested, document = (
        a[order] for a in (command, instance, requested, document)
    )
    n = len(order)
    command_ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in plan]
    ids = pa.array(command_ids).take(command)
    weights = np.array([w for _, _, w in OUTCOMES], dtype=float)
    outcome = rng.choice(len(OUTCOMES), n, p=weights / weights.sum())
    instance_ids = fleet.ids.take(instance)
    invocations = pa.Table.from_arrays(
        [
            ids,
            instance_ids,
            fleet.names.take(instance),
            pa.array(["", "", "nightly maintenance window", "CHG0031337 CIS hardening"]).take(
                rng.integers(0, 4, n)
            ),
            pa.array(DOCUMENTS).take(document),
            pa.array(["$DEFAULT", "$LATEST", "1", "3"]).take(rng.integers(0, 4, n)),
            pa.array(requested, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            pa.array((requested // DAY_MS).astype(np.int32), pa.int32()).cast(pa.date32()),
            pa.array([o[0] for o in OUTCOMES]).take(outcome),
            pa.array([o[1] for o in OUTCOMES]).take(outcome),
            pa.array([""] * n),
            pa.array([""] * n),
            pa.array([""] * n),
            pa.array([""] * n),
            pa.array([""] * n),
            pa.array([[]] * n, pa.list_(pa.string())),
            pa.array([""] * n),
            pa.array([""] * n),
            pa.array(np.zeros(n, dtype=bool)),
        ],
        schema=INVOCATION_DRAWN,
    )
    plugins, span = _plugins(rng, invocations, document, outcome, texts)
    invocations = pa.Table.from_arrays(invocations.columns + span, schema=INVOCATION_CORE)
    return invocations, plugins, _command_table(plan, command_ids, fleet)


def _plugins(
    rng: np.random.Generator,
    invocations: pa.Table,
    document: np.ndarray,
    outcome: np.ndarray,
    texts: pa.Array,
) -> tuple[pa.Table, list[pa.Array]]:
    """The plugins, and each invocation's plugin time span (first start, last finish)."""
    n, k = invocations.num_rows, PLUGINS_PER_INVOCATION
    parent = np.repeat(np.arange(n), k)
    index = np.tile(np.arange(k), n)
    broken = np.repeat(rng.integers(0, k, n), k)
    relation = np.sign(index - broken) + 1  # 0 before, 1 at, 2 after the broken step
    state = STEP_PLAN[np.repeat(outcome, k), relation]
    ran = np.array([s[3] for s in STEP_STATES])[state]
    patch = np.repeat(document == 0, k)
    duration = np.where(
        patch, rng.integers(30_000, 1_500_000, n * k), rng.integers(100, 40_000, n * k)
    ).reshape(n, k)
    requested = invocations["requested_date_time"].cast(pa.int64()).to_numpy()
    start = (requested + rng.integers(80, 4000, n))[:, None] + np.cumsum(duration, 1) - duration
    finish = start + duration
    ran_by_invocation = ran.reshape(n, k)
    any_ran = ran_by_invocation.any(1)
    first = np.where(ran_by_invocation, start, np.iinfo(np.int64).max).min(1)
    last = np.where(ran_by_invocation, finish, np.iinfo(np.int64).min).max(1)
    start, finish = start.ravel(), finish.ravel()
    timestamp = pa.timestamp("ms", tz="UTC")
    span = [
        pa.array(first, pa.int64(), mask=~any_ran).cast(timestamp),
        pa.array(last, pa.int64(), mask=~any_ran).cast(timestamp),
    ]
    instance_ids = invocations["instance_id"].take(parent)
    text = pc.binary_join_element_wise(texts.take(rng.integers(0, len(texts), n * k)),
                                       instance_ids, "\n")  # fmt: skip
    blank = pa.array([""] * (n * k))
    plugins = pa.Table.from_arrays(
        [
            invocations["command_id"].take(parent),
            instance_ids,
            invocations["requested_date"].take(parent),
            invocations["requested_date_time"].take(parent),
            invocations["document_name"].take(parent),
            pa.array(index.astype(np.int32)),
            pa.array([s for group in STEPS for s in group]).take(
                np.repeat(document, k) * k + index
            ),
            pa.array([s[0] for s in STEP_STATES]).take(state),
            pa.array([s[1] for s in STEP_STATES]).take(state),
            pa.array(np.array([s[2] for s in STEP_STATES], dtype=np.int32)[state]),
            pa.array(start, pa.int64(), mask=~ran).cast(timestamp),
            pa.array(finish, pa.int64(), mask=~ran).cast(timestamp),
            pc.if_else(pa.array(ran), text, blank),
            blank,
            blank,
            blank,
            blank,
            blank,
        ],
        schema=PLUGIN_CORE,
    )
    return plugins, span
