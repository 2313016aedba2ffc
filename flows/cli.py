"""`ssm-etl`: parse arguments, call the library or the flow, map errors to exit codes.

Exit codes: 0 success, 1 some region (or the run) failed, 2 usage or
configuration error, 3 the lake is held by another run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from pipeline import __version__
from pipeline.config import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_LOOKBACK_HOURS,
    DEFAULT_SLICES,
    RunConfig,
    check_account_id,
    parse_lookback,
    parse_regions,
    parse_since,
)
from pipeline.errors import ConfigError, SsmEtlError
from pipeline.lake import Lake

DEFAULT_DEMO_LAKE = "./demo-lake"


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"ssm-etl: error: {message} (see --help)\n")


def _iso_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 timestamp: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"timestamp needs a zone, e.g. {text}Z")
    return moment


def _add_run_options(run: argparse.ArgumentParser) -> None:
    """The options `run` and `deploy` share: what a nightly run reads and how."""
    run.add_argument(
        "--regions",
        required=True,
        help="comma-separated region names, or 'all' (EC2 DescribeRegions)",
    )
    run.add_argument(
        "--lake", required=True, help="lake directory or s3://bucket/prefix (created if missing)"
    )
    run.add_argument("--account-id", help="skip STS GetCallerIdentity and use this account id")
    run.add_argument("--profile", help="AWS profile name (default: the standard chain)")
    run.add_argument(
        "--accounts",
        help="comma-separated account ids to read by assuming --role-name in each",
    )
    run.add_argument(
        "--organization",
        action="store_true",
        help="read every ACTIVE account of the caller's AWS Organization (assuming --role-name)",
    )
    run.add_argument("--role-name", help="IAM role to assume in each account")
    run.add_argument(
        "--sse-kms-key-id",
        metavar="KEY",
        help="S3 lakes: encrypt every object written with this KMS key (id, ARN or alias)",
    )
    run.add_argument(
        "--task-runner",
        choices=("threads", "dask"),
        default="threads",
        help="where the account x region tasks run: a thread pool here, or a Dask cluster "
        "(default %(default)s)",
    )
    run.add_argument(
        "--dask-address",
        metavar="tcp://HOST:8786",
        help="an existing Dask scheduler; without it --task-runner dask starts a local cluster",
    )
    run.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="account x region tasks at once, in threads or per local Dask cluster "
        "(default %(default)s)",
    )
    run.add_argument("--external-id", help="external id for the role's trust policy")
    run.add_argument("--endpoint-url", help="send every AWS call here (e.g. the emulator)")
    run.add_argument(
        "--lookback",
        default=str(DEFAULT_LOOKBACK_HOURS),
        metavar="HOURS",
        help="re-read this much before each region's watermark, to catch invocations that "
        "were still running (default %(default)s)",
    )
    window = run.add_mutually_exclusive_group()
    window.add_argument(
        "--since", metavar="TIMESTAMP", help="read from this ISO-8601 time for this run only"
    )
    window.add_argument(
        "--full-refresh", action="store_true", help="re-read everything the API still has"
    )
    _grace_option(run)
    run.add_argument(
        "--slices",
        type=int,
        default=DEFAULT_SLICES,
        help="at most this many concurrent time slices per region, as many as the round trip "
        "needs to fill the API's rate limit (default %(default)s)",
    )
    run.add_argument(
        "--redact",
        action="append",
        default=[],
        metavar="PATTERN",
        help="mask matches in command output before storing it: 'aws' for the built-in AWS "
        "key/secret/token patterns, or a regular expression; repeatable (default: off)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ssm-etl",
        description="Export AWS SSM Run Command history into a Parquet lake with DuckDB views.",
    )
    parser.add_argument("--version", action="version", version=f"ssm-etl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="the nightly job: export every region's invocations into the lake",
        description="Walk ListCommandInvocations in each region and commit it to the lake. "
        "Credentials, profiles and endpoints come from the standard AWS configuration "
        "(AWS_PROFILE, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_SSM, ...).",
    )
    _add_run_options(run)

    deploy = commands.add_parser(
        "deploy",
        help="serve the nightly flow as a scheduled Prefect deployment",
        description="Create a Prefect deployment of the nightly flow with these run options and "
        "a cron schedule, and serve it (this process executes the scheduled runs; stop it with "
        "Ctrl-C). Needs a Prefect server: PREFECT_API_URL.",
    )
    deploy.add_argument("--name", default="nightly", help="deployment name (default %(default)s)")
    deploy.add_argument("--cron", default="0 2 * * *", help="schedule (default %(default)s)")
    deploy.add_argument("--timezone", default="UTC", help="the cron's time zone (default UTC)")
    _add_run_options(deploy)

    demo = commands.add_parser(
        "demo",
        help="run the real flow against the embedded emulator, offline",
        description="Start the emulator on a free loopback port, run the nightly flow over its "
        "regions with no AWS credentials or network, and print a compliance summary.",
    )
    demo.add_argument(
        "--lake", default=DEFAULT_DEMO_LAKE, help="lake directory (default %(default)s)"
    )
    demo.add_argument("--seed", type=int, default=7, help="fleet seed (default %(default)s)")
    demo.add_argument(
        "--now", type=_iso_datetime, default=None, help="fix the fleet's clock (ISO-8601)"
    )

    emulator = commands.add_parser(
        "emulator",
        help="serve the local SSM/STS/EC2 endpoint standalone",
        description="Serve the emulator until interrupted. Point boto3 or the AWS CLI at the "
        "printed URL with --endpoint-url or AWS_ENDPOINT_URL; any credentials are accepted.",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    emulator.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    emulator.add_argument("--seed", type=int, default=7, help="fleet seed (default %(default)s)")
    emulator.add_argument("--account-id", default="123456789012", help="the caller's account id")
    emulator.add_argument(
        "--regions", default=None, help="regions that have a fleet (default: three regions)"
    )
    emulator.add_argument("--instances", type=int, default=None, help="instances per region")
    emulator.add_argument(
        "--now", type=_iso_datetime, default=None, help="fix the clock (ISO-8601), default: now"
    )
    emulator.add_argument(
        "--faults",
        metavar="FILE",
        help='JSON fault document, e.g. {"regions": {"eu-west-1": {"error_rate": 0.2}}}; '
        "also settable at runtime with POST /_emulator/faults",
    )

    purge = commands.add_parser(
        "purge",
        help="remove whole months older than N days from the lake",
        description="Retire every month partition that ended more than --older-than days ago. "
        "Nothing is ever purged by default. Files are deleted once the grace period has passed, "
        "so queries already running do not fail; the ledger records what was removed.",
    )
    purge.add_argument("--lake", required=True, help="lake directory or s3://bucket/prefix")
    purge.add_argument("--older-than", required=True, type=float, metavar="DAYS")
    _grace_option(purge)

    upgrade = commands.add_parser(
        "upgrade",
        help="rewrite a lake written by an older ssm-etl in this version's format",
        description="Rewrite, in place and under the run lock, every file of a lake written in an "
        "older format. Needs no AWS access; any `ssm-etl run` does the same first.",
    )
    upgrade.add_argument("--lake", required=True, help="lake directory or s3://bucket/prefix")

    report = commands.add_parser(
        "report",
        help="write a self-contained HTML compliance report",
        description="One HTML file (no network assets) with charts: daily success rate per "
        "document, failures by region and account, instances out of patch compliance and why, "
        "top failing instances and plugins, and data freshness.",
    )
    report.add_argument("--lake", required=True, help="lake directory or s3://bucket/prefix")
    span = report.add_mutually_exclusive_group()
    span.add_argument("--days", type=int, default=30, help="the last N UTC days (default 30)")
    span.add_argument("--from", dest="start", type=_iso_date, help="first UTC date, YYYY-MM-DD")
    report.add_argument("--to", dest="end", type=_iso_date, help="last UTC date (with --from)")
    report.add_argument("--out", required=True, help="the HTML file to write")

    status = commands.add_parser(
        "status",
        help="per account and region: last run, outcome, freshness; exit 1 if unhealthy",
        description="Exit 1 when a region's last run failed or its last successful run is older "
        "than --max-age hours, so a scheduler or a shell script can alert on it.",
    )
    status.add_argument("--lake", required=True, help="lake directory or s3://bucket/prefix")
    status.add_argument("--max-age", type=float, default=36.0, metavar="HOURS")

    views = commands.add_parser(
        "views",
        help="write a DuckDB database file holding every view, for BI tools",
        description="The views point at the lake by absolute path and pick up new Parquet files "
        "by themselves: nightly runs do not need to rewrite the file.",
    )
    views.add_argument("--lake", required=True, help="lake directory or s3://bucket/prefix")
    views.add_argument("--db", required=True, help="the .duckdb file to write")

    ddl = commands.add_parser(
        "ddl",
        help="print CREATE EXTERNAL TABLE statements for Athena/Glue",
        description="Print Glue/Athena DDL for every lake table, generated from the same Arrow "
        "schemas the writer uses, with partition projection on account_id, region and "
        "requested_month.",
    )
    ddl.add_argument("--engine", choices=("athena",), default="athena")
    ddl.add_argument("--location", required=True, help="the lake's S3 URL, e.g. s3://bucket/lake")
    ddl.add_argument("--database", default="ssm_etl", help="Glue database (default %(default)s)")
    ddl.add_argument(
        "--account",
        action="append",
        metavar="ID",
        help="project account_id as an enum of these accounts (repeatable); default: injected, "
        "so every query must filter on account_id",
    )

    sql = commands.add_parser(
        "sql",
        help="run SQL over the lake's views",
        description="Run one SQL query over the views (invocations, command_plugins, "
        "compliance_daily, ...). JSON output is a list of objects with ISO-8601 UTC timestamps.",
    )
    sql.add_argument("--lake", required=True, help="lake directory or s3://bucket/prefix")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument("query", help="the SQL query")
    return parser


def _account_list(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    accounts = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    if not accounts:
        raise ConfigError("--accounts is empty")
    return tuple(check_account_id(a) for a in accounts)


def _grace_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--grace-minutes",
        type=float,
        default=DEFAULT_GRACE_SECONDS / 60,
        help="keep files that a rewrite or purge replaced this long, for queries already "
        "running (default %(default)s)",
    )


def _run_config(args: argparse.Namespace) -> RunConfig:
    if args.dask_address and args.task_runner != "dask":
        raise ConfigError("--dask-address needs --task-runner dask")
    if args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    config = RunConfig(
        lake=args.lake,
        regions=parse_regions(args.regions),
        account_id=check_account_id(args.account_id) if args.account_id else None,
        profile=args.profile,
        endpoint_url=args.endpoint_url,
        lookback_hours=parse_lookback(args.lookback),
        since=parse_since(args.since) if args.since else None,
        full_refresh=args.full_refresh,
        grace_seconds=args.grace_minutes * 60,
        redact=tuple(args.redact),
        slices=args.slices,
        accounts=_account_list(args.accounts),
        organization=args.organization,
        role_name=args.role_name,
        external_id=args.external_id,
        sse_kms_key_id=args.sse_kms_key_id,
    )
    Lake.check_location(config.lake)
    return config


def _run(args: argparse.Namespace) -> int:
    config = _run_config(args)
    from flows.nightly import flow_parameters, with_runner  # Prefect only where it runs
    from flows.server import prefect_api
    from pipeline.progress import shown

    nightly = with_runner(args.task_runner, args.dask_address, args.concurrency)
    with prefect_api(), shown():
        summary = nightly(**flow_parameters(config))
    print(summary.render())
    return summary.exit_code


def _demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    Lake.check_location(args.lake)
    return run_demo(args.lake, seed=args.seed, now=args.now)


def _emulator(args: argparse.Namespace) -> int:
    from emulator import Emulator, FleetSpec

    options: dict[str, object] = {
        "seed": args.seed,
        "account_id": check_account_id(args.account_id),
    }
    if args.regions:
        options["regions"] = parse_regions(args.regions)
    if args.instances is not None:
        if args.instances < 1:
            raise ConfigError("--instances must be at least 1")
        options["instances_per_region"] = args.instances
    if args.now is not None:
        options["now"] = args.now
    if args.faults:
        options["faults"] = _load_faults(args.faults)
    emulator = Emulator(FleetSpec(**options), host=args.host, port=args.port)  # type: ignore[arg-type]
    emulator.start()
    print(f"ssm-etl emulator listening on {emulator.url}", flush=True)
    print(
        f"  try: aws ssm list-command-invocations --details --endpoint-url {emulator.url}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


def _purge(args: argparse.Namespace) -> int:
    from pipeline.compact import sweep
    from pipeline.ingest import new_run_id
    from pipeline.purge import purge

    if args.older_than < 0 or args.grace_minutes < 0:
        raise ConfigError("--older-than and --grace-minutes cannot be negative")
    lake = Lake.open(args.lake)
    with lake.lock():
        result = purge(lake, args.older_than, new_run_id())
        sweep(lake, args.grace_minutes * 60)
    print(result.render())
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from pipeline.ingest import new_run_id
    from pipeline.lake import FORMAT_VERSION
    from pipeline.upgrade import upgrade

    lake = Lake.open(args.lake, older=True)
    before = lake.version
    with lake.lock():
        months = upgrade(lake, new_run_id())
    if before >= FORMAT_VERSION:
        print(f"lake {lake.location} is already in format {FORMAT_VERSION}")
    else:
        print(
            f"lake {lake.location}: format {before} -> {FORMAT_VERSION}, {months} partitions rewritten"
        )
    return 0


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _report(args: argparse.Namespace) -> int:
    from pipeline.report import build_report

    today = datetime.now(UTC).date()
    if args.start is None:
        if args.end is not None:
            raise ConfigError("--to needs --from")
        if args.days < 1:
            raise ConfigError("--days must be at least 1")
        start, end = today - timedelta(days=args.days - 1), today
    else:
        start, end = args.start, args.end or today
    html = build_report(Lake.open(args.lake), start=start, end=end)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise ConfigError(f"no such folder for --out: {out.parent}")
    out.write_text(html, encoding="utf-8")
    print(f"report written to {out.resolve()}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from pipeline.status import region_status

    report = region_status(Lake.open(args.lake), max_age_hours=args.max_age)
    print(report.render())
    return report.exit_code


def _views(args: argparse.Namespace) -> int:
    from pipeline.bi import write_views_database

    path = write_views_database(Lake.open(args.lake), Path(args.db))
    print(f"views database written to {path.resolve()}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    config = _run_config(args)
    from flows.deploy import serve

    serve(
        config,
        name=args.name,
        cron=args.cron,
        timezone=args.timezone,
        task_runner=args.task_runner,
        dask_address=args.dask_address,
        concurrency=args.concurrency,
    )
    return 0


def _ddl(args: argparse.Namespace) -> int:
    from pipeline.ddl import athena_ddl

    print(athena_ddl(args.location, database=args.database, accounts=args.account))
    return 0


def _load_faults(path: str) -> object:
    import json

    from emulator import FaultSpec

    try:
        return FaultSpec.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"bad --faults file {path}: {exc}") from None


def _sql(args: argparse.Namespace) -> int:
    from pipeline.query import render, run_query

    print(render(run_query(Lake.open(args.lake), args.query), args.format))
    return 0


COMMANDS = {
    "run": _run,
    "demo": _demo,
    "emulator": _emulator,
    "purge": _purge,
    "upgrade": _upgrade,
    "ddl": _ddl,
    "deploy": _deploy,
    "report": _report,
    "status": _status,
    "views": _views,
    "sql": _sql,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SsmEtlError as exc:
        message = " ".join(str(exc).split())
        print(f"ssm-etl: error: {message}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `ssm-etl sql ... | head`: the reader has seen enough
        sys.stderr.close()
        return 0
    except (OSError, ClientError, BotoCoreError) as exc:  # storage or AWS trouble at the edge
        message = " ".join(str(exc).split())
        print(f"ssm-etl: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
