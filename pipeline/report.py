"""A one-file HTML report over a date range: charts and tables for people, not tools.

The document is self-contained (inline CSS, charts drawn as inline SVG, no
scripts, no network assets) so it can be mailed, archived or opened offline
and still look the same in ten years. The SQL lives in `sql/report/`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import Any

from .errors import ConfigError
from .lake import AsOf, Lake
from .status import StatusReport, as_utc, region_status, run_report_query
from .views import connect

PATCH_DAYS = 7
"""Patch compliance window: a successful AWS-RunPatchBaseline in the last week."""
TOP = 10
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
DASHES = ("", "6 3", "2 3")
"""Line styles cycled after the palette, so more than ten documents stay distinct."""
CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       margin: 2em auto; max-width: 1000px; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.meta, .empty { color: #555; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e4e4e4; text-align: left;
         white-space: nowrap; }
td:last-child { white-space: normal; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: #fdecea; }
pre { background: #f7f7f7; border: 1px solid #e4e4e4; padding: .5em .7em; font-size: 12px;
      overflow-x: auto; white-space: pre-wrap; max-height: 24em; }
svg { display: block; margin: .6em 0; max-width: 100%; height: auto; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; fill: #333; }
svg .chart-title { font-size: 15px; font-weight: 600; }
svg .axis-label { font-size: 12px; font-weight: 600; }
svg .tick { font-size: 11px; }
svg .grid { stroke: #e4e4e4; }
svg .axis { stroke: #555; }
"""


def build_report(
    lake: Lake,
    *,
    start: date,
    end: date,
    now: datetime | None = None,
    as_of: AsOf | None = None,
) -> str:
    """The report for UTC dates `start`..`end` (inclusive); patch compliance as of `now`.

    With `as_of`, the lake as it stood then, and `now` defaults to that moment.
    """
    if start > end:
        raise ConfigError(f"report range is empty: {start} is after {end}")
    moment = as_of.moment(lake) if as_of is not None else None
    as_of_time = as_utc(now or moment or datetime.now(UTC))
    dates = {"start": start, "end": end}
    con = connect(lake, as_of=as_of)
    try:
        daily = run_report_query(con, "daily_success", dates)
        by_region = run_report_query(con, "failures_by_region", dates)
        non_compliant = run_report_query(
            con, "non_compliant", {"days": PATCH_DAYS, "as_of": as_of_time}
        )
        instances = run_report_query(con, "top_failing_instances", {**dates, "limit": TOP})
        plugins = run_report_query(con, "top_failing_plugins", {**dates, "limit": TOP})
        outputs = run_report_query(con, "failure_outputs", {**dates, "limit": TOP})
    finally:
        con.close()
    freshness = region_status(lake, now=as_of_time, as_of=as_of)

    title = f"SSM Run Command report, {start.isoformat()} to {end.isoformat()}"
    meta = (
        f"Lake <code>{escape(lake.location)}</code>. Dates are UTC. "
        f"Patch compliance and freshness as of {escape(_when(as_of_time))}."
    )
    if not freshness.regions:
        sections = [
            '<p class="empty">No data yet: nothing has been ingested into this lake. '
            "Run <code>ssm-etl run</code> and build the report again.</p>"
        ]
    else:
        sections = [
            _summary(by_region, non_compliant, freshness),
            _success_section(daily, start, end),
            _region_section(by_region),
            _compliance_section(non_compliant),
            _instances_section(instances),
            _plugins_section(plugins),
            _outputs_section(outputs),
            _freshness_section(freshness),
        ]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>{CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{escape(title)}</h1>",
            f'<p class="meta">{meta}</p>',
            *sections,
            "</body>",
            "</html>",
            "",
        ]
    )


# Sections


