"""The lake's own rules: creation, refusal of foreign paths and other formats, the lock,
the spool, and how a table gains a column."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.decode import flatten_page
from pipeline.errors import ConfigError, LakeBusyError
from pipeline.flatten import Lineage
from pipeline.lake import FORMAT_VERSION, AsOf, Lake
from pipeline.schema import COMMAND_PLUGINS, INGEST_RUNS, INVOCATIONS, TABLES, TIMESTAMP
from pipeline.spool import RegionWriter
from pipeline.views import connect
from tests.lakes import at, ingest, invocation, plugin

RECORD = {
    "CommandId": "0b2e4c1a-1111-4222-8333-444455556666",
    "InstanceId": "i-0123456789abcdef0",
    "RequestedDateTime": 1772323199.999,  # 2026-02-28T23:59:59.999Z
    "Status": "Success",
    "CommandPlugins": [{"Name": "aws:runShellScript", "ResponseCode": 0}],
}
LINEAGE = Lineage("012345678901", "eu-west-1", "run-1", 1772323300000)


def test_create_writes_the_marker_and_a_run_creates_every_table(tmp_path):
    lake = Lake.create(tmp_path / "new" / "lake")
    marker = json.loads((tmp_path / "new" / "lake" / "lake.json").read_text())
    assert marker == {"format": "ssm-etl-lake", "version": FORMAT_VERSION}
    assert connect(lake).sql("SELECT count(*) FROM invocations").fetchall() == [(0,)]
    with lake.lock():
        lake.ensure_tables()
    for spec in TABLES:
        table = lake.table(spec)
        assert table.metadata().partition_columns == list(spec.partition_by)
        assert [f.name for f in table.schema().fields] == spec.table_schema.names


@pytest.mark.parametrize(
    ("version", "message"),
    [(99, "written by a newer ssm-etl"), (2, "ssm-etl upgrade --lake")],
)
def test_readers_refuse_other_formats_with_the_way_out(tmp_path, version, message):
    root = tmp_path / "lake"
    root.mkdir()
    (root / "lake.json").write_text(json.dumps({"format": "ssm-etl-lake", "version": version}))
    with pytest.raises(ConfigError, match=message):
        Lake.open(root)


@pytest.mark.parametrize(
    "setup",
    ["a file", "inside a file", "a folder with other things"],
)
def test_foreign_paths_are_refused_and_left_alone(tmp_path, setup):
    target = tmp_path / "lake"
    if setup == "a file":
        target.write_text("not a lake")
    elif setup == "inside a file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "lake"
    else:
        target.mkdir()
        (target / "photo.jpg").write_bytes(b"\xff")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ConfigError):
        Lake.create(target)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_the_lock_refuses_a_second_holder_and_clears_a_dead_runs_spool(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    left = tmp_path / "lake" / "_spool" / "crashed-run" / "x.parquet"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"half")
    with lake.lock():
        assert not left.exists()
        with pytest.raises(LakeBusyError), Lake.open(lake.location).lock():
            pass
    with lake.lock():
        pass  # released


def test_spooled_rows_are_invisible_and_a_discarded_region_leaves_nothing(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    ingest(lake, [invocation("c-1", "i-00000001", at("2026-02-01T00:00:00"), "Success")])
    with lake.lock():
        writer = RegionWriter(lake.storage, "run-2", "012345678901", "eu-west-1")
        page = flatten_page([RECORD], LINEAGE)
        writer.add(INVOCATIONS, page.invocations)
        writer.add(COMMAND_PLUGINS, page.plugins)
        spooled = writer.close()
        assert spooled.rows == {"invocations": 1, "command_plugins": 1}
        assert spooled.months == {"invocations": {"2026-02"}, "command_plugins": {"2026-02"}}
        assert connect(lake).sql("SELECT count(*) FROM invocations").fetchall() == [(1,)]
        writer = RegionWriter(lake.storage, "run-2", "012345678901", "eu-west-1")
        writer.add(INVOCATIONS, page.invocations)
        writer.discard()
        assert not (tmp_path / "lake" / writer.folder).exists()


def test_rows_land_in_their_utc_month_partition(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    ingest(
        lake,
        [
            invocation("c-1", "i-00000001", at("2026-02-28T23:59:59.999"), "Success"),
            invocation(
                "c-2",
                "i-00000001",
                at("2026-03-01T00:00:00"),
                "Success",
                plugins=[plugin("p0", "Success", 0)],
            ),
        ],
    )
    actions = pa.table(lake.table(INVOCATIONS).get_add_actions(flatten=True))
    paths = sorted(actions.column("path").to_pylist())
    assert [p.split("/")[:3] for p in paths] == [
        ["account_id=012345678901", "region=eu-west-1", "requested_month=2026-02"],
        ["account_id=012345678901", "region=eu-west-1", "requested_month=2026-03"],
    ]


def test_a_new_column_reaches_an_existing_table_and_old_rows_read_null(tmp_path):
    """The schema policy: a nullable column appended to a schema is added by the next run."""
    lake = Lake.create(tmp_path / "lake")
    ingest(lake, [invocation("c-1", "i-00000001", at("2026-02-01T00:00:00"), "Success")])
    added = pa.field("noted_at", TIMESTAMP)
    grown = replace(INVOCATIONS, schema=pa.schema([*INVOCATIONS.schema, added]))
    with lake.lock():
        lake.ensure_tables((grown,), run_id="run-2")
    table = lake.table(INVOCATIONS)
    assert "noted_at" in [f.name for f in table.schema().fields]
    for path in table.file_uris():  # every file has every column: the views read them as they are
        assert "noted_at" in pq.read_schema(path).names
    rows = table.to_pyarrow_table(columns=["command_id", "noted_at"]).to_pylist()
    assert rows == [{"command_id": "c-1", "noted_at": None}]
    assert table.history(1)[0]["ssm_etl"] == {"run_id": "run-2", "operation": "add columns"}


def test_a_version_from_before_a_column_was_added_reads_it_as_null(tmp_path):
    """A lake this release has not run yet, or time travel to before the run that added a
    column: readers (the views) see the column, NULL, rather than fail to bind it."""
    lake = Lake.create(tmp_path / "lake")
    ingest(lake, [invocation("c-1", "i-00000001", at("2026-02-01T00:00:00"), "Success")])
    before = lake.table(INVOCATIONS).version()
    grown = replace(INVOCATIONS, schema=pa.schema([*INVOCATIONS.schema, ("noted_at", TIMESTAMP)]))
    con = duckdb.connect()
    con.register("unrun", lake.snapshot().dataset(grown))  # not yet run by the new release
    with lake.lock():
        lake.ensure_tables((grown,), run_id="run-2")
    con.register("earlier", lake.snapshot(AsOf(version=before)).dataset(grown))
    for name in ("unrun", "earlier"):
        assert con.sql(f"SELECT command_id, noted_at FROM {name}").fetchall() == [("c-1", None)]


def test_the_views_read_a_column_an_older_release_did_not_write_as_null(tmp_path):
    """`ssm-etl sql` or `report` after an upgrade, before the next run adds the column."""
    from deltalake import write_deltalake

    lake = Lake.create(tmp_path / "lake")
    ingest(lake, [invocation("c-1", "i-00000001", at("2026-02-01T00:00:00"), "Success")])
    older = pa.schema(list(INGEST_RUNS.table_schema)[:-1])  # without its newest column
    moment = at("2026-02-01T00:00:00")
    row = {"run_id": "run-0", "account_id": "012345678901", "region": "eu-west-1",
           "started_at": moment, "finished_at": moment, "pages": 1, "invocations": 1,
           "plugins": 0, "quarantined": 0, "status": "succeeded"}  # fmt: skip
    write_deltalake(
        lake.table_uri(INGEST_RUNS),
        pa.Table.from_pylist([row], schema=older),
        mode="overwrite",
        schema_mode="overwrite",
        partition_by=list(INGEST_RUNS.partition_by),
    )
    newest = INGEST_RUNS.table_schema[-1].name
    rows = connect(lake).sql(f"SELECT run_id, {newest} FROM ingest_runs").fetchall()
    assert rows == [("run-0", None)]


def _spooled_region(lake: Lake, region: str, invocations: int):
    """A region's spool of `invocations` one-plugin invocations (2 rows each)."""
    writer = RegionWriter(lake.storage, "run-1", "012345678901", region)
    records = [
        invocation(
            f"c-{i}",
            "i-00000001",
            at("2026-02-01T00:00:00"),
            "Success",
            plugins=[plugin("p0", "Success", 0)],
        )  # fmt: skip
        for i in range(invocations)
    ]
    page = flatten_page(records, replace(LINEAGE, region=region))
    writer.add(INVOCATIONS, page.invocations)
    writer.add(COMMAND_PLUGINS, page.plugins)
    return writer.close()


