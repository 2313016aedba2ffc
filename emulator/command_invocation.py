"""AmazonSSM.GetCommandInvocation: one plugin's result, with up to 24,000 characters of output.

Validation follows the service model (CommandId 36 characters, InstanceId's
pattern, PluginName at least 4). What the model names but does not explain we
decided, and could not confirm against AWS: a CommandId of the right length
that is not a UUID answers InvalidCommandId; an instance id that is no managed
node of the account and region answers InvalidInstanceId; a command or
invocation that does not exist within the 30-day retention answers
InvocationDoesNotExist (the CommandExecuted waiter retries on it);
PluginName may be left out only for single-step documents, and a missing or
unknown one answers InvalidPluginName with an empty message, as AWS does for
multi-step documents.

Output is empty until the plugin finished. StandardOutputContent is cut at
24,000 characters and StandardErrorContent at 8,000, each with the agent's
"--output truncated--" suffix (amazon-ssm-agent pluginutil.StringPrefix).
Times are ISO 8601 in UTC with milliseconds, the elapsed time an ISO 8601
duration as Java prints it (PT0.091S, PT1H0.271S), as in AWS's examples.
"""

from __future__ import annotations

import re
from typing import Any

from .clock import DAY_MS, iso
from .destinations import urls
from .fleet import RETENTION_MS, FleetSpec, fleet, lookup
from .inventory import newcomers
from .outputs import STDERR_CONTENT, STDOUT_CONTENT, content
from .ssm import _INSTANCE_ID, ApiError, Violations
from .timeline import Invocation, Step

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NO_CLOUD_WATCH = {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False}


def duration(ms: int) -> str:
    """An ISO 8601 duration the way java.time.Duration prints it."""
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds or millis or text == "PT":
        text += str(seconds) + (f".{millis:03d}".rstrip("0") if millis else "") + "S"
    return text


def _request(params: Any) -> tuple[str, str, str | None]:
    if not isinstance(params, dict):
        raise ApiError(
            "SerializationException", "Start of structure or map found where not expected."
        )
    values = []
    for name in ("CommandId", "InstanceId", "PluginName"):
        value = params.get(name)
        if value is not None and not isinstance(value, str):
            raise ApiError("SerializationException", f"{name} must be a string")
        values.append(value)
    command_id, instance_id, plugin = values
    errors = Violations()
    if command_id is None:
        errors.add(None, "commandId", "Member must not be null")
    else:
        errors.bounds(command_id, len(command_id), "commandId", 36, 36, "length")
    if instance_id is None:
        errors.add(None, "instanceId", "Member must not be null")
    elif not _INSTANCE_ID.match(instance_id):
        errors.add(
            instance_id,
            "instanceId",
            "Member must satisfy regular expression pattern: " + _INSTANCE_ID.pattern,
        )
    if plugin is not None and len(plugin) < 4:
        errors.add(plugin, "pluginName", "Member must have length greater than or equal to 4")
    errors.raise_any()
    assert command_id is not None and instance_id is not None
    return command_id, instance_id, plugin


def find(
    spec: FleetSpec, account: str, region: str, params: Any, now: int
) -> tuple[Invocation, str]:
    """The invocation and plugin name a request names, or the error AWS answers."""
    command_id, instance_id, plugin = _request(params)
    if not _UUID.match(command_id):
        raise ApiError("InvalidCommandId", "")
    size = spec.instances_per_region
    nodes = {i.instance_id for i in fleet(spec.seed, account, region, size)}
    nodes |= {i.instance_id for i, _, _ in newcomers(spec.seed, account, region, size)}
    if region not in spec.regions or instance_id not in nodes:
        raise ApiError("InvalidInstanceId", "Instance Id is not valid")
    matches = [
        inv
        for inv in lookup(spec, account, region, command_id, now)
        if inv.instance.instance_id == instance_id
        and inv.command.requested >= now - min(RETENTION_MS, spec.days * DAY_MS)
    ]
    if not matches:
        raise ApiError("InvocationDoesNotExist", "")
    inv = matches[0]
    plugins = inv.command.plugins
    if plugin is None and len(plugins) == 1:
        plugin = plugins[0]
    if plugin not in plugins:
        raise ApiError("InvalidPluginName", "")
    return inv, plugin


def _state(inv: Invocation, step: Step | None, now: int) -> tuple[str, str, int]:
    """(Status, StatusDetails, ResponseCode) of one plugin of `inv` at `now`."""
    status, details = inv.state(now)
    if step is None or step.start is None or now < step.start:
        if inv.is_final(now):
            return (step.status, step.details, step.code) if step else (status, details, -1)
        if inv.start is not None and now >= inv.start:
            return "Pending", "Pending", -1  # delivered; an earlier step is still running
        return status, details, -1
    if step.finish is not None and now >= step.finish:
        return step.status, step.details, step.code
    if status == "Cancelling":
        return status, details, -1
    return "InProgress", "InProgress", -1


def get_command_invocation(
    params: Any, *, spec: FleetSpec, account: str, region: str, now: int
) -> dict[str, Any]:
    inv, plugin = find(spec, account, region, params, now)
    command = inv.command
    step = next((s for s in inv.steps if s.name == plugin), None)
    status, details, code = _state(inv, step, now)
    stdout = stderr = start = end = elapsed = ""
    if step is not None and step.start is not None and now >= step.start:
        start = iso(step.start)
        if step.finish is not None and now >= step.finish:
            end, elapsed = iso(step.finish), duration(step.finish - step.start)
            stdout = content(step.full_stdout, STDOUT_CONTENT)
            stderr = content(step.full_stderr, STDERR_CONTENT)
        else:
            elapsed = duration(now - step.start)
    stdout_url, stderr_url = urls(command, inv.instance.instance_id, plugin)
    return {
        "CommandId": command.command_id,
        "InstanceId": inv.instance.instance_id,
        "Comment": command.comment,
        "DocumentName": command.document,
        "DocumentVersion": command.version,
        "PluginName": plugin,
        "ResponseCode": code,
        "ExecutionStartDateTime": start,
        "ExecutionElapsedTime": elapsed,
        "ExecutionEndDateTime": end,
        "Status": status,
        "StatusDetails": details,
        "StandardOutputContent": stdout,
        "StandardOutputUrl": stdout_url,
        "StandardErrorContent": stderr,
        "StandardErrorUrl": stderr_url,
        "CloudWatchOutputConfig": command.cloud_watch or dict(_NO_CLOUD_WATCH),
    }
