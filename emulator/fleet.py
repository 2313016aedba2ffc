"""A deterministic fleet and its Run Command history, as of any clock reading.

History is a pure function of (seed, account, region, UTC day, and the day the
chronically unreachable instances went offline): each day's commands and their
timelines come from a `random.Random` seeded with text (never `hash()`, which
is salted per process), so advancing the clock only reveals more of the same
story. What a record looks like *now* (which phase of its timeline, or gone
after 30 days) is worked out at render time. Draws that were added after a
schedule existed come from side generators seeded with the ids, so the
records that were already there stay the same.
"""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from . import episodes
from .clock import DAY_MS, to_ms
from .faults import FaultSpec
from .outputs import LOCK_HELD, NAMES, NO_DISK, OUTPUT_CAP, patch_failure_output, skipped
from .outputs import output as plugin_output
from .timeline import (
    IN_PROGRESS,
    PENDING,
    Command,
    Instance,
    Invocation,
    Step,
    delivery_timed_out,
    phases,
    step,
)  # fmt: skip

__all__ = [
    "DAY_MS", "RETENTION_MS", "Command", "FleetSpec", "Instance", "Invocation", "Step",
    "Window", "day_schedule", "fleet", "history", "lookup", "requested_between", "to_ms",
]  # fmt: skip

if TYPE_CHECKING:
    from .orgs import OrgAccount

RETENTION_MS = 30 * DAY_MS
_HEX = "0123456789abcdef"
_ACCOUNT = re.compile(r"^\d{12}$")
CHRONIC_SHARE = 0.02
OFFLINE_DAYS = 10
PATCH_FAILING, UNREACHABLE, UNPATCHED = "patch-failing", "unreachable", "unpatched"


@dataclass(frozen=True)
class FleetSpec:
    """Everything the emulated estate is derived from; two equal specs serve equal data."""

    seed: int = 7
    now: datetime | None = None
    regions: tuple[str, ...] = ("us-east-1", "eu-west-1", "ap-southeast-2")
    instances_per_region: int = 120
    account_id: str = "123456789012"
    days: int = 35
    page_delay: float = 0.0
    faults: FaultSpec | None = None
    offline_since: date | None = None
    """When the chronically unreachable instances went offline; default: ten days before now."""
    credential_seconds: float | None = None
    """Cap on the life of AssumeRole credentials (wall clock), to exercise refreshing."""
    deny_assume_role: tuple[str, ...] = ()
    """Accounts whose roles AssumeRole refuses with AccessDenied."""
    organization: tuple[OrgAccount, ...] | None = None
    """ListAccounts' answer (OrgAccount or wire-style dicts); None: a default of six, (): none."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "deny_assume_role", tuple(self.deny_assume_role))
        if self.organization is not None:
            from .orgs import parse_accounts  # orgs answers on the wire, which needs this module

            object.__setattr__(self, "organization", parse_accounts(self.organization))
        if self.credential_seconds is not None and not self.credential_seconds > 0:
            raise ValueError("credential_seconds must be a positive number of seconds")
        if not all(_ACCOUNT.match(a) for a in self.deny_assume_role):
            raise ValueError("deny_assume_role must list 12-digit account ids")
        if isinstance(self.faults, dict):
            object.__setattr__(self, "faults", FaultSpec.from_dict(self.faults))
        if not _ACCOUNT.match(self.account_id):
            raise ValueError(f"account_id must be 12 digits: {self.account_id!r}")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware (UTC)")
        if self.instances_per_region < 0 or self.days < 1 or self.page_delay < 0:
            raise ValueError("instances_per_region >= 0, days >= 1 and page_delay >= 0")
        if self.offline_since is None and self.now is not None:
            offline = (self.now.astimezone(UTC) - timedelta(days=OFFLINE_DAYS)).date()
            object.__setattr__(self, "offline_since", offline)


# ---- the fleet ------------------------------------------------------------------------


_ENVS = ("prod", "stage", "dev", "qa")
_FIRST_FOUR = (("i-", 17, "Linux"), ("i-", 8, "Windows"), ("mi-", 17, "Linux"), ("i-", 17, "MacOS"))


@lru_cache(maxsize=256)
def fleet(seed: int, account: str, region: str, size: int) -> tuple[Instance, ...]:
    """The region's instances; the first four cover every id style and platform."""
    rng = random.Random(f"{seed}:{account}:{region}:fleet")
    out = []
    for index in range(size):
        if index < 4:
            prefix, digits, platform = _FIRST_FOUR[index]
        else:
            prefix, digits = rng.choices((("i-", 17), ("i-", 8), ("mi-", 17)), (75, 15, 10))[0]
            platform = rng.choices(("Linux", "Windows", "MacOS"), (65, 28, 7))[0]
            platform = "Linux" if prefix == "mi-" and platform == "MacOS" else platform
        instance_id = prefix + "".join(rng.choice(_HEX) for _ in range(digits))
        roll = rng.random()
        if roll < 0.2 and index != 0:
            name = ""  # no Name tag: AWS sends an empty string
        elif roll < 0.25:
            name = rng.choice(("Größe-Prüfstand", "東京-ビルド", "kiosk-café-☕"))
        else:
            name = f"{rng.choice(NAMES)}-{rng.choice(_ENVS)}-{index:02d}"
        out.append(Instance(instance_id, name, platform))
    return tuple(out)


