"""Walk ListCommandInvocations with boto3, region by region.

boto3/botocore keep doing what they are good at: credentials, signing,
endpoint resolution (including AWS_ENDPOINT_URL*), retries. Only the response
parsing of the hot call is replaced: botocore spends most of a page in its
per-value timestamp parsing and fails a whole page on one bad timestamp.
By default a successful body goes straight into Arrow (`arrow_page`), and
any page that path cannot prove storable is decoded with `json.loads`, which
lets the flattener set aside a single malformed record. Errors still go
through botocore's own parser.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserFactory

from .arrow_page import ArrowPage, decode
from .errors import AwsError, ConfigError, FatalAwsError, RetriableAwsError

PAGE_SIZE = 50
"""The API's maximum; fewer round trips is the whole game when throttled."""

_RAW_OPERATIONS = {"ListCommandInvocationsResult"}
_RETRIABLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestTimeout",
}


RawParsing = Literal["arrow", "json"] | bool
"""How ListCommandInvocations bodies are decoded: "arrow" (an `ArrowPage`, or dicts
from json.loads for a page it cannot prove storable), "json" (dicts from json.loads),
False (botocore's own parser, datetimes and all). True means "arrow"."""


class _RawJsonParser:
    """Decodes successful ListCommandInvocations bodies into Arrow or with json.loads."""

    def __init__(self, inner: Any, arrow: bool) -> None:
        self._inner = inner
        self._arrow = arrow

    def parse(self, response: dict[str, Any], shape: Any) -> dict[str, Any]:
        if response["status_code"] >= 300 or shape is None or shape.name not in _RAW_OPERATIONS:
            return self._inner.parse(response, shape)
        page = decode(response["body"]) if self._arrow else None
        records: list[Any] | ArrowPage
        if page is not None:
            records, token = page, page.next_token
        else:
            body = json.loads(response["body"] or b"{}")
            records, token = body.get("CommandInvocations") or [], body.get("NextToken")
        headers = response["headers"]
        parsed: dict[str, Any] = {
            "CommandInvocations": records,
            "ResponseMetadata": {
                "RequestId": headers.get("x-amzn-requestid", ""),
                "HTTPStatusCode": response["status_code"],
                "HTTPHeaders": headers,
            },
        }
        if token:
            parsed["NextToken"] = token
        return parsed


class _RawParserFactory(ResponseParserFactory):
    def __init__(self, arrow: bool) -> None:
        super().__init__()
        self._arrow = arrow

    def create_parser(self, protocol_name: str) -> Any:
        parser = super().create_parser(protocol_name)
        return _RawJsonParser(parser, self._arrow) if protocol_name == "json" else parser


