"""STS: who the caller is, and AssumeRole credentials that act on another account's fleet.

Any access key the emulator never issued stands for `FleetSpec.account_id`, as
before. Keys from AssumeRole (`ASIA...`) are remembered with their account,
role and session token, so a second client built from them sees the other
account's fleet. They expire on the wall clock, not the emulator's clock: SDKs
decide when to refresh by comparing `Expiration` with the machine's time.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from .ssm import ApiError, Violations

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
DEFAULT_SECONDS = 3600
CHAINED_MAX_SECONDS = 3600
EXPIRED = "The security token included in the request is expired"
INVALID = "The security token included in the request is invalid."
_ROLE_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso(?:-[a-z])?):iam::(?P<account>\d{12}):"
    r"role/(?:[\w+=,.@-]+/)*(?P<name>[\w+=,.@-]{1,64})$"
)
_SESSION_NAME = re.compile(r"^[\w+=,.@-]*$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]*$")
_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@dataclass(frozen=True)
class Identity:
    """Whom a request's access key stands for; `expires` is wall-clock epoch seconds."""

    account: str
    arn: str
    user_id: str
    session_token: str = ""
    expires: float | None = None

    @property
    def assumed(self) -> bool:
        return self.expires is not None


class Sessions:
    """Access keys AssumeRole handed out, and whose they are; safe across request threads."""

    def __init__(self, account: str, lifetime: float | None = None) -> None:
        self.default = Identity(
            account, f"arn:aws:iam::{account}:user/emulator", f"AIDA{account}EMULATOR"
        )
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._keys: dict[str, Identity] = {}

    def resolve(self, access_key: str | None, token: str | None, *, query: bool) -> Identity:
        """The caller, or the error AWS answers for a stale or forged session token."""
        with self._lock:
            identity = self._keys.get(access_key or "")
        if identity is None:
            return self.default
        if token != identity.session_token:
            code = "InvalidClientTokenId" if query else "UnrecognizedClientException"
            raise ApiError(code, INVALID, 403 if query else 400)
        if identity.expires is not None and time.time() >= identity.expires:
            raise ApiError(
                "ExpiredToken" if query else "ExpiredTokenException", EXPIRED, 403 if query else 400
            )
        return identity

    def issue(self, identity: Identity, seconds: float) -> tuple[str, str, Identity]:
        """(access key, secret, identity) for a fresh session of `seconds` on the wall clock."""
        if self.lifetime is not None:
            seconds = min(seconds, self.lifetime)
        access_key = "ASIA" + "".join(secrets.choice(_KEY_CHARS) for _ in range(16))
        token = "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(180)
        identity = Identity(
            identity.account, identity.arn, identity.user_id, token, time.time() + seconds
        )
        with self._lock:
            self._keys[access_key] = identity
        return access_key, secrets.token_urlsafe(30)[:40], identity

    def expire(self) -> int:
        """End every issued session now; how many there were."""
        with self._lock:
            self._keys = {
                k: Identity(i.account, i.arn, i.user_id, i.session_token, 0.0)
                for k, i in self._keys.items()
            }
            return len(self._keys)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _envelope(action: str, result: str, request_id: str) -> str:
    return (
        f'<{action}Response xmlns="{STS_NS}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )


def get_caller_identity(caller: Identity, request_id: str) -> str:
    result = (
        f"<Arn>{escape(caller.arn)}</Arn><UserId>{escape(caller.user_id)}</UserId>"
        f"<Account>{caller.account}</Account>"
    )
    return _envelope("GetCallerIdentity", result, request_id)


def _duration(params: dict[str, str], errors: Violations) -> int:
    text = params.get("DurationSeconds")
    if text is None:
        return DEFAULT_SECONDS
    try:
        seconds = int(text)
    except ValueError:
        raise ApiError("MalformedInput", f"Invalid value for DurationSeconds: {text}") from None
    errors.bounds(seconds, seconds, "durationSeconds", 900, 43200, "value")
    return seconds


def assume_role(
    caller: Identity,
    params: dict[str, str],
    sessions: Sessions,
    *,
    denied: set[str],
    request_id: str,
) -> str:
    """AssumeRole's XML answer; `denied` accounts refuse (deny list, suspended, closed)."""
    errors = Violations()
    role_arn, name = params.get("RoleArn"), params.get("RoleSessionName")
    external = params.get("ExternalId")
    for value, path, low, high in (
        (role_arn, "roleArn", 20, 2048),
        (name, "roleSessionName", 2, 64),
    ):
        if value is None:
            errors.add(None, path, "Member must not be null")
        else:
            errors.bounds(value, len(value), path, low, high, "length")
    if name is not None and not _SESSION_NAME.match(name):
        errors.add(
            name, "roleSessionName", r"Member must satisfy regular expression pattern: [\w+=,.@-]*"
        )
    if external is not None:
        errors.bounds(external, len(external), "externalId", 2, 1224, "length")
        if not _EXTERNAL_ID.match(external):
            errors.add(
                external,
                "externalId",
                r"Member must satisfy regular expression pattern: [\w+=,.@:\/-]*",
            )
    seconds = _duration(params, errors)
    try:
        errors.raise_any()
    except ApiError as error:
        raise ApiError("ValidationError", error.message) from None
    assert role_arn is not None and name is not None
    match = _ROLE_ARN.match(role_arn)
    if match is None:
        raise ApiError("ValidationError", "Request ARN is invalid")
    if caller.assumed and seconds > CHAINED_MAX_SECONDS:
        raise ApiError(
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        )
    account, role = match["account"], match["name"]
    if account in denied:
        raise ApiError(
            "AccessDenied",
            f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            403,
        )
    digest = hashlib.sha256(f"{account}:{role}".encode()).digest()
    role_id = "AROA" + "".join(_KEY_CHARS[b % 32] for b in digest[:17])
    arn = f"arn:{match['partition']}:sts::{account}:assumed-role/{role}/{name}"
    access_key, secret, issued = sessions.issue(
        Identity(account, arn, f"{role_id}:{name}"), seconds
    )
    assert issued.expires is not None
    result = (
        f"<AssumedRoleUser><AssumedRoleId>{role_id}:{name}</AssumedRoleId><Arn>{escape(arn)}</Arn>"
        f"</AssumedRoleUser><Credentials><AccessKeyId>{access_key}</AccessKeyId>"
        f"<SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{issued.session_token}"
        f"</SessionToken><Expiration>{_iso(issued.expires)}</Expiration></Credentials>"
    )
    return _envelope("AssumeRole", result, request_id)


def sts(
    caller: Identity, params: dict[str, Any], sessions: Sessions, denied: set[str], request_id: str
) -> str:
    """The answer to one STS action."""
    action = params.get("Action")
    if action == "GetCallerIdentity":
        return get_caller_identity(caller, request_id)
    if action == "AssumeRole":
        return assume_role(caller, params, sessions, denied=denied, request_id=request_id)
    raise ApiError(
        "InvalidAction",
        f"Could not find operation {action} for version {params.get('Version', 'NO_VERSION_SPECIFIED')}",
    )