# ---- chronic non-compliance ---------------------------------------------------------

_MANAGED = ("AWS-RunPatchBaseline", "Acme-CollectInventory", "AWS-UpdateSSMAgent")
_CRON = "legacy cron: log rotation (not in any patch group)"


@lru_cache(maxsize=256)
def chronic(seed: int, account: str, region: str, size: int) -> MappingProxyType[str, str]:
    """Instance id -> why it stays out of patch compliance, for a fixed few percent.

    Without these, every instance patches within a week and a compliance report is
    always empty. Each reason leaves a visible trail: PATCH_FAILING instances fail
    AWS-RunPatchBaseline every night with the same cause; UNREACHABLE ones answer
    nothing but Undeliverable from `FleetSpec.offline_since` on; UNPATCHED ones
    (Linux or macOS) are in no patch group and run only a daily shell script.
    The first four instances, which carry the id-style edge cases and the
    long-running backup, are never chosen; fleets under ~26 get none.
    """
    count = round(size * CHRONIC_SHARE)
    candidates = list(fleet(seed, account, region, size)[4:])
    random.Random(f"{seed}:{account}:{region}:chronic").shuffle(candidates)
    unpatched = [i for i in candidates if i.platform != "Windows"][:count]
    rest = [i for i in candidates if i not in unpatched]
    out = {i.instance_id: UNPATCHED for i in unpatched}
    out.update({i.instance_id: PATCH_FAILING for i in rest[:count]})
    out.update({i.instance_id: UNREACHABLE for i in rest[count : 2 * count]})
    return MappingProxyType(out)


def _chronic(inv: Invocation, reason: str, offline: bool) -> Invocation | None:
    """The invocation as a chronically non-compliant instance has it; None: never sent."""
    command, instance = inv.command, inv.instance
    side = random.Random(f"{command.command_id}:{instance.instance_id}")
    if reason == UNPATCHED and command.document in _MANAGED:
        return None
    if reason == UNREACHABLE and offline:
        finish = command.requested + side.randint(200, 3000)
        trace = f"Instance {instance.instance_id} is not connected."
        return _undeliverable(command, instance, finish, trace)
    if reason != PATCH_FAILING or command.document != "AWS-RunPatchBaseline":
        return inv
    linux = instance.platform == "Linux"
    cause = LOCK_HELD if linux and random.Random(instance.instance_id).random() < 0.5 else NO_DISK
    clock = start = command.requested + side.randint(80, 4000)
    steps = []
    for name in command.plugins:
        if name == f"Patch{instance.platform}":
            stdout, stderr = patch_failure_output(side, instance.platform, cause)
            end = clock + side.randint(5_000, 600_000)
            steps.append(step(name, clock, end, "Failed", "Failed", 1, stdout, stderr))
        else:
            end = clock + side.randint(0, 4)
            steps.append(
                step(name, clock, end, "Success", "Success", 0, skipped(instance.platform, name))
            )
        clock = end
    timeline = phases(
        (command.requested, *PENDING), (start, *IN_PROGRESS), (clock, "Failed", "Failed")
    )
    return Invocation(command, instance, timeline, tuple(steps))


