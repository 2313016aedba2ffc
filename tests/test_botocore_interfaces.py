"""pipeline/ uses botocore and boto3 through their documented interfaces only.

A private attribute (`core._credentials`, a swapped response parser) works
until the botocore release that renames it, and then fails at run time in
the middle of a night. The scan below reads every module of `pipeline/` and
flags any `x._name` where `_name` is private to botocore or boto3, unless `x`
is `self`, `cls` or one of the project's own classes. No module is exempt:
nothing in the pipeline needs a private attribute today. If one ever must,
it goes in a single shim module named in `SHIM`, with its own test.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import boto3
import botocore

PIPELINE = Path(__file__).parent.parent / "pipeline"
SHIM: frozenset[str] = frozenset()
"""Modules allowed to touch botocore's private attributes: none."""
_DEFINED = re.compile(
    r"(?:\b(?:self|cls)\.(_[A-Za-z]\w*)\s*=|^\s*def (_[A-Za-z]\w*)|^(_[A-Za-z]\w*)\s*=)", re.M
)


@cache
def private_names() -> frozenset[str]:
    """Every private name botocore and boto3 define: attributes, methods, module globals."""
    names: set[str] = set()
    for package in (botocore, boto3):
        for source in Path(package.__file__).parent.rglob("*.py"):
            for match in _DEFINED.finditer(source.read_text(encoding="utf-8")):
                names.update(n for n in match.groups() if n and not n.endswith("__"))
    return frozenset(names)


def own_classes(tree: ast.AST) -> set[str]:
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}


def violations(source: str, own: set[str]) -> list[str]:
    """`receiver._name` and `from botocore... import _name` where `_name` is botocore's."""
    private = private_names()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
            "botocore",
            "boto3",
        ):
            found += [f"import {a.name}" for a in node.names if a.name.startswith("_")]
        name = None
        if isinstance(node, ast.Attribute):
            receiver = node.value
            if isinstance(receiver, ast.Name) and receiver.id in {"self", "cls", *own}:
                continue
            name = node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
        ):
            name = str(node.args[1].value)
        if name and name in private:
            found.append(f"line {node.lineno}: .{name}")
    return found


def test_no_module_reaches_into_botocore():
    modules = {path.name: path.read_text(encoding="utf-8") for path in PIPELINE.glob("*.py")}
    own = set().union(*(own_classes(ast.parse(text)) for text in modules.values()))
    found = {
        name: violations(text, own)
        for name, text in sorted(modules.items())
        if name not in SHIM and violations(text, own)
    }
    assert found == {}, "private botocore attributes outside the shim"


def test_the_scan_finds_what_the_old_code_did():
    """The writes and swaps this project used to make are caught; its own privates are not."""
    old = """
core._credentials = DeferredRefreshableCredentials(refresh_using=f, method="assume-role")
client._endpoint._response_parser_factory = factory
setattr(core, "_credentials", None)
from botocore.endpoint import _get_proxies
stats._lock.acquire()
Lake._open(storage)
self._lock = None
"""
    assert sorted(violations(old, {"Lake"})) == [
        "import _get_proxies",
        "line 2: ._credentials",
        "line 3: ._endpoint",
        "line 3: ._response_parser_factory",
        "line 4: ._credentials",
        "line 6: ._lock",
    ]
