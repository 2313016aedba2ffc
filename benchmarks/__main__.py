"""`python -m benchmarks`: run the benchmarks and print one results table.

The environment is set here, at the edge: dummy AWS credentials (every
endpoint is local), no telemetry, and a throwaway Prefect home so the
Prefect servers the CLI starts never share a database with another process.
Every subprocess (the CLI, the baseline) inherits it.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from .results import Row, render
from .timing import timed

BENCHMARKS = ("run", "throttle", "quiet", "open", "queries", "night")


def _environment(scratch: Path) -> None:
    defaults = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "DO_NOT_TRACK": "1",
        "PREFECT_HOME": str(scratch / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_PROFILE", None)


def _machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit or '?'}, {os.cpu_count()} CPUs, "
        f"{memory:.0f} GB RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
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
    parser.add_argument(
        "--rounds", type=int, default=2, help="run: interleaved rounds, best time kept"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="throttle and quiet: runs of each setting, median shown (default %(default)s)",
    )
    parser.add_argument("--fetch", action="store_true", help="queries: also fetch every column")
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

    machine = _machine()
    rows: list[Row] = []
    for name in chosen:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        found, took = timed(lambda name=name: _run(name, args))
        print(f"{name}: {took.wall:.0f} s\n{render(found)}", file=sys.stderr, flush=True)
        rows += found
    query_scale = args.query_scale if args.query_scale is not None else args.scale
    print(f"run started {machine}; --scale {args.scale}, --query-scale {query_scale}")
    print(render(rows))
    return 0


def _run(name: str, args: argparse.Namespace) -> list[Row]:
    query_scale = args.query_scale if args.query_scale is not None else args.scale
    if name == "run":
        from . import marginal

        return marginal.run(args.scale, args.rounds)
    if name == "throttle":
        from . import throttle

        return throttle.run(args.scale, args.repeats)
    if name == "quiet":
        from . import quiet

        return quiet.run(args.scale, args.repeats)
    if name == "open":
        from . import open_commands

        return open_commands.run(args.scale)
    if name == "queries":
        from . import queries

        return queries.run(query_scale, args.work, fetch=args.fetch)
    from . import reread

    return reread.run(query_scale, args.work)


if __name__ == "__main__":
    sys.exit(main())