def _undeliverable(command: Command, instance: Instance, finish: int, trace: str) -> Invocation:
    timeline = phases((command.requested, *PENDING), (finish, "Failed", "Undeliverable"))
    return Invocation(command, instance, timeline, (), trace)


# ---- the schedule ---------------------------------------------------------------------

_OUTCOMES = (
    ("Success", 86),
    ("Failed", 5),
    ("ExecutionTimedOut", 2),
    ("DeliveryTimedOut", 2),
    ("Cancelled", 2),
    ("Undeliverable", 2),
    ("Delayed", 1),
)
_LONG_COMMENT = (
    "CHG0031337: quarterly CIS hardening for the PCI fleet, approved by the platform on-call "
    "team; rollback plan in the wiki"
)[:100]  # the API's maximum
_BACKUP = "full backup to S3 (runs past the next day's start)"
_PATCH_STEPS = ("PatchWindows", "PatchLinux", "PatchMacOS")
_INVENTORY_STEPS = ("collectInventory", "uploadInventory")
_FINAL = {
    "Success": ("Success", "Success"),
    "Failed": ("Failed", "Failed"),
    "ExecutionTimedOut": ("TimedOut", "ExecutionTimedOut"),
    "Cancelled": ("Cancelled", "Cancelled"),
}


def _command(
    rng: random.Random,
    account: str,
    region: str,
    requested: int,
    document: str,
    plugins: tuple[str, ...],
    comment: str | None = None,
) -> Command:
    command_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    version = rng.choice(("$DEFAULT", "$DEFAULT", "$LATEST", "1", "3"))
    choices = ("", "", "", "nightly maintenance window", "Überprüfung der Festplatten 💾")
    comment = rng.choice((*choices, _LONG_COMMENT)) if comment is None else comment
    roll = rng.random()
    service_role = ""
    if roll < 0.1:
        notification: dict[str, Any] | None = {
            "NotificationArn": f"arn:aws:sns:{region}:{account}:ssm-run-command",
            "NotificationEvents": rng.choice((["All"], ["Failed", "TimedOut"], ["Success"])),
            "NotificationType": rng.choice(("Command", "Invocation")),
        }
        service_role = f"arn:aws:iam::{account}:role/SSMNotificationRole"
    elif roll < 0.85:
        notification = {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""}
    else:
        notification = None
    cloud_watch: dict[str, Any] | None = None
    if notification is not None:
        enabled = rng.random() < 0.15
        cloud_watch = {
            "CloudWatchLogGroupName": f"/aws/ssm/{document}" if enabled else "",
            "CloudWatchOutputEnabled": enabled,
        }
    bucket = prefix = ""
    if rng.random() < 0.25:
        bucket, prefix = f"acme-ssm-output-{account}-{region}", f"run-command/{document.lower()}"
    return Command(
        command_id, requested, document, version, tuple(plugins), comment, service_role,
        notification, cloud_watch, region, bucket, prefix,
    )  # fmt: skip


def _more(command: Command, instance: Instance, name: str, stdout: str, failed: bool) -> int:
    """The seed of a long log after a long `stdout` (every failure, half the successes); 0: none."""
    if len(stdout) <= OUTPUT_CAP:
        return 0
    text = f"{command.command_id}:{instance.instance_id}:{name}:log"
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8])
    return value % 2**31 + 1 if failed or value % 2 == 0 else 0


