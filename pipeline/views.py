"""DuckDB views over the lake, defined in the top-level `sql/` folder.

Each `.sql` file holds one `CREATE OR REPLACE VIEW` (or macro) named like the
file. Python only fills in locations (`${<table>_files}`, `${trash_files}`,
`${lake_url}`), as SQL string
literals; user values never reach SQL text. An S3 lake's locations are
`s3://` globs, read through the lake's own filesystem registered on the
connection (DuckDB's httpfs is not needed for it).
"""

from __future__ import annotations

import string
from pathlib import Path

import duckdb

from .errors import ConfigError
from .lake import EMPTY_MANIFEST, TRASH, Lake, sql_literal
from .schema import TABLES


def sql_dir() -> Path:
    """`sql/` beside the package in a checkout, or inside it in an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "sql", here.parent / "sql"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"cannot find the sql/ folder near {here}")


def view_sql(lake: Lake) -> dict[str, str]:
    """Every view's SQL with the lake's locations filled in, keyed by view name."""
    locations = {f"{t.name}_files": sql_literal(lake.glob(t)) for t in TABLES}
    locations["trash_files"] = sql_literal(_trash_files(lake))
    locations["lake_url"] = sql_literal(lake.storage.url(lake.root))
    return {
        path.stem: string.Template(path.read_text()).substitute(locations)
        for path in sorted(sql_dir().glob("*.sql"))
    }


def _trash_files(lake: Lake) -> str:
    """The lake's trash manifests; a lake from before `_trash/_empty.json` may have none."""
    trash = lake.root / TRASH
    if lake.storage.exists(trash / EMPTY_MANIFEST) or lake.storage.files(trash):
        return lake.trash_glob()
    return str(sql_dir() / "_empty_manifest.json")


def create_views(con: duckdb.DuckDBPyConnection, lake: Lake) -> list[str]:
    """Create every view on `con`; returns their names in creation order.

    Views may build on each other; DuckDB binds a view when it is created, so
    a view whose dependency does not exist yet is retried after the others.
    """
    lake.storage.register(con)
    pending = view_sql(lake)
    created: list[str] = []
    while pending:
        errors: dict[str, str] = {}
        progress = len(created)
        for name, sql in list(pending.items()):
            try:
                con.execute(sql)
            except duckdb.CatalogException as exc:
                errors[name] = str(exc)
                continue
            created.append(name)
            del pending[name]
        if errors and len(created) == progress:
            name, message = next(iter(errors.items()))
            raise ConfigError(f"view {name} cannot be created: {message.splitlines()[0]}")
    return created


def connect(lake: Lake, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with every view defined; dates and times in UTC."""
    con = duckdb.connect(database)
    con.execute("SET TimeZone = 'UTC'")
    create_views(con, lake)
    return con
