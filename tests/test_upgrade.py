"""A format-2 lake (Parquet files, home-made commits) is upgraded in place to Delta tables.

The input is a real format-2 lake frozen in `tests/data/lake-v2` (see its
README): two nights, a killed run's duplicates and retired files. Its views'
rows, as format 2 showed them, are the golden expectation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flows.cli import main
from pipeline import upgrade as upgrade_module
from pipeline.errors import ConfigError
from pipeline.lake import FORMAT_VERSION, Lake
from pipeline.query import json_value
from pipeline.schema import TABLES
from pipeline.views import connect

FIXTURE = Path(__file__).parent / "data" / "lake-v2"
EXPECTED = json.loads((FIXTURE / "views.json").read_text())


@pytest.fixture
def old_lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    shutil.copytree(FIXTURE / "lake", root)
    return root


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True))


def _view(lake: Lake, view: str, columns: list[str]) -> list[dict]:
    relation = connect(lake).sql(f"SELECT {', '.join(columns)} FROM {view}")
    rows = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
    return _sorted([{k: json_value(v) for k, v in row.items()} for row in rows])


def _assert_views_as_format_2_showed_them(root: Path) -> None:
    lake = Lake.open(root)
    for view, expected in EXPECTED.items():
        assert expected, f"the fixture's {view} is empty: the check would be vacuous"
        assert _view(lake, view, list(expected[0])) == _sorted(expected), view


def test_readers_refuse_a_format_2_lake_with_the_way_out(old_lake):
    with pytest.raises(ConfigError, match=r"format 2.*ssm-etl upgrade --lake"):
        Lake.open(old_lake)


def test_upgrade_keeps_every_view_row_for_row_and_leaves_only_delta_tables(old_lake, capsys):
    assert main(["upgrade", "--lake", str(old_lake)]) == 0
    out = capsys.readouterr().out
    assert "format 2 -> 3 (Delta)" in out
    assert Lake.open(old_lake).version == FORMAT_VERSION
    _assert_views_as_format_2_showed_them(old_lake)

    lake = Lake.open(old_lake)
    referenced = {Path(uri) for spec in TABLES for uri in lake.table(spec).file_uris()}
    on_disk = {p for p in old_lake.rglob("*.parquet") if "_delta_log" not in p.parts}
    assert on_disk == referenced, "format 2's files (and placeholders) are gone"
    assert not (old_lake / "_trash").exists() and not (old_lake / "_staging").exists()
    history = lake.table(TABLES[0]).history()
    operations = [h.get("ssm_etl", {}).get("operation") for h in history]
    assert operations == ["vacuum", "vacuum", "upgrade", None]  # None: CREATE TABLE

    assert main(["upgrade", "--lake", str(old_lake)]) == 0
    assert "already in format 3" in capsys.readouterr().out


def test_an_upgrade_killed_halfway_is_done_again(old_lake, monkeypatch):
    real = upgrade_module._rewrite
    calls = []

    def dies_on_the_third_table(*args, **kwargs):
        calls.append(args[2].name)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process is killed here
        return real(*args, **kwargs)

    monkeypatch.setattr(upgrade_module, "_rewrite", dies_on_the_third_table)
    assert main(["upgrade", "--lake", str(old_lake)]) == 130
    with pytest.raises(ConfigError, match="format 2"):
        Lake.open(old_lake)  # still format 2: nothing was deleted yet
    monkeypatch.setattr(upgrade_module, "_rewrite", real)
    assert main(["upgrade", "--lake", str(old_lake)]) == 0
    _assert_views_as_format_2_showed_them(old_lake)


def test_a_run_upgrades_the_lake_first(old_lake, emulator):
    from pipeline.config import RunConfig
    from pipeline.extract import AwsSettings
    from pipeline.night import ThreadRunner, run_night

    runner = ThreadRunner(2)
    try:
        config = RunConfig(lake=str(old_lake), regions=("eu-west-1",))
        summary = run_night(config, AwsSettings(endpoint_url=emulator.url), runner)
    finally:
        runner.close()
    assert summary.exit_code == 0, summary.render()
    lake = Lake.open(old_lake)
    assert lake.version == FORMAT_VERSION
    keys = connect(lake).sql(
        "SELECT count(*) = count(DISTINCT (account_id, region, command_id, instance_id)) "
        "FROM invocations"
    )
    assert keys.fetchall() == [(True,)]


def test_upgrade_of_a_missing_lake_is_a_one_line_error(tmp_path, capsys):
    assert main(["upgrade", "--lake", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not an ssm-etl lake" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "nowhere").exists()
