"""A DuckDB database file holding the lake's views, for BI tools that open a file.

The file's base views name the data files of one committed version of each
table, so it stays correct until the lake changes: `ssm-etl views --db`
registers the file in the lake (`lake.json`), and every run rewrites each
registered file that exists on its machine after its last commit, so a BI
tool's next connection sees the new night. Files of the versions it named
stay on storage for `--keep-days`, so a session that opened the old file
keeps working meanwhile.

What the file stores is each view's and macro's SQL, nothing of the session
that wrote it: the writer's `SET TimeZone` is not kept, so a BI session runs in
its own zone. The views compute dates in UTC whatever that zone is; timestamps
are TIMESTAMPTZ, so a tool may display them in its local zone, same instant.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import duckdb

from .errors import ConfigError
from .lake import Lake
from .views import create_views

log = logging.getLogger("ssm_etl")


def write_views_database(lake: Lake, path: Path, *, register: bool = True) -> Path:
    """Write every view into the DuckDB file `path`, replacing it atomically.

    The new file is built beside the old one and renamed over it, so a reader
    holding the old file open keeps reading it undisturbed and the next
    connection sees the new one; the write never waits for readers.
    """
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        raise ConfigError(f"views database path is a directory: {path}")
    if not path.parent.is_dir():
        raise ConfigError(f"folder for the views database does not exist: {path.parent}")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        con = duckdb.connect(str(tmp))
        try:
            create_views(con, lake.snapshot())
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, path)
    except (OSError, duckdb.IOException) as exc:
        raise ConfigError(f"cannot write the views database {path}: {exc}") from exc
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
    if register:
        lake.register_views_database(str(path))
    return path


def refresh_views_databases(lake: Lake) -> list[Path]:
    """Rewrite every registered views database that exists here; returns those rewritten."""
    refreshed = []
    for name in lake.views_databases:
        path = Path(name)
        if not path.is_file():
            log.debug("views database %s is not on this machine; not refreshed", path)
            continue
        try:
            refreshed.append(write_views_database(lake, path, register=False))
        except ConfigError as exc:
            log.warning("could not refresh the views database %s: %s", path, exc)
    return refreshed
