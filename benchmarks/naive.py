"""The baseline a first script would be: boto3's paginator, from_pylist, write_to_dataset.

Kept deliberately ordinary (botocore's full response parsing, types inferred
per page, one dataset write per page, regions one after another) so the
throughput benchmark shows what the project buys over the obvious code.
Run as a whole process, as `ssm-etl run` is:

    python -m benchmarks.naive URL OUT REGION [REGION ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

PARTITIONS = ["account_id", "region", "requested_month"]
_LIFTED = ("NotificationConfig", "CloudWatchOutputConfig")


def flatten(
    records: list[dict[str, Any]], account_id: str, region: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Invocation rows with their nested configs lifted, and plugin rows with their keys."""
    invocations, plugins = [], []
    for record in records:
        row = {k: v for k, v in record.items() if k != "CommandPlugins" and k not in _LIFTED}
        for key in _LIFTED:
            row.update(record.get(key) or {})
        month = record["RequestedDateTime"].strftime("%Y-%m")
        lineage = {"account_id": account_id, "region": region, "requested_month": month}
        invocations.append({**row, **lineage})
        for index, plugin in enumerate(record.get("CommandPlugins") or ()):
            keys = {"CommandId": record["CommandId"], "InstanceId": record["InstanceId"]}
            plugins.append({**plugin, **keys, "PluginIndex": index, **lineage})
    return invocations, plugins


def walk(client: Any, root: Path, account_id: str, region: str) -> tuple[int, int]:
    """Page, flatten, write; returns (invocations, plugins) written."""
    paginator = client.get_paginator("list_command_invocations")
    totals = [0, 0]
    for page in paginator.paginate(Details=True, PaginationConfig={"PageSize": 50}):
        tables = flatten(page["CommandInvocations"], account_id, region)
        for index, (name, rows) in enumerate(
            zip(("invocations", "command_plugins"), tables, strict=True)
        ):
            if rows:
                pq.write_to_dataset(pa.Table.from_pylist(rows), root / name, PARTITIONS)
                totals[index] += len(rows)
    return totals[0], totals[1]


def main(url: str, out: str, regions: list[str], account_id: str = "123456789012") -> None:
    import boto3

    totals = [0, 0]
    for region in regions:
        client = boto3.client("ssm", region_name=region, endpoint_url=url)
        invocations, plugins = walk(client, Path(out), account_id, region)
        totals[0] += invocations
        totals[1] += plugins
    print(json.dumps({"invocations": totals[0], "plugins": totals[1]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
