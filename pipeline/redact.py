"""Redaction of secrets that commands print, before anything is stored.

Scripts print secrets too, so operators may redact command output (plugin
`Output`, `TraceOutput`, and the raw JSON of quarantined records). Off by
default; `aws` is a built-in set for AWS access keys, secret keys and
session tokens; any other value is a regular expression whose whole match
is replaced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError

MASK = "[REDACTED]"

_KEY_PREFIXES = "AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA"
BUILTIN: dict[str, tuple[str, ...]] = {
    "aws": (
        # Access key ids: the prefix says the kind, 16 more upper-case characters.
        rf"\b(?:{_KEY_PREFIXES})[A-Z0-9]{{16}}\b",
        # Secret keys and session tokens next to a name that says what they are.
        r"(?i)(?<=aws_secret_access_key)(\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}",
        r"(?i)(?<=secretaccesskey)([\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}",
        r"(?i)(?<=aws_session_token)(\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{100,}",
        r"(?i)(?<=sessiontoken)([\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{100,}",
    ),
}


@dataclass(frozen=True)
class Redactor:
    patterns: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple(_compile(p) for p in self.patterns))

    @classmethod
    def from_options(cls, values: list[str] | tuple[str, ...]) -> Redactor | None:
        """`aws` expands to the built-in set; anything else is a regular expression."""
        patterns: list[str] = []
        for value in values:
            patterns.extend(BUILTIN.get(value, (value,)))
        return cls(tuple(patterns)) if patterns else None

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return text
        for pattern in self._compiled:  # type: ignore[attr-defined]
            text = pattern.sub(_mask, text)
        return text


def _mask(match: re.Match[str]) -> str:
    """Keep a captured separator (`key = `), mask the secret itself."""
    return (match.group(1) if match.re.groups else "") + MASK


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"bad redaction pattern {pattern!r}: {exc}") from None
