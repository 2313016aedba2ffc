"""`ssm-etl demo` as a new user runs it: offline, then queried; the numbers are the fleet's."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars
from deltalake import DeltaTable

from emulator import Emulator, FleetSpec
from pipeline.lake import Lake
from pipeline.views import connect

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
"""Today, as `make demo` has it: the README's examples use dates relative to today."""
README = Path(__file__).resolve().parent.parent / "README.md"


def readme_queries() -> list[str]:
    """Every query the README runs on the demo's lake: its `ssm-etl sql --lake demo-lake`
    examples and its SQL recipes."""
    text = README.read_text()
    examples = re.findall(r'ssm-etl sql --lake demo-lake (?:--format \w+ )?"([^"]+)"', text)
    block = text.split("### SQL recipes", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    recipes = [statement.strip() for statement in block.split(";") if statement.strip()]
    return examples + recipes


def test_demo_runs_offline_and_its_lake_holds_the_fleet(tmp_path, prefect_api):
    lake = tmp_path / "demo-lake"
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name)  # the demo needs no credentials of the user's
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "demo",
            "--lake",
            str(lake),
            "--now",
            NOW.isoformat(),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Query it yourself" in done.stdout
    report = (lake / "report.html").read_text()
    assert report.startswith("<!DOCTYPE html>")
    # --full-output failed: the report shows the last lines of the top failures' full output.
    assert "full outputs stored" in done.stdout and "ssm-etl output --lake" in done.stdout
    section = report.split('<section id="failure-outputs">', 1)[1].split("</section>", 1)[0]
    assert "Last lines of stderr" in section and "<pre>" in section
    spec = FleetSpec(seed=7, now=NOW)
    with Emulator(spec) as emulator:
        expected = {r: len(emulator.ground_truth(spec.account_id, r)) for r in spec.regions}
    got = dict(
        connect(Lake.open(lake))
        .sql("SELECT region, count(*) FROM invocations GROUP BY 1")
        .fetchall()
    )
    assert got == expected
    # The lake is Delta: other readers see the same committed rows as the views.
    assert json.loads((lake / "lake.json").read_text())["version"] == 3
    by_polars = polars.scan_delta(str(lake / "invocations")).group_by("region").len().collect()
    assert dict(by_polars.iter_rows()) == expected
    assert DeltaTable(str(lake / "invocations")).to_pyarrow_table().num_rows == sum(
        expected.values()
    )
    assert f"any Delta Lake reader (deltalake, polars.scan_delta, Spark): {lake.resolve()}" in (
        done.stdout
    )
    database = duckdb.connect(str(lake / "ssm.duckdb"), read_only=True)
    not_patched = database.sql(
        "SELECT count(*) FROM patch_compliance_within(7, as_of := $1) WHERE NOT compliant",
        params=[NOW],
    ).fetchall()
    assert not_patched[0][0] > 0, "the demo fleet has instances out of compliance to find"
    tails = database.sql(
        "SELECT full_stderr_tail FROM failed_invocations WHERE full_stderr_tail <> ''"
    ).fetchall()
    assert any(html.escape(t) in section for (t,) in tails), "a failure's full stderr"

    # Every example the README gives answers with rows on this lake (issue 14.8).
    queries = readme_queries()
    assert len(queries) >= 10
    views = connect(Lake.open(lake))
    empty = [q for q in queries if not views.sql(q).fetchall()]
    assert empty == [], "README examples that return nothing on the demo's data"
