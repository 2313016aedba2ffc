"""The lake's layout contract: clean partitions are read as they are, anything else is deduplicated.

A month partition is clean when its live files are one compaction's output;
the views read those without deduplicating (that is what makes them fast at
scale). These tests build every other state a run can leave behind, killed
or not, and check the views still show each row once, in its latest state.
"""

from __future__ import annotations

from pipeline.compact import Compactor, data_files, retire, retired_files
from pipeline.flatten import Lineage, flatten_page
from pipeline.ingest import compact_region
from pipeline.lake import Lake, is_compacted
from pipeline.schema import COMMAND_PLUGINS, INVOCATIONS
from pipeline.views import connect
from tests.lakes import ACCOUNT, REGION, at, invocation, plugin

MONTH = f"account_id={ACCOUNT}/region={REGION}/requested_month=2024-05"
CMD = "cccccccc-0000-4000-8000-00000000000"


def _records(count: int, status: str = "Success", day: int = 1):
    return [
        invocation(
            f"{CMD}{n % 10}",
            f"i-{n:08x}",
            at(f"2024-05-{day + n % 20:02d}T{n % 24:02d}:00:00"),
            status,
            plugins=[plugin("p0", status, 0), plugin("p1", status, 0)],
        )
        for n in range(count)
    ]


def _writer(lake: Lake, run_id: str, streams: list[list[dict]], ingested: str):
    writer = lake.writer(run_id, ACCOUNT, REGION)
    lineage = Lineage(ACCOUNT, REGION, run_id, round(at(ingested).timestamp() * 1000))
    for stream, records in enumerate(streams):
        page = flatten_page(records, lineage)
        writer.add(INVOCATIONS, page.invocations, stream)
        writer.add(COMMAND_PLUGINS, page.plugins, stream)
    return writer


def _view(lake: Lake, sql: str):
    return connect(lake).sql(sql).fetchall()


def _clean(lake: Lake) -> set[tuple[str, bool]]:
    return set(_view(lake, "SELECT DISTINCT table_name, clean FROM lake_files"))


def test_a_new_month_from_several_slices_commits_clean_without_a_rewrite(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    records = sorted(_records(40), key=lambda r: r["RequestedDateTime"], reverse=True)
    committed = _writer(lake, "run-1", [records[:15], records[15:]], "2024-06-01T00:00:00").commit()

    assert len(committed) == 4 and all(is_compacted(p) for p in committed)
    compact_region(lake, "run-1", committed)  # nothing to do: no file replaced
    assert not retired_files(lake)
    assert _clean(lake) == {("invocations", True), ("command_plugins", True)}
    assert _view(lake, "SELECT count(*), count(DISTINCT instance_id) FROM invocations") == [
        (40, 40)
    ]
    assert _view(lake, "SELECT count(*) FROM command_plugins") == [(80,)]
    for path in data_files(lake.table_dir(INVOCATIONS) / MONTH):
        times = _view(lake, f"SELECT requested_date_time FROM read_parquet('{path}')")
        assert times == sorted(times, reverse=True), "each slice's file is sorted newest first"


def test_a_new_month_with_a_repeated_invocation_is_committed_plain_and_compacted(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    records = _records(10)
    committed = _writer(lake, "run-1", [records, records[:1]], "2024-06-01T00:00:00").commit()

    assert not any(is_compacted(p) for p in committed)
    assert _clean(lake) == {("invocations", False), ("command_plugins", False)}
    assert _view(lake, "SELECT count(*) FROM invocations") == [(10,)]
    assert _view(lake, "SELECT count(*) FROM command_plugins") == [(20,)]
    compact_region(lake, "run-1", committed)
    assert _clean(lake) == {("invocations", True), ("command_plugins", True)}
    assert _view(lake, "SELECT count(*) FROM invocations") == [(10,)]
    assert _view(lake, "SELECT count(*) FROM command_plugins") == [(20,)]


def test_a_run_killed_before_compaction_leaves_duplicates_the_views_hide(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    first = _records(10, "InProgress")
    _writer(lake, "run-1", [first], "2024-06-01T00:00:00").commit()
    # The next night re-reads two invocations, now finished with one plugin; killed
    # after its commit, before compaction: both versions are live.
    second = [
        dict(r, Status="Failed", CommandPlugins=[plugin("p0", "Failed", 1)]) for r in first[:2]
    ]
    _writer(lake, "run-2", [second], "2024-06-02T00:00:00").commit()

    assert _clean(lake) == {("invocations", False), ("command_plugins", False)}
    statuses = _view(lake, "SELECT status, count(*) FROM invocations GROUP BY ALL ORDER BY ALL")
    assert statuses == [("Failed", 2), ("InProgress", 8)]
    plugins = _view(lake, "SELECT status, count(*) FROM command_plugins GROUP BY ALL ORDER BY ALL")
    assert plugins == [("Failed", 2), ("InProgress", 16)]


def test_a_half_moved_commit_is_not_read_as_clean(tmp_path):
    """Plugins move before invocations: killed in between, only the plugins changed."""
    lake = Lake.create(tmp_path / "lake")
    first = _records(4, "InProgress")
    _writer(lake, "run-1", [first], "2024-06-01T00:00:00").commit()
    second = [
        dict(r, Status="Success", CommandPlugins=[plugin("p0", "Success", 0)]) for r in first[:1]
    ]
    committed = _writer(lake, "run-2", [second], "2024-06-02T00:00:00").commit()
    (new_invocations,) = [p for p in committed if p.parts[-5] == "invocations"]
    new_invocations.unlink()  # as if the run died before moving it

    # Clean is decided per partition, for both tables at once.
    assert _clean(lake) == {("invocations", False), ("command_plugins", False)}
    assert _view(lake, "SELECT count(*) FROM invocations") == [(4,)]
    assert _view(lake, "SELECT count(*) FROM command_plugins") == [(8,)]


def test_retired_files_are_never_read_nor_compacted_back(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    committed = _writer(lake, "run-1", [_records(6)], "2024-06-01T00:00:00").commit()
    retire(lake, committed)  # as purge does, within the grace period
    assert _view(lake, "SELECT count(*) FROM invocations") == [(0,)]
    assert _view(lake, "SELECT count(*) FROM lake_files") == [(0,)]

    again = _writer(lake, "run-2", [_records(2)], "2024-06-02T00:00:00").commit()
    compact_region(lake, "run-2", again)
    assert _view(lake, "SELECT count(*) FROM invocations") == [(2,)]
    assert _view(lake, "SELECT count(*) FROM command_plugins") == [(4,)]
    compactor = Compactor(lake, "run-3")
    try:
        live = compactor.live_files(lake.table_dir(INVOCATIONS) / MONTH)
    finally:
        compactor.close()
    assert set(live).isdisjoint(committed)


def test_compaction_streams_big_partitions_and_keeps_every_row(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    nights = [_records(3000, "InProgress"), _records(3000, "Success")]
    for night, records in enumerate(nights):
        run = f"run-{night}"
        committed = _writer(lake, run, [records], f"2024-06-0{night + 1}T00:00:00").commit()
        compact_region(lake, run, committed)
    rows = _view(lake, "SELECT status, count(*) FROM invocations GROUP BY ALL")
    assert rows == [("Success", 3000)]
    assert _view(lake, "SELECT count(*) FROM command_plugins WHERE status = 'Success'") == [(6000,)]
    assert _clean(lake) == {("invocations", True), ("command_plugins", True)}
