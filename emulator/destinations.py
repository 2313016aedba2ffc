"""Where plugin output goes besides SSM, and what is left of it at a given instant.

S3: a command with an output bucket gets the agent's upload of each plugin's
stdout and stderr at `<prefix>/<CommandId>/<InstanceId>/<plugin path>/stdout`
when the plugin finishes, and only if the text is not empty (amazon-ssm-agent
iomodule/fileS3.go uploads when the file's size is above zero). The fleet's
bucket `acme-ssm-output-<account>-<region>` has two lifecycle rules: patch
output expires 7 days after upload, everything else 30; as in S3, an object
expires at the first midnight UTC after its age passes the rule's days. The
security team's bucket (`episodes.denied_bucket`) refuses every GetObject.

CloudWatch Logs: a command with CloudWatchOutputEnabled streams each plugin's
output to its log group (CloudWatchLogGroupName, or `/aws/ssm/<DocumentName>`
with characters outside [a-zA-Z0-9_-/.#] replaced by dots, as the agent names
it) in streams `<CommandId>/<InstanceId>/<plugin id>/stdout|stderr`, where the
plugin id is the plugin or step name with ':' and '*' replaced by '-'
(`aws:runShellScript` -> `aws-runShellScript`; amazon-ssm-agent
runpluginutil.go and messageutil.go). The stream is created with its first
event, so empty output has none. Events are the output's lines, each with its
newline, spread over the plugin's run and visible from their timestamp on: a
running plugin's stream already holds what it printed so far. The agent
actually batches several lines into one event per upload; one line per event
is our simplification. Log groups keep events for 14 days; we drop a stream
once all its events have expired (real CloudWatch may keep the empty stream:
not confirmed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .episodes import MIGRATION, MIGRATION_LOGS, SENSOR
from .fleet import DAY_MS, FleetSpec, lookup
from .timeline import Command, Invocation, Step

LOG_RETENTION_DAYS = 14
PATCH_PREFIX, PATCH_DAYS = "run-command/aws-runpatchbaseline/", 7
OUTPUT_DAYS = 30
DOCUMENTS = (
    "AWS-RunPatchBaseline", "AWS-RunShellScript", "AWS-RunPowerShellScript", "AWS-UpdateSSMAgent",
    "Acme-CollectInventory", MIGRATION, SENSOR,
)  # fmt: skip
_BUCKET = re.compile(
    r"^acme-(?P<secops>secops-)?ssm-output-(?P<account>\d{12})-(?P<region>[a-z0-9-]+)$"
)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_LINE = re.compile(r"[^\n]*\n|[^\n]+$")
_GROUP_CHARS = re.compile(r"[^a-zA-Z0-9_\-/.#]")


def main_bucket(account: str, region: str) -> str:
    return f"acme-ssm-output-{account}-{region}"


# ---- S3 -------------------------------------------------------------------------------


def object_key(command: Command, instance_id: str, plugin: str, stream: str) -> str:
    """Where the agent uploads a plugin's `stream` ("stdout" or "stderr")."""
    return f"{command.s3_prefix}/{command.command_id}/{instance_id}/{_plugin_path(plugin)}/{stream}"


def _plugin_path(plugin: str) -> str:
    path = plugin.replace(":", "")
    return f"{path}/0.{path}" if plugin.startswith("aws:") else path


def urls(command: Command, instance_id: str, plugin: str) -> tuple[str, str]:
    """The plugin's StandardOutputUrl and StandardErrorUrl ("" without an output bucket)."""
    if not command.s3_bucket:
        return "", ""
    base = f"https://s3.{command.region}.amazonaws.com/{command.s3_bucket}/"
    key = object_key(command, instance_id, plugin, "stdout").removesuffix("stdout")
    return f"{base}{key}stdout", f"{base}{key}stderr"


@dataclass(frozen=True)
class Bucket:
    name: str
    account: str
    region: str
    denied: bool


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    last_modified: int
    expires: int | None
    rule: str


def bucket(spec: FleetSpec, name: str) -> Bucket | None:
    """The bucket of that name, if the fleet has it."""
    match = _BUCKET.match(name)
    if match is None or match["region"] not in spec.regions:
        return None
    return Bucket(name, match["account"], match["region"], bool(match["secops"]))


