"""`ssm-etl`: parse arguments, call the library or the flow, map errors to exit codes.

Exit codes: 0 success; 1 some region (or the run) failed; 2 usage or
configuration error, nothing written; 3 the lake is held by another run;
4 AWS could not be reached at all (endpoint, credentials), nothing written;
130 and 143 a run stopped by SIGINT or SIGTERM (committed regions stay).

Only the standard library is imported up front, so `--help` and usage errors
answer at once; boto3, pyarrow, DuckDB and Prefect load in the command that
needs them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.config import (
    DEFAULT_KEEP_DAYS,
    DEFAULT_LOOKBACK_HOURS,
    DEFAULT_OUTPUT_CAP,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SLICES,
    FULL_OUTPUT_MODES,
    RunConfig,
    check_account_id,
    check_keep_days,
    parse_lookback,
    parse_regions,
    parse_since,
)
from pipeline.errors import ConfigError, SsmEtlError

DEFAULT_DEMO_LAKE = "./demo-lake"
DEFAULT_CONCURRENCY = 8
QUIET_PREFECT = {
    # Prefect's telemetry stays off unless the user turns it on.
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The run prints its own summary; Prefect's per-task lines are in its UI and logs.
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default, when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and "%(default)" not in text
            and default not in (None, False, [], argparse.SUPPRESS)
        ):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message to one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

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


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _lake_option(parser: argparse.ArgumentParser, *, created: bool = False) -> None:
    where = "lake directory or s3://bucket/prefix" + (" (created if missing)" if created else "")
    parser.add_argument("--lake", required=True, help=where)


def _keep_days_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-days",
        type=float,
        default=DEFAULT_KEEP_DAYS,
        metavar="DAYS",
        help="keep data files that newer versions replaced this long; --as-of reaches this far "
        "back, and vacuum deletes what is older",
    )


def _as_of_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-of",
        metavar="TIME|RUN|VERSION",
        help="answer as the lake stood at an ISO-8601 time (UTC if no zone), after a run (its "
        "id, from `ssm-etl history`), or at a version of the invocations table "
        "(default: now)",
    )


def _add_run_options(run: argparse.ArgumentParser) -> None:
    """The options `run` and `deploy` share: what a nightly run reads and how."""
    run.add_argument(
        "--regions",
        required=True,
        help="comma-separated region names, or 'all' (EC2 DescribeRegions)",
    )
    _lake_option(run, created=True)
    run.add_argument(
        "--account-id", help="use this account id instead of asking STS GetCallerIdentity"
    )
    run.add_argument("--profile", help="AWS profile name (default: boto3's standard chain)")
    run.add_argument(
        "--accounts",
        help="comma-separated account ids to read by assuming --role-name in each "
        "(default: only the caller's account)",
    )
    run.add_argument(
        "--organization",
        action="store_true",
        help="read every ACTIVE account of the caller's AWS Organization (assuming --role-name)",
    )
    run.add_argument("--role-name", help="IAM role to assume in each account (default: none)")
    run.add_argument(
        "--external-id", help="external id for the role's trust policy (default: none)"
    )
    run.add_argument(
        "--sse-kms-key-id",
        metavar="KEY",
        help="S3 lakes: encrypt every object written with this KMS key, an id, ARN or alias "
        "(default: the bucket's own encryption)",
    )
    run.add_argument(
        "--task-runner",
        choices=("threads", "dask"),
        default="threads",
        help="where the account x region tasks run: a thread pool here, or a Dask cluster",
    )
    run.add_argument(
        "--dask-address",
        metavar="tcp://HOST:8786",
        help="an existing Dask scheduler (default: --task-runner dask starts a local cluster)",
    )
    run.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="account x region tasks at once",
    )
    run.add_argument(
        "--endpoint-url",
        help="send every AWS call here, e.g. the emulator (default: AWS_ENDPOINT_URL or AWS)",
    )
    run.add_argument(
        "--lookback",
        default=str(DEFAULT_LOOKBACK_HOURS),
        metavar="HOURS",
        help="re-read this much before each region's watermark; invocations still open from "
        "before that are followed by command id however old they are",
    )
    window = run.add_mutually_exclusive_group()
    window.add_argument(
        "--since",
        metavar="TIMESTAMP",
        help="read from this ISO-8601 time for this run only (default: from the watermark)",
    )
    window.add_argument(
        "--full-refresh", action="store_true", help="re-read everything the API still has"
    )
    _keep_days_option(run)
    run.add_argument(
        "--read-timeout",
        type=float,
        default=DEFAULT_READ_TIMEOUT,
        metavar="SECONDS",
        help="wait this long for an answer before trying a request again",
    )
    run.add_argument(
        "--slices",
        type=int,
        default=DEFAULT_SLICES,
        help="at most this many concurrent time slices per region, as many as the round trip "
        "needs to fill the API's rate limit",
    )
    run.add_argument(
        "--redact",
        action="append",
        default=[],
        metavar="PATTERN",
        help="mask matches in command output before storing it: 'aws' for the built-in AWS "
        "key/secret/token patterns, or a regular expression; repeatable (default: off)",
    )
    run.add_argument(
        "--full-output",
        choices=FULL_OUTPUT_MODES,
        default="none",
        help="also store the full stdout and stderr (table plugin_outputs, from S3, CloudWatch "
        "Logs or GetCommandInvocation) of the plugins of failed invocations (Failed, TimedOut, "
        "undeliverable), or of all finished ones",
    )
    run.add_argument(
        "--output-cap",
        type=int,
        default=DEFAULT_OUTPUT_CAP,
        metavar="BYTES",
        help="store at most this many bytes of one full stdout or stderr (the cap is recorded)",
    )
    run.add_argument(
        "--verbose", action="store_true", help="show tracebacks and Prefect's own log lines"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ssm-etl",
        description="Export AWS SSM Run Command history into a Delta Lake with DuckDB views.",
    )
    parser.add_argument("--version", action="version", version=f"ssm-etl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="the nightly job: export every region's invocations into the lake",
        description="Walk ListCommandInvocations in each region and commit it to the lake. "
        "Credentials, profiles and endpoints come from the standard AWS configuration "
        "(AWS_PROFILE, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_SSM, ...). Exit codes: 0 every "
        "region committed, 1 some region failed, 2 bad usage, 3 the lake is busy, 4 AWS "
        "could not be reached, 130/143 stopped by SIGINT/SIGTERM.",
    )
    _add_run_options(run)

    deploy = commands.add_parser(
        "deploy",
        help="serve the nightly flow as a scheduled Prefect deployment",
        description="Create a Prefect deployment of the nightly flow with these run options and "
        "a cron schedule, and serve it (this process executes the scheduled runs; stop it with "
        "Ctrl-C). One run at a time: a night that overruns queues the next. Needs a Prefect "
        "server: PREFECT_API_URL.",
    )
    deploy.add_argument("--name", default="nightly", help="deployment name")
    deploy.add_argument("--cron", default="0 2 * * *", help="schedule")
    deploy.add_argument("--timezone", default="UTC", help="the cron's time zone")
    _add_run_options(deploy)

    demo = commands.add_parser(
        "demo",
        help="run the real flow against the embedded emulator, offline",
        description="Start the emulator on a free loopback port, run the nightly flow over its "
        "regions with no AWS credentials or network, and print a compliance summary.",
    )
    demo.add_argument("--lake", default=DEFAULT_DEMO_LAKE, help="lake directory")
    demo.add_argument("--seed", type=int, default=7, help="fleet seed")
    demo.add_argument(
        "--now", type=_iso_datetime, help="fix the fleet's clock, ISO-8601 (default: now)"
    )

    emulator = commands.add_parser(
        "emulator",
        help="serve the local SSM/STS/EC2 endpoint standalone",
        description="Serve the emulator until interrupted. Point boto3 or the AWS CLI at the "
        "printed URL with --endpoint-url or AWS_ENDPOINT_URL; any credentials are accepted.",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="bind address")
    emulator.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    emulator.add_argument("--seed", type=int, default=7, help="fleet seed")
    emulator.add_argument("--account-id", default="123456789012", help="the caller's account id")
    emulator.add_argument(
        "--regions",
        help="regions that have a fleet (default: us-east-1, eu-west-1, ap-southeast-2)",
    )
    emulator.add_argument("--instances", type=int, help="instances per region (default: 120)")
    emulator.add_argument(
        "--now", type=_iso_datetime, help="fix the clock, ISO-8601 (default: now)"
    )
    emulator.add_argument(
        "--faults",
        metavar="FILE",
        help='JSON fault document, e.g. {"regions": {"eu-west-1": {"error_rate": 0.2}}}; '
        "also settable at runtime with POST /_emulator/faults (default: none)",
    )

    purge = commands.add_parser(
        "purge",
        help="remove what is older than N days from every table",
        description="Delete whole months of invocations, plugins and commands that ended more "
        "than --older-than days ago, quarantined records last seen before then, the inventory "
        "of regions last read before then, and ledger rows before then (each region's newest "
        "successful run stays). Nothing is ever purged "
        "by default. The data stays reachable by --as-of until vacuum removes it (--keep-days).",
    )
    _lake_option(purge)
    purge.add_argument(
        "--older-than", required=True, type=float, metavar="DAYS", help="the age to purge from"
    )
    _keep_days_option(purge)

    upgrade = commands.add_parser(
        "upgrade",
        help="rewrite a lake written by an older ssm-etl in this version's format",
        description="Rewrite, in place and under the run lock, a lake written in an older "
        "format (format 2: Parquet files) as Delta tables. Needs no AWS access; any "
        "`ssm-etl run` does the same first.",
    )
    _lake_option(upgrade)

    report = commands.add_parser(
        "report",
        help="write a self-contained HTML compliance report",
        description="One HTML file (no network assets) with charts: daily success rate per "
        "document, failures by region and account, instances out of patch compliance and why, "
        "top failing instances and plugins, and data freshness.",
    )
    _lake_option(report)
    span = report.add_mutually_exclusive_group()
    span.add_argument("--days", type=int, default=30, help="the last N UTC days")
    span.add_argument(
        "--from", dest="start", type=_iso_date, help="first UTC date, YYYY-MM-DD (default: none)"
    )
    report.add_argument(
        "--to", dest="end", type=_iso_date, help="last UTC date, with --from (default: today)"
    )
    report.add_argument("--out", required=True, help="the HTML file to write")
    _as_of_option(report)

    status = commands.add_parser(
        "status",
        help="per account and region: last run, outcome, freshness; exit 1 if unhealthy",
        description="Exit 1 when a region's last run failed or its last successful run is older "
        "than --max-age hours, so a scheduler or a shell script can alert on it.",
    )
    _lake_option(status)
    status.add_argument(
        "--max-age",
        type=float,
        default=36.0,
        metavar="HOURS",
        help="a region whose last success is older than this is unhealthy",
    )
    _as_of_option(status)

    views = commands.add_parser(
        "views",
        help="write a DuckDB database file holding every view, for BI tools",
        description="The views read the lake's current version by absolute path. The file is "
        "registered in the lake, and every run rewrites it after its last commit.",
    )
    _lake_option(views)
    views.add_argument("--db", required=True, help="the .duckdb file to write")

    ddl = commands.add_parser(
        "ddl",
        help="print CREATE TABLE statements for Athena, Trino or Spark",
        description="Print DDL that registers every lake table as a Delta table in a catalog, "
        "generated from the same Arrow schemas the writer uses.",
    )
    ddl.add_argument(
        "--engine",
        choices=("athena", "trino", "spark"),
        default="athena",
        help="the engine whose DDL to print",
    )
    ddl.add_argument("--location", required=True, help="the lake's S3 URL, e.g. s3://bucket/lake")
    ddl.add_argument("--database", default="ssm_etl", help="catalog database (schema) name")

    sql = commands.add_parser(
        "sql",
        help="run SQL over the lake's views",
        description="Run one SQL query over the views (invocations, command_plugins, "
        "compliance_daily, ...). JSON output is a list of objects with ISO-8601 UTC timestamps.",
    )
    _lake_option(sql)
    sql.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="output format"
    )
    _as_of_option(sql)
    sql.add_argument("query", help="the SQL query")

    output = commands.add_parser(
        "output",
        help="print the full stdout and stderr stored for one invocation, plugin by plugin",
        description="Print what runs with --full-output stored (table plugin_outputs) for one "
        "invocation: each plugin's header (source, size, cuts) and its full stdout and stderr, "
        "as stored (redacted, at most --output-cap bytes each). Exit 2 if nothing is stored.",
    )
    _lake_option(output)
    _as_of_option(output)
    output.add_argument("command_id", metavar="COMMAND_ID", help="the command id")
    output.add_argument("instance_id", metavar="INSTANCE_ID", help="the instance id")

    history = commands.add_parser(
        "history",
        help="list the lake's commits: run, account/regions, operation, rows",
        description="Every commit of every table, newest first, from the Delta logs: when, "
        "which table and version, the operation (ingest, optimize, vacuum, purge, upgrade), "
        "the run id, the account/regions it carried and the rows added, updated and deleted.",
    )
    _lake_option(history)
    history.add_argument(
        "--limit", type=int, help="the newest N commits of each table (default: all)"
    )
    history.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="output format"
    )
    return parser


def _account_list(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    accounts = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    if not accounts:
        raise ConfigError("--accounts is empty")
    return tuple(check_account_id(a) for a in accounts)


def _endpoint(url: str | None) -> str | None:
    """Syntax only: a reachable endpoint is the preflight's business."""
    from urllib.parse import urlsplit

    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--endpoint-url must be an http(s) URL: {url!r}")
    return url


