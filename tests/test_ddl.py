"""Catalog DDL for the lake's Delta tables: golden statements per engine, the location
rules, and locations that are the lake's real tables (locally and on S3)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deltalake import DeltaTable

from flows.cli import main
from pipeline.ddl import ENGINES, ddl
from pipeline.errors import ConfigError
from pipeline.lake import Lake
from pipeline.schema import TABLES
from tests.lakes import at, ingest, invocation, plugin, record_run

ROOT = "s3://bucket/lake"

ATHENA = """\
CREATE DATABASE IF NOT EXISTS `ssm_etl`;

CREATE EXTERNAL TABLE IF NOT EXISTS `ssm_etl`.`invocations`
LOCATION 's3://bucket/lake/invocations/'
TBLPROPERTIES ('table_type' = 'DELTA');

CREATE EXTERNAL TABLE IF NOT EXISTS `ssm_etl`.`command_plugins`
LOCATION 's3://bucket/lake/command_plugins/'
TBLPROPERTIES ('table_type' = 'DELTA');

CREATE EXTERNAL TABLE IF NOT EXISTS `ssm_etl`.`commands`
LOCATION 's3://bucket/lake/commands/'
TBLPROPERTIES ('table_type' = 'DELTA');

CREATE EXTERNAL TABLE IF NOT EXISTS `ssm_etl`.`managed_instances`
LOCATION 's3://bucket/lake/managed_instances/'
TBLPROPERTIES ('table_type' = 'DELTA');

CREATE EXTERNAL TABLE IF NOT EXISTS `ssm_etl`.`quarantine`
LOCATION 's3://bucket/lake/quarantine/'
TBLPROPERTIES ('table_type' = 'DELTA');

CREATE EXTERNAL TABLE IF NOT EXISTS `ssm_etl`.`ingest_runs`
LOCATION 's3://bucket/lake/ingest_runs/'
TBLPROPERTIES ('table_type' = 'DELTA');

CREATE EXTERNAL TABLE IF NOT EXISTS `ssm_etl`.`plugin_outputs`
LOCATION 's3://bucket/lake/plugin_outputs/'
TBLPROPERTIES ('table_type' = 'DELTA');
"""

TRINO = """\
CREATE SCHEMA IF NOT EXISTS delta.ssm_etl;

CALL delta.system.register_table(schema_name => 'ssm_etl', table_name => 'invocations', \
table_location => 's3://bucket/lake/invocations');

CALL delta.system.register_table(schema_name => 'ssm_etl', table_name => 'command_plugins', \
table_location => 's3://bucket/lake/command_plugins');

CALL delta.system.register_table(schema_name => 'ssm_etl', table_name => 'commands', \
table_location => 's3://bucket/lake/commands');

CALL delta.system.register_table(schema_name => 'ssm_etl', table_name => 'managed_instances', \
table_location => 's3://bucket/lake/managed_instances');

CALL delta.system.register_table(schema_name => 'ssm_etl', table_name => 'quarantine', \
table_location => 's3://bucket/lake/quarantine');

CALL delta.system.register_table(schema_name => 'ssm_etl', table_name => 'ingest_runs', \
table_location => 's3://bucket/lake/ingest_runs');

CALL delta.system.register_table(schema_name => 'ssm_etl', table_name => 'plugin_outputs', \
table_location => 's3://bucket/lake/plugin_outputs');
"""

SPARK = """\
CREATE DATABASE IF NOT EXISTS ssm_etl;

CREATE TABLE IF NOT EXISTS ssm_etl.invocations USING DELTA LOCATION 's3://bucket/lake/invocations';

CREATE TABLE IF NOT EXISTS ssm_etl.command_plugins USING DELTA LOCATION \
's3://bucket/lake/command_plugins';

CREATE TABLE IF NOT EXISTS ssm_etl.commands USING DELTA LOCATION 's3://bucket/lake/commands';

CREATE TABLE IF NOT EXISTS ssm_etl.managed_instances USING DELTA LOCATION \
's3://bucket/lake/managed_instances';