def test_a_batch_commits_before_a_region_would_take_it_past_the_rows_bound(tmp_path):
    """The rows bound is what holds the committer's memory: a region that would take the
    pending batch past it commits the batch first; only a region that alone exceeds the
    bound makes a batch larger than it, and then it commits alone."""
    from pipeline.commit import Committer, Pending

    lake = Lake.create(tmp_path / "lake")
    with lake.lock() as lease:
        lake.ensure_tables()
        committer = Committer(lake, "run-1", lease, max_rows=100)
        batches = []
        original = committer.commit

        def commit() -> None:
            batches.append([p.spooled.region for p in committer.batch.items])
            original()

        committer.commit = commit
        for region, size in [("r1", 20), ("r2", 20), ("r3", 20), ("r4", 80), ("r5", 10)]:
            committer.add(Pending(_spooled_region(lake, region, size), None))
            committer.commit_if_due()
        committer.commit()
    # r1+r2 hold 80 rows; r3 would make 120: r1 and r2 commit first, and so on.
    assert batches == [["r1", "r2"], ["r3"], ["r4"], ["r5"]]
    counts = connect(lake).sql("SELECT region, count(*) FROM invocations GROUP BY 1 ORDER BY 1")
    assert counts.fetchall() == [("r1", 20), ("r2", 20), ("r3", 20), ("r4", 80), ("r5", 10)]