def _summary(
    by_region: list[dict[str, Any]], non_compliant: list[dict[str, Any]], freshness: StatusReport
) -> str:
    invocations = sum(r["invocations"] for r in by_region)
    failures = sum(r["failures"] for r in by_region)
    unhealthy = sum(not r.healthy for r in freshness.regions)
    items = [
        f"{_count(invocations, 'invocation')} in range, {failures} failed or timed out",
        f"{_count(len(non_compliant), 'instance')} out of patch compliance "
        f"(no successful AWS-RunPatchBaseline in {PATCH_DAYS} days)",
        f"{unhealthy} of {len(freshness.regions)} account/regions not ingesting "
        f"(no successful run within {freshness.max_age_hours:g} h)",
    ]
    return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def _success_section(rows: list[dict[str, Any]], start: date, end: date) -> str:
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    index = {d: n for n, d in enumerate(days)}
    series: dict[str, list[float | None]] = {}
    for row in rows:
        values = series.setdefault(row["document_name"], [None] * len(days))
        values[index[row["requested_date"]]] = row["success_rate"]
    body = (
        line_chart(
            "Daily success rate per document",
            days,
            series,
            x_label="Date requested (UTC)",
            y_label="Success rate (succeeded / finished)",
        )
        if any(v is not None for values in series.values() for v in values)
        else _nothing("No finished invocations in this range.")
    )
    return _section("success", "Daily success rate per document", body)


def _region_section(rows: list[dict[str, Any]]) -> str:
    body = (
        bar_chart(
            "Failed and timed-out invocations by account and region",
            [f"{r['account_id']} {r['region']}" for r in rows],
            [r["failures"] for r in rows],
            x_label="Failed invocations",
            y_label="Account and region",
        )
        if rows
        else _nothing("No invocations in this range.")
    )
    return _section("failures-by-region", "Failures by account and region", body)


def _compliance_section(rows: list[dict[str, Any]]) -> str:
    body = _table(
        (
            "account",
            "region",
            "instance",
            "name",
            "latest patch run",
            "status",
            "status details",
            "last success",
            "last success age",
        ),
        [
            (
                r["account_id"],
                r["region"],
                r["instance_id"],
                r["instance_name"],
                _when(r["latest_patch_requested_date_time"]),
                r["latest_patch_status"] or "never patched",
                r["latest_patch_status_details"],
                _when(r["last_success_date_time"]),
                _age(r["last_success_age_days"]),
            )
            for r in rows
        ],
        numeric={8},
        table_id="non-compliant",
        empty="Every known instance had a successful patch run in the window.",
    )
    heading = f"Instances out of patch compliance ({PATCH_DAYS} days)"
    return _section("patch-compliance", heading, body)