def _run_config(args: argparse.Namespace) -> RunConfig:
    """The run's configuration, checked completely before anything starts (no AWS, no writes)."""
    from pipeline.lake import Lake

    if args.dask_address and args.task_runner != "dask":
        raise ConfigError("--dask-address needs --task-runner dask")
    if args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    config = RunConfig(
        lake=args.lake,
        regions=parse_regions(args.regions),
        account_id=check_account_id(args.account_id) if args.account_id else None,
        profile=args.profile,
        endpoint_url=_endpoint(args.endpoint_url),
        lookback_hours=parse_lookback(args.lookback),
        since=parse_since(args.since) if args.since else None,
        full_refresh=args.full_refresh,
        keep_days=check_keep_days(args.keep_days),
        redact=tuple(args.redact),
        slices=args.slices,
        accounts=_account_list(args.accounts),
        organization=args.organization,
        role_name=args.role_name,
        external_id=args.external_id,
        sse_kms_key_id=args.sse_kms_key_id,
        read_timeout=args.read_timeout,
        full_output=args.full_output,
        output_cap=args.output_cap,  # checked by RunConfig, like every other value
    )
    Lake.check_location(config.lake)
    return config


class _Terminated(Exception):
    """SIGTERM before the flow took over the signals (it stops the run cleanly after that)."""


