"""Write a year of lake history directly, as nightly runs would leave it, in two shapes.

- `compacted`: what the pipeline keeps: one file per table per
  account/region/month, sorted newest first, holding the latest version of
  each invocation (the compactor's output).
- `uncompacted`: what 365 nightly commits leave without compaction: one
  file per partition a night touched, each night re-reading a `lookback` of
  earlier days (the default 48 hours), so an invocation is stored
  lookback + 1 times and the views' dedup does the rest.

Beside invocations and plugins, each night's commands (ListCommands rows)
and an inventory snapshot per account and region (DescribeInstanceInformation,
kept every night as the pipeline keeps it: 3.7 million rows after a year).

Full scale is 10 accounts x 4 regions, 5 million invocations and 15 million
plugin rows over 365 days; `--scale` multiplies the volume (the file count
of each shape does not change). Generation streams one account/region at a
time, so memory stays at a month of one partition.

    python -m benchmarks.generate_lake --out /tmp/ssm-lakes --scale 0.1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.lake import FORMAT_VERSION, Lake
from pipeline.schema import (
    COMMAND_PLUGINS,
    COMMANDS,
    INGEST_RUNS,
    INGEST_RUNS_SCHEMA,
    INVOCATIONS,
    MANAGED_INSTANCES,
    TIMESTAMP,
    TableSpec,
)

from . import synthetic

FULL_INVOCATIONS = 5_000_000
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2")
SHAPES = ("compacted", "uncompacted")
TABLES_WRITTEN = ["invocations", "command_plugins", "commands", "managed_instances", "ingest_runs"]
"""In the marker, so that lakes from a generator that wrote fewer tables are rebuilt."""


@dataclass(frozen=True)
class LakeSpec:
    scale: float = 1.0
    accounts: int = 10
    regions: tuple[str, ...] = REGIONS
    days: int = 365
    last_day: str = "2026-06-29"
    lookback_days: int = 2
    seed: int = 7

    @property
    def per_day(self) -> int:
        partitions = self.accounts * len(self.regions) * self.days
        return max(1, round(FULL_INVOCATIONS * self.scale / partitions))

    def account_ids(self) -> list[str]:
        """Twelve digits; the first has a leading zero, which must survive."""
        return [f"{12345678901 + 111_111_111 * i:012d}" for i in range(self.accounts)]

    def nights(self) -> list[date]:
        last = date.fromisoformat(self.last_day)
        return [last - timedelta(days=n) for n in range(self.days - 1, -1, -1)]


@dataclass(frozen=True)
class Night:
    """The run that ingests `day` and the lookback before it, at 02:00 UTC the day after."""

    day: date
    run_id: str
    ingested_ms: int

    @classmethod
    def of(cls, day: date, account: str, seed: int) -> Night:
        at = datetime(day.year, day.month, day.day, 2, tzinfo=UTC) + timedelta(days=1)
        tag = hashlib.sha256(f"{seed}:{account}:{day}".encode()).hexdigest()[:8]
        return cls(day, f"{at:%Y%m%dT%H%M%SZ}-{tag}", int(at.timestamp() * 1000))

    def stamp(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        table = table.append_column("run_id", pa.array([self.run_id] * n, pa.string()))
        ingested = pa.array(np.full(n, self.ingested_ms), pa.int64())
        return table.append_column("ingested_at", ingested.cast(TIMESTAMP))


@dataclass
class Day:
    day: date
    invocations: pa.Table
    plugins: pa.Table
    commands: pa.Table
    inventory: pa.Table
    """The managed instances as the night that first reads `day` lists them."""


class PartitionWriter:
    """Writes month files for one account/region of one lake, in the lake's layout."""

    def __init__(self, root: Path, account: str, region: str) -> None:
        self.root, self.account, self.region = root, account, region
        self.files = 0

    def write(self, days: list[Day], night: Night, suffix: str = "") -> None:
        """One file per table and month among `days` (given newest first), stamped by `night`."""
        months: dict[str, list[Day]] = {}
        for item in days:
            months.setdefault(f"{item.day:%Y-%m}", []).append(item)
        for month, group in months.items():
            for spec, tables in (
                (COMMAND_PLUGINS, [d.plugins for d in group]),
                (INVOCATIONS, [d.invocations for d in group]),
                (COMMANDS, [d.commands for d in group]),
            ):
                self._write(spec, month, night.stamp(pa.concat_tables(tables)), night, suffix)

    def snapshots(self, tables: list[pa.Table], night: Night, suffix: str = "") -> None:
        """Inventory snapshots (already stamped), one file in the account/region partition."""
        self._write(MANAGED_INSTANCES, None, pa.concat_tables(tables), night, suffix)

    def _write(
        self, spec: TableSpec, month: str | None, table: pa.Table, night: Night, suffix: str
    ) -> None:
        directory = self.root / spec.name / self._partition(month)
        directory.mkdir(parents=True, exist_ok=True)
        name = f"part-{night.run_id}-{suffix}{uuid.uuid4().hex[:8]}.parquet"
        pq.write_table(table.cast(spec.file_schema), directory / name, compression="zstd")
        self.files += 1

    def ledger(self, rows: list[dict[str, object]], run_id: str) -> None:
        directory = self.root / INGEST_RUNS.name / self._partition(None)
        directory.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(rows, schema=INGEST_RUNS_SCHEMA)
        name = f"part-{run_id}-{uuid.uuid4().hex[:8]}.parquet"
        pq.write_table(table.select(INGEST_RUNS.file_schema.names), directory / name)
        self.files += 1

    def _partition(self, month: str | None) -> Path:
        path = Path(f"account_id={self.account}", f"region={self.region}")
        return path / f"requested_month={month}" if month else path


