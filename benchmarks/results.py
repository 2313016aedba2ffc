"""Result rows and the plain-text table every benchmark prints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One line of the results table: what was measured, its value, and a note."""

    benchmark: str
    measure: str
    value: str
    note: str = ""


def ratio(numerator: float, denominator: float) -> str:
    return "n/a" if not denominator else f"{numerator / denominator:.2f}x"


def render(rows: list[Row]) -> str:
    """A Markdown table, so the README can quote a run verbatim."""
    header = ("benchmark", "measure", "value", "note")
    cells = [header, *((r.benchmark, r.measure, r.value, r.note) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)