def _instances_section(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return _section(
            "top-instances", "Top failing instances", _nothing("No failures in this range.")
        )
    chart = bar_chart(
        f"Top {len(rows)} failing instances",
        [f"{r['instance_name'] or r['instance_id']} ({r['region']})" for r in rows],
        [r["failures"] for r in rows],
        x_label="Failed invocations",
        y_label="Instance",
    )
    table = _table(
        ("account", "region", "instance", "name", "failures", "last failure", "document", "status"),
        [
            (
                r["account_id"],
                r["region"],
                r["instance_id"],
                r["instance_name"],
                r["failures"],
                _when(r["last_failure_date_time"]),
                r["last_failed_document"],
                r["last_failed_status"],
            )
            for r in rows
        ],
        numeric={4},
        table_id="top-instances-table",
    )
    return _section("top-instances", "Top failing instances", chart + table)


def _plugins_section(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return _section(
            "top-plugins", "Top failing plugins", _nothing("No failures in this range.")
        )
    names = [r["plugin_name"] or "(no plugin ran)" for r in rows]
    chart = bar_chart(
        f"Top {len(rows)} failing plugins (first failed plugin of each failed invocation)",
        [
            f"{r['document_name']} / {n}"
            + ("" if r["response_code"] is None else f" [{r['response_code']}]")
            for r, n in zip(rows, names, strict=True)
        ],
        [r["failures"] for r in rows],
        x_label="Failed invocations",
        y_label="Document / plugin [response code]",
    )
    table = _table(
        ("document", "plugin", "response code", "failures", "instances", "last failure"),
        [
            (
                r["document_name"],
                name,
                r["response_code"],
                r["failures"],
                r["instances_affected"],
                _when(r["last_failure_date_time"]),
            )
            for r, name in zip(rows, names, strict=True)
        ],
        numeric={2, 3, 4},
        table_id="top-plugins-table",
    )
    return _section("top-plugins", "Top failing plugins", chart + table)


def _outputs_section(rows: list[dict[str, Any]]) -> str:
    """The last lines of the full output of the top failing instances' latest failures."""
    title = "Full output of the top failures"
    if not rows:
        return _section(
            "failure-outputs",
            title,
            _nothing(
                "No full output stored for failures in this range "
                "(runs store it with --full-output failed)."
            ),
        )
    parts = []
    for r in rows:
        heading = (
            f"{r['instance_name'] or r['instance_id']} ({r['account_id']} {r['region']}): "
            f"{r['document_name']} / {r['plugin_name']}, {r['status']} at "
            f"{_when(r['requested_date_time'])}, {_count(r['failures'], 'failure')} "
            f"(command {r['command_id']})"
        )
        parts.append(f"<h3>{escape(heading)}</h3>")
        for stream in ("stdout", "stderr"):
            text = r[f"{stream}_tail"]
            if text:
                parts.append(f"<p>Last lines of {stream}:</p>\n<pre>{escape(text)}</pre>")
    return _section("failure-outputs", title, "\n".join(parts))


def _freshness_section(report: StatusReport) -> str:
    body = _table(
        (
            "account",
            "region",
            "health",
            "last run",
            "status",
            "finished",
            "last success",
            "newest invocation",
            "error",
        ),
        [
            (
                r.account_id,
                r.region,
                "ok" if r.healthy else r.problem,
                r.last_run_id,
                r.last_run_status,
                _when(r.last_run_finished_at),
                _when(r.last_success_at),
                _when(r.newest_invocation_at),
                r.last_run_error,
            )
            for r in report.regions
        ],
        bad_rows={n for n, r in enumerate(report.regions) if not r.healthy},
        table_id="freshness-table",
    )
    return _section("freshness", "Data freshness", body)


def _section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{anchor}">\n<h2>{escape(heading)}</h2>\n{body}\n</section>'


def _nothing(message: str) -> str:
    return f'<p class="empty">{escape(message)}</p>'


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    numeric: Collection[int] = (),
    bad_rows: Collection[int] = (),
    table_id: str | None = None,
    empty: str = "None.",
) -> str:
    if not rows:
        return _nothing(empty)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    table = f'<table id="{table_id}">' if table_id else "<table>"
    lines = ['<div class="scroll">', table, f"<tr>{head}</tr>"]
    for n, row in enumerate(rows):
        cells = "".join(
            f'<td class="num">{escape(_text(v))}</td>'
            if i in numeric
            else f"<td>{escape(_text(v))}</td>"
            for i, v in enumerate(row)
        )
        lines.append(f'<tr class="bad">{cells}</tr>' if n in bad_rows else f"<tr>{cells}</tr>")
    lines += ["</table>", "</div>"]
    return "\n".join(lines)


# Charts: hand-written SVG, so the report needs no plotting library.


def line_chart(
    title: str,
    days: Sequence[date],
    series: dict[str, list[float | None]],
    *,
    x_label: str,
    y_label: str,
) -> str:
    """Lines of fractions (0..1) over days, one per series; gaps where a value is None."""
    left, top, bottom = 72, 44, 60
    right = 50 + _text_width(max(series, key=len, default=""))  # the legend, never clipped
    width = max(960, left + 600 + right)
    height = max(360, top + bottom + 18 * len(series))
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * i / (len(days) - 1) if len(days) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - v)

    parts = [_svg_open(width, height, title), _title(width, title)]
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        parts.append(_line(left, y(fraction), left + plot_w, y(fraction), "grid"))
        parts.append(_text_at(left - 8, y(fraction) + 4, f"{fraction:.0%}", "tick", "end"))
    step = max(1, math.ceil(len(days) / 8))
    for i in range(0, len(days), step):
        parts.append(_line(x(i), top + plot_h, x(i), top + plot_h + 5, "axis"))
        parts.append(_text_at(x(i), top + plot_h + 20, days[i].isoformat(), "tick", "middle"))
    parts.append(_axes(left, top, plot_w, plot_h, x_label, y_label))
    for n, (name, values) in enumerate(series.items()):
        colour, dash = PALETTE[n % len(PALETTE)], DASHES[n // len(PALETTE) % len(DASHES)]
        d, pen_down = [], False
        for i, v in enumerate(values):
            if v is None:
                pen_down = False
                continue
            d.append(f"{'L' if pen_down else 'M'}{x(i):.1f},{y(v):.1f}")
            pen_down = True
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<path class="series" d="{" ".join(d)}" fill="none" stroke="{colour}" '
            f'stroke-width="2"{dash_attr}><title>{escape(name)}</title></path>'
        )
        for i, v in enumerate(values):
            if v is not None:
                tip = f"{name} {days[i].isoformat()}: {v:.1%}"
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                    f"<title>{escape(tip)}</title></circle>"
                )
        ly = top + 8 + 18 * n
        lx = left + plot_w + 16
        parts.append(
            f'<path d="M{lx},{ly} L{lx + 22},{ly}" stroke="{colour}" stroke-width="3"{dash_attr}/>'
        )
        parts.append(_text_at(lx + 28, ly + 4, name, "tick", "start"))
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    title: str, labels: Sequence[str], values: Sequence[int], *, x_label: str, y_label: str
) -> str:
    """Horizontal bars of counts, one per label, in the given order."""
    top, bottom, row = 64, 60, 26
    left = max(160, 16 + _text_width(max(labels, key=len, default="")))  # labels never clipped
    right = 16 + _text_width(str(max(values, default=0)))
    width = max(960, left + 500 + right)
    height = top + bottom + row * len(labels)
    plot_w, plot_h = width - left - right, row * len(labels)
    ticks = _ticks(max(values, default=0))

    def x(v: float) -> float:
        return left + plot_w * v / ticks[-1]

    parts = [_svg_open(width, height, title), _title(width, title)]
    for t in ticks:
        parts.append(_line(x(t), top, x(t), top + plot_h, "grid"))
        parts.append(_text_at(x(t), top + plot_h + 18, f"{t:g}", "tick", "middle"))
    for n, (label, value) in enumerate(zip(labels, values, strict=True)):
        y0 = top + row * n
        parts.append(
            f'<rect class="bar" x="{left}" y="{y0 + 4}" width="{x(value) - left:.1f}" '
            f'height="{row - 8}" fill="{PALETTE[0]}"><title>{escape(label)}: {value}</title></rect>'
        )
        parts.append(_text_at(left - 8, y0 + row / 2 + 4, label, "tick", "end"))
        parts.append(_text_at(x(value) + 6, y0 + row / 2 + 4, str(value), "tick", "start"))
    parts.append(_axes(left, top, plot_w, plot_h, x_label, y_label, rotate_y_label=False))
    parts.append("</svg>")
    return "\n".join(parts)


