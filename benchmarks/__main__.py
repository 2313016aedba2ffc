"""`python -m benchmarks`: run the benchmarks and print one results table.

The environment is set here, at the edge: dummy AWS credentials (every
endpoint is local), no telemetry, and a throwaway Prefect home so the
temporary Prefect server never shares a database with another process.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from .results import Row, render

BENCHMARKS = ("extract", "throttle", "memory", "queries")


def _environment(scratch: Path) -> None:
    defaults = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "PREFECT_HOME": str(scratch / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_PROFILE", None)


def _machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, {memory:.0f} GB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help="comma-separated subset of: %(default)s"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="volume of every benchmark (default %(default)s)"
    )
    parser.add_argument(
        "--query-scale",
        type=float,
        default=None,
        help="volume of the query lakes (default: --scale)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="extraction rounds, best kept")
    parser.add_argument(
        "--throttle-runs",
        type=int,
        default=3,
        help="throttle: flows timed, each in a fresh process (default %(default)s)",
    )
    parser.add_argument("--fetch", action="store_true", help="queries: also fetch every column")
    parser.add_argument(
        "--query-limit",
        type=float,
        default=60.0,
        help="seconds after which a query over the uncompacted lake is stopped (default %(default)s)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ssm-etl-bench",
        help="where generated lakes are kept and reused (default %(default)s)",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    _environment(Path(tempfile.mkdtemp(prefix="scratch-", dir=args.work)))

    rows: list[Row] = []
    for name in chosen:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += _run(name, args)
    print(f"machine: {_machine()}; scale {args.scale}")
    print(render(rows))
    return 0


def _run(name: str, args: argparse.Namespace) -> list[Row]:
    if name == "extract":
        from . import extraction

        return extraction.run(args.scale, args.rounds)
    if name == "throttle":
        from . import throttle

        return throttle.run(args.scale, args.throttle_runs)
    if name == "memory":
        from . import memory

        return memory.run(args.scale)
    from . import queries

    scale = args.query_scale if args.query_scale is not None else args.scale
    return queries.run(scale, args.work / "lakes", fetch=args.fetch, limit=args.query_limit)


if __name__ == "__main__":
    sys.exit(main())
