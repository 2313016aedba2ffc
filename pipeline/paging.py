"""Every paged AWS call: boto3's paginators, one retry budget per page, and a stop event.

The budget, per page (one request of a paginated call, or one call):

- botocore standard mode makes at most `AwsSettings.max_attempts` (3)
  attempts, waiting rand(0, 1) x 1 s then x 2 s between them after a throttle
  (x 50 ms then x 100 ms after other errors; an `x-amz-retry-after` header
  may add up to 5 s each);
- then this module sends the same request again (same NextToken, through the
  paginator's StartingToken) at most `PageRetry.attempts` (4) times, after
  rand(0.5, 1) x min(60, 2 x 2**k) s: at most 2 + 4 + 8 + 16 = 30 s in all;
- so at most (1 + 4) x 3 = 15 attempts, and at most 5 x 3 + 30 = 45 s of
  waiting (85 s with retry-after headers), plus the attempts themselves:
  each is bounded by `connect_timeout` (10 s) and `read_timeout` (60 s) per
  read, so an endpoint that accepts and never answers holds a page at most
  15 x 70 s + 45 s, about 18 minutes;
- then the page's error is raised as FatalAwsError: the region fails for
  this run (`pipeline.walk` stops its other slices before their next
  request), nothing re-walks it. Only InvalidNextToken re-walks a region's
  window (`ingest.WALK_RESTARTS`, per time slice).

A page that succeeds resets the count: the budget is per page, not per walk.
Every wait (ours, and the pacer's) ends at once when the caller's stop event
is set, and no request starts after it is: `Interrupted` is raised instead.
botocore's own back-off between its attempts (at most 3 s) is not ours to cut
short, which is why `pipeline.walk` does not wait for a slice that is in one.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PaginationError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.paginate import TokenEncoder

from .errors import AwsError, FatalAwsError, Interrupted, RetriableAwsError

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
    # A request signed with credentials that expired before it arrived: the next attempt
    # is signed with refreshed ones. (Static credentials that expired fail the probe.)
    "ExpiredToken",
    "ExpiredTokenException",
}
_FAILURES = (ClientError, BotoCoreError, RetriableAwsError)
"""What a call can fail with: botocore's errors, and a body our decoder cannot read."""
_NEVER = threading.Event()


@dataclass(frozen=True)
class PageRetry:
    """How often one page is asked for again once botocore's own attempts are spent.

    The same request (same NextToken) is sent again, so the walk resumes
    where it was instead of restarting the region.
    """

    attempts: int = 4
    base_seconds: float = 2.0
    cap_seconds: float = 60.0

    def delay(self, attempt: int) -> float:
        return min(self.cap_seconds, self.base_seconds * 2**attempt) * random.uniform(0.5, 1.0)


def pause(seconds: float, stop: threading.Event | None) -> None:
    """Sleep, or raise Interrupted as soon as `stop` is set."""
    if (stop or _NEVER).wait(seconds):
        raise Interrupted("stopped")


def check(stop: threading.Event | None) -> None:
    """Raise Interrupted if `stop` is set: called before every request."""
    if stop is not None and stop.is_set():
        raise Interrupted("stopped")


def aws_error(exc: Exception, region: str) -> AwsError:
    """Translate a botocore failure into the project's error classes."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = f"{code}: {error.get('Message', '')}".rstrip(": ")
        retriable = code in _RETRIABLE_CODES or status >= 500
        cls = RetriableAwsError if retriable else FatalAwsError
        return cls(message, code=code, region=region)
    if isinstance(exc, PaginationError):  # the paginator's guard against SSM's endless tokens
        message = (
            "the API returned the same NextToken twice in a row; stopping instead of "
            "looping forever (a known SSM pagination bug)"
        )
        return FatalAwsError(message, code="RepeatedNextToken", region=region)
    if isinstance(exc, NoCredentialsError):
        return FatalAwsError(str(exc), code="NoCredentials", region=region)
    # Connection trouble: refused, reset, closed before an answer (HTTPClientError), timed out.
    if isinstance(exc, BotoConnectionError | HTTPClientError | ReadTimeoutError):
        return RetriableAwsError(str(exc), code=type(exc).__name__, region=region)
    return FatalAwsError(str(exc), code=type(exc).__name__, region=region)


def _failed(
    exc: Exception, failures: int, retry: PageRetry, stop: threading.Event | None, region: str
) -> None:
    """Wait before asking for the page again, or raise: not retriable, or its budget spent."""
    error = aws_error(exc, region)
    if not isinstance(error, RetriableAwsError):
        raise error from exc
    if failures > retry.attempts:
        spent = FatalAwsError(
            f"{error} (the same page failed {failures} times)", code=error.code, region=region
        )
        raise spent from exc
    pause(retry.delay(failures - 1), stop)


def call(
    method: Callable[..., Any],
    request: dict[str, Any],
    *,
    retry: PageRetry,
    stop: threading.Event | None = None,
    region: str = "",
) -> Any:
    """One request, within one page's budget."""
    failures = 0
    while True:
        check(stop)
        try:
            return method(**request)
        except _FAILURES as exc:
            failures += 1
            _failed(exc, failures, retry, stop, region)


_TOKENS = TokenEncoder()


def pages(
    client: Any,
    operation: str,
    request: dict[str, Any],
    *,
    retry: PageRetry,
    stop: threading.Event | None = None,
    region: str = "",
    page_size: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Every page of a paginated call, through boto3's paginator.

    A page that fails is asked for again by a new paginator that starts at
    the last NextToken (in the paginator's own token format), within the
    page's budget. The paginator's guard against a NextToken repeated twice
    in a row raises FatalAwsError("RepeatedNextToken").
    """
    paginator = client.get_paginator(operation)
    token: str | None = None
    failures = 0
    while True:
        config: dict[str, Any] = {} if page_size is None else {"PageSize": page_size}
        if token is not None:
            config["StartingToken"] = _TOKENS.encode({"NextToken": token})
        walk = iter(paginator.paginate(**request, PaginationConfig=config))
        while True:
            check(stop)
            try:
                page = next(walk, None)
            except _FAILURES as exc:
                failures += 1
                _failed(exc, failures, retry, stop, region)
                break  # a new paginator, from `token`
            if page is None:
                return
            failures = 0
            token = page.get("NextToken") or None
            yield page


def pager(
    method: Callable[..., Any],
    request: dict[str, Any],
    *,
    input_token: str,
    output_token: str,
    retry: PageRetry,
    stop: threading.Event | None = None,
    region: str = "",
) -> Iterator[dict[str, Any]]:
    """Every page of a call botocore has no paginator for, such as CloudWatch Logs'
    GetLogEvents: follow `output_token` until it is missing or repeats the one sent
    (GetLogEvents' way of saying the stream has no more events, for now)."""
    sent = request.get(input_token)
    while True:
        page = call(method, request, retry=retry, stop=stop, region=region)
        yield page
        following = page.get(output_token)
        if not following or following == sent:
            return
        request, sent = {**request, input_token: following}, following
