"""One truth for every engine: after two nights, every reader of the lake sees the same rows.

The DuckDB views, delta-rs, Polars' `scan_delta`, and a reader written here
from the Delta protocol alone (replay the JSON log and any checkpoint, read the
live files with pyarrow: no project code, no Delta library) must each equal the
emulator's ground truth. Before Delta, every reader that did not know the
project's own trash manifests counted replaced rows twice.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import polars as pl
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from emulator import Emulator
from tests.nights import Truth, night, spec
from tests.truth import LAKE_ONLY, key, view_rows


def _normal(rows: list[dict]) -> list[dict]:
    """Rows as `tests.truth` writes expectations: epoch ms, ISO dates, lake-only columns gone."""
    out = []
    for row in rows:
        clean = {}
        for name, value in row.items():
            if name in LAKE_ONLY:
                continue
            if isinstance(value, datetime):
                value = round(value.timestamp() * 1000)
            elif isinstance(value, date):
                value = value.isoformat()
            clean[name] = value
        out.append(clean)
    return sorted(out, key=key)


def delta_log_rows(table: Path) -> list[dict]:
    """A table's current rows from its `_delta_log` alone: the protocol, replayed by hand."""
    log = table / "_delta_log"
    live: dict[str, dict] = {}
    first = 0
    pointer = log / "_last_checkpoint"
    if pointer.exists():
        version = json.loads(pointer.read_text())["version"]
        for part in sorted(log.glob(f"{version:020d}.checkpoint*.parquet")):
            for action in pq.read_table(part, columns=["add"]).column("add").to_pylist():
                if action is not None:
                    live[action["path"]] = dict(action["partitionValues"])
        first = version + 1
    for entry in sorted(log.glob("*.json")):
        if int(entry.stem) < first:
            continue
        for line in entry.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live[action["add"]["path"]] = action["add"]["partitionValues"]
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    rows = []
    for path, partitions in live.items():
        for row in pq.read_table(table / unquote(path)).to_pylist():
            rows.append({**row, **partitions})
    return rows


READERS = {
    "duckdb views": lambda lake, name: view_rows(lake, name),
    "deltalake": lambda lake, name: _normal(
        DeltaTable(str(lake / name)).to_pyarrow_table().to_pylist()
    ),
    "polars.scan_delta": lambda lake, name: _normal(
        pl.scan_delta(str(lake / name)).collect().to_dicts()
    ),
    "the delta log by hand": lambda lake, name: _normal(delta_log_rows(lake / name)),
}


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory, prefect_api):
    lake = tmp_path_factory.mktemp("engines") / "lake"
    truth = Truth()
    with Emulator(spec()) as emulator:
        night(emulator, lake)
        truth.observe(emulator)
        emulator.clock.advance(timedelta(days=1))
        night(emulator, lake)
        truth.observe(emulator)
    return lake, truth


@pytest.mark.parametrize("reader", READERS)
def test_every_engine_reads_exactly_the_ground_truth(two_nights, reader):
    lake, truth = two_nights
    invocations, plugins = truth.rows()
    read = READERS[reader]
    assert sorted(read(lake, "invocations"), key=key) == invocations
    assert sorted(read(lake, "command_plugins"), key=key) == plugins


def test_the_second_night_replaced_files_so_a_reader_that_ignored_removes_would_double(
    two_nights,
):
    lake, _ = two_nights
    log = lake / "invocations" / "_delta_log"
    actions = [json.loads(line) for f in log.glob("*.json") for line in f.read_text().splitlines()]
    assert any("remove" in a for a in actions)
    every_file_ever = [a["add"] for a in actions if "add" in a]
    rows_ever = sum(json.loads(add["stats"])["numRecords"] for add in every_file_ever)
    assert rows_ever > len(delta_log_rows(lake / "invocations"))