def _run(
    rng: random.Random, command: Command, instance: Instance, outcome: str, clock: int
) -> tuple[Step, ...]:
    """The plugins' runs from `clock` on, drawing from `rng` in the schedule's fixed order."""
    patch = command.document == "AWS-RunPatchBaseline"
    long_running = command.comment == _BACKUP
    active = [
        i for i, n in enumerate(command.plugins) if not patch or n == f"Patch{instance.platform}"
    ]
    victim = rng.choice(active)
    steps: list[Step] = []
    broken = False
    for index, name in enumerate(command.plugins):
        if broken and outcome in ("ExecutionTimedOut", "Cancelled"):
            steps.append(Step(name, None, None, "Cancelled", "Cancelled", -1))
            continue
        if index not in active:
            end = clock + rng.randint(0, 4)
            steps.append(
                step(name, clock, end, "Success", "Success", 0, skipped(instance.platform, name))
            )
            clock = end
            continue
        label = instance.name or instance.instance_id
        stdout = plugin_output(rng, command.document, instance.platform, label, name)
        if index == victim and outcome == "Failed":
            duration, code = rng.randint(100, 60_000), rng.choice((1, 1, 2, 127))
            error = f"failed to run commands: exit status {code}"
            if code == 127:
                error = "/var/lib/amazon/ssm/_script.sh: line 3: jq: command not found\n" + error
            more = _more(command, instance, name, stdout, failed=True)
            made = step(
                name, clock, clock + duration, "Failed", "Failed", code, stdout, f"{error}\n", more
            )
        elif index == victim and outcome == "ExecutionTimedOut":
            duration = 3_600_000 if not patch else 7_200_000
            made = step(
                name, clock, clock + duration, "TimedOut", "ExecutionTimedOut", 124, stdout[:200]
            )
        elif index == victim and outcome == "Cancelled":
            duration = rng.randint(1000, 300_000)
            made = step(name, clock, clock + duration, "Cancelled", "Cancelled", -1)
        else:
            duration = rng.randint(30_000, 1_500_000) if patch else rng.randint(100, 40_000)
            if long_running:
                duration = rng.randint(24 * 3_600_000 + 600_000, 27 * 3_600_000)
            more = _more(command, instance, name, stdout, failed=False)
            made = step(name, clock, clock + duration, "Success", "Success", 0, stdout, "", more)
        broken = broken or index == victim
        steps.append(made)
        clock = made.finish or clock
    return tuple(steps)


def _ran(command: Command, instance: Instance, outcome: str, steps: tuple[Step, ...]) -> Invocation:
    """The timeline of an invocation whose plugins ran as `steps`."""
    start = steps[0].start if steps else None
    finish = max((s.finish for s in steps if s.finish is not None), default=start)
    cancelling = None
    if outcome == "Cancelled":  # CancelCommand: Cancelling until the agent stops the plugin
        victim = next(s for s in steps if s.status == "Cancelled" and s.start is not None)
        side = random.Random(f"{command.command_id}:{instance.instance_id}:cancel")
        assert victim.start is not None and victim.finish is not None
        cancelling = max(victim.start, victim.finish - side.randint(30_000, 900_000))
    timeline = phases(
        (command.requested, *PENDING),
        (start, *IN_PROGRESS),
        (cancelling, "Cancelling", "Cancelling"),
        (finish, *_FINAL[outcome]),
    )
    return Invocation(command, instance, timeline, steps)


def _invocation(rng: random.Random, command: Command, instance: Instance) -> Invocation:
    outcome = rng.choices([o for o, _ in _OUTCOMES], [w for _, w in _OUTCOMES])[0]
    if command.comment == _BACKUP:
        outcome = "Success"
    if instance.instance_id.startswith("mi-") and rng.random() < 0.05:
        outcome = "Undeliverable"  # hybrid nodes go offline more often
    requested = command.requested
    if outcome == "Undeliverable":
        finish = requested + rng.randint(200, 3000)
        trace = rng.choice(("", f"Instance {instance.instance_id} is not connected."))
        return _undeliverable(command, instance, finish, trace)
    side = random.Random(f"{command.command_id}:{instance.instance_id}:delivery")
    if outcome == "DeliveryTimedOut":
        return delivery_timed_out(command, instance, requested + side.randint(60_000, 900_000))
    if outcome == "Delayed":  # transient: delivered later, or timed out in the end
        delayed = requested + rng.randint(500, 9000)
        if side.random() < 0.3:
            return delivery_timed_out(command, instance, delayed, kind="delayed")
        resolved = "Success" if side.random() < 0.75 else "Failed"
        delivered = requested + side.randint(120_000, 3_000_000)
        steps = _run(side, command, instance, resolved, delivered)
        late = _ran(command, instance, resolved, steps)
        timeline = phases(late.phases[0], (delayed, "Delayed", "Delayed"), *late.phases[1:])
        return Invocation(command, instance, timeline, steps, kind="delayed")
    steps = _run(rng, command, instance, outcome, requested + rng.randint(80, 4000))
    return _ran(command, instance, outcome, steps)


