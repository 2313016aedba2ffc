"""Write a year of lake history directly as Delta tables, as 365 nightly runs would leave it.

What the pipeline keeps after a year of nights: each table a Delta table in
the project's schemas (`pipeline.schema`, created by `Lake.create` and
`Lake.ensure_tables`, so `lake.json` and the table layout are the real
ones), one row per key in its latest state, and partitions compacted by
optimize (about one file per table and account/region/month). Beside
invocations and plugins: each night's commands (ListCommands rows), the
latest inventory snapshot per account and region (a run's snapshot replaces
the previous one), and one ledger row per night and region.

Invocations still open (`Delayed`) when they left SSM's 30-day retention are
marked `expired_while_open_at`, as the nightly follow-up would have marked
them; the ones still inside the retention stay open, and a night follows them.

Full scale is 10 accounts x 4 regions, 5 million invocations and 15 million
plugin rows over 365 days; `--scale` multiplies the volume (the partition
count does not change). Each account/region is written in one append per
table (a Delta commit), so memory stays at one account/region's year.

    python -m benchmarks.generate_lake --out /tmp/ssm-lake --scale 0.1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.commit import metadata, writer_properties
from pipeline.lake import FORMAT_VERSION, Lake
from pipeline.schema import (
    COMMAND_PLUGINS,
    COMMANDS,
    INGEST_RUNS,
    INVOCATIONS,
    MANAGED_INSTANCES,
    TABLES,
    TIMESTAMP,
    TableSpec,
)

from . import synthetic

FULL_INVOCATIONS = 5_000_000
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2")
RETENTION_DAYS = 30
GENERATOR = 2
"""Bumped when the lake this writes changes, so that a lake kept in --work is rebuilt."""


@dataclass(frozen=True)
class LakeSpec:
    scale: float = 1.0
    accounts: int = 10
    regions: tuple[str, ...] = REGIONS
    days: int = 365
    last_day: str = "2026-06-29"
    seed: int = 7

    @property
    def per_day(self) -> int:
        partitions = self.accounts * len(self.regions) * self.days
        return max(1, round(FULL_INVOCATIONS * self.scale / partitions))

    @property
    def invocations(self) -> int:
        return self.per_day * self.accounts * len(self.regions) * self.days

    def account_ids(self) -> list[str]:
        """Twelve digits; the first has a leading zero, which must survive."""
        return [f"{12345678901 + 111_111_111 * i:012d}" for i in range(self.accounts)]

    def nights(self) -> list[date]:
        last = date.fromisoformat(self.last_day)
        return [last - timedelta(days=n) for n in range(self.days - 1, -1, -1)]


@dataclass(frozen=True)
class Night:
    """The run that ingests `day`, at 02:00 UTC the day after."""

    day: date
    run_id: str
    ingested_ms: int

    @classmethod
    def of(cls, day: date, account: str, seed: int) -> Night:
        at = datetime(day.year, day.month, day.day, 2, tzinfo=UTC) + timedelta(days=1)
        tag = hashlib.sha256(f"{seed}:{account}:{day}".encode()).hexdigest()[:8]
        return cls(day, f"{at:%Y%m%dT%H%M%SZ}-{tag}", int(at.timestamp() * 1000))


def complete(
    spec: TableSpec, drawn: pa.Table, account: str, region: str, night: Night, **extra: pa.Array
) -> pa.Table:
    """A drawn table in `spec`'s Delta schema: partition, lineage and kept columns added."""
    n = drawn.num_rows
    given = {
        "account_id": pa.repeat(pa.scalar(account), n),
        "region": pa.repeat(pa.scalar(region), n),
        "run_id": pa.repeat(pa.scalar(night.run_id), n),
        "ingested_at": pa.array(np.full(n, night.ingested_ms), pa.int64()).cast(TIMESTAMP),
        **extra,
    }
    if spec.month_from is not None:
        moment = drawn.column(spec.month_from).cast(pa.timestamp("ms"))
        given["requested_month"] = pc.strftime(moment, "%Y-%m")
    columns = []
    for field in spec.table_schema:
        if field.name in given:
            column = given[field.name]
        elif field.name in drawn.column_names:
            column = drawn.column(field.name)
        else:
            column = pa.nulls(n, field.type)
        columns.append(column.cast(field.type) if column.type != field.type else column)
    return pa.Table.from_arrays(columns, schema=spec.table_schema)


