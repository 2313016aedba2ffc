"""Hypothesis strategies for ListCommandInvocations records, in wire form.

Built from botocore's SSM model rather than a hand-copied field list, so a member
AWS adds to `CommandInvocation` shows up here (and in the property tests) on the
next botocore upgrade. Records look like the decoded JSON body: timestamps are
epoch seconds with millisecond precision, optional members present or absent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import botocore.session
from hypothesis import strategies as st

UNBOUNDED_TEXT = 200
"""Cap for strings the model leaves unbounded (URLs, ARNs, role names)."""

SHORT_TEXT = 64
MAX_PLUGINS = 6
MAX_EVENTS = 6
MIN_MS = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1000)
MAX_MS = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)
REQUIRED = ("CommandId", "InstanceId", "RequestedDateTime")
"""Members the model calls optional but without which a record cannot be stored."""

# Any Unicode scalar value: Arrow, Parquet and JSON all take them; surrogates are not text.
_CHARS = st.characters(codec="utf-8")


@cache
def output_shape() -> Any:
    """The botocore output shape of ListCommandInvocations."""
    model = botocore.session.get_session().get_service_model("ssm")
    return model.operation_model("ListCommandInvocations").output_shape


def invocation_shape() -> Any:
    return output_shape().members["CommandInvocations"].member


def epoch_seconds() -> st.SearchStrategy[float]:
    """What the API sends: epoch seconds as a number, millisecond precision."""
    return st.integers(MIN_MS, MAX_MS).map(lambda ms: ms / 1000)


def _string(shape: Any) -> st.SearchStrategy[str]:
    meta = shape.metadata
    if shape.enum:
        return st.sampled_from(shape.enum)
    if "pattern" in meta:
        return st.from_regex(meta["pattern"], fullmatch=True)
    return _text(meta.get("min", 0), meta.get("max", UNBOUNDED_TEXT))


def _text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Mostly short text, but every length up to the model's maximum is reachable.

    Long values repeat a short drawn unit: a 2,500-character Output costs a few
    dozen choices instead of thousands, and still carries multi-byte characters.
    """
    short = st.text(_CHARS, min_size=min_size, max_size=min(max_size, SHORT_TEXT))
    if max_size <= SHORT_TEXT:
        return short
    sizes = st.integers(max(min_size, SHORT_TEXT + 1), max_size) | st.just(max_size)
    long = st.builds(
        lambda unit, size: (unit * size)[:size], st.text(_CHARS, min_size=1, max_size=16), sizes
    )
    return short | long


def _value(shape: Any, name: str = "") -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if kind == "string":
        return _string(shape)
    if kind == "timestamp":
        return epoch_seconds()
    if kind == "integer":
        return st.integers(-(2**31), 2**31 - 1)
    if kind == "boolean":
        return st.booleans()
    if kind == "list":
        size = MAX_PLUGINS if name == "CommandPlugins" else MAX_EVENTS
        return st.lists(_value(shape.member), max_size=size)
    if kind == "structure":
        return _structure(shape)
    raise NotImplementedError(f"no strategy for {kind} member {name}")


def _structure(shape: Any, required: tuple[str, ...] = ()) -> st.SearchStrategy[dict[str, Any]]:
    members = {name: _value(member, name) for name, member in shape.members.items()}
    return st.fixed_dictionaries(
        {name: members[name] for name in required},
        optional={name: s for name, s in members.items() if name not in required},
    )


def api_records() -> st.SearchStrategy[dict[str, Any]]:
    """Any valid `CommandInvocation` as decoded from the JSON wire format."""
    return _structure(invocation_shape(), REQUIRED)
