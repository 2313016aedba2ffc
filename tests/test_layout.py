"""One path through the code (issue 16): one orchestration, one decoder, one statement
per view, and a library that does not depend on its shells or on the emulator."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.lake import Lake
from pipeline.views import create_views, sql_dir

ROOT = Path(__file__).resolve().parent.parent
GONE = ("run_local", "arrow_page", "parse_mode", "lake_files", "_trash")
"""Names of the second orchestration, the second flattener and its parse modes, and
of the home-made table format's protocol (its trash manifests, its file-listing view)."""
UPGRADE = ("pipeline/upgrade.py", "sql/upgrade/", "tests/test_upgrade.py", "tests/data/lake-v2/")
"""The one place that still reads the old format: the upgrade of format-2 lakes."""


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("shell", ["flows", "emulator", "prefect"])
def test_the_library_never_imports_its_shells_or_the_emulator(shell):
    importing = sorted(p.name for p in (ROOT / "pipeline").glob("*.py") if shell in _imports(p))
    assert importing == [], f"pipeline modules that import {shell}"


def test_a_whole_night_loads_without_the_shells():
    """What `run_night` needs, imported in a fresh process: neither flows nor the emulator."""
    code = (
        "import sys, pipeline.night, pipeline.views, pipeline.report, pipeline.purge; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'flows', 'emulator', 'prefect'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_emulator_is_its_own_package():
    assert (ROOT / "emulator" / "__init__.py").is_file()
    assert not (ROOT / "pipeline" / "emulator").exists()


def _tracked_text() -> dict[str, str]:
    """Every file git tracks (or, outside a git checkout, every source and doc file)."""
    git = shutil.which("git")
    if git and (ROOT / ".git").exists():
        listed = subprocess.run(
            [git, "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        paths = [ROOT / name for name in listed]
    else:
        paths = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".sql", ".md", ".toml")]
        paths = [p for p in paths if ".venv" not in p.parts]
    texts = {}
    for path in paths:
        if path.is_file() and path != Path(__file__):
            try:
                texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
    return texts


@pytest.mark.parametrize("name", GONE)
def test_nothing_of_the_old_paths_is_left(name):
    texts = _tracked_text()
    assert len(texts) > 50, "the scan found almost nothing: it would pass vacuously"
    left = sorted(
        path for path, text in texts.items() if name in text and not path.startswith(UPGRADE)
    )
    assert left == [], f"{name!r} is still in {left}"


class _Counting:
    """A DuckDB connection that counts the statements sent through it."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.statements = con, 0

    def execute(self, *args, **kwargs):
        self.statements += 1
        return self.con.execute(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.con, name)


def test_connect_runs_one_statement_per_view(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    lake.ensure_tables(run_id="test")
    counting = _Counting(duckdb.connect())
    order = create_views(counting, lake.snapshot())
    views = {p.stem for p in sql_dir().glob("*.sql")}
    assert sorted(order) == sorted(views)
    assert counting.statements == len(views)
    assert counting.con.sql("SELECT count(*) FROM compliance_daily").fetchall() == [(0,)]
