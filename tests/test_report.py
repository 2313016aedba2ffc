"""The HTML report: self-contained, real charts, golden tables, renders in a browser."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.flatten import Lineage, flatten_source
from pipeline.lake import Lake
from pipeline.report import PALETTE, build_report
from pipeline.schema import MANAGED_INSTANCES
from tests.lakes import ACCOUNT, at, commit_rows, ingest, invocation, plugin, record_run

OTHER = "210987654321"
EU, US = "eu-west-1", "us-east-1"
PATCH, SHELL = "AWS-RunPatchBaseline", "AWS-RunShellScript"
START, END = date(2024, 3, 1), date(2024, 3, 10)
AS_OF = at("2024-03-10T12:00:00")
CHROMIUM = Path("/usr/bin/chromium")
VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "source", "wbr"}

# fmt: off
EU_RECORDS = [
    invocation("p-0220", "i-04", at("2024-02-20T02:00:00"), "Success", document=PATCH),
    invocation("p-0301", "i-02", at("2024-03-01T02:00:00"), "Success", document=PATCH),
    invocation("s-0305", "i-01", at("2024-03-05T10:00:00"), "Success"),
    invocation("s-0305", "i-02", at("2024-03-05T10:00:00"), "Failed", plugins=[
        plugin("build", "Failed", 2, output="make: *** error"),
    ]),
    invocation("s-0305", "i-03", at("2024-03-05T10:00:00"), "Failed", plugins=[
        plugin("build", "Failed", 2, output="make: *** error"),
    ]),
    invocation("s-0306", "i-03", at("2024-03-06T10:00:00"), "TimedOut", plugins=[
        plugin("aws:runShellScript", "TimedOut", -1),
    ]),
    invocation("p-0308", "i-01", at("2024-03-08T02:00:00"), "Success", document=PATCH),
    invocation("p-0308", "i-02", at("2024-03-08T02:00:00"), "Failed", document=PATCH,
               instance_name="web-02", plugins=[
        plugin("PatchLinux", "Failed", 1, output="yum: no space left"),
    ]),
    invocation("s-0309", "i-03", at("2024-03-09T10:00:00"), "Failed", plugins=[
        plugin("build", "Failed", 2),
    ]),
    invocation("p-0309", "i-04", at("2024-03-09T02:00:00"), "TimedOut", document=PATCH,
               details="DeliveryTimedOut"),
]
US_RECORDS = [
    invocation("p-0306", "i-06", at("2024-03-06T02:00:00"), "Failed", document=PATCH,
               details="Undeliverable"),
    invocation("s-0307", "i-05", at("2024-03-07T10:00:00"), "Success"),
    invocation("s-0307", "i-06", at("2024-03-07T10:00:00"), "Failed", details="Undeliverable"),
    invocation("p-0309", "i-05", at("2024-03-09T02:00:00"), "Success", document=PATCH),
    invocation("p-0311", "i-06", at("2024-03-11T02:00:00"), "Success", document=PATCH),  # after as_of
]
# fmt: on

NON_COMPLIANT = [
    # account, region, instance, name, latest patch run, status, details, last success, its age
    (
        ACCOUNT,
        EU,
        "i-02",
        "web-02",
        "2024-03-08 02:00 UTC",
        "Failed",
        "Failed",
        "2024-03-01 02:00 UTC",
        "9.4 days",
    ),
    (ACCOUNT, EU, "i-03", "", "", "never patched", "", "", "never"),
    (
        ACCOUNT,
        EU,
        "i-04",
        "",
        "2024-03-09 02:00 UTC",
        "TimedOut",
        "DeliveryTimedOut",
        "2024-02-20 02:00 UTC",
        "19.4 days",
    ),
    (OTHER, US, "i-06", "", "2024-03-06 02:00 UTC", "Failed", "Undeliverable", "", "never"),
]


class Document(HTMLParser):
    """What the tests look at: charts, attributes pointing anywhere, and tables by id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[str] = []
        self.charts: list[dict[str, list[str]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._stack: list[tuple[str, dict[str, str | None]]] = []
        self._table: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        attributes = dict(attrs)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action")]
        if tag == "svg":
            self.charts.append({"marks": [], "titles": [], "axis_labels": [], "mark_titles": []})
        elif self.charts and self._inside("svg") and tag in ("path", "rect", "circle"):
            self.charts[-1]["marks"].append(tag)
        if tag == "table":
            self._table = attributes.get("id") or f"table-{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        if tag not in VOID:
            self._stack.append((tag, attributes))
        self._text = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            open_tag, attributes = self._stack.pop()
            if open_tag == tag:
                break
        else:
            return
        text = "".join(self._text).strip()
        if tag == "text" and self.charts:
            kind = attributes.get("class")
            if kind == "chart-title":
                self.charts[-1]["titles"].append(text)
            elif kind == "axis-label":
                self.charts[-1]["axis_labels"].append(text)
        elif tag == "title" and self._inside("svg"):
            self.charts[-1]["mark_titles"].append(text)
        elif tag in ("td", "th") and self._table:
            self.tables[self._table][-1].append(text)
        elif tag == "table":
            self._table = None
        self._text = []

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def _inside(self, tag: str) -> bool:
        return any(t == tag for t, _ in self._stack)


def parse(html: str) -> Document:
    document = Document()
    document.feed(html)
    document.close()
    return document


def run(lake: Lake, account: str, region: str, finished: datetime, status: str) -> None:
    record_run(
        lake,
        {
            "run_id": f"run-{finished:%m%d}",
            "account_id": account,
            "region": region,
            "started_at": finished - timedelta(minutes=3),
            "finished_at": finished,
            "pages": 1,
            "invocations": 0,
            "plugins": 0,
            "quarantined": 0,
            "status": status,
            "error": None if status == "succeeded" else "ThrottlingException: rate exceeded",
        },
    )


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lake = Lake.create(tmp_path / "lake")
    ingest(lake, EU_RECORDS, region=EU)
    ingest(lake, US_RECORDS, account=OTHER, region=US)
    run(lake, ACCOUNT, EU, at("2024-03-10T01:00:00"), "succeeded")
    run(lake, OTHER, US, at("2024-03-09T01:00:00"), "succeeded")
    run(lake, OTHER, US, at("2024-03-10T01:00:00"), "failed")
    return lake


@pytest.fixture
def html(lake: Lake) -> str:
    return build_report(lake, start=START, end=END, now=AS_OF)


def test_every_chart_is_inline_svg_with_marks_and_axis_labels(html: str) -> None:
    document = parse(html)
    assert [c["titles"] for c in document.charts] == [
        ["Daily success rate per document"],
        ["Failed and timed-out invocations by account and region"],
        ["Top 4 failing instances"],
        ["Top 5 failing plugins (first failed plugin of each failed invocation)"],
    ]
    for chart in document.charts:
        assert {"path", "rect"} & set(chart["marks"]), chart
        assert len(chart["axis_labels"]) == 2 and all(chart["axis_labels"]), chart


def test_every_id_is_unique(html: str) -> None:
    ids = re.findall(r'\bid="([^"]*)"', html)
    assert len(ids) >= 8 and len(ids) == len(set(ids)), sorted(ids)


def test_no_network_assets_and_no_scripts(html: str) -> None:
    document = parse(html)
    assert "http://" not in html and "https://" not in html
    assert all(not link.startswith("//") for link in document.links), document.links
    assert "script" not in document.tags and "link" not in document.tags
    assert "iframe" not in document.tags and "img" not in document.tags


def test_non_compliant_instances_are_listed_with_why(html: str) -> None:
    table = parse(html).tables["non-compliant"]
    assert [tuple(row) for row in table[1:]] == NON_COMPLIANT


def test_instances_gone_from_the_inventory_are_not_listed(lake: Lake) -> None:
    """With an inventory snapshot, retired i-06 drops out and never-run i-07 appears."""
    lineage = Lineage(OTHER, US, "run-inventory", 1_710_000_000_000)
    inventory = [
        {"InstanceId": instance_id, "PingStatus": "Online", "PlatformType": "Linux"}
        for instance_id in ("i-05", "i-07")
    ]
    rows = flatten_source("managed_instances", inventory, lineage)[0]
    commit_rows(lake, [(MANAGED_INSTANCES, rows)], run_id="run-inventory", account=OTHER, region=US)
    html = build_report(lake, start=START, end=END, now=AS_OF)
    table = parse(html).tables["non-compliant"]
    assert [tuple(row) for row in table[1:]] == [
        *NON_COMPLIANT[:3],
        (OTHER, US, "i-07", "", "", "never patched", "", "", "never"),
    ]


def test_daily_success_has_a_line_per_document(html: str) -> None:
    chart = parse(html).charts[0]
    assert chart["marks"].count("path") >= 2
    assert {PATCH, SHELL} <= set(chart["mark_titles"])
    # one point per day with finished runs: shell on 03-05 (1 of 3), 03-06, 03-07, 03-09
    assert f"{SHELL} 2024-03-05: 33.3%" in chart["mark_titles"]
    assert f"{PATCH} 2024-03-09: 50.0%" in chart["mark_titles"]
    assert not any("2024-03-11" in title for title in chart["mark_titles"])


def test_failure_bars_by_account_and_region(html: str) -> None:
    bars = parse(html).charts[1]["mark_titles"]
    assert bars == [f"{ACCOUNT} {EU}: 6", f"{OTHER} {US}: 2"]


def test_top_failing_instances(html: str) -> None:
    table = parse(html).tables["top-instances-table"]
    assert table[0][:5] == ["account", "region", "instance", "name", "failures"]
    assert [(row[1], row[2], row[4]) for row in table[1:]] == [
        (EU, "i-03", "3"),
        (EU, "i-02", "2"),
        (US, "i-06", "2"),
        (EU, "i-04", "1"),
    ]


def test_top_failing_plugins(html: str) -> None:
    table = parse(html).tables["top-plugins-table"]
    assert [tuple(row[:4]) for row in table[1:]] == [
        (SHELL, "build", "2", "3"),
        (PATCH, "(no plugin ran)", "", "2"),
        (PATCH, "PatchLinux", "1", "1"),
        (SHELL, "(no plugin ran)", "", "1"),
        (SHELL, "aws:runShellScript", "-1", "1"),
    ]


def test_freshness_flags_the_failed_region(html: str) -> None:
    table = parse(html).tables["freshness-table"]
    assert [(row[0], row[1], row[2], row[4]) for row in table[1:]] == [
        (ACCOUNT, EU, "ok", "succeeded"),
        (OTHER, US, "last run failed", "failed"),
    ]


def test_empty_lake_says_no_data_yet(tmp_path: Path) -> None:
    html = build_report(Lake.create(tmp_path / "lake"), start=START, end=END, now=AS_OF)
    document = parse(html)
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "No data yet" in html
    assert document.charts == []


def test_range_without_data_says_so(lake: Lake) -> None:
    html = build_report(lake, start=date(2023, 1, 1), end=date(2023, 1, 31), now=AS_OF)
    assert "No finished invocations in this range." in html
    assert "No failures in this range." in html
    assert "No invocations in this range." in html
    assert parse(html).charts == []
    assert [row[2] for row in parse(html).tables["non-compliant"][1:]] == [
        "i-02",
        "i-03",
        "i-04",
        "i-06",
    ]


def test_reversed_range_is_refused(lake: Lake) -> None:
    with pytest.raises(ConfigError, match="after"):
        build_report(lake, start=END, end=START)


def _chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        pytest.skip("install Debian's chromium package (apt-get install chromium) to run this test")
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,2000",
            *extra,
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    return done


def test_renders_in_headless_chromium(html: str, tmp_path: Path) -> None:
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    page.write_text(html, encoding="utf-8")
    _chromium(tmp_path, page, f"--screenshot={shot}")
    colours = png_colours(shot.read_bytes())
    assert len(colours) > 10
    bar = tuple(int(PALETTE[0][i : i + 2], 16) for i in (1, 3, 5))
    assert bar in colours, "the bar charts' colour is not on screen"


MEASURE = """<script>
const clipped = [];
for (const svg of document.querySelectorAll("svg")) {
  const box = svg.getBoundingClientRect();  // on screen: rotated labels included
  for (const text of svg.querySelectorAll("text")) {
    const b = text.getBoundingClientRect();
    if (b.left < box.left - 0.5 || b.top < box.top - 0.5 || b.right > box.right + 0.5
        || b.bottom > box.bottom + 0.5) clipped.push(text.textContent);
  }
}
document.body.setAttribute("data-clipped", JSON.stringify(clipped));
</script>"""


def test_no_chart_label_is_cut_off(tmp_path: Path) -> None:
    """Long document and plugin names are drawn whole, inside their chart (measured by a browser)."""
    lake = Lake.create(tmp_path / "lake")
    long_document = "Acme-QuarterlyHardeningBaselineForThePciCardholderDataEnvironment"
    long_plugin = "applyCisLevelTwoBenchmarkControlsAndRebootWhenRequired"
    ingest(lake, [
        invocation(f"c-{n}", f"i-{n:08x}", at("2024-03-05T10:00:00"), "Failed",
                   document=long_document, instance_name=f"{long_document.lower()}-{n}",
                   plugins=[plugin(long_plugin, "Failed", 1234567)])
        for n in range(3)
    ])  # fmt: skip
    html = build_report(lake, start=START, end=END, now=AS_OF)
    assert "…" not in html
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _chromium(tmp_path, page, "--dump-dom").stdout
    found = re.search(r'data-clipped="([^"]*)"', dom)
    assert found, "the measuring script did not run"
    assert json.loads(found.group(1).replace("&quot;", '"')) == []
    for name in (long_document, long_plugin):
        assert name in dom


def png_colours(data: bytes) -> set[tuple[int, ...]]:
    """The distinct RGB colours of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = {}, 8
    idat = b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IDAT":
            idat += body
        chunks.setdefault(kind, body)
        offset += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and colour_type in (2, 6) and interlace == 0
    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    previous = bytearray(stride)
    colours: set[tuple[int, ...]] = set()
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + predictor) & 0xFF
        colours.update(tuple(line[i : i + 3]) for i in range(0, stride, channels))
        previous = line
    return colours
