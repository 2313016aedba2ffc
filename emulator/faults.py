"""Faults the emulator injects into SSM ListCommandInvocations and GetCommandInvocation.

A `FaultSpec` maps regions to `RegionFaults`; a region's own entry wins over
"*", which wins over `default` (entries replace each other, they do not merge).
STS, EC2, S3 and CloudWatch Logs are never faulted, so a run always gets as
far as paging. GetCommandInvocation meets the refusals, throttling, errors,
resets and slow answers; the paging faults and malformed records are
ListCommandInvocations' alone.

Determinism: rate-based faults (reset, error, slow, empty page) draw from one
`random.Random(f"{seed}:{account}:{region}")` (with `:GetCommandInvocation`
appended for that API) in request order,
four draws per request that gets past the refusals (unrecognized client,
access denied, throttle), whichever rates are set. The same sequence of
requests therefore meets the same faults; concurrent clients see an
order-dependent mix. Each operation has its own token bucket, as AWS rate
limits are per API.
Throttling is a real token bucket on the wall clock. Which records are
malformed depends only on (seed, CommandId, InstanceId), never on timing.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

MALFORMED_KINDS = ("missing_command_id", "non_numeric_response_code", "bad_timestamp")
_RATES = ("error_rate", "reset_rate", "slow_rate", "empty_pages", "malformed_rate")
_FLAGS = ("repeat_token", "invalid_token_once", "access_denied", "unrecognized_client")
LIST_INVOCATIONS = "ListCommandInvocations"
_WORDS = {-1: "minus one", 0: "zero", 1: "one", 2: "two", 124: "timeout", 127: "not found"}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class RegionFaults:
    """What goes wrong in one region; every field's default is "nothing"."""

    throttle_rate: float | None = None  # requests per second, per (account, region)
    throttle_burst: int = 1
    error_rate: float = 0.0
    reset_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    empty_pages: float = 0.0
    repeat_token: bool = False
    # The region's NextTokens expire once, at the first one it is sent: that request
    # and every token issued before it answer InvalidNextToken; later tokens work.
    invalid_token_once: bool = False
    access_denied: bool = False
    unrecognized_client: bool = False
    malformed_rate: float = 0.0
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "malformed_kinds", tuple(self.malformed_kinds))
        for name in _RATES:
            value = getattr(self, name)
            if not _number(value) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number from 0 to 1, not {value!r}")
        if self.empty_pages == 1:
            raise ValueError("empty_pages must be below 1, or no walk would ever end")
        for name in _FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        rate = self.throttle_rate
        if rate is not None and (not _number(rate) or rate <= 0):
            raise ValueError(f"throttle_rate must be a positive number or null, not {rate!r}")
        burst = self.throttle_burst
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"throttle_burst must be an integer >= 1, not {burst!r}")
        if not _number(self.slow_seconds) or self.slow_seconds < 0:
            raise ValueError("slow_seconds must be a number >= 0")
        unknown = set(self.malformed_kinds) - set(MALFORMED_KINDS)
        if unknown or not self.malformed_kinds:
            raise ValueError(f"malformed_kinds must be some of {', '.join(MALFORMED_KINDS)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegionFaults:
        if not isinstance(data, Mapping):
            raise ValueError("a region's faults must be a JSON object")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault {sorted(unknown)[0]!r}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "malformed_kinds": list(self.malformed_kinds)}


@dataclass(frozen=True)
class FaultSpec:
    """Faults by region ("*" for all) plus a default, and the seed their dice use."""

    seed: int = 0
    regions: Mapping[str, RegionFaults] = field(default_factory=dict)
    default: RegionFaults | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError("seed must be an integer")
        regions = {
            name: faults if isinstance(faults, RegionFaults) else RegionFaults.from_dict(faults)
            for name, faults in self.regions.items()
        }
        object.__setattr__(self, "regions", regions)
        if isinstance(self.default, Mapping):
            object.__setattr__(self, "default", RegionFaults.from_dict(self.default))

    def __hash__(self) -> int:
        return hash((self.seed, tuple(sorted(self.regions.items())), self.default))

    def for_region(self, region: str) -> RegionFaults | None:
        return self.regions.get(region) or self.regions.get("*") or self.default

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> FaultSpec:
        """`{"seed": 1, "regions": {"eu-west-1": {"error_rate": 0.2}}, "default": {...}}`."""
        data = data or {}
        if not isinstance(data, Mapping):
            raise ValueError("a faults document must be a JSON object")
        unknown = set(data) - {"seed", "regions", "default"}
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r} in the faults document")
        regions = data.get("regions") or {}
        if not isinstance(regions, Mapping):
            raise ValueError("regions must map region names to faults")
        default = data.get("default")
        return cls(
            seed=data.get("seed", 0),
            regions={str(k): RegionFaults.from_dict(v) for k, v in regions.items()},
            default=None if default is None else RegionFaults.from_dict(default),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "regions": {name: faults.to_dict() for name, faults in self.regions.items()},
            "default": None if self.default is None else self.default.to_dict(),
        }