def _history(spec: LakeSpec, account: str, region: str) -> Iterator[Day]:
    seed = int(hashlib.sha256(f"{spec.seed}:{account}:{region}".encode()).hexdigest()[:12], 16)
    rng = np.random.default_rng(seed)
    fleet, texts = synthetic.fleet(rng, spec.per_day), synthetic.outputs(rng)
    inventory_rng = np.random.default_rng(seed + 1)  # the invocations stay as without it
    for day in spec.nights():
        night = Night.of(day, account, spec.seed)
        listed = night.stamp(synthetic.snapshot(inventory_rng, fleet, night.ingested_ms))
        yield Day(day, *synthetic.day_tables(rng, fleet, texts, day, spec.per_day), listed)


def _ledger_row(night: Night, account: str, region: str, days: list[Day]) -> dict[str, object]:
    at = datetime.fromtimestamp(night.ingested_ms / 1000, UTC)
    invocations = sum(d.invocations.num_rows for d in days)
    newest = days[0].invocations["requested_date_time"][0].as_py()
    return {
        "run_id": night.run_id, "account_id": account, "region": region, "started_at": at,
        "finished_at": at + timedelta(seconds=40), "window_start": newest - timedelta(days=2),
        "window_end": newest, "pages": -(-invocations // 50), "invocations": invocations,
        "plugins": sum(d.plugins.num_rows for d in days), "quarantined": 0,
        "status": "succeeded", "error": None, "watermark": newest, "purged_months": None,
    }  # fmt: skip


def generate_region(spec: LakeSpec, roots: dict[str, Path], account: str, region: str) -> None:
    compacted = PartitionWriter(roots["compacted"], account, region)
    nightly = PartitionWriter(roots["uncompacted"], account, region)
    window: deque[Day] = deque(maxlen=spec.lookback_days + 1)
    month: list[Day] = []
    ledger: list[dict[str, object]] = []
    inventory: list[pa.Table] = []  # every night's snapshot, kept in one file as compaction does

    def settle(day: Day, last_seen: Night) -> None:
        """`day` will not be re-read: its latest version joins the compacted month."""
        if month and f"{month[0].day:%Y-%m}" != f"{day.day:%Y-%m}":
            compacted.write(month[::-1], last_seen, "c")
            month.clear()
        month.append(day)

    night = None
    for day in _history(spec, account, region):
        if len(window) == window.maxlen:
            settle(window[0], night)  # type: ignore[arg-type]
        window.append(day)
        night = Night.of(day.day, account, spec.seed)
        read = list(window)[::-1]
        nightly.write(read, night)
        nightly.snapshots([day.inventory], night)
        inventory.insert(0, day.inventory)
        ledger.append(_ledger_row(night, account, region, read))
        nightly.ledger([ledger[-1]], night.run_id)
    for day in window:
        settle(day, night)  # type: ignore[arg-type]
    compacted.write(month[::-1], night, "c")  # type: ignore[arg-type]
    compacted.snapshots(inventory, night, "c")  # type: ignore[arg-type]
    compacted.ledger(ledger, night.run_id)  # type: ignore[union-attr]


def generate(out: Path, spec: LakeSpec) -> dict[str, Path]:
    """Both shapes under `out`; reused as they are when `out` holds the same spec."""
    roots = {shape: out / shape for shape in SHAPES}
    marker = out / "generated.json"
    wanted = json.dumps(
        {**asdict(spec), "lake_format": FORMAT_VERSION, "tables": TABLES_WRITTEN}, sort_keys=True
    )
    if marker.is_file() and marker.read_text() == wanted:
        return roots
    shutil.rmtree(out, ignore_errors=True)
    for root in roots.values():
        Lake.create(root)
    for account in spec.account_ids():
        for region in spec.regions:
            generate_region(spec, roots, account, region)
    marker.write_text(wanted)
    return roots


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for both lakes")
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 5M invocations")
    parser.add_argument("--lookback-days", type=int, default=2)
    args = parser.parse_args(argv)
    roots = generate(args.out, LakeSpec(scale=args.scale, lookback_days=args.lookback_days))
    for shape, root in roots.items():
        print(f"{shape}: {root}")


if __name__ == "__main__":
    main()
