"""One region of one account, from API pages to committed Parquet; and a whole run.

This is the library's entry point for ingestion. The Prefect flow in
`flows/` calls `ingest_region` once per task; `run_local` does the same work
without Prefect (tests, embedding, debugging).
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from .config import RunConfig
from .errors import AwsError
from .extract import AwsSettings, aws_error, caller_account, enabled_regions, iter_pages
from .flatten import Lineage, flatten_page, quarantine_table
from .lake import Lake
from .schema import COMMAND_PLUGINS, INVOCATIONS, QUARANTINE

log = logging.getLogger("ssm_etl")


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time, unique across machines."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass
class RegionResult:
    account_id: str
    region: str
    status: str = "running"
    pages: int = 0
    invocations: int = 0
    plugins: int = 0
    quarantined: int = 0
    files: int = 0
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass
class RunPlan:
    run_id: str
    account_id: str
    regions: tuple[str, ...]


@dataclass
class RunSummary:
    run_id: str
    results: list[RegionResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if all(r.ok for r in self.results) else 1

    def totals(self) -> dict[str, int]:
        keys = ("pages", "invocations", "plugins", "quarantined", "files")
        return {k: sum(getattr(r, k) for r in self.results) for k in keys}

    def as_dict(self) -> dict[str, object]:
        return {"run_id": self.run_id, "results": [asdict(r) for r in self.results]}

    def render(self) -> str:
        lines = [f"run {self.run_id}"]
        for r in self.results:
            line = (
                f"  {r.account_id} {r.region:<15} {r.status:<9} pages={r.pages} "
                f"invocations={r.invocations} plugins={r.plugins} quarantined={r.quarantined}"
            )
            lines.append(line + (f"  error: {r.error}" if r.error else ""))
        failed = [r.region for r in self.results if not r.ok]
        totals = self.totals()
        lines.append(
            f"  total: {len(self.results)} regions, {totals['invocations']} invocations, "
            f"{totals['plugins']} plugins, {totals['quarantined']} quarantined"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        )
        return "\n".join(lines)


def plan_run(config: RunConfig, settings: AwsSettings, run_id: str | None = None) -> RunPlan:
    """Resolve the account (STS) and the regions (EC2) a run covers."""
    session = settings.session()
    home = session.region_name or ("us-east-1" if config.discover_regions else config.regions[0])
    account_id = config.account_id or caller_account(settings, session, home)
    regions = (
        tuple(enabled_regions(settings, session, home))
        if config.discover_regions
        else config.regions
    )
    return RunPlan(run_id=run_id or new_run_id(), account_id=account_id, regions=regions)


def ingest_region(
    settings: AwsSettings, lake: Lake, run_id: str, account_id: str, region: str
) -> RegionResult:
    """Walk every page of one region and commit it to the lake.

    Pages are flattened and streamed to staged files as they arrive; the
    region becomes visible in the lake only once its walk has finished.
    Raises AwsError (retriable or fatal) after discarding the staged files.
    """
    started = time.monotonic()
    result = RegionResult(account_id=account_id, region=region)
    ingested_ms = time.time_ns() // 1_000_000
    lineage = Lineage(account_id, region, run_id, ingested_ms)
    writer = lake.writer(run_id, account_id, region)
    try:
        client = settings.client(settings.session(), "ssm", region)
        for page in iter_pages(client):
            flat = flatten_page(page.records, lineage)
            writer.add(INVOCATIONS, flat.invocations)
            writer.add(COMMAND_PLUGINS, flat.plugins)
            writer.add(QUARANTINE, quarantine_table(flat.rejected, lineage))
            result.pages += 1
            result.invocations += flat.invocations.num_rows
            result.plugins += flat.plugins.num_rows
            result.quarantined += len(flat.rejected)
        result.files = len(writer.commit())
    except (ClientError, BotoCoreError) as exc:
        writer.abort()
        raise aws_error(exc, region) from exc
    except BaseException as exc:
        writer.abort()
        if isinstance(exc, AwsError) and not exc.region:
            exc.region = region
        raise
    result.status = "succeeded"
    result.seconds = round(time.monotonic() - started, 3)
    log.info(
        "%s %s: %d invocations in %d pages", account_id, region, result.invocations, result.pages
    )
    return result


def failed_result(account_id: str, region: str, exc: BaseException) -> RegionResult:
    return RegionResult(account_id=account_id, region=region, status="failed", error=str(exc))


def run_local(config: RunConfig, settings: AwsSettings, *, workers: int = 4) -> RunSummary:
    """A whole run without Prefect: the regions in a thread pool, no retries beyond botocore's."""
    lake = Lake.create(config.lake)
    with lake.lock():
        plan = plan_run(config, settings)
        summary = RunSummary(plan.run_id)

        def one(region: str) -> RegionResult:
            try:
                return ingest_region(settings, lake, plan.run_id, plan.account_id, region)
            except AwsError as exc:
                return failed_result(plan.account_id, region, exc)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            summary.results = list(pool.map(one, plan.regions))
    return summary