def stored(spec: FleetSpec, where: Bucket, key: str, now: int) -> StoredObject | None:
    """The object at `key` as S3 holds it at `now`; None: no such key."""
    parts = key.split("/")
    found = _find(spec, where.account, where.region, parts, now)
    if found is None:
        return None
    inv, step, stream = found
    command = inv.command
    if command.s3_bucket != where.name or key != object_key(
        command, inv.instance.instance_id, step.name, stream
    ):
        return None
    if step.finish is None or now < step.finish:
        return None
    text = step.full_stdout if stream == "stdout" else step.full_stderr
    if not text:
        return None
    expires, rule = _lifecycle(where, key, step.finish)
    if expires is not None and now >= expires:
        return None
    return StoredObject(text.encode(), step.finish, expires, rule)


def _lifecycle(where: Bucket, key: str, uploaded: int) -> tuple[int | None, str]:
    if where.denied:
        return None, ""
    days, rule = OUTPUT_DAYS, "expire-run-command-output"
    if key.startswith(PATCH_PREFIX):
        days, rule = PATCH_DAYS, "expire-patch-output"
    moment = datetime.fromtimestamp(uploaded / 1000, UTC) + timedelta(days=days)
    midnight = datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
    return round(midnight.timestamp() * 1000), rule


def _find(
    spec: FleetSpec, account: str, region: str, parts: list[str], now: int
) -> tuple[Invocation, Step, str] | None:
    """The (invocation, plugin run, stream) a key or stream name points at, by its ids."""
    ids = next((i for i, part in enumerate(parts[:-2]) if _UUID.match(part)), None)
    if ids is None or parts[-1] not in ("stdout", "stderr"):
        return None
    command_id, instance_id = parts[ids], parts[ids + 1]
    for inv in lookup(spec, account, region, command_id, now):
        if inv.instance.instance_id == instance_id:
            name = "/".join(parts[ids + 2 : -1])
            for step in inv.steps:
                if name in (_plugin_path(step.name), stream_plugin_id(step.name)):
                    return inv, step, parts[-1]
    return None


# ---- CloudWatch Logs ------------------------------------------------------------------


def log_group(command: Command) -> str | None:
    """The log group the agent streams this command's output to; None: it streams nothing."""
    config = command.cloud_watch or {}
    if not config.get("CloudWatchOutputEnabled"):
        return None
    return config.get("CloudWatchLogGroupName") or _GROUP_CHARS.sub(
        ".", f"/aws/ssm/{command.document}"
    )


def stream_plugin_id(plugin: str) -> str:
    return plugin.replace(":", "-").replace("*", "-")


def stream_name(command: Command, instance_id: str, plugin: str, stream: str) -> str:
    return f"{command.command_id}/{instance_id}/{stream_plugin_id(plugin)}/{stream}"


def log_groups() -> frozenset[str]:
    """The groups every account and region of the fleet has: one per document, and ours."""
    return frozenset({*(f"/aws/ssm/{d}" for d in DOCUMENTS), MIGRATION_LOGS})


@dataclass(frozen=True)
class Event:
    timestamp: int
    message: str
    ingestion: int


def events(
    spec: FleetSpec, account: str, region: str, group: str, stream: str, now: int
) -> list[Event] | None:
    """The stream's events at `now`, oldest first; None: the stream does not exist."""
    found = _find(spec, account, region, stream.split("/"), now)
    if found is None:
        return None
    inv, step, which = found
    command = inv.command
    if log_group(command) != group or stream != stream_name(
        command, inv.instance.instance_id, step.name, which
    ):
        return None
    oldest = now - LOG_RETENTION_DAYS * DAY_MS
    kept = [e for e in printed(step, which) if oldest <= e.timestamp <= now]
    return kept or None


def printed(step: Step, which: str) -> list[Event]:
    """Every line the plugin printed to `which`, with when it printed it."""
    if step.start is None:
        return []
    text = step.full_stdout if which == "stdout" else step.full_stderr
    lines = _LINE.findall(text)
    span = (step.finish - step.start) if step.finish is not None else 2000 * len(lines)
    out = []
    for index, line in enumerate(lines):
        at = step.start + span * index // max(len(lines), 1)
        out.append(Event(at, line, at + 200 + 37 * (index % 10)))
    return out


def so_far(step: Step, which: str, now: int) -> str:
    """What the plugin had printed to `which` by `now`."""
    return "".join(e.message for e in printed(step, which) if e.timestamp <= now)
