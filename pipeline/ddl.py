"""Glue/Athena DDL for a lake on S3, generated from the Arrow schemas.

The tables are declared from `pipeline.schema` (the schemas the writer
enforces), so the catalogue cannot drift from the files: a column added to a
schema appears here, and an Arrow type with no Hive equivalent fails loudly
instead of producing a table that misreads the files.

Partitions use Athena partition projection: Athena computes the partition
paths from table properties instead of listing them in Glue, so new months,
accounts and regions need no `MSCK REPAIR` or crawler. Projection only yields
the values it is given, so the `_none` placeholder partitions are never read.

`account_id` is the one partition whose values we cannot know in advance:

- `enum` (pass `accounts`): queries without an account filter work and
  prune well, but the DDL must be regenerated and the table re-created
  whenever an account is added to the lake, or its rows stay invisible.
- `injected` (`accounts=None`): nothing to maintain, but every query must
  name the account (`WHERE account_id = '123456789012'`); Athena refuses a
  query without that filter.

`region` is an enum of every SSM region the installed botocore knows, the same
list the ingest accepts; a region newer than botocore needs regenerating too.
"""

from __future__ import annotations

import re

import pyarrow as pa

from .config import check_account_id, known_regions
from .errors import ConfigError
from .schema import TABLES, TIMESTAMP, TableSpec

HIVE_TYPES: dict[pa.DataType, str] = {
    pa.string(): "string",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.bool_(): "boolean",
    pa.date32(): "date",
    TIMESTAMP: "timestamp",
    pa.list_(pa.string()): "array<string>",
}
"""Arrow type -> Hive type, exact: a near miss (timestamp in us, int16) is an error."""

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def athena_ddl(
    location: str,
    *,
    database: str = "ssm_etl",
    accounts: list[str] | None = None,
    projection_start_month: str = "2020-01",
) -> str:
    """`CREATE DATABASE` then one `CREATE EXTERNAL TABLE` per lake table, `;`-separated.

    `location` is the lake root (`s3://bucket/prefix`); `accounts=None` makes
    `account_id` an injected partition (see the module docstring).
    """
    root = location.rstrip("/")
    if not root:
        raise ConfigError("the lake location is empty")
    if not _MONTH.fullmatch(projection_start_month):
        raise ConfigError(f"projection start month must be YYYY-MM: {projection_start_month!r}")
    if accounts is not None:
        if not accounts:
            raise ConfigError("no accounts given: pass at least one, or None to inject account_id")
        accounts = sorted({check_account_id(account) for account in accounts})
    statements = [f"CREATE DATABASE IF NOT EXISTS {_ident(database)}"]
    statements += [
        _table_ddl(table, root, database, accounts, projection_start_month) for table in TABLES
    ]
    return ";\n\n".join(statements) + ";\n"


def hive_type(field: pa.Field) -> str:
    return _hive(field.name, field.type)


def _hive(name: str, kind: pa.DataType) -> str:
    """Scalars by exact lookup; lists, maps and structs built from their parts."""
    if kind in HIVE_TYPES:
        return HIVE_TYPES[kind]
    if pa.types.is_list(kind):
        return f"array<{_hive(name, kind.value_type)}>"
    if pa.types.is_map(kind):
        return f"map<{_hive(name, kind.key_type)},{_hive(name, kind.item_type)}>"
    if pa.types.is_struct(kind):
        members = ",".join(f"{f.name}:{_hive(name, f.type)}" for f in kind)
        return f"struct<{members}>"
    raise TypeError(
        f"column {name!r} has Arrow type {kind}, which has no Hive mapping; "
        "add it to pipeline.ddl.HIVE_TYPES"
    )


def _table_ddl(
    table: TableSpec,
    root: str,
    database: str,
    accounts: list[str] | None,
    start_month: str,
) -> str:
    location = f"{root}/{table.name}/"
    template = location + "".join(f"{column}=${{{column}}}/" for column in table.partition_by)
    properties = {"projection.enabled": "true"}
    if accounts is None:
        properties["projection.account_id.type"] = "injected"
    else:
        properties["projection.account_id.type"] = "enum"
        properties["projection.account_id.values"] = ",".join(accounts)
    properties["projection.region.type"] = "enum"
    properties["projection.region.values"] = ",".join(sorted(known_regions()))
    if "requested_month" in table.partition_by:
        month = "projection.requested_month"
        properties[f"{month}.type"] = "date"
        properties[f"{month}.format"] = "yyyy-MM"
        properties[f"{month}.range"] = f"{start_month},NOW"
        properties[f"{month}.interval"] = "1"
        properties[f"{month}.interval.unit"] = "MONTHS"
    properties["storage.location.template"] = template

    columns = [f"{_ident(field.name)} {hive_type(field)}" for field in table.file_schema]
    partitions = [f"{_ident(column)} string" for column in table.partition_by]
    props = [f"{_literal(key)}={_literal(value)}" for key, value in properties.items()]
    return "\n".join(
        [
            f"CREATE EXTERNAL TABLE IF NOT EXISTS {_ident(database)}.{_ident(table.name)} (",
            _block(columns),
            ")",
            "PARTITIONED BY (",
            _block(partitions),
            ")",
            "STORED AS PARQUET",
            f"LOCATION {_literal(location)}",
            "TBLPROPERTIES (",
            _block(props),
            ")",
        ]
    )


def _block(lines: list[str]) -> str:
    return ",\n".join(f"  {line}" for line in lines)


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _literal(text: str) -> str:
    """A Hive string literal: Hive escapes with backslashes (`''` would concatenate)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
