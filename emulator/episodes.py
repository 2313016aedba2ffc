"""Invocations that stay open for days: nodes that go offline, runs past 48 h, a stuck agent.

Time is cut into 30-day periods (from 1970-01-01). Each period of each
(account, region) has, from its own generator:

- three runs of `Acme-DataMigration` that take 49 to 58 hours (kind "long-run").
  Its three steps each stay under the agent's 48-hour execution limit
  (amazon-ssm-agent pluginutil: maxExecutionTimeoutInSeconds = 172800); the
  invocation as a whole runs past it.
- an outage of 20.5 to 22 days on one node, and an `Acme-InstallSensor` command
  sent to it with a 20-day delivery timeout: Pending, Delayed (the service
  retries), then TimedOut/DeliveryTimedOut 20 days after the request
  (kind "offline-timeout").
- two outages of 4.6 to 5.4 days on another node, each with an
  `Acme-InstallSensor` command with a 7-day timeout: Pending, Delayed, and when
  the node is back it runs and succeeds (kind "offline-returns").
- one shell command, 10 to 20 days into the period, on which the agent hangs:
  InProgress from its start, never closed, so it leaves the 30-day retention
  still open (kind "stuck").

Outages end inside their period, so they never overlap. While a node is offline
every other command sent to it waits too (`while_offline`): it is delivered
when the node is back if that is before its delivery timeout, and times out
otherwise (kind "offline"); DescribeInstanceInformation reports the node
ConnectionLost. Long runs and stuck agents use the first four instances,
which never go offline; outages use the others that are not chronically out
of compliance (fleets of five or fewer get no outages).

What real SSM does to an invocation that is InProgress when its node goes
offline, or to one whose agent hangs, we could not confirm: here the first
cannot happen and the second stays InProgress for good.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache

from .clock import DAY_MS, to_ms
from .timeline import (
    IN_PROGRESS,
    PENDING,
    Command,
    Instance,
    Invocation,
    delivery_timed_out,
    phases,
    shifted,
    step,
)  # fmt: skip

EPOCH = date(1970, 1, 1)
PERIOD_DAYS = 30
HOUR_MS = 3_600_000
MIGRATION = "Acme-DataMigration"
MIGRATION_LOGS = "/acme/migrations"
SENSOR = "Acme-InstallSensor"
_MIGRATION_STEPS = ("exportSnapshot", "copyToReplica", "verifyChecksums")


@dataclass(frozen=True)
class Outage:
    """A node offline from `start` to `end` (epoch ms)."""

    instance_id: str
    start: int
    end: int
    kind: str  # "offline-returns" | "offline-timeout"

    def covers(self, instance_id: str, at: int) -> bool:
        return instance_id == self.instance_id and self.start <= at < self.end


@dataclass(frozen=True)
class Period:
    outages: tuple[Outage, ...]
    invocations: tuple[Invocation, ...]


def denied_bucket(account: str, region: str) -> str:
    """The security team's output bucket: its policy refuses everyone else's GetObject."""
    return f"acme-secops-ssm-output-{account}-{region}"


@lru_cache(maxsize=256)
def period(
    seed: int, account: str, region: str, stable: tuple[Instance, ...],
    candidates: tuple[Instance, ...], index: int,
) -> Period:  # fmt: skip
    """Period `index`'s outages and episode invocations; `stable` never go offline."""
    rng = random.Random(f"{seed}:{account}:{region}:episodes:{index}")
    begin = to_ms(datetime.combine(EPOCH, datetime.min.time(), UTC)) + index * PERIOD_DAYS * DAY_MS
    unix = [i for i in stable if i.platform != "Windows"]
    outages: list[Outage] = []
    invocations: list[Invocation] = []

    def command(at: int, document: str, plugins: tuple[str, ...], comment: str, **extra) -> Command:
        command_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        empty = {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""}
        options = {
            "notification": empty,
            "cloud_watch": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
            **extra,
        }
        return Command(command_id, at, document, "1", plugins, comment, region=region, **options)

    for third in range(3):
        if not unix:
            break
        at = begin + (third * 10 + rng.randint(0, 8)) * DAY_MS + rng.randint(0, DAY_MS - 1)
        migration = command(
            at, MIGRATION, _MIGRATION_STEPS, "migrate the data volume to the new cluster",
            cloud_watch={"CloudWatchLogGroupName": MIGRATION_LOGS, "CloudWatchOutputEnabled": True},
            s3_bucket=f"acme-ssm-output-{account}-{region}", s3_prefix="run-command/acme-datamigration",
        )  # fmt: skip
        invocations.append(_migration(rng, migration, rng.choice(unix)))
    if unix:  # mid-period, so that any 40 days see one leave the retention
        at = begin + rng.randint(10 * DAY_MS, 20 * DAY_MS - 1)
        hang = command(
            at, "AWS-RunShellScript", ("aws:runShellScript",), "restart the log shipper",
            cloud_watch={"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": True},
        )  # fmt: skip
        invocations.append(_stuck(rng, hang, rng.choice(unix)))
    if candidates:
        node = candidates[index % len(candidates)]
        start = begin + rng.randint(0, 4 * DAY_MS)
        end = start + rng.randint(41, 44) * DAY_MS // 2
        outages.append(Outage(node.instance_id, start, end, "offline-timeout"))
        sensor = _sensor(command, account, region, start + rng.randint(HOUR_MS, 3 * HOUR_MS), 20)
        invocations.append(_timed_out(rng, sensor, node))
    if len(candidates) > 1:
        node = candidates[(index + 1) % len(candidates)]
        for offset in (2, 15):
            start = begin + rng.randint(offset * DAY_MS, (offset + 2) * DAY_MS)
            end = start + rng.randint(46, 54) * DAY_MS // 10
            outages.append(Outage(node.instance_id, start, end, "offline-returns"))
            at = start + rng.randint(20 * 60_000, 90 * 60_000)
            invocations.append(_returns(rng, _sensor(command, account, region, at, 7), node, end))
    return Period(tuple(outages), tuple(invocations))


