"""Progress while a run walks its regions: a live table on a terminal, lines otherwise."""

from __future__ import annotations

import io

from emulator import Emulator, FleetSpec
from pipeline.config import RunConfig
from pipeline.extract import AwsSettings
from pipeline.night import ThreadRunner, run_night
from pipeline.progress import PLAIN_EVERY_PAGES, shown
from tests.conftest_emulator import EMULATOR_NOW


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(tmp_path, stream) -> int:
    spec = FleetSpec(seed=4, now=EMULATOR_NOW, regions=("eu-west-1",), instances_per_region=20)
    runner = ThreadRunner(1)
    try:
        with Emulator(spec) as emulator, shown(stream):
            config = RunConfig(lake=str(tmp_path / "lake"), regions=("eu-west-1",), slices=1)
            summary = run_night(config, AwsSettings(endpoint_url=emulator.url), runner)
    finally:
        runner.close()
    assert summary.exit_code == 0, summary.render()
    return summary.results[0].pages


def test_plain_lines_when_not_a_terminal(tmp_path):
    out = io.StringIO()
    pages = _run(tmp_path, out)
    assert pages >= PLAIN_EVERY_PAGES
    lines = out.getvalue().splitlines()
    assert len(lines) == pages // PLAIN_EVERY_PAGES
    assert lines[0].startswith(f"123456789012 eu-west-1: {PLAIN_EVERY_PAGES} pages, ")


def test_a_live_table_on_a_terminal(tmp_path):
    out = Terminal()
    pages = _run(tmp_path, out)
    text = out.getvalue()
    assert "invocations/s" in text and "eu-west-1" in text and str(pages) in text
