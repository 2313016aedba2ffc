"""One error hierarchy; the class says what the runner does with it."""

from __future__ import annotations


class SsmEtlError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = 1


class ConfigError(SsmEtlError):
    """Bad flags, config or environment: nothing is written, the CLI exits 2."""

    exit_code = 2


class LakeBusyError(SsmEtlError):
    """Another run holds the lake; the CLI exits 3."""

    exit_code = 3


class AwsError(SsmEtlError):
    """An AWS call failed. `code` is AWS's error code, `region` where it happened.

    `slice` is the index of the time slice whose walk failed (`pipeline.walk`),
    None outside one.
    """

    def __init__(self, message: str, *, code: str = "", region: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.region = region
        self.slice: int | None = None


class RetriableAwsError(AwsError):
    """Throttling, 5xx, connection trouble: retry with backoff, resume from the last token."""


class FatalAwsError(AwsError):
    """Access denied, disabled region, invalid request: fail this region, keep the others.

    Also what a retriable error becomes once a page has spent its retry budget
    (`pipeline.paging`): the region fails for this run instead of being re-walked.
    """


class MalformedResponseError(RetriableAwsError):
    """A successful answer whose body is not a page at all (not JSON, not an object,
    a list that is not a list): retried like a 5xx, within the same page budget."""


class NothingReachedError(SsmEtlError):
    """The preflight probe found no working endpoint or no working credentials: nothing
    was read or written. The message is one line naming what failed and the fix."""

    exit_code = 4


class BadRecordError(SsmEtlError):
    """One API record that cannot be flattened: quarantine it, keep the rest of the page."""

    def __init__(self, message: str, record: object = None) -> None:
        super().__init__(message)
        self.record = record


class Interrupted(SsmEtlError):
    """The run was asked to stop (SIGINT, SIGTERM): committed regions stay, the rest is dropped."""

    exit_code = 130
