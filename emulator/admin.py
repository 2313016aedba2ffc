"""The admin API: JSON under `/_emulator/`, to drive a standalone emulator from outside.

Tests, the demo and users steer an `ssm-etl emulator` process the way they
steer an in-process `Emulator`. No SigV4: it is a loopback tool serving made-up
data, so there is nothing to protect.

    GET    /_emulator/clock                -> {"now": "2026-03-02T06:00:00.000Z"}
    POST   /_emulator/clock                {"advance_seconds": 86400} or {"now": "<ISO-8601>"}
                                           -> {"now": ...}
    GET    /_emulator/faults               -> the faults document (`FaultSpec.to_dict()`)
    POST   /_emulator/faults               a faults document, replacing the current one -> it
    DELETE /_emulator/faults               clears them -> the empty document
    GET    /_emulator/requests?since=N     -> the request log from index N (default 0)
    GET    /_emulator/ground-truth?region=R&account=A
                                           -> what a full Details=true walk returns now
                                              (valid records; account defaults to the fleet's)
    GET    /_emulator/commands?region=R&account=A   -> what a full ListCommands walk returns now
    GET    /_emulator/instances?region=R&account=A  -> ... and DescribeInstanceInformation
    GET    /_emulator/outputs?region=R&command=C&instance=I&plugin=P&account=A
                                           -> `Emulator.output_ground_truth`: the full text
                                              and the state of its S3 objects and streams
    GET    /_emulator/open-spans?region=R&account=A&since=T&until=T
                                           -> `Emulator.open_spans` (ISO-8601 bounds,
                                              default the 30 days up to now)
    GET    /_emulator/secrets?region=R&account=A&since=T&until=T
                                           -> `Emulator.planted_secrets`
    GET    /_emulator/credentials          -> {"seconds": N or null}: the cap on AssumeRole's
    POST   /_emulator/credentials          {"seconds": N or null} -> the same, from now on
    DELETE /_emulator/credentials          expires every issued session -> {"expired": n}

Mistakes answer {"error": "..."} with 400 (bad input), 404 (path) or 405 (method).
Admin calls are not written to the request log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .faults import FaultSpec

if TYPE_CHECKING:
    from .server import Emulator

PREFIX = "/_emulator/"
_Handler = Callable[["Emulator", dict[str, str], bytes], Any]


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _document(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the body must be JSON") from None


def _clock(emulator: Emulator, params: dict[str, str], body: bytes) -> dict[str, str]:
    return {"now": _iso(emulator.clock.now())}


def _move_clock(emulator: Emulator, params: dict[str, str], body: bytes) -> dict[str, str]:
    document = _document(body)
    if not isinstance(document, dict) or len(document.keys() & {"advance_seconds", "now"}) != 1:
        raise ValueError('send {"advance_seconds": N} or {"now": "<ISO-8601>"}')
    if "now" in document:
        try:
            moment = datetime.fromisoformat(str(document["now"]))
        except ValueError:
            raise ValueError(f"not an ISO-8601 time: {document['now']!r}") from None
        if moment.tzinfo is None:
            raise ValueError("now needs a time zone, e.g. 2026-03-02T06:00:00Z")
        emulator.clock.set(moment)
    else:
        seconds = document["advance_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError("advance_seconds must be a number")
        emulator.clock.advance(timedelta(seconds=seconds))
    return _clock(emulator, params, body)


def _faults(emulator: Emulator, params: dict[str, str], body: bytes) -> dict[str, Any]:
    return emulator.faults.to_dict()


def _set_faults(emulator: Emulator, params: dict[str, str], body: bytes) -> dict[str, Any]:
    return emulator.set_faults(FaultSpec.from_dict(_document(body))).to_dict()


def _clear_faults(emulator: Emulator, params: dict[str, str], body: bytes) -> dict[str, Any]:
    return emulator.set_faults(None).to_dict()


def _requests(emulator: Emulator, params: dict[str, str], body: bytes) -> list[dict[str, Any]]:
    since = params.get("since", "0")
    if not since.isdigit():
        raise ValueError(f"since must be a non-negative integer, not {since!r}")
    return list(emulator.request_log[int(since) :])


def _where(emulator: Emulator, params: dict[str, str]) -> tuple[str, str]:
    if not params.get("region"):
        raise ValueError("region is required, e.g. ?region=us-east-1")
    return params.get("account") or emulator.spec.account_id, params["region"]


def _ground_truth(emulator: Emulator, params: dict[str, str], body: bytes) -> list[Any]:
    return emulator.ground_truth(*_where(emulator, params))


def _commands(emulator: Emulator, params: dict[str, str], body: bytes) -> list[Any]:
    return emulator.commands_ground_truth(*_where(emulator, params))


def _instances(emulator: Emulator, params: dict[str, str], body: bytes) -> list[Any]:
    return emulator.instances_ground_truth(*_where(emulator, params))


def _outputs(emulator: Emulator, params: dict[str, str], body: bytes) -> dict[str, Any]:
    missing = [name for name in ("command", "instance", "plugin") if not params.get(name)]
    if missing:
        raise ValueError(
            f"{', '.join(missing)} required, e.g. ?region=R&command=C&instance=I&plugin=P"
        )
    where = _where(emulator, params)
    return emulator.output_ground_truth(
        *where, params["command"], params["instance"], params["plugin"]
    )


def _bounds(params: dict[str, str]) -> dict[str, datetime]:
    out = {}
    for name in ("since", "until"):
        if params.get(name):
            moment = datetime.fromisoformat(params[name].replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError(f"{name} needs a time zone, e.g. 2026-03-02T06:00:00Z")
            out[name] = moment
    return out


def _open_spans(emulator: Emulator, params: dict[str, str], body: bytes) -> list[Any]:
    return emulator.open_spans(*_where(emulator, params), **_bounds(params))


def _secrets(emulator: Emulator, params: dict[str, str], body: bytes) -> list[Any]:
    return emulator.planted_secrets(*_where(emulator, params), **_bounds(params))


def _credentials(emulator: Emulator, params: dict[str, str], body: bytes) -> dict[str, Any]:
    return {"seconds": emulator.sessions.lifetime}


def _set_credentials(emulator: Emulator, params: dict[str, str], body: bytes) -> dict[str, Any]:
    document = _document(body)
    seconds = document.get("seconds", 0) if isinstance(document, dict) else 0
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float)):
        raise ValueError('send {"seconds": N} (N > 0) or {"seconds": null}')
    emulator.set_credential_seconds(seconds)
    return _credentials(emulator, params, body)


def _expire_credentials(emulator: Emulator, params: dict[str, str], body: bytes) -> dict[str, Any]:
    return {"expired": emulator.expire_credentials()}


_ROUTES: dict[str, dict[str, _Handler]] = {
    "clock": {"GET": _clock, "POST": _move_clock},
    "faults": {"GET": _faults, "POST": _set_faults, "DELETE": _clear_faults},
    "requests": {"GET": _requests},
    "ground-truth": {"GET": _ground_truth},
    "commands": {"GET": _commands},
    "instances": {"GET": _instances},
    "outputs": {"GET": _outputs},
    "open-spans": {"GET": _open_spans},
    "secrets": {"GET": _secrets},
    "credentials": {"GET": _credentials, "POST": _set_credentials, "DELETE": _expire_credentials},
}


def handle(emulator: Emulator, method: str, path: str, query: str, body: bytes) -> tuple[int, Any]:
    """(HTTP status, JSON-able answer) for one admin request."""
    route = _ROUTES.get(path.removeprefix(PREFIX).rstrip("/"))
    if route is None:
        known = ", ".join(PREFIX + name for name in _ROUTES)
        return 404, {"error": f"no admin path {path}; try {known}"}
    handler = route.get(method)
    if handler is None:
        return 405, {"error": f"{method} is not allowed on {path}; use {', '.join(route)}"}
    params = {key: values[-1] for key, values in parse_qs(query).items()}
    try:
        return 200, handler(emulator, params, body)
    except (ValueError, TypeError) as error:
        return 400, {"error": str(error)}
