"""Rewrite a lake of an older format in place, under the run lock.

Format 2 (this version) stores on each plugin row its invocation's
`requested_date_time` and `document_name`, and on each invocation row its
plugins' time span, so that plugin reports and run times need no join at
query time. A format-1 lake gets those columns partition by partition: each
month is compacted once more with the queries in `sql/upgrade/`, which compute
them from the rows already stored. Files of the old format are deleted at
once rather than retired: the views of this version cannot read them, so no
grace period helps a reader. `lake.json` records the new format last, so an
upgrade killed halfway is simply done again (a partition already rewritten is
rewritten once more, from format-2 files, to the same rows).
"""

from __future__ import annotations

import logging
from pathlib import PurePath

from .compact import Compactor, data_files, sweep
from .lake import FORMAT_VERSION, Lake
from .schema import COMMAND_PLUGINS, INVOCATIONS

log = logging.getLogger("ssm_etl")


def upgrade(lake: Lake, run_id: str) -> int:
    """Bring `lake` to this version's format; returns how many month partitions were rewritten.

    The caller holds the lake's lock. A lake already in this format is left alone.
    """
    if lake.version >= FORMAT_VERSION:
        return 0
    sweep(lake, grace_seconds=0)  # retired format-1 files would be unreadable, not hidden
    months = _months(lake)
    old: list[PurePath] = []
    compactor = Compactor(lake, run_id)
    try:
        for month in months:
            old += compactor.compact_month(month, force=True, template="upgrade/v2_{table}")
    finally:
        compactor.close()
    # Plugin rows without any invocation file are invisible in format 1 already.
    old += [
        f
        for f in _plugin_files(lake)
        if f.parent.relative_to(lake.table_dir(COMMAND_PLUGINS)) not in months
    ]
    for path in old:
        lake.storage.delete(path)
    lake.ensure_placeholders(replace=True)
    lake.mark_version()
    log.info(
        "lake %s upgraded to format %d (%d partitions)", lake.location, FORMAT_VERSION, len(months)
    )
    return len(months)


def _months(lake: Lake) -> list[PurePath]:
    table = lake.table_dir(INVOCATIONS)
    return sorted(
        {
            f.parent.relative_to(table)
            for f in lake.storage.walk(table)
            if f.suffix == ".parquet" and f.name != "_empty.parquet"
        }
    )


def _plugin_files(lake: Lake) -> list[PurePath]:
    table = lake.table_dir(COMMAND_PLUGINS)
    directories = {f.parent for f in lake.storage.walk(table) if f.name != "_empty.parquet"}
    return [f for d in sorted(directories) for f in data_files(d, lake.storage)]