def test_the_cli_sets_both_allocators_before_they_load_and_keeps_a_users_choice(tmp_path):
    """Arrow on the C allocator (its freed heap is returned before each merge) and delta-rs's
    jemalloc returning freed pages at once: set before either library loads, so they take
    effect (benchmarks/README.md, "Memory"); a user's own settings win."""
    import subprocess
    import sys

    script = (
        "import os, sys\nfrom flows.cli import main\n"
        "assert 'pyarrow' not in sys.modules and 'deltalake' not in sys.modules\n"
        "main(['status', '--lake', sys.argv[1]])\n"
        "import pyarrow\n"
        "print(pyarrow.default_memory_pool().backend_name, os.environ['_RJEM_MALLOC_CONF'])\n"
    )
    names = ("ARROW_DEFAULT_MEMORY_POOL", "_RJEM_MALLOC_CONF")
    env = {k: v for k, v in os.environ.items() if k not in names}
    for chosen, expected in [
        ({}, ["system", "dirty_decay_ms:100,muzzy_decay_ms:0"]),
        (dict(zip(names, ["jemalloc", "narenas:2"], strict=True)), ["jemalloc", "narenas:2"]),
    ]:
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "missing")],
            env={**env, **chosen}, capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
        assert out.stdout.split()[-2:] == expected


def test_a_lake_under_a_path_that_urls_must_escape_is_read_by_every_reader(tmp_path):
    # delta-rs names data files by percent-encoded URL ("my%20lake"): no reader found them.
    lake = Lake.create(tmp_path / "my lake #1 100%")
    steps = [plugin("a", "Success"), plugin("b", "Success")]
    requested = at("2024-05-01T10:00:00")
    ingest(lake, [invocation("c-1", "i-1", requested, "Success", plugins=steps)])
    # Re-fetched with one plugin fewer: the merge finds the stored plugin files to replace.
    ingest(lake, [invocation("c-1", "i-1", requested, "Success", plugins=steps[:1])])
    snapshot = lake.snapshot()
    assert all(Path(f).is_file() for f in snapshot.files(COMMAND_PLUGINS))
    assert snapshot.dataset(INVOCATIONS).to_table().num_rows == 1
    with connect(lake) as con:
        assert con.sql("SELECT count(*) FROM invocations").fetchall() == [(1,)]
        assert con.sql("SELECT name FROM command_plugins").fetchall() == [("a",)]