def _at(day: date, seconds: int, ms: int) -> int:
    return to_ms(datetime(day.year, day.month, day.day, tzinfo=UTC)) + seconds * 1000 + ms


def candidates(seed: int, account: str, region: str, size: int) -> tuple[Instance, ...]:
    """Instances that may go offline for days: not the first four, not chronic."""
    reasons = chronic(seed, account, region, size)
    return tuple(i for i in fleet(seed, account, region, size)[4:] if i.instance_id not in reasons)


def period(seed: int, account: str, region: str, size: int, day: date) -> episodes.Period:
    """The long-open episodes (outages and their commands) of the period holding `day`."""
    instances = fleet(seed, account, region, size)
    index = (day - episodes.EPOCH).days // episodes.PERIOD_DAYS
    return episodes.period(
        seed, account, region, instances[:4], candidates(seed, account, region, size), index
    )


@lru_cache(maxsize=8192)
def day_schedule(
    seed: int, account: str, region: str, size: int, day: date, offline_since: date | None = None
) -> tuple[Invocation, ...]:
    """Every invocation requested on one UTC day, with its timeline, sorted newest first."""
    instances = fleet(seed, account, region, size)
    if not instances:
        return ()
    rng = random.Random(f"{seed}:{account}:{region}:{day.isoformat()}")
    by_os = {p: [i for i in instances if i.platform == p] for p in ("Linux", "Windows", "MacOS")}
    unix = by_os["Linux"] + by_os["MacOS"]
    plans: list[tuple[int, str, tuple[str, ...], list[Instance], str | None]] = []

    def plan(second, document, plugins, targets, ms=None, comment=None) -> None:
        ms = rng.randint(0, 999) if ms is None else ms
        plans.append((_at(day, second, ms), document, plugins, list(targets), comment))

    # A daily backup that runs for longer than a day: at any instant something is in flight.
    plan(1800, "AWS-RunShellScript", ("aws:runShellScript",), unix[:1], comment=_BACKUP)

    nightly = [i for i in instances if rng.random() < 0.92]
    plan(7200 + rng.randint(0, 1200), "AWS-RunPatchBaseline", _PATCH_STEPS, nightly)
    inventory = [i for i in instances if rng.random() < 0.3]
    plan(43200 + rng.randint(0, 600), "Acme-CollectInventory", _INVENTORY_STEPS, inventory)
    if day.weekday() == 6:
        plan(14400, "AWS-UpdateSSMAgent", ("aws:updateSsmAgent",), instances)
    for _ in range(rng.randint(1, 4)):
        targets = rng.sample(unix, min(len(unix), rng.randint(1, 8)))
        plan(rng.randint(0, 86399), "AWS-RunShellScript", ("aws:runShellScript",), targets)
    for _ in range(rng.randint(0, 2) if by_os["Windows"] else 0):
        targets = rng.sample(by_os["Windows"], 1)
        plan(
            rng.randint(0, 86399), "AWS-RunPowerShellScript", ("aws:runPowerShellScript",), targets
        )
    if (day + timedelta(days=1)).day == 1:  # the last millisecond of a month...
        plan(86399, "AWS-RunShellScript", ("aws:runShellScript",), unix[:2], ms=999)
    if day.day == 1:  # ...and the first of the next, for partition boundaries
        plan(0, "Acme-CollectInventory", _INVENTORY_STEPS, instances[:2], ms=0)
    reasons = chronic(seed, account, region, size)
    cron = [i for i in unix if reasons.get(i.instance_id) == UNPATCHED]
    if cron:  # planned last, from its own generator: every other record stays the same
        side = random.Random(f"{seed}:{account}:{region}:{day.isoformat()}:cron")
        second, ms = 10800 + side.randint(0, 1800), side.randint(0, 999)
        plan(second, "AWS-RunShellScript", ("aws:runShellScript",), cron, ms=ms, comment=_CRON)
    offline = offline_since is not None and day >= offline_since
    episode = period(seed, account, region, size, day)
    out: list[Invocation] = []
    for requested, document, plugins, targets, comment in plans:
        command = _command(rng, account, region, requested, document, plugins, comment)
        for instance in targets:
            inv = _invocation(rng, command, instance)
            reason = reasons.get(instance.instance_id)
            kept = inv if reason is None else _chronic(inv, reason, offline)
            if kept is not None:
                out.append(episodes.while_offline(kept, episode.outages))
    out += [inv for inv in episode.invocations if _date(inv.command.requested) == day]
    out.sort(key=lambda inv: inv.key)
    return tuple(out)


