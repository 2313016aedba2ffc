"""Ground truth for tests: full outputs and where they can be read, open spans, planted secrets.

These answer from the fleet's model directly, so a test can find the cases it
needs (an invocation open for 20 days, an output in the denied bucket, a
secret past the 2,500-character cut) without re-implementing the fleet.
"""

from __future__ import annotations

from typing import Any

from .clock import iso
from .destinations import bucket, events, log_group, object_key, so_far, stored, stream_name
from .fleet import DAY_MS, RETENTION_MS, FleetSpec, lookup, requested_between
from .outputs import long_log, planted_secret
from .timeline import Invocation, Step


def _invocation(
    spec: FleetSpec, account: str, region: str, command_id: str, instance_id: str, now: int
) -> Invocation:
    for inv in lookup(spec, account, region, command_id, now):
        if inv.instance.instance_id == instance_id:
            return inv
    raise ValueError(f"no invocation of {command_id} on {instance_id} in {account}/{region}")


def output_sources(
    spec: FleetSpec, account: str, region: str, command_id: str, instance_id: str,
    plugin_name: str, now: int,
) -> dict[str, Any]:  # fmt: skip
    """What one plugin printed by `now`, and the state of each place it can be read.

    `s3` / `s3_stderr`: "none" (no output bucket), "denied" (the bucket refuses
    GetObject), "missing" (no object: not finished yet, nothing printed, or
    expired by a lifecycle rule) or "ok". `cloudwatch` / `cloudwatch_stderr`:
    "none" (not enabled), "missing" (no stream: nothing printed yet, or every
    event past the group's retention) or "ok".
    """
    inv = _invocation(spec, account, region, command_id, instance_id, now)
    step = next((s for s in inv.steps if s.name == plugin_name), None)
    if step is None:
        raise ValueError(f"{inv.command.document} has no plugin {plugin_name!r}")
    command = inv.command
    out: dict[str, Any] = {
        "stdout": so_far(step, "stdout", now),
        "stderr": so_far(step, "stderr", now),
        "bucket": command.s3_bucket,
        "log_group": log_group(command),
    }
    where = bucket(spec, command.s3_bucket) if command.s3_bucket else None
    group = out["log_group"]
    for stream, suffix in (("stdout", ""), ("stderr", "_stderr")):
        key = object_key(command, instance_id, step.name, stream) if where else ""
        if where is None:
            s3 = "none"
        elif where.denied:
            s3 = "denied"
        else:
            s3 = "ok" if stored(spec, where, key, now) else "missing"
        name = stream_name(command, instance_id, step.name, stream)
        if group is None:
            watch = "none"
        else:
            watch = "ok" if events(spec, account, region, group, name, now) else "missing"
        out.update({f"s3{suffix}": s3, f"{stream}_key": key, f"cloudwatch{suffix}": watch})
        out[f"{stream}_stream"] = name if group else ""
    return out


def open_spans(
    spec: FleetSpec, account: str, region: str, first: int, last: int
) -> list[dict[str, Any]]:
    """Every invocation requested from `first` to `last` (epoch ms), newest first, with
    when it closes: `open_days` is None for one that never does, `expires_open` says it
    is still open when it leaves the 30-day retention, `kind` names the long-open cases
    (episodes.py; "delayed" for a transient Delay, "" for the rest)."""
    out = []
    for inv in requested_between(spec, account, region, first, last).invocations:
        requested, closed = inv.command.requested, inv.closed
        out.append(
            {
                "CommandId": inv.command.command_id,
                "InstanceId": inv.instance.instance_id,
                "DocumentName": inv.command.document,
                "kind": inv.kind,
                "requested": iso(requested),
                "closed": None if closed is None else iso(closed),
                "open_days": None if closed is None else (closed - requested) / DAY_MS,
                "expires": iso(requested + RETENTION_MS),
                "expires_open": closed is None or closed > requested + RETENTION_MS,
                "phases": [[iso(at), status, details] for at, status, details in inv.phases],
                "Status": inv.status,
                "StatusDetails": inv.details,
            }
        )
    return out


def planted_secrets(
    spec: FleetSpec, account: str, region: str, first: int, last: int
) -> list[dict[str, Any]]:
    """The AWS credentials printed in full outputs of invocations requested from `first` to
    `last`, with where: `stream` ("stdout", or "stderr" for a failed plugin) and `offset`
    into its full text (stdout past 2,500 characters in either case)."""
    out = []
    for inv in requested_between(spec, account, region, first, last).invocations:
        for step in inv.steps:
            secret = planted_secret(step.more) if step.more else None
            if secret is not None:
                out.append(_secret(inv, step, secret))
    return out


def _secret(inv: Invocation, step: Step, secret: tuple[str, str]) -> dict[str, Any]:
    stream = "stderr" if step.failed else "stdout"
    offset = len(step.stderr if step.failed else step.stdout) + long_log(step.more).index(secret[0])
    return {
        "CommandId": inv.command.command_id,
        "InstanceId": inv.instance.instance_id,
        "PluginName": step.name,
        "stream": stream,
        "access_key_id": secret[0],
        "secret_access_key": secret[1],
        "offset": offset,
        "finished": None if step.finish is None else iso(step.finish),
    }