def _run(args: argparse.Namespace) -> int:
    _quiet_prefect(args.verbose)
    from flows.server import early_server, prefect_api
    from flows.startup import collector_paused

    # Prefect's server boots (seconds) while the configuration and AWS are checked and
    # Prefect is imported here; a refused configuration stops it before it has imported much.
    server = early_server()
    try:
        with collector_paused():  # the run's imports (`flows.startup`)
            config = _run_config(args)
            _preflight(config)
            from flows.nightly import flow_parameters, with_runner  # Prefect where it runs
            from pipeline.progress import shown

        nightly = with_runner(args.task_runner, args.dask_address, args.concurrency)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    with prefect_api(server), shown():
        summary = nightly(**flow_parameters(config, args.concurrency))
    if summary.interrupted:  # one line: what committed, and that a rerun resumes
        print(summary.interrupted_line(), file=sys.stderr)
    else:
        print(summary.render())
    return summary.exit_code


def _quiet_prefect(verbose: bool = False) -> None:
    for name, value in QUIET_PREFECT.items():
        if not verbose or name != "PREFECT_LOGGING_LEVEL":
            os.environ.setdefault(name, value)


def _preflight(config: RunConfig) -> None:
    """Fail in seconds, before any lake is written, when AWS cannot be reached at all."""
    from pipeline.probe import probe

    region = config.regions[0] if not config.discover_regions else None
    probe(config.settings(), region, config.account_id)


