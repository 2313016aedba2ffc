"""An installed wheel must carry the views: sql/ rides along as pipeline/sql."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_every_view_and_both_packages(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("ssm_etl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected_sql = {f"pipeline/sql/{p.name}" for p in (ROOT / "sql").glob("*.sql")}
    assert expected_sql and expected_sql <= names
    assert "flows/cli.py" in names and "flows/nightly.py" in names
    assert any(n.endswith("entry_points.txt") for n in names)