@dataclass(frozen=True)
class AwsSettings:
    """How to reach AWS. Picklable, so a worker process can rebuild its own session.

    Credentials are deliberately absent: they always come from boto3's chain
    (environment, profile, SSO, instance role).
    """

    profile: str | None = None
    endpoint_url: str | None = None
    raw_parsing: RawParsing = "arrow"
    max_attempts: int = 10
    read_timeout: float = 60.0
    extra_client_config: dict[str, Any] = field(default_factory=dict)
    role_arn: str | None = None
    """Assume this role (through STS, with the chain's credentials) for every call."""
    external_id: str | None = None

    def __post_init__(self) -> None:
        if self.raw_parsing not in (True, False, "arrow", "json"):
            raise ConfigError(
                f"raw_parsing must be 'arrow', 'json' or a bool: {self.raw_parsing!r}"
            )

    def assuming(self, role_arn: str, external_id: str | None = None) -> AwsSettings:
        return replace(self, role_arn=role_arn, external_id=external_id)

    def session(self) -> boto3.Session:
        core = botocore.session.get_session()
        if self.raw_parsing:
            arrow = self.raw_parsing in (True, "arrow")
            core.register_component("response_parser_factory", _RawParserFactory(arrow))
        try:
            session = boto3.Session(profile_name=self.profile, botocore_session=core)
        except BotoCoreError as exc:
            raise ConfigError(str(exc)) from exc
        if self.role_arn:
            self._assume_role(core, session.region_name or "us-east-1")
        return session

    def _assume_role(self, core: botocore.session.Session, region: str) -> None:
        """Swap the session's credentials for the role's, refreshed before they expire.

        botocore's own fetcher and refreshable credentials do the work (refresh
        in advance of expiry, even on runs longer than a credential's life).
        """
        source = core.get_credentials()
        if source is None:
            raise FatalAwsError("no AWS credentials to assume the role with", code="NoCredentials")
        extra: dict[str, Any] = {"RoleSessionName": "ssm-etl"}
        if self.external_id:
            extra["ExternalId"] = self.external_id

        def sts_client(service: str, **kwargs: Any) -> Any:
            return core.create_client(
                service, region_name=region, endpoint_url=self.endpoint_url, **kwargs
            )

        fetcher = AssumeRoleCredentialFetcher(
            client_creator=sts_client,
            source_credentials=source,
            role_arn=self.role_arn,
            extra_args=extra,
        )
        core._credentials = DeferredRefreshableCredentials(  # no public setter exists
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )

    def client(self, session: boto3.Session, service: str, region: str) -> Any:
        config = Config(
            # Standard, not adaptive: the hot call is paced by `pacing.Pacer`, whose rate
            # control suits many concurrent slices better than adaptive mode's.
            retries={"mode": "standard", "max_attempts": self.max_attempts},
            read_timeout=self.read_timeout,
            connect_timeout=10,
            # One connection per time slice (see pipeline.walk), plus the sources walk.
            max_pool_connections=32,
            **self.extra_client_config,
        )
        return session.client(
            service, region_name=region, endpoint_url=self.endpoint_url, config=config
        )


def aws_error(exc: Exception, region: str) -> AwsError:
    """Translate a botocore failure into the project's error classes."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = f"{code}: {error.get('Message', '')}".rstrip(": ")
        retriable = code in _RETRIABLE_CODES or status >= 500
        cls = RetriableAwsError if retriable else FatalAwsError
        return cls(message, code=code, region=region)
    if isinstance(exc, NoCredentialsError):
        return FatalAwsError(str(exc), code="NoCredentials", region=region)
    if isinstance(exc, BotoConnectionError | ReadTimeoutError):
        return RetriableAwsError(str(exc), code=type(exc).__name__, region=region)
    return FatalAwsError(str(exc), code=type(exc).__name__, region=region)


def iso_utc(moment: datetime) -> str:
    """The filter format ListCommandInvocations accepts."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Page:
    records: Any
    """Decoded records (a list of dicts), or a whole ListCommandInvocations page as an
    `ArrowPage` (which only `flatten_page` takes)."""
    next_token: str | None


@dataclass(frozen=True)
class PageRetry:
    """Retries of one page after botocore's own attempts are spent.

    The same request (same NextToken) is sent again, so the walk resumes
    where it was instead of restarting the region.
    """

    attempts: int = 4
    base_seconds: float = 2.0
    cap_seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        return min(self.cap_seconds, self.base_seconds * 2**attempt) * random.uniform(0.5, 1.0)


REPEATED_TOKEN_LIMIT = 3
"""A NextToken returned this many times means SSM's endless-token bug, not progress."""


def time_filters(after: datetime | None, before: datetime | None) -> list[dict[str, str]]:
    """InvokedAfter/InvokedBefore filters (both inclusive), as ListCommand* take them."""
    filters = []
    if after is not None:
        filters.append({"key": "InvokedAfter", "value": iso_utc(after)})
    if before is not None:
        filters.append({"key": "InvokedBefore", "value": iso_utc(before)})
    return filters


