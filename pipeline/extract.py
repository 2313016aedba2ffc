"""How to reach AWS, and ListCommandInvocations read through boto3.

boto3/botocore keep doing what they are good at: credentials (and refreshing
an assumed role's), signing, endpoint resolution (AWS_ENDPOINT_URL*
included), retries, pagination. Only the body of a successful
ListCommandInvocations answer is read by us instead of botocore's parser,
which spends most of a page in per-value timestamp parsing and fails a whole
page on one bad value: a `before-parse` hook (botocore's documented event)
hands the body to `pipeline.decode`, puts the decoded page and its NextToken
into the parsed response, and leaves botocore's parser an empty body. Error
answers still go through botocore's parser.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError

from .decode import Page, parse_page, requested_ms, settle
from .errors import ConfigError, FatalAwsError
from .paging import PageRetry as PageRetry  # re-exported: ingest.IngestOptions holds one
from .paging import aws_error, call, pages

PAGE_SIZE = 50
"""The API's maximum; fewer round trips is the whole game when throttled."""
PAGE = "SsmEtlPage"
"""Where a ListCommandInvocations response carries its decoded `decode.Page`."""


@cache
def shared_loader() -> botocore.loaders.Loader:
    """One loader of botocore's data files for the whole process.

    Each botocore session otherwise parses the endpoint and service model JSON
    again (about 0.75 s of CPU here), and a night makes a session per account x
    region: 20,000 sessions would spend hours on it. The loader caches what it
    parsed and only ever reads the installed data files.
    """
    return botocore.loaders.create_loader()


@dataclass(frozen=True)
class AwsSettings:
    """How to reach AWS. Picklable, so a worker process can rebuild its own session.

    Credentials are deliberately absent: they always come from boto3's chain
    (environment, profile, SSO, instance role).
    """

    profile: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = 3
    """Attempts per request, the first included (botocore's `total_max_attempts`, standard
    mode); see `pipeline.paging` for what a page may cost in all."""
    read_timeout: float = 60.0
    connect_timeout: float = 10.0
    extra_client_config: dict[str, Any] = field(default_factory=dict)
    role_arn: str | None = None
    """Assume this role (through STS, with the chain's credentials) for every call."""
    external_id: str | None = None

    def assuming(self, role_arn: str, external_id: str | None = None) -> AwsSettings:
        return replace(self, role_arn=role_arn, external_id=external_id)

    def session(self) -> boto3.Session:
        core = botocore.session.get_session()
        core.register_component("data_loader", shared_loader())
        try:
            session = boto3.Session(profile_name=self.profile, botocore_session=core)
        except BotoCoreError as exc:
            raise ConfigError(str(exc)) from exc
        if self.role_arn:
            provider = self._assumed_role(session.region_name or "us-east-1")
            core.get_component("credential_provider").insert_before("env", provider)
        return session

    def _assumed_role(self, region: str) -> AssumedRole:
        """The role's credentials, fetched with the chain's own from a separate session,
        and refreshed by botocore before they expire (runs outlast a credential's life)."""
        assert self.role_arn is not None
        source = botocore.session.Session(profile=self.profile)
        source.register_component("data_loader", shared_loader())
        credentials = source.get_credentials()
        if credentials is None:
            raise FatalAwsError("no AWS credentials to assume the role with", code="NoCredentials")
        extra: dict[str, Any] = {"RoleSessionName": "ssm-etl"}
        if self.external_id:
            extra["ExternalId"] = self.external_id
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=partial(
                source.create_client, region_name=region, endpoint_url=self.endpoint_url
            ),
            source_credentials=credentials,
            role_arn=self.role_arn,
            extra_args=extra,
        )
        return AssumedRole(fetcher)

    def client(self, session: boto3.Session, service: str, region: str) -> Any:
        config = Config(
            # Standard, not adaptive: the hot call is paced by `pacing.Pacer`, whose rate
            # control suits many concurrent slices better than adaptive mode's.
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            read_timeout=self.read_timeout,
            connect_timeout=self.connect_timeout,
            # One connection per time slice (see pipeline.walk), plus the sources walk.
            max_pool_connections=32,
            **self.extra_client_config,
        )
        return session.client(
            service, region_name=region, endpoint_url=self.endpoint_url, config=config
        )


class AssumedRole(CredentialProvider):
    """A credential provider, first in the session's chain: the role of `AwsSettings`."""

    METHOD = "ssm-etl-assume-role"
    CANONICAL_NAME = "custom-ssm-etl-assume-role"

    def __init__(self, fetcher: AssumeRoleCredentialFetcher) -> None:
        super().__init__()
        self.fetcher = fetcher

    def load(self) -> DeferredRefreshableCredentials:
        return DeferredRefreshableCredentials(
            refresh_using=self.fetcher.fetch_credentials, method=self.METHOD
        )


def decoding(client: Any) -> Any:
    """`client`, its ListCommandInvocations answers decoded by `pipeline.decode` (idempotent)."""
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(
        f"before-parse.{service}.ListCommandInvocations", _decode_body, unique_id="ssm-etl-decode"
    )
    return client


def _decode_body(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    if response_dict["status_code"] >= 300 or PAGE in customized_response_dict:
        return  # an error (botocore's to parse), or already decoded
    page = parse_page(response_dict["body"])  # settled by the caller, a few pages at once
    response_dict["body"] = b""  # botocore's parser has nothing left to do
    customized_response_dict[PAGE] = page
    if page.next_token:
        customized_response_dict["NextToken"] = page.next_token


def iso_utc(moment: datetime) -> str:
    """The filter format ListCommandInvocations accepts."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def time_filters(after: datetime | None, before: datetime | None) -> list[dict[str, str]]:
    """InvokedAfter/InvokedBefore filters, as ListCommand* take them."""
    filters = []
    if after is not None:
        filters.append({"key": "InvokedAfter", "value": iso_utc(after)})
    if before is not None:
        filters.append({"key": "InvokedBefore", "value": iso_utc(before)})
    return filters


def invocation_pages(
    client: Any,
    request: dict[str, Any],
    *,
    retry: PageRetry,
    stop: threading.Event | None = None,
    region: str = "",
    settled: bool = True,
) -> Iterator[Page]:
    """Every page of ListCommandInvocations (`request` plus Details=true), decoded.

    With `settled=False`, pages come as read (`decode.parse_page`), for a caller
    that `settle`s a run of them at once.
    """
    decoding(client)
    request = {"Details": True, **request}
    for response in pages(
        client,
        "list_command_invocations",
        request,
        retry=retry,
        stop=stop,
        region=region,
        page_size=PAGE_SIZE,
    ):
        page = response[PAGE]
        yield settle([page]) if settled else page


def newest_requested_ms(
    client: Any,
    *,
    invoked_after: datetime | None = None,
    retry: PageRetry | None = None,
    region: str = "",
    stop: threading.Event | None = None,
) -> int | None:
    """The newest RequestedDateTime the API has in the window (one small request).

    Slices are cut up to the API's newest record rather than this machine's
    clock, so a skewed clock (or an emulator's simulated one) still gets
    balanced slices.
    """
    decoding(client)
    request: dict[str, Any] = {"MaxResults": 1}
    filters = time_filters(invoked_after, None)
    if filters:
        request["Filters"] = filters
    response = call(
        client.list_command_invocations,
        request,
        retry=retry or PageRetry(),
        stop=stop,
        region=region,
    )
    page = settle([response[PAGE]])
    return requested_ms(page)[0].as_py() if len(page) else None


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