def _svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}">'
    )


def _title(width: int, title: str) -> str:
    return _text_at(width / 2, 24, title, "chart-title", "middle")


def _axes(
    left: float,
    top: float,
    plot_w: float,
    plot_h: float,
    x_label: str,
    y_label: str,
    *,
    rotate_y_label: bool = True,
) -> str:
    """Both axis lines and their labels; a horizontal y label sits above the category names."""
    mid_y = top + plot_h / 2
    y_text = (
        f'<text class="axis-label" x="20" y="{mid_y:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 20 {mid_y:.1f})">{escape(y_label)}</text>'
        if rotate_y_label
        else _text_at(left - 8, top - 10, y_label, "axis-label", "end")
    )
    return "\n".join(
        [
            _line(left, top, left, top + plot_h, "axis"),
            _line(left, top + plot_h, left + plot_w, top + plot_h, "axis"),
            _text_at(left + plot_w / 2, top + plot_h + 44, x_label, "axis-label", "middle"),
            y_text,
        ]
    )


def _line(x1: float, y1: float, x2: float, y2: float, cls: str) -> str:
    return f'<line class="{cls}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'


def _text_at(x: float, y: float, text: str, cls: str, anchor: str) -> str:
    return (
        f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def _ticks(maximum: float) -> list[float]:
    """0 up to a round number at or above `maximum`, in at most 6 round steps."""
    if maximum <= 0:
        return [0, 1]
    magnitude = 10 ** math.floor(math.log10(maximum))
    step = next(
        m * magnitude for m in (0.1, 0.2, 0.5, 1, 2, 5, 10) if maximum / (m * magnitude) <= 5
    )
    step = max(step, 1)
    return [step * n for n in range(math.ceil(maximum / step) + 1)]


# Values as text


def _when(moment: datetime | None) -> str:
    return "" if moment is None else as_utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _age(days: float | None) -> str:
    return "never" if days is None else f"{days:.1f} days"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


TICK_CHAR_WIDTH = 7.2
"""An upper bound of a character's width in the 11 px tick font (wide glyphs included)."""


def _text_width(text: str) -> int:
    """Room for `text` in the tick font: the charts size their margins by it."""
    return math.ceil(len(text) * TICK_CHAR_WIDTH)
