"""`ssm-etl demo`: the real nightly flow against the embedded emulator, offline."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from emulator import Emulator, FleetSpec
from pipeline.bi import write_views_database
from pipeline.lake import Lake
from pipeline.query import render, run_query
from pipeline.report import build_report

from .nightly import nightly
from .server import prefect_api

# The emulator accepts any well-formed SigV4 request; these never leave loopback.
_DEMO_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAEMULATORDEMO0000",
    "AWS_SECRET_ACCESS_KEY": "emulator-demo-secret-not-a-real-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_DROP_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")

_SUMMARY_BY_REGION = """
SELECT region,
       sum(invocations)::BIGINT AS invocations,
       sum(succeeded)::BIGINT AS succeeded,
       sum(failed)::BIGINT AS failed,
       sum(timed_out)::BIGINT AS timed_out,
       sum(open)::BIGINT AS open,
       sum(expired)::BIGINT AS expired,
       round(100 * sum(succeeded) / nullif(sum(finished), 0), 1) AS success_pct
FROM compliance_daily
GROUP BY region
ORDER BY region
"""

_SUMMARY_PATCH = """
SELECT region,
       count(*) AS instances,
       count(*) FILTER (WHERE compliant) AS patched_7d,
       count(*) FILTER (WHERE NOT compliant) AS not_patched_7d
FROM patch_compliance
GROUP BY region
ORDER BY region
"""

_FAILURE_WITH_OUTPUT = """
SELECT command_id, instance_id FROM failed_invocations
WHERE full_stderr_tail <> '' OR full_stdout_tail <> ''
ORDER BY requested_date_time DESC, command_id, instance_id
LIMIT 1
"""


@contextmanager
def _demo_credentials() -> Iterator[None]:
    saved = dict(os.environ)
    for name in _DROP_ENV:
        os.environ.pop(name, None)
    os.environ.update(_DEMO_ENV)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_demo(lake_dir: str, *, seed: int = 7, now: datetime | None = None) -> int:
    """Serve a seeded fleet, run the nightly flow over every enabled region, summarise.

    The run stores the full output of failed commands (`--full-output failed`, redacted
    with the built-in AWS patterns), which the report shows for the top failures."""
    spec = FleetSpec(seed=seed, now=now)
    with Emulator(spec, host="127.0.0.1", port=0) as emulator:
        print(f"emulator: {emulator.url} (regions with a fleet: {', '.join(spec.regions)})")
        with _demo_credentials(), prefect_api():
            summary = nightly(
                lake=lake_dir,
                regions=["all"],
                endpoint_url=emulator.url,
                full_output="failed",
                redact=["aws"],
            )
    print(summary.render())
    lake = Lake.open(lake_dir)
    print("\nInvocations by region (last 30 days):")
    print(render(run_query(lake, _SUMMARY_BY_REGION), "table"))
    print("\nAWS-RunPatchBaseline success in the last 7 days, per instance:")
    print(render(run_query(lake, _SUMMARY_PATCH), "table"))
    where = Path(lake_dir)
    failure = run_query(lake, _FAILURE_WITH_OUTPUT).to_pylist()
    example = " ".join(failure[0].values()) if failure else "COMMAND_ID INSTANCE_ID"
    today = (now or datetime.now(UTC)).date()
    report = where / "report.html"
    report.write_text(build_report(lake, start=today - timedelta(days=29), end=today), "utf-8")
    database = write_views_database(lake, where / "ssm.duckdb")
    print(f"\nReport:            {report.resolve()}  (open it in a browser; works offline)")
    print(
        f"Views for BI tools: {database.resolve()}  (DuckDB file; see README 'Connect a BI tool')"
    )
    print(
        "\nQuery it yourself, e.g.:\n"
        f'  ssm-etl sql --lake {where} "SELECT * FROM failed_invocations LIMIT 10"\n'
        f'  ssm-etl sql --lake {where} --format csv "SELECT * FROM compliance_daily"\n'
        f"  ssm-etl output --lake {where} {example}   (a failure's full output)\n"
        f"  any Delta Lake reader (deltalake, polars.scan_delta, Spark): {where.resolve()}/invocations"
    )
    return summary.exit_code
