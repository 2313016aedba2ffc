"""Athena DDL: generated from the schemas, checked against literal expectations and a real lake."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import known_regions
from pipeline.ddl import athena_ddl, hive_type
from pipeline.errors import ConfigError
from pipeline.lake import Lake
from pipeline.schema import TABLES
from tests.lakes import at, ingest, invocation, plugin

ROOT = "s3://bucket/lake"
ACCOUNTS = ["111111111111", "222222222222"]

EXPECTED_HIVE = {
    pa.string(): "string",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.bool_(): "boolean",
    pa.date32(): "date",
    pa.timestamp("ms", tz="UTC"): "timestamp",
    pa.list_(pa.string()): "array<string>",
    pa.map_(pa.string(), pa.list_(pa.string())): "map<string,array<string>>",
    pa.list_(pa.struct([("key", pa.string()), ("values", pa.list_(pa.string()))])): (
        "array<struct<key:string,values:array<string>>>"
    ),
}

INVOCATIONS_COLUMNS = [
    ("command_id", "string"),
    ("instance_id", "string"),
    ("instance_name", "string"),
    ("comment", "string"),
    ("document_name", "string"),
    ("document_version", "string"),
    ("requested_date_time", "timestamp"),
    ("requested_date", "date"),
    ("status", "string"),
    ("status_details", "string"),
    ("trace_output", "string"),
    ("standard_output_url", "string"),
    ("standard_error_url", "string"),
    ("service_role", "string"),
    ("notification_arn", "string"),
    ("notification_events", "array<string>"),
    ("notification_type", "string"),
    ("cloud_watch_log_group_name", "string"),
    ("cloud_watch_output_enabled", "boolean"),
    ("plugins_started_date_time", "timestamp"),
    ("plugins_finished_date_time", "timestamp"),
    ("run_id", "string"),
    ("ingested_at", "timestamp"),
]

_STRING = r"'((?:[^'\\]|\\.)*)'"
_TABLE = re.compile(
    r"CREATE EXTERNAL TABLE IF NOT EXISTS `(\w+)`\.`(\w+)` \(\n(.*?)\n\)\n"
    r"PARTITIONED BY \(\n(.*?)\n\)\n"
    rf"STORED AS PARQUET\nLOCATION {_STRING}\n"
    r"TBLPROPERTIES \(\n(.*?)\n\);",
    re.DOTALL,
)
_COLUMN = re.compile(r"  `(\w+)` (\S+?),?")
_PROPERTY = re.compile(rf"  {_STRING}={_STRING},?")


@dataclass
class Table:
    database: str
    columns: list[tuple[str, str]]
    partitions: list[tuple[str, str]]
    location: str
    properties: dict[str, str]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _lines(block: str, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    rows = []
    for line in block.split("\n"):
        match = pattern.fullmatch(line)
        assert match, f"unparsable line {line!r}"
        rows.append((match[1], match[2]))
    return rows


def _unnamed(arrow_type: pa.DataType) -> pa.DataType:
    """Parquet names a list's element `element`, Arrow `item`: the same type, unequal in Arrow."""
    return pa.list_(arrow_type.value_type) if pa.types.is_list(arrow_type) else arrow_type


def parse(ddl: str) -> dict[str, Table]:
    tables = {}
    for match in _TABLE.finditer(ddl):
        database, name, columns, partitions, location, properties = match.groups()
        tables[name] = Table(
            database=database,
            columns=_lines(columns, _COLUMN),
            partitions=_lines(partitions, _COLUMN),
            location=_unescape(location),
            properties={
                _unescape(key): _unescape(value) for key, value in _lines(properties, _PROPERTY)
            },
        )
    return tables


def test_starts_with_the_database_and_covers_every_table() -> None:
    ddl = athena_ddl(ROOT, database="ops_lake")
    assert ddl.startswith("CREATE DATABASE IF NOT EXISTS `ops_lake`;\n")
    tables = parse(ddl)
    assert list(tables) == [
        "invocations",
        "command_plugins",
        "commands",
        "managed_instances",
        "quarantine",
        "ingest_runs",
    ]
    assert {table.database for table in tables.values()} == {"ops_lake"}
    assert ddl.count("CREATE ") == 1 + len(TABLES)


def test_invocations_columns_golden() -> None:
    assert parse(athena_ddl(ROOT))["invocations"].columns == INVOCATIONS_COLUMNS


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.name)
def test_columns_are_the_file_schema(spec) -> None:
    table = parse(athena_ddl(ROOT))[spec.name]
    assert table.columns == [(f.name, EXPECTED_HIVE[f.type]) for f in spec.file_schema]
    assert table.partitions == [(column, "string") for column in spec.partition_by]
    assert table.location == f"{ROOT}/{spec.name}/"


def test_every_schema_type_is_mapped() -> None:
    for spec in TABLES:
        for field in spec.schema:
            assert hive_type(field) == EXPECTED_HIVE[field.type], (spec.name, field.name)