@dataclass(frozen=True)
class Refusal:
    """An error answered before the request is even read: auth or throttling."""

    fault: str
    code: str
    message: str


@dataclass(frozen=True)
class Draw:
    """What happens to one admitted request; `fault` ends it early."""

    fault: str | None = None  # "reset" | "error" | "invalid_token"
    slow: float = 0.0
    empty: bool = False
    repeat_token: bool = False


class _Bucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _where(account: str, region: str, operation: str) -> tuple[str, ...]:
    """The key of an operation's bucket and dice (ListCommandInvocations keeps its old one)."""
    return (account, region) if operation == LIST_INVOCATIONS else (account, region, operation)


class Injector:
    """A FaultSpec's live state: token buckets, dice, and regions whose tokens have expired."""

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, ...], _Bucket] = {}
        self._dice: dict[tuple[str, ...], random.Random] = {}
        self._rotated: set[tuple[str, str]] = set()

    def admit(self, account: str, region: str, operation: str = LIST_INVOCATIONS) -> Refusal | None:
        faults = self.spec.for_region(region)
        if faults is None:
            return None
        if faults.unrecognized_client:
            message = "The security token included in the request is invalid."
            return Refusal("unrecognized_client", "UnrecognizedClientException", message)
        if faults.access_denied:
            action = f"ssm:{operation}"
            message = (
                f"User: arn:aws:iam::{account}:user/emulator is not authorized to perform: "
                f"{action} on resource: arn:aws:ssm:{region}:{account}:* because no "
                f"identity-based policy allows the {action} action"
            )
            return Refusal("access_denied", "AccessDeniedException", message)
        if faults.throttle_rate is not None:
            with self._lock:
                where = _where(account, region, operation)
                bucket = self._buckets.get(where)
                if bucket is None:
                    bucket = _Bucket(faults.throttle_rate, faults.throttle_burst)
                    self._buckets[where] = bucket
                if not bucket.take():
                    return Refusal("throttle", "ThrottlingException", "Rate exceeded")
        return None

    def draw(
        self, account: str, region: str, has_token: bool, operation: str = LIST_INVOCATIONS
    ) -> Draw:
        """Roll the dice for one request; `has_token`: it carries a NextToken."""
        faults = self.spec.for_region(region)
        if faults is None:
            return Draw()
        with self._lock:
            where = _where(account, region, operation)
            dice = self._dice.get(where)
            if dice is None:
                dice = random.Random(":".join(map(str, (self.spec.seed, *where))))
                self._dice[where] = dice
            reset, error, slow, empty = (dice.random() for _ in range(4))
            fault = "reset" if reset < faults.reset_rate else None
            if fault is None and error < faults.error_rate:
                fault = "error"
            expires = faults.invalid_token_once and (account, region) not in self._rotated
            if fault is None and expires and has_token:
                self._rotated.add((account, region))
                fault = "invalid_token"
        paging = operation == LIST_INVOCATIONS
        return Draw(
            fault,
            faults.slow_seconds if slow < faults.slow_rate else 0.0,
            paging and empty < faults.empty_pages,
            paging and faults.repeat_token,
        )

    def malformed(self, region: str, record: Mapping[str, Any]) -> str | None:
        """How this (valid, rendered) record is corrupted on the wire, if at all."""
        faults = self.spec.for_region(region)
        if faults is None or not faults.malformed_rate:
            return None
        text = f"{self.spec.seed}:{record['CommandId']}:{record['InstanceId']}"
        digest = hashlib.sha256(text.encode()).digest()
        if int.from_bytes(digest[:8]) / 2**64 >= faults.malformed_rate:
            return None
        kinds = faults.malformed_kinds
        for offset in range(len(kinds)):
            kind = kinds[(digest[8] + offset) % len(kinds)]
            if kind != "non_numeric_response_code" or record["CommandPlugins"]:
                return kind
        return None  # only a plugin's code was allowed, and there are no plugins


def corrupt(record: dict[str, Any], kind: str) -> None:
    """Break a rendered record in place, the way `kind` says."""
    if kind == "missing_command_id":
        del record["CommandId"]
    elif kind == "non_numeric_response_code":
        plugin = record["CommandPlugins"][0]
        plugin["ResponseCode"] = _WORDS.get(plugin["ResponseCode"], "unknown")
    elif kind == "bad_timestamp":
        record["RequestedDateTime"] = "not-a-time"
