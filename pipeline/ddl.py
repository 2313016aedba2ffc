"""Catalog DDL that registers the lake's Delta tables in Athena (Glue), Trino or Spark.

A Delta table carries its own schema and partitioning in its transaction log,
so the DDL only names each table and where it lives; every engine reads the
log and so sees exactly the committed rows, the same ones the DuckDB views
see. The table list is `pipeline.schema.TABLES`: a table added there appears
here.

- Athena: `CREATE EXTERNAL TABLE ... LOCATION ... TBLPROPERTIES ('table_type'
  = 'DELTA')`; Athena allows nothing more for Delta tables and takes the
  columns from the log.
- Trino (Delta Lake connector): the `system.register_table` procedure.
- Spark (Delta Lake): `CREATE TABLE ... USING DELTA LOCATION ...`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .errors import ConfigError
from .schema import TABLES

ENGINES = ("athena", "trino", "spark")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


def check_location(location: str) -> str:
    """`s3://bucket[/prefix]` without a trailing slash; anything else is refused."""
    parts = urlsplit(location)
    unsafe = set("'\\\"`;") & set(location)  # the location is spliced into SQL literals
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment or unsafe:
        raise ConfigError(
            f"--location must be the lake's S3 URL, s3://bucket/prefix, with no quote, backslash "
            f"or semicolon, not {location!r} (catalog engines read tables from S3)"
        )
    return location.rstrip("/")


def ddl(engine: str, location: str, *, database: str = "ssm_etl", catalog: str = "delta") -> str:
    """Statements that register every lake table, `;`-separated, for `engine`."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if not _IDENTIFIER.match(database):
        raise ConfigError(f"not a database name: {database!r} (letters, digits and _)")
    root = check_location(location)
    statements = []
    if engine == "athena":
        statements.append(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        statements += [
            f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{t.name}`\n"
            f"LOCATION '{root}/{t.name}/'\n"
            "TBLPROPERTIES ('table_type' = 'DELTA')"
            for t in TABLES
        ]
    elif engine == "trino":
        statements.append(f"CREATE SCHEMA IF NOT EXISTS {catalog}.{database}")
        statements += [
            f"CALL {catalog}.system.register_table(schema_name => '{database}', "
            f"table_name => '{t.name}', table_location => '{root}/{t.name}')"
            for t in TABLES
        ]
    else:
        statements.append(f"CREATE DATABASE IF NOT EXISTS {database}")
        statements += [
            f"CREATE TABLE IF NOT EXISTS {database}.{t.name} USING DELTA LOCATION '{root}/{t.name}'"
            for t in TABLES
        ]
    return ";\n\n".join(statements) + ";\n"