CREATE TABLE IF NOT EXISTS ssm_etl.quarantine USING DELTA LOCATION 's3://bucket/lake/quarantine';

CREATE TABLE IF NOT EXISTS ssm_etl.ingest_runs USING DELTA LOCATION \
's3://bucket/lake/ingest_runs';

CREATE TABLE IF NOT EXISTS ssm_etl.plugin_outputs USING DELTA LOCATION \
's3://bucket/lake/plugin_outputs';
"""

GOLDEN = {"athena": ATHENA, "trino": TRINO, "spark": SPARK}

# (table name, location) of each registered table, per engine's statement shape.
_REGISTERED = {
    "athena": re.compile(r"CREATE EXTERNAL TABLE IF NOT EXISTS `\w+`\.`(\w+)`\nLOCATION '"),
    "trino": re.compile(r"table_name => '(\w+)', table_location => '"),
    "spark": re.compile(r"CREATE TABLE IF NOT EXISTS \w+\.(\w+) USING DELTA LOCATION '"),
}


def _literal(text: str, engine: str) -> str:
    """The SQL string literal `text` starts with (after its opening quote), as the engine
    reads it: Hive and Spark SQL escape with a backslash, Trino doubles the quote."""
    value, i = [], 0
    while i < len(text):
        char = text[i]
        if engine != "trino" and char == "\\":
            value.append(text[i + 1])
            i += 2
            continue
        if char == "'":
            if engine == "trino" and text[i + 1 : i + 2] == "'":
                value.append("'")
                i += 2
                continue
            return "".join(value)
        value.append(char)
        i += 1
    raise AssertionError(f"unterminated literal: {text!r}")


def registered(statements: str, engine: str) -> dict[str, str]:
    """Table name -> the location (without a trailing slash) the engine's DDL registers."""
    return {
        match[1]: _literal(statements[match.end() :], engine).rstrip("/")
        for match in _REGISTERED[engine].finditer(statements)
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_golden_statements(engine):
    assert ddl(engine, ROOT) == GOLDEN[engine]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_command_prints_the_statements(engine, capsys):
    assert main(["ddl", "--engine", engine, "--location", ROOT]) == 0
    assert capsys.readouterr().out == GOLDEN[engine] + "\n"


def test_athena_is_the_default_engine(capsys):
    assert main(["ddl", "--location", ROOT]) == 0
    assert capsys.readouterr().out == ATHENA + "\n"


@pytest.mark.parametrize("engine", ENGINES)
def test_every_table_is_registered_at_its_folder(engine):
    tables = registered(ddl(engine, ROOT), engine)
    assert list(tables) == [spec.name for spec in TABLES]
    assert tables == {spec.name: f"{ROOT}/{spec.name}" for spec in TABLES}


@pytest.mark.parametrize("engine", ENGINES)
def test_the_database_option_names_the_database_everywhere(engine, capsys):
    assert main(["ddl", "--engine", engine, "--location", ROOT, "--database", "ops_lake"]) == 0
    out = capsys.readouterr().out
    assert "ssm_etl" not in out
    assert out.count("ops_lake") == 1 + len(TABLES)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("location", ["s3://bucket/lake/", "s3://bucket/lake//"])
def test_a_trailing_slash_is_ignored(engine, location):
    assert ddl(engine, location) == GOLDEN[engine]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bucket_without_a_prefix(engine):
    tables = registered(ddl(engine, "s3://bucket"), engine)
    assert tables == {spec.name: f"s3://bucket/{spec.name}" for spec in TABLES}


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("/srv/lake", id="local-path"),
        pytest.param("lake", id="relative-path"),
        pytest.param("file:///srv/lake", id="file-url"),
        pytest.param("https://bucket.s3.amazonaws.com/lake", id="https-url"),
        pytest.param("s3:///lake", id="no-bucket"),
        pytest.param("s3://", id="scheme-only"),
        pytest.param("s3://bucket/lake?versionId=1", id="query"),
        pytest.param("s3://bucket/lake#x", id="fragment"),
        pytest.param("", id="empty"),
    ],
)
def test_only_an_s3_location_is_accepted(location, capsys):
    for engine in ENGINES:
        with pytest.raises(ConfigError, match="--location must be the lake's S3 URL"):
            ddl(engine, location)
    assert main(["ddl", "--location", location]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("ssm-etl: error: --location must be the lake's S3 URL")


@pytest.mark.parametrize("database", ["ops-lake", "1ops", "ops;DROP", "a b", "", "x" * 256])
def test_a_bad_database_name_is_refused(database):
    with pytest.raises(ConfigError, match="not a database name"):
        ddl("athena", ROOT, database=database)


def test_an_unknown_engine_is_refused(capsys):
    with pytest.raises(ConfigError, match="unknown engine 'hive'"):
        ddl("hive", ROOT)
    with pytest.raises(SystemExit) as exit_info:
        main(["ddl", "--engine", "hive", "--location", ROOT])
    assert exit_info.value.code == 2
    assert "invalid choice: 'hive'" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("odd", ["o'brien", "back\\slash", 'say"what', "tick`tock", "a;b"])
def test_a_location_reads_back_as_written_or_is_refused(engine, odd, capsys):
    """S3 keys may hold quotes, backslashes and semicolons: each string literal must read
    back as the location (escaped as the engine reads it), or the location is refused in
    one line, printing no DDL."""
    location = f"s3://bucket/{odd}"
    try:
        statements = ddl(engine, location)
    except ConfigError:
        assert main(["ddl", "--engine", engine, "--location", location]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
        return
    tables = registered(statements, engine)
    assert tables == {spec.name: f"{location}/{spec.name}" for spec in TABLES}
    assert statements.count(";") == 1 + len(TABLES), "a reader splitting on ';' would break"


def _write_every_table(lake: Lake) -> None:
    started = at("2024-03-05T10:00:00")
    record = invocation("c-1", "i-1", started, "Success", plugins=[plugin("p", "Success", 0)])
    ingest(lake, [record])
    record_run(
        lake,
        {
            "run_id": "run-1",
            "account_id": "012345678901",
            "region": "eu-west-1",
            "started_at": started,
            "finished_at": started,
            "pages": 1,
            "invocations": 1,
            "plugins": 1,
            "quarantined": 0,
            "status": "succeeded",
        },
    )


def _check_tables(tables: dict[str, str], open_table) -> None:
    """Each DDL location holds the Delta table the DDL names (not another one)."""
    assert list(tables) == [spec.name for spec in TABLES]
    rows = {}
    for spec in TABLES:
        table = open_table(tables[spec.name])
        assert table.metadata().name == spec.name
        assert table.metadata().partition_columns == list(spec.partition_by)
        rows[spec.name] = table.to_pyarrow_table().num_rows
    assert rows["invocations"] == rows["command_plugins"] == rows["ingest_runs"] == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_ddl_locations_are_the_lakes_tables(tmp_path: Path, engine):
    """The S3 prefix mapped onto a local lake: a `_delta_log` at every location."""
    lake = Lake.create(tmp_path / "lake")
    _write_every_table(lake)
    tables = registered(ddl(engine, "s3://bucket/warehouse/ssm"), engine)

    def local(location: str) -> Path:
        path = tmp_path / "lake" / location.removeprefix("s3://bucket/warehouse/ssm/")
        assert (path / "_delta_log").is_dir(), location
        return path

    _check_tables(tables, lambda location: DeltaTable(str(local(location))))


def test_ddl_locations_are_the_tables_of_an_s3_lake(s3_lake: str):
    lake = Lake.create(s3_lake)
    _write_every_table(lake)
    options = lake.storage.delta_options()
    for engine in ENGINES:
        tables = registered(ddl(engine, s3_lake), engine)
        _check_tables(tables, lambda location: DeltaTable(location, storage_options=options))