def _expired(invocations: pa.Table, last_day: date) -> pa.Array:
    """When the nightly follow-up found each open invocation gone from the API (else null)."""
    requested = invocations.column("requested_date_time").cast(pa.int64()).to_numpy()
    is_open = pc.equal(invocations.column("status"), "Delayed").to_numpy(zero_copy_only=False)
    cutoff = datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC)
    cutoff_ms = int((cutoff - timedelta(days=RETENTION_DAYS)).timestamp() * 1000)
    gone = is_open & (requested < cutoff_ms)
    at = requested + (RETENTION_DAYS + 1) * synthetic.DAY_MS
    return pa.array(at, pa.int64(), mask=~gone).cast(TIMESTAMP)


def _ledger_row(night: Night, account: str, region: str, day: pa.Table) -> dict[str, object]:
    at = datetime.fromtimestamp(night.ingested_ms / 1000, UTC)
    newest = day["requested_date_time"][0].as_py()
    return {
        "run_id": night.run_id, "account_id": account, "region": region, "started_at": at,
        "finished_at": at + timedelta(seconds=40), "window_start": newest - timedelta(days=2),
        "window_end": newest, "pages": -(-day.num_rows // 50), "invocations": day.num_rows,
        "plugins": day.num_rows * synthetic.PLUGINS_PER_INVOCATION, "quarantined": 0,
        "status": "succeeded", "error": None, "watermark": newest, "purged_months": None,
    }  # fmt: skip


def generate_region(spec: LakeSpec, lake: Lake, account: str, region: str) -> None:
    """One account/region's year: one append (one Delta commit) per table."""
    seed = int(hashlib.sha256(f"{spec.seed}:{account}:{region}".encode()).hexdigest()[:12], 16)
    rng = np.random.default_rng(seed)
    fleet, texts = synthetic.fleet(rng, spec.per_day), synthetic.outputs(rng)
    tables: dict[str, list[pa.Table]] = {"invocations": [], "command_plugins": [], "commands": []}
    ledger = []
    night = None
    for day in spec.nights():
        night = Night.of(day, account, spec.seed)
        invocations, plugins, commands = synthetic.day_tables(rng, fleet, texts, day, spec.per_day)
        tables["invocations"].append(complete(INVOCATIONS, invocations, account, region, night))
        tables["command_plugins"].append(complete(COMMAND_PLUGINS, plugins, account, region, night))
        tables["commands"].append(complete(COMMANDS, commands, account, region, night))
        ledger.append(_ledger_row(night, account, region, invocations))
    assert night is not None
    inventory = synthetic.snapshot(np.random.default_rng(seed + 1), fleet, night.ingested_ms)
    last_day = date.fromisoformat(spec.last_day)
    for table_spec in (COMMAND_PLUGINS, INVOCATIONS, COMMANDS):
        data = pa.concat_tables(tables.pop(table_spec.name)[::-1])  # newest first
        if table_spec is INVOCATIONS:
            index = data.schema.get_field_index("expired_while_open_at")
            data = data.set_column(index, "expired_while_open_at", _expired(data, last_day))
        _append(lake, table_spec, data, night)
    _append(
        lake,
        MANAGED_INSTANCES,
        complete(MANAGED_INSTANCES, inventory, account, region, night),
        night,
    )
    _append(lake, INGEST_RUNS, pa.Table.from_pylist(ledger, schema=INGEST_RUNS.table_schema), night)


def _append(lake: Lake, spec: TableSpec, data: pa.Table, night: Night) -> None:
    from deltalake import write_deltalake

    write_deltalake(
        lake.table(spec),
        data,
        mode="append",
        writer_properties=writer_properties(),
        commit_properties=metadata(night.run_id, "generate"),
    )


def generate(out: Path, spec: LakeSpec) -> Path:
    """The lake at `out`, reused as it is when `out` holds one of the same spec."""
    marker = out.parent / f"{out.name}.generated.json"
    # The tables' schemas too: a lake kept from before a column was added would have the
    # night benchmark's run add it (rewriting that table) and time that.
    schemas = hashlib.sha256("".join(str(t.table_schema) for t in TABLES).encode()).hexdigest()
    wanted = json.dumps(
        {**asdict(spec), "lake_format": FORMAT_VERSION, "generator": GENERATOR,
         "schemas": schemas[:16]},
        sort_keys=True,
    )  # fmt: skip
    if marker.is_file() and marker.read_text() == wanted and out.is_dir():
        return out
    marker.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    lake = Lake.create(out)
    with lake.lock():
        lake.ensure_tables(run_id="generate")
        for account in spec.account_ids():
            for region in spec.regions:
                generate_region(spec, lake, account, region)
    marker.write_text(wanted)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the lake's directory")
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 5M invocations")
    args = parser.parse_args(argv)
    print(generate(args.out, LakeSpec(scale=args.scale)))


if __name__ == "__main__":
    main()
