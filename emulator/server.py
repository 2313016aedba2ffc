"""One loopback HTTP endpoint standing in for SSM, S3, CloudWatch Logs, STS, EC2, Organizations.

The SigV4 credential scope (`AKID/date/region/service/aws4_request`) says which
service and region a request is for, exactly the information AWS takes from the
host name, so boto3 and the AWS CLI only need `--endpoint-url` (S3 requests are
path-style GET and HEAD, or presigned URLs with the scope in their query).
Signatures are parsed but not verified: any credentials work, which is the
point offline. The access key says whose fleet a request sees (see `iam.py`).
Paths under `/_emulator/` are the unsigned admin API (see `admin.py`).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from . import admin, iam, orgs
from .clock import Clock, to_ms
from .command_invocation import get_command_invocation
from .commands import grouped, list_commands, render_command
from .ec2 import OPT_IN_REGIONS, STANDARD_REGIONS, describe_regions
from .faults import Draw, FaultSpec, Injector, corrupt
from .fleet import OFFLINE_DAYS, RETENTION_MS, FleetSpec, history
from .inventory import describe_instance_information, instances
from .logs import TARGET_PREFIX as LOGS_PREFIX
from .logs import get_log_events
from .s3 import S3Error, get_object, ids
from .s3 import operation as s3_operation
from .sources import open_spans, output_sources, planted_secrets
from .ssm import TARGET_PREFIX, ApiError, Request, Tokens, list_command_invocations, render

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[A-Za-z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)"
    r"/(?P<service>[a-z0-9-]+)/aws4_request, ?SignedHeaders=[a-z0-9;.-]+, ?Signature=[0-9a-f]{64}$"
)
_PRESIGNED = re.compile(
    r"^(?P<akid>[A-Za-z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)"
    r"/aws4_request$"
)
_PROTOCOLS = {"ssm": "json", "sts": "query", "ec2": "ec2", "organizations": "json", "logs": "json"}
_STS_NS = iam.STS_NS
_SSM_OPERATIONS = (
    "ListCommandInvocations", "ListCommands", "DescribeInstanceInformation", "GetCommandInvocation",
)  # fmt: skip


class DropConnection(Exception):
    """Close the socket without answering, as a reset connection looks to the client."""


class Emulator:
    """The fleet behind a live HTTP server; a context manager, or start()/stop()."""

    def __init__(self, spec: FleetSpec | None = None, host: str = "127.0.0.1", port: int = 0):
        spec = spec or FleetSpec()
        self.clock = Clock(spec.now)
        if spec.offline_since is None:  # on the wall clock: offline since ten days before start
            offline = (self.clock.now() - timedelta(days=OFFLINE_DAYS)).astimezone(UTC).date()
            spec = replace(spec, offline_since=offline)
        self.spec = spec
        self._injector = Injector(spec.faults or FaultSpec())
        self._stopping = threading.Event()
        self.host, self.port = host, port
        self.request_log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._tokens = Tokens(secrets.token_bytes(32))
        # ListCommandInvocations' tokens per (account, region) are signed with a key
        # that invalid_token_once rotates, which expires every token issued before.
        self._token_keys: dict[tuple[str, str], Tokens] = {}
        self.sessions = iam.Sessions(spec.account_id, spec.credential_seconds)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        extra = [r for r in self.spec.regions if r not in STANDARD_REGIONS]
        self.enabled_regions: tuple[str, ...] = tuple(sorted({*STANDARD_REGIONS, *extra}))
        self.disabled_regions = tuple(r for r in OPT_IN_REGIONS if r not in extra)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Emulator:
        if self._server is None:
            server = ThreadingHTTPServer((self.host, self.port), _Handler)
            server.daemon_threads = True
            server.emulator = self  # type: ignore[attr-defined]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},  # stop() waits up to one interval
                name="ssm-emulator",
                daemon=True,
            )
            self._stopping.clear()
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes requests held by the slow fault
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ground_truth(self, account_id: str, region: str) -> list[dict[str, Any]]:
        """What a full, unfiltered walk with Details=true returns right now."""
        now = self.clock.now_ms()
        window = history(self.spec, account_id, region, now)
        return [render(inv, now, details=True) for inv in window.invocations]

    def commands_ground_truth(self, account_id: str, region: str) -> list[dict[str, Any]]:
        """What a full ListCommands walk returns right now (Parameters say Install or Scan)."""
        now = self.clock.now_ms()
        return [
            render_command(group, now)
            for group in grouped(history(self.spec, account_id, region, now))
        ]

    def instances_ground_truth(self, account_id: str, region: str) -> list[dict[str, Any]]:
        """What a full, unfiltered DescribeInstanceInformation walk returns right now."""
        return instances(self.spec, account_id, region, self.clock.now_ms())

    @property
    def organization(self) -> tuple[orgs.OrgAccount, ...]:
        """The accounts ListAccounts answers with; the management account is the fleet's."""
        if self.spec.organization is not None:
            return self.spec.organization
        return orgs.default_organization(self.spec.seed, self.spec.account_id)

    def set_credential_seconds(self, seconds: float | None) -> None:
        """Cap the life of credentials AssumeRole issues from now on; None: as asked."""
        if seconds is not None and not seconds > 0:
            raise ValueError("credential seconds must be positive, or null for no cap")
        self.sessions.lifetime = seconds

    def expire_credentials(self) -> int:
        """Expire every AssumeRole session at once; how many there were."""
        return self.sessions.expire()

    @property
    def faults(self) -> FaultSpec:
        return self._injector.spec

    def set_faults(self, faults: FaultSpec | dict[str, Any] | None) -> FaultSpec:
        """Replace the faults; buckets, dice and walk state start afresh. None clears."""
        spec = faults if isinstance(faults, FaultSpec) else FaultSpec.from_dict(faults)
        self._injector = Injector(spec)
        return spec

    def malformed_keys(self, account_id: str, region: str) -> set[tuple[str, str]]:
        """(CommandId, InstanceId) of the ground-truth records sent malformed right now."""
        injector = self._injector
        return {
            (record["CommandId"], record["InstanceId"])
            for record in self.ground_truth(account_id, region)
            if injector.malformed(region, record)
        }

    def log(
        self, service: str | None, region: str | None, operation: str | None, params: Any
    ) -> dict[str, Any]:
        entry = {
            "service": service,
            "region": region,
            "operation": operation,
            "params": params,
            "fault": None,
        }
        with self._log_lock:
            self.request_log.append(entry)
        return entry

    # ---- services ---------------------------------------------------------------------

    def ssm(
        self, region: str, target: str, body: bytes, access_key: str | None = None,
        token: str | None = None,
    ) -> tuple[int, dict[str, Any]]:  # fmt: skip
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else None
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            self.log("ssm", region, operation, None)
            raise ApiError(
                "SerializationException", "Unexpected character in request body"
            ) from None
        entry = self.log("ssm", region, operation, params)
        if operation not in _SSM_OPERATIONS:
            raise ApiError("UnknownOperationException", f"Unknown operation {target or '(none)'}")
        if region not in self.enabled_regions:
            raise ApiError("UnrecognizedClientException", iam.INVALID)
        account = self.sessions.resolve(access_key, token, query=False).account
        now = self.clock.now_ms()
        if operation == "ListCommands":
            window = history(self.spec, account, region, now)
            return 200, list_commands(
                params, window=window, now=now, tokens=self._tokens, account=account, region=region
            )
        if operation == "DescribeInstanceInformation":
            records = instances(self.spec, account, region, now)
            return 200, describe_instance_information(
                params, records=records, tokens=self._tokens, account=account, region=region
            )
        injector = self._injector
        self._admit(entry, account, region, operation)
        if operation == "GetCommandInvocation":
            self._suffer(entry, account, region, operation, has_token=False)
            return 200, get_command_invocation(
                params, spec=self.spec, account=account, region=region, now=self.clock.now_ms()
            )
        request = Request(params)
        draw, faults = self._suffer(entry, account, region, operation, bool(request.next_token))
        if draw.fault == "invalid_token":
            self._token_keys[(account, region)] = Tokens(
                secrets.token_bytes(32)
            )  # one item: atomic
            raise ApiError("InvalidNextToken", "The specified token is not valid.")
        if self.spec.page_delay:
            time.sleep(self.spec.page_delay)
        now = self.clock.now_ms()
        window = history(self.spec, account, region, now)
        tokens = self._token_keys.get((account, region), self._tokens)
        result = list_command_invocations(
            request, window=window, now=now, tokens=tokens, account=account,
            region=region, empty=draw.empty, repeat_token=draw.repeat_token,
        )  # fmt: skip
        if draw.empty and not result["CommandInvocations"] and "NextToken" in result:
            faults.append("empty_page")
        if draw.repeat_token and request.next_token:
            faults.append("repeat_token")
        malformed = False
        for record in result["CommandInvocations"]:
            kind = injector.malformed(region, record)
            if kind is not None:
                corrupt(record, kind)
                malformed = True
        if malformed:
            faults.append("malformed")
        entry["fault"] = "+".join(faults) or None
        return 200, result

    def _admit(self, entry: dict[str, Any], account: str, region: str, operation: str) -> None:
        """Refuse the request, as the fault document says, before it is even read."""
        refusal = self._injector.admit(account, region, operation)
        if refusal is not None:
            entry["fault"] = refusal.fault
            raise ApiError(refusal.code, refusal.message)

    def _suffer(
        self, entry: dict[str, Any], account: str, region: str, operation: str, has_token: bool
    ) -> tuple[Draw, list[str]]:
        """Roll the request's dice: be slow, drop the connection or fail, as drawn."""
        draw = self._injector.draw(account, region, has_token, operation)
        faults = ["slow"] if draw.slow else []
        if draw.fault is not None:
            faults.append(draw.fault)
        entry["fault"] = "+".join(faults) or None
        if draw.slow:
            self._stopping.wait(draw.slow)
        if draw.fault == "reset":
            raise DropConnection
        if draw.fault == "error":
            raise ApiError("InternalServerError", "Internal Server Error", 500)
        return draw, faults

    def logs(
        self, region: str, target: str, body: bytes, access_key: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        operation = target.removeprefix(LOGS_PREFIX) if target.startswith(LOGS_PREFIX) else None
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            params = None
        self.log("logs", region, operation, params)
        if operation != "GetLogEvents":
            raise ApiError("UnknownOperationException", f"Unknown operation {target or '(none)'}")
        if region not in self.enabled_regions:
            raise ApiError("UnrecognizedClientException", iam.INVALID)
        account = self.sessions.resolve(access_key, token, query=False).account
        return get_log_events(
            params, spec=self.spec, account=account, region=region, now=self.clock.now_ms()
        )

    def s3(
        self, method: str, region: str, target: str, headers: Any, access_key: str | None = None,
        token: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        url = urlsplit(target)
        op, bucket, key = s3_operation(method, url.path, parse_qs(url.query))
        params = {"Bucket": bucket, "Key": key}
        if headers.get("Range"):
            params["Range"] = headers["Range"]
        self.log("s3", region or None, op, params)
        try:
            account = self.sessions.resolve(access_key, token, query=True).account
        except ApiError as error:
            code = "ExpiredToken" if error.code == "ExpiredToken" else "InvalidToken"
            raise S3Error(400, code, error.message) from None
        return get_object(
            self.spec, op=op, name=bucket, key=key, account=account, region=region,
            headers=headers, now=self.clock.now_ms(),
        )  # fmt: skip

    def output_ground_truth(
        self, account_id: str, region: str, command_id: str, instance_id: str, plugin_name: str
    ) -> dict[str, Any]:
        """What the plugin printed by now, and where that can be read back (sources.output_sources)."""
        return output_sources(
            self.spec, account_id, region, command_id, instance_id, plugin_name,
            self.clock.now_ms(),
        )  # fmt: skip

    def open_spans(
        self, account_id: str, region: str, since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Each invocation requested between `since` and `until` (default: the 30 days up to
        now) with how long it stays open; see `sources.open_spans`."""
        now = self.clock.now_ms()
        first = to_ms(since) if since is not None else now - RETENTION_MS
        last = to_ms(until) if until is not None else now
        return open_spans(self.spec, account_id, region, first, last)

    def planted_secrets(
        self, account_id: str, region: str, since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """AWS credentials that plugins printed past the 2,500-character cut (sources.py)."""
        now = self.clock.now_ms()
        first = to_ms(since) if since is not None else now - RETENTION_MS
        last = to_ms(until) if until is not None else now
        return planted_secrets(self.spec, account_id, region, first, last)

    def sts(
        self, region: str, params: dict[str, str], request_id: str, access_key: str | None = None,
        token: str | None = None,
    ) -> str:  # fmt: skip
        self.log("sts", region, params.get("Action"), params)
        caller = self.sessions.resolve(access_key, token, query=True)
        denied = {*self.spec.deny_assume_role, *(a.id for a in self.organization if not a.usable)}
        return iam.sts(caller, params, self.sessions, denied, request_id)

    def organizations(
        self, region: str, target: str, body: bytes, access_key: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        operation = (
            target.removeprefix(orgs.TARGET_PREFIX)
            if target.startswith(orgs.TARGET_PREFIX)
            else None
        )
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            params = None
        self.log("organizations", region, operation, params)
        if operation != "ListAccounts":
            raise ApiError("UnknownOperationException", f"Unknown operation {target or '(none)'}")
        caller = self.sessions.resolve(access_key, token, query=False)
        management = self.spec.account_id
        if self.spec.organization == ():
            raise ApiError(
                "AWSOrganizationsNotInUseException",
                "Your account is not a member of an organization.",
            )
        if caller.account != management:
            raise ApiError(
                "AccessDeniedException", "You don't have permissions to access this resource."
            )
        org_id = orgs.organization_id(self.spec.seed, management)
        return orgs.list_accounts(params, self.organization, management, org_id, self._tokens)

    def ec2(self, region: str, params: dict[str, str], request_id: str) -> str:
        action = params.get("Action")
        self.log("ec2", region, action, params)
        if action != "DescribeRegions":
            raise ApiError(
                "InvalidAction", f"The action {action} is not valid for this web service."
            )
        if region not in self.enabled_regions:
            raise ApiError(
                "AuthFailure", "AWS was not able to validate the provided access credentials"
            )
        return describe_regions(params, self.enabled_regions, self.disabled_regions, request_id)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stall

    def version_string(self) -> str:
        return "Server"  # what AWS front ends send

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: tests and the demo print their own summaries

    def do_GET(self) -> None:
        if not self._admin("GET", b""):
            self._serve("GET", urlsplit(self.path).query.encode())

    def do_HEAD(self) -> None:
        self._serve("HEAD", b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not self._admin("POST", body):
            self._serve("POST", body)

    def do_DELETE(self) -> None:
        if not self._admin("DELETE", b""):
            self._send(405, b"", "text/plain", str(uuid.uuid4()))

    def _admin(self, method: str, body: bytes) -> bool:
        url = urlsplit(self.path)
        if not url.path.startswith(admin.PREFIX):
            return False
        emulator: Emulator = self.server.emulator  # type: ignore[attr-defined]
        status, payload = admin.handle(emulator, method, url.path, url.query, body)
        text = json.dumps(payload, ensure_ascii=False).encode()
        self._send(status, text, "application/json", str(uuid.uuid4()))
        return True

    def _serve(self, method: str, body: bytes) -> None:
        emulator: Emulator = self.server.emulator  # type: ignore[attr-defined]
        request_id = str(uuid.uuid4())
        protocol = self._guess_protocol(method, body)
        service: str | None = None
        try:
            service, region, key = self._scope(emulator)
            token, target = (
                self.headers.get("X-Amz-Security-Token"),
                self.headers.get("X-Amz-Target", ""),
            )
            if service == "s3":
                query = parse_qs(urlsplit(self.path).query)
                token = token or query.get("X-Amz-Security-Token", [None])[-1]
                status, headers, answer = emulator.s3(
                    method, region, self.path, self.headers, key, token
                )
                self._send(status, answer, headers.pop("Content-Type"), request_id, headers, method)
            elif service in ("ssm", "organizations", "logs"):
                if service == "ssm":
                    status, payload = emulator.ssm(region, target, body, key, token)
                elif service == "logs":
                    status, payload = 200, emulator.logs(region, target, body, key, token)
                else:
                    status, payload = 200, emulator.organizations(region, target, body, key, token)
                text = json.dumps(payload, ensure_ascii=False)
                self._send(status, text.encode(), "application/x-amz-json-1.1", request_id)
            elif service in ("sts", "ec2"):
                params = {
                    k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()
                }
                if service == "sts":
                    answer = emulator.sts(region, params, request_id, key, token)
                else:
                    answer = emulator.ec2(region, params, request_id)
                self._send(200, answer.encode(), "text/xml", request_id)
            else:
                emulator.log(service, region, None, None)
                raise ApiError("UnknownOperationException", f"Unknown service: {service}")
        except S3Error as error:
            self._s3_error(error, method, request_id)
        except ApiError as error:
            if protocol == "s3" and service in (None, "s3"):
                self._s3_error(S3Error(403, "AccessDenied", "Access Denied"), method, request_id)
            else:
                self._error(error, _PROTOCOLS.get(service or "", protocol), request_id)
        except DropConnection:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. on a slow answer)
        except Exception as exc:  # noqa: BLE001 - the caller sees a 500, as from AWS
            if protocol == "s3":
                failure = S3Error(500, "InternalError", "We encountered an internal error.")
                self._s3_error(failure, method, request_id)
                return
            failure = ApiError("InternalServerError", f"{type(exc).__name__}: {exc}", 500)
            self._error(failure, protocol, request_id)

    def _guess_protocol(self, method: str, body: bytes) -> str:
        """Before the scope is known, the request's shape says how to answer it."""
        if self.headers.get("X-Amz-Target"):
            return "json"
        params = parse_qs(body.decode(errors="replace"))
        if "Action" in params:
            return "ec2" if params.get("Version") == ["2016-11-15"] else "query"
        return "s3" if method in ("GET", "HEAD") else "json"

    def _scope(self, emulator: Emulator) -> tuple[str, str, str]:
        header = self.headers.get("Authorization")
        if not header:  # a presigned URL carries the scope in its query
            query = parse_qs(urlsplit(self.path).query)
            match = _PRESIGNED.match(query.get("X-Amz-Credential", [""])[-1])
            if match:
                return match["service"], match["region"], match["akid"]
            if "AWSAccessKeyId" in query:  # S3's SigV2 query auth: no region in it
                return "s3", "", query["AWSAccessKeyId"][-1]
            emulator.log(None, None, None, None)
            raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token")
        match = _AUTH.match(header.strip())
        if not match:
            emulator.log(None, None, None, None)
            raise ApiError(
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                f"parameters in the form AWS4-HMAC-SHA256 Credential=AKID/date/region/service/"
                f"aws4_request, SignedHeaders=..., Signature=... Authorization={header}",
            )
        return match["service"], match["region"], match["akid"]

    def _s3_error(self, error: S3Error, method: str, request_id: str) -> None:
        amz_id, host_id = ids(request_id)
        body = error.body(amz_id, host_id)
        headers = dict(error.headers)
        if method == "HEAD":
            headers["Content-Length"] = "0"
        self._send(error.status, body, "application/xml", request_id, headers, method)

    def _error(self, error: ApiError, protocol: str, request_id: str) -> None:
        code, message = escape(error.code), escape(error.message)
        if protocol == "json":
            fields = {"__type": error.code, "message": error.message, **error.extra}
            body = json.dumps(fields).encode()
            self._send(error.status, body, "application/x-amz-json-1.1", request_id)
            return
        if protocol == "ec2":
            text = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}'
                f"</Code><Message>{message}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>"
            )
        else:
            kind = "Receiver" if error.status >= 500 else "Sender"
            text = (
                f'<ErrorResponse xmlns="{_STS_NS}"><Error><Type>{kind}</Type><Code>{code}</Code>'
                f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
                "</ErrorResponse>"
            )
        self._send(error.status, text.encode(), "text/xml", request_id)

    def _send(
        self, status: int, body: bytes, content_type: str, request_id: str,
        headers: dict[str, str] | None = None, method: str = "POST",
    ) -> None:  # fmt: skip
        """Answer; S3 answers (with `headers`) carry S3's ids, and HEAD answers no body."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if headers is None:
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", request_id)
        else:
            amz_id, host_id = ids(request_id)
            headers.setdefault("Content-Length", str(len(body)))
            for name, value in {
                "x-amz-request-id": amz_id,
                "x-amz-id-2": host_id,
                **headers,
            }.items():
                self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)
