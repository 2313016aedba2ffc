"""Ad-hoc SQL over the lake's views, and the three output formats of `ssm-etl sql`."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from .errors import ConfigError
from .lake import AsOf, Lake
from .views import connect

FORMATS = ("table", "csv", "json")


def run_query(
    lake: Lake, sql: str, params: list[Any] | None = None, *, as_of: AsOf | None = None
) -> pa.Table:
    """Run one query over the views (of the lake as it stood `as_of`); DuckDB's message on bad SQL."""
    con = connect(lake, as_of=as_of)
    try:
        return con.sql(sql, params=params or None).to_arrow_table()
    except duckdb.Error as exc:
        raise ConfigError(" ".join(str(exc).split())) from exc
    finally:
        con.close()


def json_value(value: Any) -> Any:
    """Timestamps as ISO-8601 UTC (`2026-03-01T00:00:00.000Z`), dates as `YYYY-MM-DD`."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):  # DuckDB's sum() of integers is a HUGEINT/DECIMAL
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: json_value(v) for k, v in row.items()} for row in table.to_pylist()]


def render(table: pa.Table, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(_rows(table), ensure_ascii=False, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.column_names)
        for row in _rows(table):
            writer.writerow(
                json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v
                for v in row.values()
            )
        return out.getvalue().rstrip("\n")
    if fmt == "table":
        return _text_table(table)
    raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= 60 else text[:57] + "..."


def _text_table(table: pa.Table) -> str:
    header = table.column_names
    body = [[_cell(v) for v in row.values()] for row in _rows(table)]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    rows = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    footer = f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})"
    return "\n".join([line, rule, *rows, footer])
