"""`ssm-etl output`: the full text `--full-output` stored for one invocation, plugin by plugin."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError
from .lake import AsOf, Lake
from .query import run_query

_SQL = """
SELECT *
FROM plugin_outputs
WHERE command_id = $1 AND instance_id = $2
ORDER BY account_id, region, plugin_index
"""


def stored_output(
    lake: Lake, command_id: str, instance_id: str, *, as_of: AsOf | None = None
) -> str:
    """Each stored plugin's header, then its full stdout and stderr as stored."""
    rows = run_query(lake, _SQL, [command_id, instance_id], as_of=as_of).to_pylist()
    if not rows:
        raise ConfigError(
            f"no full output stored for command {command_id} on {instance_id} "
            "(runs store it with --full-output failed|all)"
        )
    parts = []
    for row in rows:
        parts.append(
            f"=== {row['account_id']} {row['region']} {row['command_id']} {row['instance_id']} "
            f"plugin {row['plugin_index']} {row['name']}: {row['status']} "
            f"(invocation {row['invocation_status']}, read by run {row['run_id']})"
        )
        for stream in ("stdout", "stderr"):
            parts.append(f"--- {stream}: {_describe(row, stream)}")
            text = row[stream]
            if text:
                parts.append(text.rstrip("\n"))
    return "\n".join(parts)


def _describe(row: dict[str, Any], stream: str) -> str:
    """Where the text came from, how big it was, and what cut it."""
    source = row[f"{stream}_source"]
    notes = [f"{source}, {row[f'{stream}_bytes']} bytes" if source else "not available"]
    if row[f"{stream}_truncated"]:
        notes.append(f"cut by the source at {row[f'{stream}_truncated_at']} characters")
    if row[f"{stream}_capped_at"] is not None:
        notes.append(f"capped at {row[f'{stream}_capped_at']} bytes")
    if row[f"{stream}_unavailable"]:
        notes.append(f"unavailable from {row[f'{stream}_unavailable']}")
    return "; ".join(notes)
