"""Every reader sees one committed version, at every instant, whatever a run is doing.

A reader counts in a loop while twenty nightly runs merge, optimize and vacuum
the lake, on local disk and on an S3 server. Each answer must come from one
snapshot: no invocation twice, and no count lower than an earlier one (the
lake only grows: what SSM forgets, the lake keeps).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from emulator import Emulator
from pipeline.lake import Lake
from pipeline.views import connect
from tests.nights import night, spec

NIGHTS = 20
COUNT = """
SELECT count(*) AS invocations,
       count(DISTINCT (account_id, region, command_id, instance_id)) AS distinct_keys,
       (SELECT count(*) FROM command_plugins) AS plugins,
       (SELECT count(DISTINCT (account_id, region, command_id, instance_id, plugin_index))
        FROM command_plugins) AS distinct_plugins
FROM invocations
"""


class Reader(threading.Thread):
    """Counts invocations and plugins over and over; keeps every answer."""

    def __init__(self, location: str) -> None:
        super().__init__(daemon=True)
        self.location = location
        self.stop = threading.Event()
        self.answers: list[tuple[int, int, int, int]] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                con = connect(Lake.open(self.location))
                self.answers.append(con.sql(COUNT).fetchall()[0])
                con.close()
            except BaseException as exc:  # noqa: BLE001 - every failure is a finding
                self.errors.append(exc)
            # A breath between reads: still dozens of reads a night, but the runs (and on
            # S3 the one server both talk to) are not starved of the machine's two cores.
            self.stop.wait(0.05)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_reader_never_sees_a_torn_or_doubled_count_while_runs_commit(
    where, tmp_path, prefect_api, request
):
    location = str(tmp_path / "lake") if where == "local" else request.getfixturevalue("s3_lake")
    fleet = spec(regions=("eu-west-1",), instances_per_region=4)
    with Emulator(fleet) as emulator:
        night(emulator, location, regions=("eu-west-1",), slices=1)
        reader = Reader(location)
        reader.start()
        try:
            for _ in range(NIGHTS):
                emulator.clock.advance(timedelta(days=1))
                night(emulator, location, regions=("eu-west-1",), slices=1)
        finally:
            reader.stop.set()
            reader.join(timeout=60)
    assert not reader.errors, reader.errors[:3]
    assert len(reader.answers) >= NIGHTS, "the reader should have read during every night"
    doubled = [a for a in reader.answers if a[0] != a[1] or a[2] != a[3]]
    assert not doubled, doubled[:5]
    counts = [a[0] for a in reader.answers]
    shrinking = [
        (before, after) for before, after in zip(counts, counts[1:], strict=False) if after < before
    ]
    assert not shrinking, shrinking[:5]
    assert counts[-1] > counts[0], "the runs added invocations while the reader read"
