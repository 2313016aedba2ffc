"""Compaction, retirement and purge keep every row's latest state, and only that."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.compact import Compactor, data_files, retire, sweep
from pipeline.config import Window
from pipeline.ingest import compact_region
from pipeline.lake import Lake
from pipeline.purge import purge
from pipeline.schema import COMMAND_PLUGINS, INVOCATIONS
from pipeline.views import connect
from tests.lakes import ACCOUNT, REGION, at, invocation, plugin

CMD_A = "aaaaaaaa-0000-4000-8000-000000000001"
CMD_B = "bbbbbbbb-0000-4000-8000-000000000002"
MONTH = f"account_id={ACCOUNT}/region={REGION}/requested_month=2024-05"


def _write(lake: Lake, records, run_id: str, ingested: datetime):
    from pipeline.flatten import Lineage, flatten_page

    page = flatten_page(
        records, Lineage(ACCOUNT, REGION, run_id, round(ingested.timestamp() * 1000))
    )
    writer = lake.writer(run_id, ACCOUNT, REGION)
    writer.add(INVOCATIONS, page.invocations)
    writer.add(COMMAND_PLUGINS, page.plugins)
    return writer.commit()


def _rows(lake: Lake, sql: str):
    return connect(lake).sql(sql).fetchall()


def _night_one():
    return [
        invocation(CMD_A, "i-11111111", at("2024-05-30T01:00:00"), "InProgress",
                   plugins=[plugin("p0", "Success", 0), plugin("p1", "InProgress", -1), plugin("p2", "Pending", -1)]),
        invocation(CMD_B, "i-11111111", at("2024-05-29T01:00:00"), "Success", plugins=[plugin("p0", "Success", 0)]),
    ]  # fmt: skip


def _night_two():
    return [
        invocation(CMD_A, "i-11111111", at("2024-05-30T01:00:00"), "Failed",
                   plugins=[plugin("p0", "Failed", 2)]),
    ]  # fmt: skip


def test_compaction_keeps_the_latest_state_and_only_its_plugins(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    first = _write(lake, _night_one(), "run-1", at("2024-05-30T02:00:00"))
    compact_region(lake, "run-1", first)
    second = _write(lake, _night_two(), "run-2", at("2024-05-31T02:00:00"))
    compact_region(lake, "run-2", second)

    expected_invocations = [(CMD_A, "Failed", "run-2"), (CMD_B, "Success", "run-1")]
    expected_plugins = [(CMD_A, 0, "p0", "Failed"), (CMD_B, 0, "p0", "Success")]
    query_inv = "SELECT command_id, status, run_id FROM invocations ORDER BY ALL"
    query_plg = "SELECT command_id, plugin_index, name, status FROM command_plugins ORDER BY ALL"
    # Before the grace period passes, old and new files coexist: the views hide it.
    assert len(data_files(lake.table_dir(INVOCATIONS) / MONTH)) == 3
    assert _rows(lake, query_inv) == expected_invocations
    assert _rows(lake, query_plg) == expected_plugins
    # After it, one file per partition is left, holding exactly the latest state.
    assert sweep(lake, grace_seconds=0) > 0
    (inv_file,) = data_files(lake.table_dir(INVOCATIONS) / MONTH)
    (plg_file,) = data_files(lake.table_dir(COMMAND_PLUGINS) / MONTH)
    assert _rows(lake, query_inv) == expected_invocations
    assert _rows(lake, query_plg) == expected_plugins
    raw = connect(lake).sql(f"SELECT count(*) FROM read_parquet('{plg_file}')").fetchall()
    assert raw == [(2,)]


def test_repeated_identical_runs_do_not_grow_storage(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    sizes = []
    for night in range(4):
        committed = _write(lake, _night_one(), f"run-{night}", at(f"2024-05-3{night % 2}T02:00:00"))
        compact_region(lake, f"run-{night}", committed)
        sweep(lake, grace_seconds=0)
        files = data_files(lake.table_dir(INVOCATIONS) / MONTH) + data_files(
            lake.table_dir(COMMAND_PLUGINS) / MONTH
        )
        sizes.append((len(files), connect(lake).sql("SELECT count(*) FROM invocations").fetchall()))
    assert sizes == [(2, [(2,)])] * 4


def test_compacted_rows_are_sorted_newest_first(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    records = [
        invocation(CMD_A, f"i-{n:08x}", at(f"2024-05-{n:02d}T01:00:00"), "Success")
        for n in range(1, 20)
    ]
    for index, chunk in enumerate((records[::2], records[1::2])):
        compact_region(
            lake, f"run-{index}", _write(lake, chunk, f"run-{index}", at("2024-06-01T00:00:00"))
        )
    sweep(lake, grace_seconds=0)
    (only,) = data_files(lake.table_dir(INVOCATIONS) / MONTH)
    times = connect(lake).sql(f"SELECT requested_date_time FROM read_parquet('{only}')").fetchall()
    assert [t for (t,) in times] == sorted((t for (t,) in times), reverse=True)
    assert len(times) == 19


def test_retired_files_stay_for_the_grace_period(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    victim = lake.root / "invocations" / "x.parquet"
    victim.write_bytes(b"old")
    retire(lake, [victim], now=1000.0)
    assert sweep(lake, grace_seconds=60, now=1059.0) == 0 and victim.exists()
    assert sweep(lake, grace_seconds=60, now=1060.0) == 1 and not victim.exists()
    assert [p.name for p in (lake.root / "_trash").iterdir()] == ["_empty.json"]


def test_compactor_leaves_a_single_file_partition_alone(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    _write(lake, _night_two(), "run-1", at("2024-05-31T02:00:00"))
    compactor = Compactor(lake, "run-2")
    assert (
        compactor.compact_month(
            lake.table_dir(INVOCATIONS).joinpath(MONTH).relative_to(lake.table_dir(INVOCATIONS))
        )
        == []
    )
    compactor.close()


def test_purge_removes_whole_old_months_only_and_records_them(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    _write(lake, [invocation(CMD_A, "i-11111111", at("2024-03-31T23:59:59.999"), "Success", plugins=[plugin("p", "Success", 0)]),
                  invocation(CMD_B, "i-11111111", at("2024-04-01T00:00:00"), "Success")],
           "run-1", at("2024-06-01T00:00:00"))  # fmt: skip
    result = purge(
        lake, older_than_days=31, run_id="purge-1", now=datetime(2024, 5, 15, tzinfo=UTC)
    )
    assert result.months == {(ACCOUNT, REGION): ["2024-03"]}
    sweep(lake, grace_seconds=0)
    assert _rows(lake, "SELECT command_id FROM invocations") == [(CMD_B,)]
    assert _rows(lake, "SELECT count(*) FROM command_plugins") == [(0,)]
    assert _rows(lake, "SELECT run_id, status, purged_months FROM ingest_runs") == [
        ("purge-1", "purged", ["2024-03"])
    ]


def test_window_start_follows_the_watermark_not_the_clock():
    hour = 3_600_000
    assert Window().start_ms(None) is None
    assert Window(lookback_ms=48 * hour).start_ms(100 * hour) == 52 * hour
    assert Window(full_refresh=True).start_ms(100 * hour) is None
    assert Window(since_ms=7, lookback_ms=hour).start_ms(100 * hour) == 7