def _demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo
    from pipeline.lake import Lake

    Lake.check_location(args.lake)
    _quiet_prefect()
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
        "  try: AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x aws ssm list-command-invocations "
        f"--details --region {emulator.spec.regions[0]} --endpoint-url {emulator.url}",
        flush=True,
    )
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


def _load_faults(path: str) -> object:
    import json

    from emulator import FaultSpec

    try:
        return FaultSpec.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"bad --faults file {path}: {exc}") from None


def _purge(args: argparse.Namespace) -> int:
    from pipeline.ingest import new_run_id
    from pipeline.lake import Lake
    from pipeline.purge import purge

    if args.older_than < 0:
        raise ConfigError("--older-than cannot be negative")
    keep_days = check_keep_days(args.keep_days)
    lake = Lake.open(args.lake)
    with lake.lock() as lease:
        result = purge(lake, args.older_than, new_run_id(), lease, keep_days=keep_days)
    print(result.render())
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from pipeline.ingest import new_run_id
    from pipeline.lake import FORMAT_VERSION, Lake
    from pipeline.upgrade import upgrade

    lake = Lake.open(args.lake, older=True)
    before = lake.version
    if before >= FORMAT_VERSION:
        print(f"lake {lake.location} is already in format {FORMAT_VERSION}")
        return 0
    with lake.lock():
        rows = upgrade(lake, new_run_id())
    print(f"lake {lake.location}: format {before} -> {FORMAT_VERSION} (Delta), {rows} rows")
    return 0


