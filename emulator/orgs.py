"""Organizations ListAccounts: the accounts a multi-account run fans out over.

The default organization has one account in each awkward state: SUSPENDED,
PENDING_CLOSURE, and one that is CLOSED but says so only in the newer `State`
field (its legacy `Status` reads SUSPENDED), so callers must read `State`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .ssm import ApiError, Tokens

TARGET_PREFIX = "AWSOrganizationsV20161128."
MAX_RESULTS = 20
STATUSES = ("ACTIVE", "SUSPENDED", "PENDING_CLOSURE")
STATES = ("PENDING_ACTIVATION", "ACTIVE", "SUSPENDED", "PENDING_CLOSURE", "CLOSED")
_ID = re.compile(r"^\d{12}$")
_DEFAULT = (  # name, Status, State, joined
    ("prod", "ACTIVE", "ACTIVE", datetime(2020, 2, 11, 9, 30, tzinfo=UTC)),
    ("staging", "ACTIVE", "ACTIVE", datetime(2020, 2, 11, 9, 41, tzinfo=UTC)),
    ("sandbox", "SUSPENDED", "SUSPENDED", datetime(2021, 6, 3, 14, 5, tzinfo=UTC)),
    ("legacy", "PENDING_CLOSURE", "PENDING_CLOSURE", datetime(2019, 8, 20, 7, 0, tzinfo=UTC)),
    ("retired", "SUSPENDED", "CLOSED", datetime(2019, 8, 20, 7, 2, tzinfo=UTC)),
)


@dataclass(frozen=True)
class OrgAccount:
    """One member account; `state` defaults from `status`, `status` from `state`."""

    id: str
    name: str = ""
    email: str = ""
    status: str = ""
    state: str = ""
    joined_method: str = "CREATED"
    joined: datetime = datetime(2020, 1, 6, 12, 0, tzinfo=UTC)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise ValueError(f"an organization account Id must be 12 digits: {self.id!r}")
        status = self.status or {"CLOSED": "SUSPENDED", "": "ACTIVE"}.get(self.state, "")
        status = status or ("ACTIVE" if self.state == "PENDING_ACTIVATION" else self.state)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "state", self.state or status)
        object.__setattr__(self, "name", self.name or f"account-{self.id}")
        object.__setattr__(self, "email", self.email or f"aws+{self.id}@example.com")
        if self.status not in STATUSES or self.state not in STATES:
            raise ValueError(
                f"account {self.id}: Status must be one of {STATUSES}, State of {STATES}"
            )
        if isinstance(self.joined, str):
            object.__setattr__(self, "joined", datetime.fromisoformat(self.joined))
        if self.joined_method not in ("INVITED", "CREATED"):
            raise ValueError(f"account {self.id}: JoinedMethod must be INVITED or CREATED")

    @property
    def usable(self) -> bool:
        """Whether its roles can be assumed: not for suspended or closed accounts."""
        return self.state not in ("SUSPENDED", "CLOSED")

    def record(self, management: str, org_id: str) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Arn": f"arn:aws:organizations::{management}:account/{org_id}/{self.id}",
            "Email": self.email,
            "Name": self.name,
            "Status": self.status,
            "State": self.state,
            "JoinedMethod": self.joined_method,
            "JoinedTimestamp": self.joined.timestamp(),
        }


_WIRE = {
    "Id": "id", "Name": "name", "Email": "email", "Status": "status", "State": "state",
    "JoinedMethod": "joined_method", "JoinedTimestamp": "joined",
}  # fmt: skip


def parse_accounts(entries: Iterable[OrgAccount | Mapping[str, Any]]) -> tuple[OrgAccount, ...]:
    """OrgAccounts from OrgAccounts or wire-style dicts (`{"Id": ..., "State": "CLOSED"}`)."""
    out = []
    for entry in entries:
        if isinstance(entry, OrgAccount):
            out.append(entry)
            continue
        if not isinstance(entry, Mapping):
            raise ValueError("organization entries must be OrgAccounts or dicts")
        unknown = set(entry) - set(_WIRE) - {"Arn"}
        if unknown:
            raise ValueError(f"unknown organization account field {sorted(unknown)[0]!r}")
        out.append(OrgAccount(**{_WIRE[k]: v for k, v in entry.items() if k in _WIRE}))
    if len({a.id for a in out}) != len(out):
        raise ValueError("organization account Ids must be unique")
    return tuple(out)


def default_organization(seed: int, management: str) -> tuple[OrgAccount, ...]:
    rng = random.Random(f"{seed}:{management}:organization")
    ids = [str(rng.randrange(10**11, 10**12)) for _ in _DEFAULT]
    first = OrgAccount(
        management, "acme-management", "aws-management@acme.example", "ACTIVE",
        joined_method="INVITED", joined=datetime(2019, 4, 2, 16, 12, tzinfo=UTC),
    )  # fmt: skip
    return (first,) + tuple(
        OrgAccount(i, f"acme-{n}", f"aws-{n}@acme.example", s, t, "CREATED", j)
        for i, (n, s, t, j) in zip(ids, _DEFAULT, strict=True)
    )


def organization_id(seed: int, management: str) -> str:
    rng = random.Random(f"{seed}:{management}:organization-id")
    return "o-" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10))


def _invalid(reason: str, message: str) -> ApiError:
    return ApiError("InvalidInputException", message, extra={"Reason": reason})


def list_accounts(
    params: Any, accounts: tuple[OrgAccount, ...], management: str, org_id: str, tokens: Tokens
) -> dict[str, Any]:
    """One page of ListAccounts, in the organization's order."""
    if not isinstance(params, dict):
        raise ApiError(
            "SerializationException", "Start of structure or map found where not expected."
        )
    size = params.get("MaxResults", MAX_RESULTS)
    if isinstance(size, bool) or not isinstance(size, int):
        raise ApiError("SerializationException", "MaxResults must be an integer")
    if size < 1:
        raise _invalid(
            "MIN_VALUE_EXCEEDED",
            "You provided a numeric parameter that has a smaller value than allowed.",
        )
    if size > MAX_RESULTS:
        raise _invalid(
            "MAX_VALUE_EXCEEDED",
            "You provided a numeric parameter that has a larger value than allowed.",
        )
    scope = f"ListAccounts:{management}".encode()
    start = 0
    token = params.get("NextToken")
    if token is not None:
        try:
            start = tokens.open(str(token), scope)[0][0]
        except ApiError:
            raise _invalid(
                "INVALID_NEXT_TOKEN",
                "You specified an invalid value for nextToken. You must get the value from the "
                "response to a previous call to the API.",
            ) from None
    page = [a.record(management, org_id) for a in accounts[start : start + size]]
    result: dict[str, Any] = {"Accounts": page}
    if start + size < len(accounts):
        result["NextToken"] = tokens.issue(scope, (start + size, "", ""))
    return result