@pytest.mark.parametrize(
    "arrow_type",
    [pa.float64(), pa.timestamp("us", tz="UTC"), pa.timestamp("ms"), pa.list_(pa.float32())],
    ids=str,
)
def test_unmapped_type_is_a_clear_error(arrow_type: pa.DataType) -> None:
    with pytest.raises(TypeError, match="'score'.*pipeline.ddl.HIVE_TYPES"):
        hive_type(pa.field("score", arrow_type))


def test_enum_accounts_projection() -> None:
    tables = parse(athena_ddl(ROOT, accounts=["222222222222", "111111111111", "222222222222"]))
    props = tables["invocations"].properties
    assert props == {
        "projection.enabled": "true",
        "projection.account_id.type": "enum",
        "projection.account_id.values": "111111111111,222222222222",
        "projection.region.type": "enum",
        "projection.region.values": props["projection.region.values"],
        "projection.requested_month.type": "date",
        "projection.requested_month.format": "yyyy-MM",
        "projection.requested_month.range": "2020-01,NOW",
        "projection.requested_month.interval": "1",
        "projection.requested_month.interval.unit": "MONTHS",
        "storage.location.template": "s3://bucket/lake/invocations/account_id=${account_id}"
        "/region=${region}/requested_month=${requested_month}/",
    }
    regions = props["projection.region.values"].split(",")
    assert {"us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"} <= set(regions)
    assert regions == sorted(known_regions())


def test_injected_accounts_projection_and_unmonthly_tables() -> None:
    tables = parse(athena_ddl(ROOT, projection_start_month="2023-07"))
    for table in tables.values():
        assert table.properties["projection.account_id.type"] == "injected"
        assert "projection.account_id.values" not in table.properties
    assert tables["command_plugins"].properties["projection.requested_month.range"] == (
        "2023-07,NOW"
    )
    quarantine = tables["quarantine"].properties
    assert not [key for key in quarantine if "requested_month" in key]
    assert quarantine["storage.location.template"] == (
        "s3://bucket/lake/quarantine/account_id=${account_id}/region=${region}/"
    )


def test_placeholder_partitions_are_never_projected() -> None:
    assert "_none" not in athena_ddl(ROOT, accounts=ACCOUNTS)


@pytest.mark.parametrize("location", ["s3://bucket/lake/", "s3://bucket/lake//"])
def test_trailing_slash_is_ignored(location: str) -> None:
    assert athena_ddl(location, accounts=ACCOUNTS) == athena_ddl(ROOT, accounts=ACCOUNTS)


def test_quote_in_location_is_escaped() -> None:
    ddl = athena_ddl("s3://bucket/o'brien\\lake/")
    assert "LOCATION 's3://bucket/o\\'brien\\\\lake/invocations/'" in ddl
    table = parse(ddl)["ingest_runs"]
    assert table.location == "s3://bucket/o'brien\\lake/ingest_runs/"
    assert table.properties["storage.location.template"].startswith(
        "s3://bucket/o'brien\\lake/ingest_runs/account_id="
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"location": "/"}, "location is empty"),
        ({"location": ROOT, "accounts": []}, "no accounts"),
        ({"location": ROOT, "accounts": ["12345"]}, "12 digits"),
        ({"location": ROOT, "accounts": ["111111111111,2"]}, "12 digits"),
        ({"location": ROOT, "projection_start_month": "2020-13"}, "YYYY-MM"),
        ({"location": ROOT, "projection_start_month": "2020-1"}, "YYYY-MM"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        athena_ddl(**kwargs)


def test_ddl_matches_the_files_a_real_lake_writes(tmp_path: Path) -> None:
    """Every written file sits where the template says and holds exactly the DDL's columns."""
    lake = Lake.create(tmp_path / "lake")
    started = at("2024-03-05T10:00:00")
    ingest(
        lake, [invocation("c-1", "i-1", started, "Success", plugins=[plugin("p", "Success", 0)])]
    )
    tables = parse(athena_ddl(str(lake.root), accounts=["012345678901"]))
    seen = set()
    for path in lake.root.rglob("*.parquet"):
        relative = path.relative_to(lake.root)
        table = tables.get(relative.parts[0])
        if table is None or "_none" in str(relative):
            continue
        template = table.properties["storage.location.template"]
        pieces = re.split(r"\$\{(\w+)\}", template)
        pattern = "".join(
            f"(?P<{piece}>[^/]+)" if odd else re.escape(piece)
            for odd, piece in zip([False, True] * len(pieces), pieces, strict=False)
        )
        match = re.fullmatch(pattern, f"{path.parent}/")
        assert match, (template, path)
        assert match["account_id"] == "012345678901"
        assert match["region"] == "eu-west-1"
        assert match.groupdict().get("requested_month", "2024-03") == "2024-03"
        columns = [(f.name, EXPECTED_HIVE[_unnamed(f.type)]) for f in pq.read_schema(path)]
        assert columns == table.columns
        seen.add(relative.parts[0])
    assert {"invocations", "command_plugins"} <= seen
