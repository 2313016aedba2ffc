"""S3 GetObject and HeadObject over the REST protocol, for the plugins' output objects.

Path-style addressing only (`/<bucket>/<key>`), which is what boto3 and the AWS
CLI use against `http://127.0.0.1:PORT`. Which objects exist when is
destinations.py's business; this module speaks the protocol: headers, single
byte ranges, If-Match, and errors in S3's XML shape (NoSuchBucket, NoSuchKey,
AccessDenied 403 for the denied bucket whatever the key, InvalidRange), with
no body on HEAD. A request signed for another region than the bucket's answers
400 AuthorizationHeaderMalformed with `x-amz-bucket-region`, as S3 does, so
botocore's region redirector retries it. Presigned URLs work (SigV4, and the
SigV2 ones boto3 makes by default; signatures are not checked). Other S3
operations answer 501 NotImplemented.
"""

from __future__ import annotations

import base64
import hashlib
import re
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from .destinations import bucket, stored
from .fleet import FleetSpec

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_QUERY_AUTH = {"AWSAccessKeyId", "Signature", "Expires", "versionId", "partNumber"}


class S3Error(Exception):
    """An error S3 answers: HTTP status, code, message and extra XML elements."""

    def __init__(self, status: int, code: str, message: str, **fields: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields
        self.headers: dict[str, str] = {}

    def body(self, request_id: str, host_id: str) -> bytes:
        extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in self.fields.items())
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{self.code}</Code>'
            f"<Message>{escape(self.message)}</Message>{extra}<RequestId>{request_id}</RequestId>"
            f"<HostId>{host_id}</HostId></Error>"
        ).encode()


def operation(method: str, path: str, query: dict[str, list[str]]) -> tuple[str, str, str]:
    """(operation, bucket, key) the request is for; only objects are served."""
    name, _, key = path.lstrip("/").partition("/")
    asked = {k for k in query if not k.startswith("X-Amz-")} - _QUERY_AUTH
    if method in ("GET", "HEAD") and name and key and not asked:
        return ("GetObject" if method == "GET" else "HeadObject"), unquote(name), unquote(key)
    return "NotImplemented", unquote(name), unquote(key)


def ids(request_id: str) -> tuple[str, str]:
    """S3's x-amz-request-id (16 hex digits) and x-amz-id-2 from our request id."""
    digest = hashlib.sha256(request_id.encode()).digest()
    return digest[:8].hex().upper(), base64.b64encode(digest * 2).decode()


def get_object(
    spec: FleetSpec, *, op: str, name: str, key: str, account: str, region: str,
    headers: Any, now: int,
) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """(status, headers, body) for GetObject or HeadObject; raises S3Error."""
    if op not in ("GetObject", "HeadObject"):
        raise S3Error(
            501,
            "NotImplemented",
            "A header you provided implies functionality that is not implemented",
        )
    where = bucket(spec, name)
    if where is None:
        raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=name)
    if region and where.region != region:  # SigV2 presigned URLs name no region
        error = S3Error(
            400, "AuthorizationHeaderMalformed",
            f"The authorization header is malformed; the region '{region}' is wrong; "
            f"expecting '{where.region}'",
            Region=where.region,
        )  # fmt: skip
        error.headers["x-amz-bucket-region"] = where.region
        raise error
    if where.denied or where.account != account:
        raise S3Error(403, "AccessDenied", "Access Denied")
    found = stored(spec, where, key, now)
    if found is None:
        raise S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
    body = found.body
    etag = f'"{hashlib.md5(body).hexdigest()}"'  # noqa: S324 - S3's ETag, not security
    wanted = headers.get("If-Match")
    if wanted is not None and wanted not in (etag, "*"):
        message = "At least one of the pre-conditions you specified did not hold"
        raise S3Error(412, "PreconditionFailed", message, Condition="If-Match")
    out = {
        "Last-Modified": formatdate(found.last_modified // 1000, usegmt=True),
        "ETag": etag,
        "x-amz-server-side-encryption": "AES256",
        "Accept-Ranges": "bytes",
        "Content-Type": "binary/octet-stream",
    }
    if found.expires is not None:
        expiry = formatdate(found.expires // 1000, usegmt=True)
        out["x-amz-expiration"] = f'expiry-date="{expiry}", rule-id="{found.rule}"'
    status, part = 200, body
    asked = headers.get("Range")
    if asked:
        first, last = _range(asked, len(body))
        status, part = 206, body[first : last + 1]
        out["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
    out["Content-Length"] = str(len(part))
    return status, out, (b"" if op == "HeadObject" else part)


def _range(asked: str, size: int) -> tuple[int, int]:
    match = _RANGE.match(asked.strip())
    if match is None or match.groups() == ("", ""):
        return 0, size - 1  # S3 ignores a Range header it cannot parse
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise S3Error(
            416, "InvalidRange", "The requested range is not satisfiable",
            RangeRequested=asked, ActualObjectSize=str(size),
        )  # fmt: skip
    return start, end