def iter_pages(
    client: Any,
    *,
    invoked_after: datetime | None = None,
    invoked_before: datetime | None = None,
    page_size: int = PAGE_SIZE,
    retry: PageRetry | None = None,
    region: str = "",
) -> Iterator[Page]:
    """Yield every page of ListCommandInvocations (Details=true), newest first."""
    request: dict[str, Any] = {"Details": True, "MaxResults": page_size}
    filters = time_filters(invoked_after, invoked_before)
    if filters:
        request["Filters"] = filters
    yield from iter_api_pages(
        client.list_command_invocations, request, "CommandInvocations", retry=retry, region=region
    )


def newest_requested_ms(
    client: Any,
    *,
    invoked_after: datetime | None = None,
    retry: PageRetry | None = None,
    region: str = "",
) -> int | None:
    """The newest RequestedDateTime the API has in the window (one small request).

    Slices are cut up to the API's newest record rather than this machine's
    clock, so a skewed clock (or an emulator's simulated one) still gets
    balanced slices.
    """
    request: dict[str, Any] = {"MaxResults": 1}
    filters = time_filters(invoked_after, None)
    if filters:
        request["Filters"] = filters
    response = _call(client.list_command_invocations, request, retry or PageRetry(), region)
    records = response.get("CommandInvocations") or []
    if isinstance(records, ArrowPage):
        moment = records.first_requested_seconds()
    else:
        moment = records[0].get("RequestedDateTime") if records else None
    if isinstance(moment, int | float) and not isinstance(moment, bool):
        return round(moment * 1000)
    if isinstance(moment, datetime):
        return round(moment.timestamp() * 1000)
    return None


def iter_api_pages(
    call: Callable[..., Any],
    request: dict[str, Any],
    result_key: str,
    *,
    retry: PageRetry | None = None,
    region: str = "",
) -> Iterator[Page]:
    """Yield every page of a NextToken-paginated SSM call.

    Empty pages that still carry a NextToken are followed to the end. Raises
    AwsError: RetriableAwsError once a page has failed `retry.attempts` times
    more, FatalAwsError at once for anything else (InvalidNextToken included:
    the caller restarts the window).
    """
    retry = retry or PageRetry()
    request = dict(request)
    seen_tokens: dict[str, int] = {}
    token: str | None = None
    while True:
        if token is not None:
            request["NextToken"] = token
        response = _call(call, request, retry, region)
        token = response.get("NextToken") or None
        yield Page(records=response.get(result_key) or [], next_token=token)
        if token is None:
            return
        seen_tokens[token] = seen_tokens.get(token, 0) + 1
        if seen_tokens[token] >= REPEATED_TOKEN_LIMIT:
            raise FatalAwsError(
                f"the API returned the same NextToken {REPEATED_TOKEN_LIMIT} times; stopping "
                "instead of looping forever (a known SSM pagination bug)",
                code="RepeatedNextToken",
                region=region,
            )


def _call(call: Callable[..., Any], request: dict[str, Any], retry: PageRetry, region: str) -> Any:
    for attempt in range(retry.attempts + 1):
        try:
            return call(**request)
        except (ClientError, BotoCoreError) as exc:
            error = aws_error(exc, region)
            if not isinstance(error, RetriableAwsError) or attempt == retry.attempts:
                raise error from exc
            retry.sleep(retry.delay(attempt))
    raise AssertionError("unreachable")


def caller_account(settings: AwsSettings, session: boto3.Session, region: str) -> str:
    """The account id of the caller, from STS GetCallerIdentity."""
    try:
        return str(settings.client(session, "sts", region).get_caller_identity()["Account"])
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, region) from exc


def enabled_regions(settings: AwsSettings, session: boto3.Session, region: str) -> list[str]:
    """Regions enabled for the account (EC2 DescribeRegions without AllRegions)."""
    try:
        response = settings.client(session, "ec2", region).describe_regions()
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, region) from exc
    return sorted(r["RegionName"] for r in response.get("Regions", []))
