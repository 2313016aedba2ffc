"""The README documents what the code does: every table column, every view."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.schema import COMMAND_PLUGINS, INVOCATIONS
from pipeline.views import sql_dir

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(title)
    following = README.find("\n## ", start + 1)
    following_sub = README.find("\n### ", start + 1)
    ends = [e for e in (following, following_sub) if e != -1]
    return README[start : min(ends) if ends else len(README)]


@pytest.mark.parametrize("table", [INVOCATIONS, COMMAND_PLUGINS], ids=lambda t: t.name)
def test_readme_lists_every_column_in_schema_order(table):
    section = _section(f"### Table `{table.name}`")
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert documented == table.table_schema.names  # the Delta table's columns, in order


def test_readme_documents_every_view():
    section = _section("## Views")
    documented = set(re.findall(r"^\| `(\w+)(?:\(.*?\))?` \|", section, flags=re.M))
    assert documented == {p.stem for p in sql_dir().glob("*.sql")}


def test_quickstart_has_exactly_the_two_commands():
    section = _section("## Quickstart")
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
