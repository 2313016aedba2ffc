"""The full output of selected plugins (`--full-output`), read back from where SSM keeps it.

ListCommandInvocations cuts each plugin's Output at 2,500 characters, and what
explains a failure is usually at the end. After a region's walk, the plugins
selected (`failed`: those of invocations that ended Failed or TimedOut, the
undeliverable ones included; `all`: those of every finished invocation) whose
Output does not hold all they printed (it was cut, or it shows a stderr that
has to be told from stdout), or that have a full copy in S3 or CloudWatch
Logs, are read again, each stream from the first place that has it:

1. S3, when the command had an output bucket (the plugin's StandardOutputUrl
   and StandardErrorUrl): everything the plugin printed;
2. CloudWatch Logs, when the command had CloudWatchOutputEnabled (the agent's
   streams `<CommandId>/<InstanceId>/<plugin id>/stdout|stderr`): everything;
3. GetCommandInvocation: 24,000 characters of stdout, 8,000 of stderr.

A source that refuses (AccessDenied), lost the text (an expired object or log
stream) or still fails after its retries is not an error of the run: the next
source is tried, and the reason is counted in the run summary and the ledger.
Every operation is paced like ListCommandInvocations (its own `pacing.Pacer`
per client), each selected plugin costs at most `REQUESTS_PER_PLUGIN`
requests, and a plugin already stored is read again only when its
invocation's status changed. Text is redacted first, then cut at the cap,
and only then stored.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pyarrow as pa
import pyarrow.compute as pc

from .config import DEFAULT_OUTPUT_CAP
from .errors import AwsError
from .extract import AwsSettings
from .flatten import Lineage
from .pacing import Pacer
from .paging import PageRetry, call, pager
from .redact import Redactor
from .schema import COMMAND_PLUGINS, INVOCATIONS, PLUGIN_OUTPUTS, TableSpec

S3, CLOUDWATCH, GET_COMMAND_INVOCATION = "s3", "cloudwatch", "get_command_invocation"
TRUNCATED = "---Output truncated---"
"""How ListCommandInvocations ends an Output it cut at 2,500 characters."""
ERROR_TITLE = "\n----------ERROR-------\n"
"""What separates stdout from stderr in an Output: a plugin that shows it printed a stderr."""
CONTENT_LIMITS = {"stdout": 24_000, "stderr": 8_000}
CONTENT_TRUNCATED = "--output truncated--"
"""The agent's suffix on GetCommandInvocation's StandardOutputContent/StandardErrorContent."""
SLACK = 4096
"""Bytes read past the cap, so a secret that straddles it is whole when redaction runs."""
LOG_PAGES = 8
"""GetLogEvents pages read of one stream, at most (each up to 10,000 events or 1 MB)."""
REQUESTS_PER_PLUGIN = 1 + 2 + 2 * LOG_PAGES
"""GetCommandInvocation once, an S3 GetObject per stream, GetLogEvents pages per stream."""
WORKERS = 4
"""Plugins read at once in one region (each source's pacer holds them to the API's rate)."""
FAILED = ("Failed", "TimedOut")
FINISHED = ("Success", "Failed", "TimedOut", "Cancelled")
_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "ResourceNotFoundException"}
_GROUP_CHARS = re.compile(r"[^a-zA-Z0-9_\-/.#]")
_CONTENT_RANGE = re.compile(r"/(\d+)$")


@dataclass(frozen=True)
class OutputOptions:
    mode: str = "none"
    """none, failed or all (`config.FULL_OUTPUT_MODES`)."""
    cap: int = DEFAULT_OUTPUT_CAP
    """Bytes of one stored stream, at most."""

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


class Selecting:
    """A walk's writer that also keeps what it needs of the finished plugins.

    Only their ids, where their copies are, and three facts about their
    Output (not the text): whether it was cut, whether it shows a stderr, and
    whether it shows any stdout.
    """

    _INVOCATION = {
        "command_id": "command_id",
        "instance_id": "instance_id",
        "status": "invocation_status",
        "cloud_watch_output_enabled": "cloud_watch_output_enabled",
        "cloud_watch_log_group_name": "cloud_watch_log_group_name",
    }
    _PLUGIN = (
        *("account_id", "region", "command_id", "instance_id", "requested_date"),
        *("requested_date_time", "document_name", "plugin_index", "name", "status"),
        *("standard_output_url", "standard_error_url", "output_s3_region", "output_s3_bucket_name"),
    )

    def __init__(self, writer: Any, mode: str) -> None:
        self.writer = writer
        self.statuses = pa.array(FAILED if mode == "failed" else FINISHED)
        self._invocations: list[pa.Table] = []
        self._plugins: list[pa.Table] = []
        self._lock = threading.Lock()

    def add(self, spec: TableSpec, table: pa.Table, stream: int = 0) -> None:
        self.writer.add(spec, table, stream)
        if spec is INVOCATIONS:
            kept = table.filter(pc.is_in(table["status"], self.statuses))
            kept = kept.select(list(self._INVOCATION)).rename_columns(self._INVOCATION)
        elif spec is COMMAND_PLUGINS:
            kept = table.filter(pc.is_valid(table["response_finish_date_time"]))
            output = pc.fill_null(kept["output"], "")
            kept = kept.select(list(self._PLUGIN))
            kept = kept.append_column("cut", pc.ends_with(output, TRUNCATED))
            kept = kept.append_column("stderr_shown", pc.match_substring(output, ERROR_TITLE))
            no_stdout = pc.or_(pc.equal(output, ""), pc.starts_with(output, ERROR_TITLE))
            kept = kept.append_column("stdout_shown", pc.invert(no_stdout))
        else:
            return
        with self._lock:
            (self._invocations if spec is INVOCATIONS else self._plugins).append(kept)

    def selected(self) -> list[dict[str, Any]]:
        """The plugins to read, each once, with their invocation's status and CloudWatch config.

        Those whose Output does not hold all they printed (it was cut, or it shows a
        stderr that has to be told from stdout), and those with a full copy in S3 or
        CloudWatch Logs. A plugin whose whole output is its Output and has no copy is
        not read: `command_plugins.output` is all of it.
        """
        if not self._plugins or not self._invocations:
            return []
        plugins = pa.concat_tables(self._plugins)
        invocations = pa.concat_tables(self._invocations)
        joined = plugins.join(invocations, ["command_id", "instance_id"], join_type="inner")
        rows = {
            (r["command_id"], r["instance_id"], r["plugin_index"]): r
            for r in joined.to_pylist()
            if r["cut"]
            or r["stderr_shown"]
            or r["output_s3_bucket_name"]
            or r["cloud_watch_output_enabled"]
        }
        return [rows[k] for k in sorted(rows)]


class Unavailable(Exception):
    """A source could not give a stream: `code` says why (AccessDenied, NoSuchKey, ...)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code

    @property
    def missing(self) -> bool:
        return self.code in _MISSING


