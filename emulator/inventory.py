"""SSM DescribeInstanceInformation: every managed node, including ones that never ran anything.

The nodes are the fleet behind the Run Command history plus one to three
newcomers per region, registered within the last day and never sent a
command, so a report that starts from the history misses them. Chronically
unreachable instances answer ConnectionLost from `FleetSpec.offline_since`,
and so does a node during one of its outages (see episodes.py); a newcomer is
now and then Inactive (stopped right after registering).
Every field comes from a generator seeded with the node's id, so an instance
looks the same on every page and every walk at the same clock reading.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from .clock import to_ms
from .episodes import Outage, offline
from .fleet import DAY_MS, UNREACHABLE, FleetSpec, Instance, chronic, fleet, period
from .fleet import PATCH_FAILING as FAILING
from .outputs import NAMES
from .ssm import _INSTANCE_ID, ApiError, Tokens, Violations, wire_time

MAX_RESULTS, MIN_RESULTS, DEFAULT_RESULTS = 50, 5, 10
LATEST_AGENT = "3.3.1142.0"
_OLD_AGENTS = ("3.3.987.0", "3.2.2303.0", "3.1.1732.0")
_OS = {
    "Linux": (("Amazon Linux", "2023"), ("Amazon Linux", "2"), ("Ubuntu", "22.04"), ("Red Hat Enterprise Linux", "9.3")),
    "Windows": (("Microsoft Windows Server 2022 Datacenter", "10.0.20348"), ("Microsoft Windows Server 2019 Datacenter", "10.0.17763")),
    "MacOS": (("macOS", "14.2.1"), ("macOS", "13.6.3")),
}  # fmt: skip
FILTER_KEYS = (
    "InstanceIds", "AgentVersion", "PingStatus", "PlatformTypes", "ActivationIds", "IamRole",
    "ResourceType", "AssociationStatus",
)  # fmt: skip
_ENUMS = {
    "PingStatus": ("Online", "ConnectionLost", "Inactive"),
    "PlatformTypes": ("Windows", "Linux", "MacOS"),
    "ResourceType": ("EC2Instance", "ManagedInstance"),
}
_FIELDS = {
    "InstanceIds": "InstanceId", "AgentVersion": "AgentVersion", "PingStatus": "PingStatus",
    "PlatformTypes": "PlatformType", "ActivationIds": "ActivationId", "IamRole": "IamRole",
    "ResourceType": "ResourceType", "AssociationStatus": "AssociationStatus",
}  # fmt: skip
_HEX = "0123456789abcdef"


@lru_cache(maxsize=256)
def newcomers(
    seed: int, account: str, region: str, size: int
) -> tuple[tuple[Instance, int, bool], ...]:
    """(instance, seconds it registered before now, inactive) for nodes with no history yet."""
    if size == 0:
        return ()
    rng = random.Random(f"{seed}:{account}:{region}:newcomers")
    out = []
    for index in range(rng.randint(1, 3)):
        prefix = rng.choice(("i-", "i-", "mi-"))
        platform = rng.choice(("Linux", "Linux", "Windows"))
        instance_id = prefix + "".join(rng.choice(_HEX) for _ in range(17))
        name = f"{rng.choice(NAMES)}-new-{index:02d}"
        out.append(
            (Instance(instance_id, name, platform), rng.randint(600, 86_000), rng.random() < 0.25)
        )
    return tuple(out)


def _midnight(day: Any) -> int:
    return to_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))


def _record(
    spec: FleetSpec, account: str, region: str, node: Instance, now: int,
    reason: str | None, age: int | None, inactive: bool, outage: Outage | None = None,
) -> dict[str, Any]:  # fmt: skip
    rng = random.Random(f"{spec.seed}:{account}:{region}:{node.instance_id}:info")
    managed = node.instance_id.startswith("mi-")
    agent = LATEST_AGENT if age is not None or rng.random() < 0.8 else rng.choice(_OLD_AGENTS)
    name, version = rng.choice(_OS[node.platform])
    octets = [rng.randint(0, 255), rng.randint(0, 255), rng.randint(4, 254)]
    ip = f"{'192.168' if managed else '10'}.{'.'.join(map(str, octets[managed:]))}"
    if managed:
        host = f"srv-{node.instance_id[-6:]}.corp.acme.example"
    elif node.platform == "Windows":
        host = "EC2AMAZ-" + "".join(
            rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(7)
        )
    else:
        domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
        host = f"ip-{ip.replace('.', '-')}.{domain}"
    registered = now - age * 1000 if age is not None else None
    offline = _midnight(spec.offline_since) if spec.offline_since else None
    if inactive and registered is not None:
        ping, last_ping = "Inactive", registered + rng.randint(60, 600) * 1000
    elif reason == UNREACHABLE and offline is not None and now >= offline:
        ping, last_ping = "ConnectionLost", offline - rng.randint(60, 3600) * 1000
    elif outage is not None:
        ping, last_ping = "ConnectionLost", outage.start - rng.randint(60, 3600) * 1000
    else:
        ping, last_ping = "Online", max(now - rng.randint(5, 290) * 1000, registered or 0)
    record: dict[str, Any] = {
        "InstanceId": node.instance_id,
        "PingStatus": ping,
        "LastPingDateTime": wire_time(last_ping),
        "AgentVersion": agent,
        "IsLatestVersion": agent == LATEST_AGENT,
        "PlatformType": node.platform,
        "PlatformName": name,
        "PlatformVersion": version,
        "ResourceType": "ManagedInstance" if managed else "EC2Instance",
        "IPAddress": ip,
        "ComputerName": host,
    }
    if managed:
        if registered is None:
            anchor = offline if offline is not None else now
            registered = anchor - (spec.days + rng.randint(30, 400)) * DAY_MS
        record.update(
            ActivationId=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            IamRole="SSMServiceRole",
            RegistrationDate=wire_time(registered),
        )
        if node.name:
            record["Name"] = node.name
    if age is not None:
        status, last, good = "Pending", None, None
    else:
        last = last_ping - rng.randint(60, 1800) * 1000
        status = "Failed" if reason == FAILING else "Success"
        good = last if status == "Success" else last - rng.randint(1, 3) * DAY_MS
    record["AssociationStatus"] = status
    if last is not None and good is not None:
        record["LastAssociationExecutionDate"] = wire_time(last)
        record["LastSuccessfulAssociationExecutionDate"] = wire_time(good)
    record["AssociationOverview"] = {
        "DetailedStatus": status,
        "InstanceAssociationStatusAggregatedCount": {status: 1},
    }
    record["SourceId"] = node.instance_id
    record["SourceType"] = "AWS::SSM::ManagedInstance" if managed else "AWS::EC2::Instance"
    return record


def instances(spec: FleetSpec, account: str, region: str, now: int) -> list[dict[str, Any]]:
    """Every node's record at `now` (epoch ms), ordered by InstanceId."""
    if region not in spec.regions:
        return []
    size = spec.instances_per_region
    reasons = chronic(spec.seed, account, region, size)
    nodes: list[tuple[Instance, str | None, int | None, bool]] = [
        (node, reasons.get(node.instance_id), None, False)
        for node in fleet(spec.seed, account, region, size)
    ]
    nodes += [
        (node, None, age, off) for node, age, off in newcomers(spec.seed, account, region, size)
    ]
    day = datetime.fromtimestamp(now // 1000, UTC).date()
    outages = period(spec.seed, account, region, size, day).outages
    records = [
        _record(spec, account, region, n, now, r, a, off, offline(outages, n.instance_id, now))
        for n, r, a, off in nodes
    ]
    return sorted(records, key=lambda record: record["InstanceId"])


# ---- the request ----------------------------------------------------------------------


def _bad_value(message: str) -> ApiError:
    return ApiError("InvalidInstanceInformationFilterValue", message)


def _pairs(
    items: Any, name: str, key: str, values: str, errors: Violations
) -> list[tuple[str, list[str]]]:
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ApiError("SerializationException", "Start of list found where not expected")
    out = []
    for index, item in enumerate(items, start=1):
        where = f"{name}.{index}.member"
        k, v = item.get(key), item.get(values)
        if not isinstance(k, str | None) or not isinstance(v, list | None):
            raise ApiError("SerializationException", f"{key} must be a string and {values} a list")
        if k is None:
            errors.add(None, f"{where}.{key[0].lower() + key[1:]}", "Member must not be null")
        elif name == "instanceInformationFilterList" and k not in FILTER_KEYS:
            errors.add(
                k, f"{where}.key", f"Member must satisfy enum value set: [{', '.join(FILTER_KEYS)}]"
            )
        elif not k:
            errors.add(k, f"{where}.key", "Member must have length greater than or equal to 1")
        if v is None:
            errors.add(None, f"{where}.{values[0].lower() + values[1:]}", "Member must not be null")
        else:
            errors.bounds(v, len(v), f"{where}.{values[0].lower() + values[1:]}", 1, 100, "length")
        out.append((k or "", [str(x) for x in v or []]))
    return out


def _matcher(key: str, values: list[str]) -> Callable[[dict[str, Any]], bool]:
    if key == "tag-key":
        return lambda record: "Name" in values and bool(record.get("Name"))
    if key.startswith("tag:"):
        return lambda record: key == "tag:Name" and record.get("Name") in values
    if key not in FILTER_KEYS:
        raise ApiError("InvalidFilterKey", f"The filter key {key} is not valid.")
    if key == "ResourceType" and len(values) > 1:
        raise _bad_value("ResourceType filter may contain only one value.")
    allowed = _ENUMS.get(key)
    if allowed is not None and not set(values) <= set(allowed):
        raise _bad_value(f"{key} filter is invalid, valid values are {', '.join(allowed)}")
    if key == "InstanceIds":
        bad = [value for value in values if not _INSTANCE_ID.match(value)]
        if bad:
            raise _bad_value(f"InstanceIds filter contains an invalid instance id: {bad[0]}")
    field = _FIELDS[key]
    return lambda record: record.get(field) in values


def describe_instance_information(
    params: Any, *, records: list[dict[str, Any]], tokens: Tokens, account: str, region: str
) -> dict[str, Any]:
    """One page of nodes; filters AND together, values within one filter OR."""
    if not isinstance(params, dict):
        raise ApiError(
            "SerializationException", "Start of structure or map found where not expected."
        )
    errors = Violations()
    size = params.get("MaxResults", DEFAULT_RESULTS)
    if isinstance(size, bool) or not isinstance(size, int):
        raise ApiError("SerializationException", "MaxResults must be an integer")
    errors.bounds(size, size, "maxResults", MIN_RESULTS, MAX_RESULTS, "value")
    legacy = _pairs(
        params.get("InstanceInformationFilterList"),
        "instanceInformationFilterList",
        "key",
        "valueSet",
        errors,
    )
    filters = _pairs(params.get("Filters"), "filters", "Key", "Values", errors)
    errors.raise_any()
    if legacy and filters:
        raise _bad_value(
            "InstanceInformationFilterList and Filters cannot be used together; use Filters."
        )
    chosen = legacy or filters
    matchers = [_matcher(key, values) for key, values in chosen]
    scope = hashlib.sha256(
        json.dumps(["DescribeInstanceInformation", account, region, chosen]).encode()
    ).digest()[:8]
    after = ""
    token = params.get("NextToken")
    if token:
        after = tokens.open(str(token), scope)[0][1]
    wanted = [r for r in records if r["InstanceId"] > after and all(m(r) for m in matchers)]
    result: dict[str, Any] = {"InstanceInformationList": wanted[:size]}
    if len(wanted) > size:
        result["NextToken"] = tokens.issue(scope, (0, wanted[size - 1]["InstanceId"], ""))
    return result