def _date(ms: int) -> date:
    return datetime.fromtimestamp(ms // 1000, UTC).date()


@dataclass(frozen=True)
class Window:
    """The invocations visible at one instant, newest first, with their sort keys."""

    invocations: tuple[Invocation, ...]
    keys: tuple[tuple[int, str, str], ...]

    def after(self, key: tuple[int, str, str] | None) -> int:
        """Index of the first invocation strictly after `key` in list order."""
        return 0 if key is None else bisect_right(self.keys, key)


@lru_cache(maxsize=64)
def _days(
    seed: int, account: str, region: str, size: int, first: date, last: date, offline: date | None
) -> Window:
    invocations: list[Invocation] = []
    day = last
    while day >= first:
        invocations.extend(day_schedule(seed, account, region, size, day, offline))
        day -= timedelta(days=1)
    return Window(tuple(invocations), tuple(inv.key for inv in invocations))


def requested_between(spec: FleetSpec, account: str, region: str, first: int, last: int) -> Window:
    """The invocations requested from `first` to `last` (epoch ms, both included), newest first."""
    if region not in spec.regions:
        return Window((), ())
    size = spec.instances_per_region
    full = _days(spec.seed, account, region, size, _date(first), _date(last), spec.offline_since)
    lo = bisect_left(full.keys, (-last,))
    hi = bisect_left(full.keys, (-first + 1,))
    return Window(full.invocations[lo:hi], full.keys[lo:hi])


def history(spec: FleetSpec, account: str, region: str, now: int) -> Window:
    """What ListCommandInvocations can see at `now` (epoch ms): requested <= now, 30-day retention."""
    return requested_between(
        spec, account, region, now - min(RETENTION_MS, spec.days * DAY_MS), now
    )


LOOKBACK_DAYS = 40
"""How far back outputs are looked up: S3 keeps them up to 30 days after the run (see
destinations.py), longer than ListCommandInvocations keeps the invocation."""


@lru_cache(maxsize=16)
def _index(
    seed: int, account: str, region: str, size: int, first: date, last: date, offline: date | None
) -> MappingProxyType[str, tuple[Invocation, ...]]:
    found: dict[str, list[Invocation]] = defaultdict(list)
    for inv in _days(seed, account, region, size, first, last, offline).invocations:
        found[inv.command.command_id].append(inv)
    return MappingProxyType({k: tuple(v) for k, v in found.items()})


def lookup(
    spec: FleetSpec, account: str, region: str, command_id: str, now: int
) -> tuple[Invocation, ...]:
    """A command's invocations requested by `now`, up to LOOKBACK_DAYS back (retention aside)."""
    if region not in spec.regions:
        return ()
    first = _date(now - min(LOOKBACK_DAYS, spec.days) * DAY_MS)
    size = spec.instances_per_region
    found = _index(spec.seed, account, region, size, first, _date(now), spec.offline_since)
    return tuple(inv for inv in found.get(command_id, ()) if inv.command.requested <= now)