def _reader(args: argparse.Namespace) -> tuple[Any, Any]:
    """The lake a read-only command reads, and the point in its history to read."""
    from pipeline.lake import AsOf, Lake

    lake = Lake.open(args.lake)
    text = getattr(args, "as_of", None)
    return lake, None if text is None else AsOf.parse(text).resolved(lake)


def _report(args: argparse.Namespace) -> int:
    from pipeline.report import build_report

    lake, as_of = _reader(args)
    today = (as_of.moment_value if as_of else datetime.now(UTC)).astimezone(UTC).date()
    if args.start is None:
        if args.end is not None:
            raise ConfigError("--to needs --from")
        if args.days < 1:
            raise ConfigError("--days must be at least 1")
        start, end = today - timedelta(days=args.days - 1), today
    else:
        start, end = args.start, args.end or today
    out = Path(args.out)
    if not out.parent.is_dir():
        raise ConfigError(f"no such folder for --out: {out.parent}")
    html = build_report(lake, start=start, end=end, as_of=as_of)
    out.write_text(html, encoding="utf-8")
    print(f"report written to {out.resolve()}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from pipeline.status import region_status

    lake, as_of = _reader(args)
    report = region_status(lake, max_age_hours=args.max_age, as_of=as_of)
    print(report.render())
    return report.exit_code


def _views(args: argparse.Namespace) -> int:
    from pipeline.bi import write_views_database

    lake, _ = _reader(args)
    path = write_views_database(lake, Path(args.db))
    print(f"views database written to {path} (every run rewrites it)")
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
    from pipeline.ddl import ddl

    print(ddl(args.engine, args.location, database=args.database))
    return 0


def _sql(args: argparse.Namespace) -> int:
    from pipeline.query import render, run_query

    lake, as_of = _reader(args)
    print(render(run_query(lake, args.query, as_of=as_of), args.format))
    return 0


def _output(args: argparse.Namespace) -> int:
    from pipeline.stored_output import stored_output

    lake, as_of = _reader(args)
    print(stored_output(lake, args.command_id, args.instance_id, as_of=as_of))
    return 0


def _history(args: argparse.Namespace) -> int:
    from pipeline.history import history
    from pipeline.query import render

    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    lake, _ = _reader(args)
    print(render(history(lake, args.limit), args.format))
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
    "history": _history,
    "output": _output,
}


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    # Before pyarrow and deltalake load (a user's own settings win; benchmarks/README.md,
    # "Memory"): Arrow's buffers come from the C allocator, which returns what the region
    # walks freed before each merge (`pipeline.memory`); with Arrow's own jemalloc the walks'
    # freed pages stayed resident beside the commit's. delta-rs has its own jemalloc (read
    # from _RJEM_MALLOC_CONF), which by default keeps freed pages for 10 s: one batch's merge
    # would still hold them while the next batch merges. 100 ms, not 0: returning every
    # freed page at once made each merge fault its pages in again, twice as slow.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:100,muzzy_decay_ms:0")
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    if threading_main():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return COMMANDS[args.command](args)
    except SsmEtlError as exc:
        if verbose:
            raise
        print(f"ssm-etl: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `ssm-etl sql ... | head`: the reader has seen enough
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("ssm-etl: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except _Terminated:
        print("ssm-etl: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception as exc:  # storage or AWS trouble at the edge: one line unless --verbose
        if verbose:
            raise
        message = " ".join(str(exc).split())
        print(f"ssm-etl: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1


def entry() -> None:
    """The `ssm-etl` console script: `main`, then an exit without the interpreter's teardown.

    Tearing the interpreter down after a run took about half a second here
    (Arrow's, delta-rs's and DuckDB's native state, a few hundred thousand
    Python objects) and does nothing a user needs. The exit handlers still run
    (Prefect's log and event workers drain, logging flushes), then the
    standard streams are flushed and the process ends with `main`'s code.
    Everything the command wrote has been closed by then.
    """
    code = main()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (`| head`) or stream has nothing left to deliver.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
