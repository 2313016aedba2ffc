"""The views database for BI tools: opened through SQLAlchemy, read-only, from elsewhere."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from pipeline.bi import write_views_database
from pipeline.config import RunConfig
from pipeline.extract import AwsSettings
from pipeline.lake import Lake
from pipeline.night import ThreadRunner, run_night
from pipeline.views import connect
from tests.lakes import at, ingest, invocation, plugin

T = at("2024-03-05T02:00:00")  # 2024-03-04 in Los Angeles
VIEWS = {  # a subset: views added later need no change here
    "command_plugins": 2,
    "compliance_daily": 2,
    "failed_invocations": 1,
    "ingest_runs": 0,
    "instance_last_run": 3,
    "invocation_durations": 1,
    "invocations": 3,
    "patch_compliance": 2,
    "plugin_failures": 1,
    "quarantine": 0,
}
"""Views the file must hold, with their row counts for the lake below."""
MACROS = {
    "compliance_between(DATE '2024-03-01', DATE '2024-03-31')": 2,
    "patch_compliance_within(7, as_of := TIMESTAMPTZ '2024-03-06 00:00:00+00')": 2,
}


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lake = Lake.create(tmp_path / "lake")
    ingest(
        lake,
        [
            invocation(
                "p-1",
                "i-01",
                T,
                "Success",
                document="AWS-RunPatchBaseline",
                plugins=[
                    plugin("PatchLinux", "Success", 0, start=T, seconds=30),
                ],
            ),  # fmt: skip
            invocation(
                "p-1",
                "i-02",
                T,
                "Failed",
                document="AWS-RunPatchBaseline",
                plugins=[
                    plugin("PatchLinux", "Failed", 1, output="no space"),
                ],
            ),  # fmt: skip
            invocation("s-1", "i-01", T, "Success"),
        ],
    )
    return lake


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory unrelated to the lake or the database."""
    directory = tmp_path / "elsewhere"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


@pytest.fixture
def open_engine() -> Iterator[list[Engine]]:
    engines: list[Engine] = []
    yield engines
    for engine in engines:
        engine.dispose()


def bi_engine(path: Path, engines: list[Engine]) -> Engine:
    """How a BI tool sees the file: SQLAlchemy + duckdb-engine, read-only."""
    engine = create_engine(f"duckdb:///{path}", connect_args={"read_only": True})
    engines.append(engine)
    return engine


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as con:
        names = (
            con.execute(
                text("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name")
            )
            .scalars()
            .all()
        )
        return {
            name: con.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one() for name in names
        }


def lake_counts(lake: Lake) -> dict[str, int]:
    """Every view's row count straight from the lake, as `ssm-etl sql` sees it."""
    con = connect(lake)
    try:
        names = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        return {
            name: con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
            for (name,) in names
        }
    finally:
        con.close()


def assert_every_view_matches(engine: Engine, lake: Lake) -> None:
    seen = counts(engine)
    assert seen == lake_counts(lake)
    assert {name: seen.get(name) for name in VIEWS} == VIEWS


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_view_reads_through_sqlalchemy(
    lake: Lake, tmp_path: Path, elsewhere: Path, open_engine: list[Engine]
) -> None:
    path = write_views_database(lake, tmp_path / "bi" / ".." / "views.duckdb")
    assert path == tmp_path / "views.duckdb"
    engine = bi_engine(path, open_engine)
    assert_every_view_matches(engine, lake)
    with engine.connect() as con:
        for call, rows in MACROS.items():
            assert con.execute(text(f"SELECT count(*) FROM {call}")).scalar_one() == rows
        failed = con.execute(
            text(
                "SELECT instance_id, failed_plugin_name, failed_plugin_output FROM failed_invocations"
            )
        ).one()
        assert tuple(failed) == ("i-02", "PatchLinux", "no space")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "lake", "views.duckdb"]


def test_views_do_not_depend_on_the_writers_session(
    lake: Lake, tmp_path: Path, elsewhere: Path, open_engine: list[Engine]
) -> None:
    """The writer's `SET TimeZone = 'UTC'` is not stored; dates stay UTC in any zone."""
    path = write_views_database(lake, tmp_path / "views.duckdb")
    with bi_engine(path, open_engine).connect() as con:
        con.execute(text("SET TimeZone = 'America/Los_Angeles'"))
        days = con.execute(
            text("SELECT DISTINCT requested_date FROM compliance_daily ORDER BY 1")
        ).scalars()
        assert [d.isoformat() for d in days] == ["2024-03-05"]
        patched = con.execute(
            text(
                "SELECT instance_id FROM patch_compliance_within(1, "
                "as_of := TIMESTAMPTZ '2024-03-06 01:59:00+00') WHERE compliant"
            )
        ).scalars()
        assert list(patched) == ["i-01"]


def test_a_run_refreshes_a_registered_views_database(
    lake: Lake, tmp_path: Path, elsewhere: Path, open_engine: list[Engine], emulator
) -> None:
    path = write_views_database(lake, tmp_path / "views.duckdb")
    assert lake.views_databases == [str(path)]
    first = bi_engine(path, open_engine)
    before = counts(first)["invocations"]
    first.dispose()  # a BI tool's next session (DuckDB shares an open file within a process)
    runner = ThreadRunner(2)
    try:
        config = RunConfig(lake=str(lake.location), regions=("eu-west-1",))
        summary = run_night(config, AwsSettings(endpoint_url=emulator.url), runner)
    finally:
        runner.close()
    assert summary.exit_code == 0, summary.render()
    engine = bi_engine(path, open_engine)
    seen = counts(engine)
    assert seen["invocations"] == before + summary.results[0].invocations > before
    assert seen == lake_counts(lake)


def test_rewrite_while_a_reader_holds_the_old_file(
    lake: Lake, tmp_path: Path, elsewhere: Path, open_engine: list[Engine]
) -> None:
    """A BI tool (another process) keeps the old file open read-only across a rewrite."""
    path = write_views_database(lake, tmp_path / "views.duckdb")
    old_inode = path.stat().st_ino
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline() == "3\n"  # connected and holding the file
        assert write_views_database(lake, path) == path
        out, err = reader.communicate("again\n", timeout=60)
    finally:
        reader.kill()
        reader.wait()
    assert (out, reader.returncode) == ("3\n", 0), err
    assert path.stat().st_ino != old_inode
    assert_every_view_matches(bi_engine(path, open_engine), lake)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "lake", "views.duckdb"]


READER = """
import sys
from sqlalchemy import create_engine, text

engine = create_engine(f"duckdb:///{sys.argv[1]}", connect_args={"read_only": True})
with engine.connect() as con:
    query = text("SELECT count(*) FROM invocations")
    print(con.execute(query).scalar_one(), flush=True)
    sys.stdin.readline()
    print(con.execute(query).scalar_one(), flush=True)
"""