def _sensor(command, account: str, region: str, at: int, days: int) -> Command:
    return command(
        at, SENSOR, ("installSensor",), f"install the EDR sensor (waits {days} days for the node)",
        timeout=days * 86_400, s3_bucket=denied_bucket(account, region), s3_prefix="sensor-install",
    )  # fmt: skip


def _migration(rng: random.Random, command: Command, node: Instance) -> Invocation:
    hours = ((15, 18), (31, 36), (3, 4))
    clock = start = command.requested + rng.randint(200, 4000)
    steps = []
    for name, (low, high) in zip(command.plugins, hours, strict=True):
        end = clock + rng.randint(low * HOUR_MS, high * HOUR_MS)
        lines = [f"{name}: started on {node.name or node.instance_id}"]
        lines += [f"{name}: {n * 5}% done ({n * 37} GiB)" for n in range(1, 21)]
        if name == "copyToReplica":  # a long progress log: more than SSM shows, and a long tail
            lines += [f"copied chunk {n:05d} → replica-{n % 3} (Größe 64 MiB) ✓" for n in range(60)]
        stdout = "\n".join(lines) + "\n"
        more = rng.randint(1, 2**31) if len(stdout) > 2500 else 0
        steps.append(step(name, clock, end, "Success", "Success", 0, stdout, "", more))
        clock = end
    timeline = phases(
        (command.requested, *PENDING), (start, *IN_PROGRESS), (clock, "Success", "Success")
    )
    return Invocation(command, node, timeline, tuple(steps), kind="long-run")


def _stuck(rng: random.Random, command: Command, node: Instance) -> Invocation:
    start = command.requested + rng.randint(200, 4000)
    stdout = "stopping fluent-bit\nfluent-bit stopped\nwaiting for the socket to close\n"
    hung = step("aws:runShellScript", start, None, "InProgress", "InProgress", -1, stdout)
    timeline = phases((command.requested, *PENDING), (start, *IN_PROGRESS))
    return Invocation(command, node, timeline, (hung,), kind="stuck")


def _timed_out(rng: random.Random, command: Command, node: Instance) -> Invocation:
    delayed = command.requested + rng.randint(5 * 60_000, 20 * 60_000)
    return delivery_timed_out(command, node, delayed, kind="offline-timeout")


def _returns(rng: random.Random, command: Command, node: Instance, back: int) -> Invocation:
    delayed = command.requested + rng.randint(5 * 60_000, 20 * 60_000)
    start = back + rng.randint(60_000, 300_000)
    end = start + rng.randint(20_000, 180_000)
    stdout = "Installing acme-edr-sensor 7.3.1\nSensor registered with the console ✓\n"
    ran = step("installSensor", start, end, "Success", "Success", 0, stdout)
    timeline = phases(
        (command.requested, *PENDING),
        (delayed, "Delayed", "Delayed"),
        (start, *IN_PROGRESS),
        (end, "Success", "Success"),
    )
    return Invocation(command, node, timeline, (ran,), kind="offline-returns")


def while_offline(inv: Invocation, outages: tuple[Outage, ...]) -> Invocation:
    """`inv` as it goes when its node is offline at the request: it waits for the node."""
    requested, node = inv.command.requested, inv.instance.instance_id
    outage = next((o for o in outages if o.covers(node, requested)), None)
    if outage is None:
        return inv
    side = random.Random(f"{inv.command.command_id}:{node}:offline")
    delayed = requested + side.randint(60_000, 600_000)
    deadline = requested + inv.command.timeout * 1000
    delivered = outage.end + side.randint(30_000, 300_000)
    if delivered >= deadline or inv.start is None:
        return delivery_timed_out(inv.command, inv.instance, delayed, kind="offline")
    return shifted(inv, delivered - inv.start, (delayed, "Delayed", "Delayed"), kind="offline")


def offline(outages: tuple[Outage, ...], instance_id: str, at: int) -> Outage | None:
    return next((o for o in outages if o.covers(instance_id, at)), None)
