"""DuckDB views over one snapshot of the lake, defined in the top-level `sql/` folder.

Each `.sql` file holds one `CREATE OR REPLACE VIEW` (or macro) named like the
file, and is created once, after the views it reads (`creation_order`). The
base views (one per table) read exactly the data files of one committed
Delta version of their table: `${<table>}` in their SQL is that file list
(or a typed empty relation for a table with no files yet). Python fills in
only those locations, as SQL string literals; user values never reach SQL
text. An S3 lake's files are read through the lake's own filesystem
registered on the connection (DuckDB's httpfs is not needed for it).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa

from .errors import ConfigError
from .lake import AsOf, Lake, Snapshot
from .schema import TABLES, TIMESTAMP, TableSpec

_DUCKDB_TYPES: dict[pa.DataType, str] = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
    TIMESTAMP: "TIMESTAMPTZ",
}


def sql_dir() -> Path:
    """`sql/` beside the package in a checkout, or inside it in an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "sql", here.parent / "sql"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"cannot find the sql/ folder near {here}")


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_type(kind: pa.DataType) -> str:
    """The DuckDB type a Delta data file's column of Arrow type `kind` reads as."""
    if kind in _DUCKDB_TYPES:
        return _DUCKDB_TYPES[kind]
    if pa.types.is_list(kind):
        return f"{duckdb_type(kind.value_type)}[]"
    if pa.types.is_map(kind):
        return f"MAP({duckdb_type(kind.key_type)}, {duckdb_type(kind.item_type)})"
    if pa.types.is_struct(kind):
        return "STRUCT(" + ", ".join(f'"{f.name}" {duckdb_type(f.type)}' for f in kind) + ")"
    raise TypeError(f"no DuckDB type for Arrow {kind}")


def _nulls(fields: Iterable[pa.Field]) -> str:
    """A select list of typed NULL columns named like `fields`."""
    return ", ".join(f"CAST(NULL AS {duckdb_type(f.type)}) AS {f.name}" for f in fields)


def table_source(snapshot: Snapshot, spec: TableSpec) -> str:
    """What a base view selects from: its table's data files at the snapshot's version."""
    files = snapshot.files(spec)
    if not files:
        return f"(SELECT {_nulls(spec.table_schema)} WHERE false)"
    partitions = ", ".join(f"'{c}': VARCHAR" for c in spec.partition_by)
    listed = ", ".join(sql_literal(f) for f in files)
    source = f"read_parquet([{listed}], hive_partitioning = true, hive_types = {{{partitions}}})"
    missing = snapshot.missing(spec)
    if not missing:
        return source
    return f"(SELECT *, {_nulls(missing)} FROM {source})"


def view_sql(snapshot: Snapshot) -> dict[str, str]:
    """Every view's SQL with the snapshot's files filled in, keyed by view name."""
    sources = {spec.name: table_source(snapshot, spec) for spec in TABLES}
    return {
        path.stem: string.Template(path.read_text()).substitute(sources)
        for path in sorted(sql_dir().glob("*.sql"))
    }


def creation_order(sqls: dict[str, str]) -> list[str]:
    """View names, each after every view its SQL names (a topological order)."""
    needs = {
        name: {
            other
            for other in sqls
            if other != name and re.search(rf"\b{re.escape(other)}\b", _code(sql))
        }
        for name, sql in sqls.items()
    }
    order: list[str] = []
    while needs:
        ready = sorted(name for name, wanted in needs.items() if wanted <= set(order))
        if not ready:
            raise ConfigError(f"the views depend on each other in a cycle: {sorted(needs)}")
        order += ready
        for name in ready:
            del needs[name]
    return order


def _code(sql: str) -> str:
    """SQL without its `--` comments (which name other views in prose)."""
    return re.sub(r"--[^\n]*", "", sql)


def create_views(con: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> list[str]:
    """Create every view on `con`, once each, in dependency order; returns the order."""
    snapshot.lake.storage.register(con)
    sqls = view_sql(snapshot)
    order = creation_order(sqls)
    for name in order:
        try:
            con.execute(sqls[name])
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            raise ConfigError(f"view {name} cannot be created: {message}") from exc
    return order


def connect(
    lake: Lake, database: str = ":memory:", *, as_of: AsOf | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with every view over one snapshot; dates and times in UTC."""
    snapshot = lake.snapshot(as_of)
    con = duckdb.connect(database)
    con.execute("SET TimeZone = 'UTC'")
    create_views(con, snapshot)
    return con
