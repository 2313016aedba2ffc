"""What an invocation is: its command, its node, a timeline of states and its plugins' runs.

An invocation's state is a timeline, `phases`: (from epoch ms, Status,
StatusDetails) in order, the first at the request (Pending). The last phase is
where it ends up; if that is not a terminal status the invocation never closes
(a stuck agent). Each plugin (`Step`) has its own start and finish, consistent
with the timeline: the invocation is InProgress from the first plugin's start,
and its final phase begins when the last plugin that ran finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .outputs import long_log, shown

Phase = tuple[int, str, str]
TERMINAL = frozenset({"Success", "Failed", "TimedOut", "Cancelled"})
PENDING: tuple[str, str] = ("Pending", "Pending")
IN_PROGRESS: tuple[str, str] = ("InProgress", "InProgress")


@dataclass(frozen=True, slots=True)
class Instance:
    instance_id: str
    name: str
    platform: str  # Linux | Windows | MacOS


@dataclass(frozen=True, slots=True)
class Command:
    command_id: str
    requested: int
    document: str
    version: str
    plugins: tuple[str, ...]
    comment: str = ""
    service_role: str = ""
    notification: dict[str, Any] | None = None  # None: the key is left out of the record
    cloud_watch: dict[str, Any] | None = None
    region: str = ""
    s3_bucket: str = ""
    s3_prefix: str = ""
    timeout: int = 3600
    """SendCommand's TimeoutSeconds: how long delivery may take before DeliveryTimedOut."""


@dataclass(frozen=True, slots=True)
class Step:
    """One plugin's run; start None means it never ran, finish None that it never ends."""

    name: str
    start: int | None
    finish: int | None
    status: str
    details: str
    code: int
    output: str = ""
    """ListCommandInvocations' Output: `shown(stdout, stderr)`."""
    stdout: str = ""
    stderr: str = ""
    more: int = 0
    """Nonzero: the seed of a long log (`outputs.long_log`) printed after `stdout`, or after
    `stderr` by a plugin that failed."""

    @property
    def full_stdout(self) -> str:
        return self.stdout + long_log(self.more) if self.more and not self.failed else self.stdout

    @property
    def full_stderr(self) -> str:
        return self.stderr + long_log(self.more) if self.more and self.failed else self.stderr

    @property
    def failed(self) -> bool:
        return self.status == "Failed"


def step(
    name: str, start: int | None, finish: int | None, status: str, details: str, code: int,
    stdout: str = "", stderr: str = "", more: int = 0,
) -> Step:  # fmt: skip
    return Step(
        name, start, finish, status, details, code, shown(stdout, stderr), stdout, stderr, more
    )


@dataclass(frozen=True, slots=True)
class Invocation:
    """One (command, instance) pair: its timeline and its plugins' runs."""

    command: Command
    instance: Instance
    phases: tuple[Phase, ...]
    steps: tuple[Step, ...]
    trace: str = ""
    kind: str = ""
    """Why it looks the way it does, when that is one of the long-open cases (see episodes.py)."""
    key: tuple[int, str, str] = field(init=False)
    start: int | None = field(init=False)
    """When the first plugin started; None: never delivered."""
    closed: int | None = field(init=False)
    """When the final (terminal) phase began; None: it never closes."""

    def __post_init__(self) -> None:
        key = (-self.command.requested, self.command.command_id, self.instance.instance_id)
        object.__setattr__(self, "key", key)
        starts = [s.start for s in self.steps if s.start is not None]
        object.__setattr__(self, "start", min(starts) if starts else None)
        at, status, _ = self.phases[-1]
        object.__setattr__(self, "closed", at if status in TERMINAL else None)

    @property
    def status(self) -> str:
        return self.phases[-1][1]

    @property
    def details(self) -> str:
        return self.phases[-1][2]

    def state(self, now: int) -> tuple[str, str]:
        """(Status, StatusDetails) at `now`; Pending before the request."""
        for at, status, details in reversed(self.phases):
            if at <= now:
                return status, details
        return PENDING

    def is_final(self, now: int) -> bool:
        return self.closed is not None and now >= self.closed


def delivery_timed_out(
    command: Command, instance: Instance, delayed: int, kind: str = ""
) -> Invocation:
    """Pending, Delayed from `delayed` (the service retries), DeliveryTimedOut at the timeout."""
    requested = command.requested
    timeline = phases(
        (requested, *PENDING),
        (delayed, "Delayed", "Delayed"),
        (requested + command.timeout * 1000, "TimedOut", "DeliveryTimedOut"),
    )
    steps = tuple(
        Step(name, None, None, "TimedOut", "DeliveryTimedOut", -1) for name in command.plugins
    )
    return Invocation(command, instance, timeline, steps, kind=kind)


def phases(*items: tuple[int | None, str, str]) -> tuple[Phase, ...]:
    """A timeline from (time, Status, StatusDetails): None times are skipped, and a phase
    that another at the same instant replaces is dropped."""
    out: list[Phase] = []
    for at, status, details in items:
        if at is None:
            continue
        if out and out[-1][0] >= at:
            out.pop()
        out.append((at, status, details))
    return tuple(out)


def shifted(inv: Invocation, delta: int, *before: tuple[int, str, str], kind: str) -> Invocation:
    """The invocation run `delta` ms later (its first phase kept), with `before` phases
    inserted ahead of the shifted run: how a late delivery looks."""
    moved = [(at + delta, s, d) for at, s, d in inv.phases[1:]]
    steps = tuple(
        replace(
            s,
            start=None if s.start is None else s.start + delta,
            finish=None if s.finish is None else s.finish + delta,
        )
        for s in inv.steps
    )
    return replace(inv, phases=phases(inv.phases[0], *before, *moved), steps=steps, kind=kind)
