"""A DuckDB database file holding the lake's views, for BI tools that open a file.

The views read the lake through absolute globs, so the file never needs
rewriting after a nightly run: every query lists the lake's files afresh.
Rewrite it only when ssm-etl's views change (an upgrade) or the lake moves.

What the file stores is each view's and macro's SQL, nothing of the session
that wrote it: the writer's `SET TimeZone` is not kept, so a BI session runs in
its own zone. The views compute dates in UTC whatever that zone is; timestamps
are TIMESTAMPTZ, so a tool may display them in its local zone, same instant.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import duckdb

from .errors import ConfigError
from .lake import Lake
from .views import create_views


def write_views_database(lake: Lake, path: Path) -> Path:
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
            create_views(con, lake)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, path)
    except (OSError, duckdb.IOException) as exc:
        raise ConfigError(f"cannot write the views database {path}: {exc}") from exc
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return path