@dataclass(frozen=True)
class Text:
    """One stream as a source gave it."""

    text: str
    source: str | None
    """None: not read, the Output shows the stream is empty."""
    size: int
    """Bytes the source holds (for CloudWatch beyond the cap: the bytes read)."""
    truncated_at: int | None = None
    """The source's own cut (GetCommandInvocation's limit), if it cut this text."""
    partial: bool = False
    """Read only up to the cap: the source holds more."""


@dataclass
class OutputStats:
    fetched: int = 0
    """Plugins whose outputs were stored."""
    reasons: Counter[str] = field(default_factory=Counter)
    """`<source> <code>` -> streams that source could not give."""

    @property
    def unavailable(self) -> int:
        return sum(self.reasons.values())

    def reason_list(self) -> list[str]:
        return [f"{reason}: {count}" for reason, count in sorted(self.reasons.items())]


class Fetcher:
    """Reads the full output of one region's plugins; its clients are paced per operation."""

    def __init__(
        self,
        settings: AwsSettings,
        session: boto3.Session,
        ssm: Any,
        region: str,
        *,
        options: OutputOptions,
        redactor: Redactor | None = None,
        retry: PageRetry | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings, self.session, self.ssm, self.region = settings, session, ssm, region
        self.cap = options.cap
        self.redactor = redactor
        self.retry = retry or PageRetry()
        self.stop = stop
        Pacer().attach(ssm, "GetCommandInvocation")
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _client(self, service: str, region: str, operation: str) -> Any:
        with self._lock:  # creating clients is not thread-safe
            client = self._clients.get((service, region))
            if client is None:
                client = self.settings.client(self.session, service, region)
                Pacer().attach(client, operation)
                self._clients[(service, region)] = client
            return client

    def _call(self, method: Callable[..., Any], request: dict[str, Any], region: str) -> Any:
        try:
            return call(method, request, retry=self.retry, stop=self.stop, region=region)
        except AwsError as exc:
            raise Unavailable(exc.code or type(exc).__name__) from exc

    # ---- one plugin ----

    def fetch(self, row: dict[str, Any]) -> tuple[dict[str, Any], Counter[str]]:
        """The plugin's `plugin_outputs` row (lineage aside), and its sources' failures."""
        answer: list[Any] = []

        def content() -> dict[str, Any]:  # GetCommandInvocation once for both streams
            if not answer:
                try:
                    answer.append(self._get_command_invocation(row))
                except Unavailable as exc:
                    answer.append(exc)
            if isinstance(answer[0], Unavailable):
                raise answer[0]
            return dict(answer[0])

        out = {
            k: row[k]
            for k in PLUGIN_OUTPUTS.schema.names
            if k in row and k not in ("stdout", "stderr")
        }
        failures: Counter[str] = Counter()
        for stream in ("stdout", "stderr"):
            # Output is stdout, then the error title and stderr, unless the cut hid them. A
            # stream it shows holds text; one it leaves out printed nothing, so it is not
            # read; one the cut may have hidden may be empty, and S3 and CloudWatch answer
            # an empty stream with nothing at all.
            shown = row[f"{stream}_shown"]
            if not shown and not (row["cut"] and stream == "stderr"):
                out.update(self._columns(stream, Text("", None, 0), []))
                continue
            text, tried = None, []
            for source, read in self._sources(row, stream, content):
                try:
                    text = read()
                    break
                except Unavailable as exc:
                    if shown or not exc.missing or source == GET_COMMAND_INVOCATION:
                        tried.append(f"{source} {exc.code}")
            failures.update(tried)
            out.update(self._columns(stream, text, tried))
        return out, failures

    def _sources(
        self, row: dict[str, Any], stream: str, content: Callable[[], dict[str, Any]]
    ) -> Iterable[tuple[str, Callable[[], Text]]]:
        url = row[f"standard_{'output' if stream == 'stdout' else 'error'}_url"]
        if row["output_s3_bucket_name"] and url:
            yield S3, lambda: self._s3(row, url)
        if row["cloud_watch_output_enabled"]:
            yield CLOUDWATCH, lambda: self._cloudwatch(row, stream)
        yield GET_COMMAND_INVOCATION, lambda: _content(content(), stream)

    def _columns(self, stream: str, text: Text | None, failures: list[str]) -> dict[str, Any]:
        tried = "; ".join(failures) or None
        names = [f.name for f in PLUGIN_OUTPUTS.schema if f.name.startswith(stream)]
        if text is None:
            return dict.fromkeys(names) | {f"{stream}_unavailable": tried}
        body = self.redactor(text.text) if self.redactor else text.text
        data = (body or "").encode()
        capped = text.partial or len(data) > self.cap
        if len(data) > self.cap:
            body = data[: self.cap].decode("utf-8", errors="ignore")
        return {
            stream: body,
            f"{stream}_source": text.source,
            f"{stream}_bytes": text.size,
            f"{stream}_truncated": text.truncated_at is not None,
            f"{stream}_truncated_at": text.truncated_at,
            f"{stream}_capped_at": self.cap if capped else None,
            f"{stream}_unavailable": tried,
        }

    # ---- the sources ----

    def _get_command_invocation(self, row: dict[str, Any]) -> dict[str, Any]:
        request = {
            "CommandId": row["command_id"],
            "InstanceId": row["instance_id"],
            "PluginName": row["name"],
        }
        return dict(self._call(self.ssm.get_command_invocation, request, self.region))

    def _s3(self, row: dict[str, Any], url: str) -> Text:
        bucket = row["output_s3_bucket_name"]
        region = row["output_s3_region"] or self.region
        path = unquote(urlsplit(url).path).lstrip("/")
        key = path.removeprefix(f"{bucket}/")  # path-style URLs name the bucket first
        client = self._client("s3", region, "GetObject")
        want = self.cap + SLACK

        def get(**request: Any) -> tuple[bytes, int]:
            answer = client.get_object(**request)
            body = answer["Body"].read()
            total = _CONTENT_RANGE.search(answer.get("ContentRange") or "")
            return body, int(total[1]) if total else len(body)

        request = {"Bucket": bucket, "Key": key, "Range": f"bytes=0-{want - 1}"}
        try:
            body, size = self._call(get, request, region)
        except Unavailable as exc:
            if exc.code == "InvalidRange":  # an empty object
                return Text("", S3, 0)
            raise
        partial = size > len(body)
        return Text(_decode(body, partial), S3, size, partial=partial)

    def _cloudwatch(self, row: dict[str, Any], stream: str) -> Text:
        group = row["cloud_watch_log_group_name"] or _GROUP_CHARS.sub(
            ".", f"/aws/ssm/{row['document_name']}"
        )
        plugin = (row["name"] or "").replace(":", "-").replace("*", "-")
        name = f"{row['command_id']}/{row['instance_id']}/{plugin}/{stream}"
        client = self._client("logs", self.region, "GetLogEvents")
        request = {"logGroupName": group, "logStreamName": name, "startFromHead": True}
        parts: list[str] = []
        size, partial = 0, False
        try:
            for pages, page in enumerate(
                pager(
                    client.get_log_events,
                    request,
                    input_token="nextToken",
                    output_token="nextForwardToken",
                    retry=self.retry,
                    stop=self.stop,
                    region=self.region,
                ),
                start=1,
            ):
                for event in page.get("events", []):
                    parts.append(event["message"])
                    size += len(event["message"].encode())
                if size >= self.cap + SLACK or pages >= LOG_PAGES:
                    partial = True  # the stream may hold more: as far as the cap goes
                    break
        except AwsError as exc:
            raise Unavailable(exc.code or type(exc).__name__) from exc
        return Text("".join(parts), CLOUDWATCH, size, partial=partial and size > self.cap)


def _content(answer: dict[str, Any], stream: str) -> Text:
    member = "StandardOutputContent" if stream == "stdout" else "StandardErrorContent"
    text = answer.get(member) or ""
    cut = CONTENT_LIMITS[stream] if text.endswith(CONTENT_TRUNCATED) else None
    return Text(text, GET_COMMAND_INVOCATION, len(text.encode()), truncated_at=cut)


def _decode(data: bytes, partial: bool) -> str:
    """UTF-8 text; a body cut short loses the incomplete character at its end."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(data, final=not partial)


def fetch_outputs(
    fetcher: Fetcher,
    selected: list[dict[str, Any]],
    lineage: Lineage,
    fetched: dict[tuple[str, str, int], str | None],
) -> tuple[pa.Table, OutputStats]:
    """The `plugin_outputs` rows of `selected`, but for those stored before in the same state.

    `fetched` maps (command id, instance id, plugin index) to the invocation
    status the stored row was read in.
    """
    todo = [
        r
        for r in selected
        if fetched.get((r["command_id"], r["instance_id"], r["plugin_index"]), "\0")
        != r["invocation_status"]
    ]
    stats = OutputStats()
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="outputs") as pool:
        for row, failures in pool.map(fetcher.fetch, todo):
            rows.append(row)
            stats.reasons.update(failures)
    stats.fetched = len(rows)
    ingested = datetime.fromtimestamp(lineage.ingested_at_ms / 1000, UTC)
    lineage_columns = {"run_id": lineage.run_id, "ingested_at": ingested}
    table = pa.Table.from_pylist([r | lineage_columns for r in rows], schema=PLUGIN_OUTPUTS.schema)
    return table, stats
