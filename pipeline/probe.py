"""Fail fast, and say why: one small request before a run commits to anything.

A run that cannot reach SSM, or whose credentials do not work, would
otherwise spend every region's retry budget (`pipeline.paging`) before
failing each region with the same error. `probe` asks once, with short
timeouts and two attempts, and turns the failure into one line naming the
endpoint or the credential source and the fix.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSOTokenLoadError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)

from .errors import FatalAwsError, NothingReachedError, RetriableAwsError
from .extract import AssumedRole, AwsSettings, decoding
from .paging import aws_error

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
ATTEMPTS = 2

_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
_REFUSED = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "AuthFailure",
}
_DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}
_SOURCES = {
    "env": "the environment (AWS_ACCESS_KEY_ID)",
    "shared-credentials-file": "the shared credentials file",
    "config-file": "the AWS config file",
    "sso": "SSO",
    "assume-role": "the profile's assumed role",
    "iam-role": "the instance role",
    "container-role": "the container role",
}
_FIX = "choose other credentials with --profile or AWS_PROFILE"


def probe(
    settings: AwsSettings,
    region: str | None,
    account_id: str | None = None,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> str | None:
    """Check that SSM answers in `region` and the credentials work; the caller's account id.

    One ListCommandInvocations (MaxResults=1) in `region` (None: the session's own,
    else us-east-1), and STS GetCallerIdentity when `account_id` is not given.
    Throttling or a 5xx counts as reached: the run's own retries deal with those (and
    the account id is then None if STS was the one throttled). Raises
    NothingReachedError.
    """
    quick = replace(
        settings,
        max_attempts=ATTEMPTS,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    try:
        session = quick.session()
        credentials = session.get_credentials()
    except (FatalAwsError, BotoCoreError) as exc:
        raise explain(exc, source=_profile(settings), region=region or "") from exc
    region = region or session.region_name or "us-east-1"
    if credentials is None:
        raise explain(NoCredentialsError(), source=_profile(settings), region=region)
    source = describe_source(credentials.method, settings)
    ssm = decoding(quick.client(session, "ssm", region))
    _ask(ssm, "list_command_invocations", {"MaxResults": 1}, source, region)
    if account_id is None:
        sts = quick.client(session, "sts", region)
        identity = _ask(sts, "get_caller_identity", {}, source, region)
        account_id = None if identity is None else str(identity["Account"])
    return account_id


def _ask(client: Any, operation: str, request: dict[str, Any], source: str, region: str) -> Any:
    """The answer, None if throttled or a 5xx; NothingReachedError for anything else."""
    try:
        return getattr(client, operation)(**request)
    except (ClientError, BotoCoreError) as exc:
        if _reached(exc, region):
            return None  # throttled or a 5xx: the run's retries deal with it
        raise explain(exc, source=source, region=region, endpoint=client.meta.endpoint_url) from exc


def _reached(exc: Exception, region: str) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code = exc.response.get("Error", {}).get("Code", "")
    return code not in _EXPIRED | _REFUSED | _DENIED and isinstance(
        aws_error(exc, region), RetriableAwsError
    )


def describe_source(method: str, settings: AwsSettings) -> str:
    """Where boto3 found the credentials, in words."""
    if method == AssumedRole.METHOD:
        return f"role {settings.role_arn}"
    return _SOURCES.get(method, method) + _profile_note(settings)


def _profile(settings: AwsSettings) -> str:
    return "boto3's credential chain" + _profile_note(settings)


def _profile_note(settings: AwsSettings) -> str:
    return f" (profile {settings.profile})" if settings.profile else ""


def explain(
    exc: Exception, *, source: str, region: str, endpoint: str | None = None
) -> NothingReachedError:
    """The one-line reason why `exc` means nothing can be read, and the fix."""
    if isinstance(exc, NoCredentialsError):
        return NothingReachedError(
            f"no AWS credentials: {source} found none (environment, shared config and "
            f"credentials files, SSO, container and instance roles); {_FIX}, or run aws configure"
        )
    if isinstance(exc, SSOTokenLoadError | UnauthorizedSSOTokenError | TokenRetrievalError):
        return NothingReachedError(
            f"the SSO session of {source} has expired or is missing; run aws sso login, or {_FIX}"
        )
    where = endpoint or "the endpoint"
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | EndpointConnectionError):
        return NothingReachedError(
            f"cannot reach {where} ({_unreachable(exc)}); check the network, or point at "
            "the right endpoint with --endpoint-url or AWS_ENDPOINT_URL"
        )
    if isinstance(exc, FatalAwsError) and exc.code == "NoCredentials":
        return explain(NoCredentialsError(), source=source, region=region)
    if not isinstance(exc, ClientError):
        return NothingReachedError(f"cannot reach {where}: {exc}")
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    if code in _EXPIRED:
        return NothingReachedError(
            f"the AWS credentials from {source} have expired ({code}); refresh them "
            f"(for SSO: aws sso login), or {_FIX}"
        )
    if code in _REFUSED:
        return NothingReachedError(
            f"AWS does not accept the credentials from {source} at {where} ({code}: {message}); "
            f"check the keys (or that {region} is enabled for the account), or {_FIX}"
        )
    if code in _DENIED:
        return NothingReachedError(
            f"the credentials from {source} may not call {exc.operation_name} in {region} "
            f"({code}: {message}); grant it to that identity, or {_FIX}"
        )
    return NothingReachedError(
        f"{where} answered {exc.operation_name} with {code}: {message}; is it an AWS endpoint "
        "for this service (--endpoint-url, AWS_ENDPOINT_URL)?"
    )


def _unreachable(exc: BotoCoreError) -> str:
    if isinstance(exc, ReadTimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectTimeoutError):
        return "no connection in time"
    cause = str(exc.kwargs.get("error", ""))
    if "refused" in cause.lower():
        return "connection refused"
    if any(word in cause for word in ("resolve", "resolution", "not known", "getaddrinfo")):
        return "the host name does not resolve"
    return cause or "no connection"
