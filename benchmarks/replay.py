"""ListCommandInvocations pages served from memory, pre-rendered by the emulator.

Why: the emulator builds every record in Python for every request, which
costs about as much CPU as the client reading it. The replay renders the
emulator's ground truth once, keeps each record as encoded JSON, and answers
a request by joining slices of bytes, so an extraction benchmark measures
the client. It honours MaxResults, NextToken (an offset) and the
InvokedAfter/InvokedBefore filters, so walks split into time slices read
exactly what they would from the emulator, and CommandId (the follow-up of
open commands). Every other request (other SSM
operations, STS, EC2) is passed through to a real emulator of the same fleet;
an SSM operation that emulator does not know yet gets an empty result, so
the pipeline reads its other sources as empty rather than failing.

The answers to ListCommands and DescribeInstanceInformation are kept and
given again to the same request (same region, same body, NextToken
included): the emulator rebuilds a region's history for each of those pages,
about 1 s of CPU per region and walk at 60,000 invocations, which on two
cores would be taken from the client being measured (and only from ours:
the obvious script does not read those sources). The first walk of each
request pays it, every later walk of the same fleet gets the emulator's
answers from memory.
"""

from __future__ import annotations

import http.client
import json
import re
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

from emulator import Emulator, FleetSpec
from emulator.ssm import parse_timestamp

_REPLAYED = "AmazonSSM.ListCommandInvocations"
_KEPT = ("AmazonSSM.ListCommands", "AmazonSSM.DescribeInstanceInformation")
"""Forwarded once per distinct request, then answered from memory."""
_FORWARDED = ("Authorization", "X-Amz-Target", "Content-Type", "X-Amz-Date")
_REGION = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/")


@dataclass(frozen=True)
class Records:
    """One region's records newest first: sort keys (-requested µs) and JSON bodies."""

    keys: list[int]
    bodies: list[bytes]
    plugins: int
    commands: dict[str, list[int]]
    """Each command's record positions (a follow-up asks for one command by CommandId)."""

    @classmethod
    def render(cls, records: list[dict[str, Any]]) -> Records:
        keys = [-round(r["RequestedDateTime"] * 1000) * 1000 for r in records]
        if keys != sorted(keys):
            raise ValueError("the records are not newest first")
        bodies = [json.dumps(r, ensure_ascii=False).encode() for r in records]
        commands: dict[str, list[int]] = {}
        for position, record in enumerate(records):
            commands.setdefault(record["CommandId"], []).append(position)
        plugins = sum(len(r.get("CommandPlugins") or ()) for r in records)
        return cls(keys, bodies, plugins, commands)

    def page(self, request: dict[str, Any]) -> bytes:
        if request.get("CommandId"):
            return self._command(request)
        lo, hi = 0, len(self.keys)
        for item in request.get("Filters") or ():
            bound = parse_timestamp(item["value"])
            if item["key"] == "InvokedAfter":  # requested >= bound
                hi = min(hi, bisect_right(self.keys, -bound))
            elif item["key"] == "InvokedBefore":  # requested <= bound
                lo = max(lo, bisect_left(self.keys, -bound))
        start = max(lo, int(request.get("NextToken") or lo))
        end = min(hi, start + int(request.get("MaxResults") or 50))
        body = b'{"CommandInvocations":[' + b",".join(self.bodies[start:end]) + b"]"
        if end < hi:
            body += b',"NextToken":"%d"' % end
        return body + b"}"

    def _command(self, request: dict[str, Any]) -> bytes:
        """One command's invocations (no time filter applies with a CommandId)."""
        positions = self.commands.get(request["CommandId"], [])
        start = int(request.get("NextToken") or 0)
        end = min(len(positions), start + int(request.get("MaxResults") or 50))
        chosen = b",".join(self.bodies[p] for p in positions[start:end])
        body = b'{"CommandInvocations":[' + chosen + b"]"
        if end < len(positions):
            body += b',"NextToken":"%d"' % end
        return body + b"}"


class Replay:
    """An SSM endpoint (ListCommandInvocations only) replaying `spec`'s fleet.

    `records` (region -> API records, newest first) replaces the fleet's own
    invocations; the emulator still answers every other call.
    """

    def __init__(
        self,
        spec: FleetSpec,
        host: str = "127.0.0.1",
        records: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.emulator = Emulator(spec, host=host)
        if records is None:
            records = {r: self.emulator.ground_truth(spec.account_id, r) for r in spec.regions}
        self.regions = {region: Records.render(found) for region, found in records.items()}
        self.kept: dict[tuple[str, str, bytes], tuple[int, dict, bytes]] = {}
        """Answers of `_KEPT` operations, by (region, operation, request body)."""
        self.served: Counter[str] = Counter()
        """ListCommandInvocations answered: by time window, or by CommandId (a follow-up)."""
        self._server = ThreadingHTTPServer((host, 0), _Handler)
        self._server.daemon_threads = True
        self._server.replay = self  # type: ignore[attr-defined]
        self._thread = Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Replay:
        self.emulator.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.emulator.stop()

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        """Ask the emulator; returns status, headers and body."""
        host, port = self.emulator.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        replay: Replay = self.server.replay  # type: ignore[attr-defined]
        match = _REGION.search(self.headers.get("Authorization", ""))
        region = match["region"] if match else ""
        records = replay.regions.get(region)
        if self.headers.get("X-Amz-Target") == _REPLAYED and records is not None:
            request = json.loads(raw)
            replay.served["follow-up" if request.get("CommandId") else "window"] += 1
            status, body = 200, records.page(request)
            headers = {"Content-Type": "application/x-amz-json-1.1"}
        else:
            target = self.headers.get("X-Amz-Target", "")
            key = (region, target, raw)
            kept = replay.kept.get(key)
            if kept is not None:
                status, headers, body = kept
            else:
                wanted = {k: v for k in _FORWARDED if (v := self.headers.get(k)) is not None}
                status, headers, body = replay.forward(self.path, wanted, raw)
                if status == 400 and b"UnknownOperationException" in body:
                    status, body = 200, b"{}"
                if target in _KEPT and status == 200:
                    replay.kept[key] = (status, headers, body)
        self.send_response(status)
        self.send_header("Content-Type", headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)
