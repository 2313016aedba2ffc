"""Redaction of secrets printed by commands: off by default, built-in AWS set, custom patterns."""

from __future__ import annotations

import pytest

from pipeline.decode import flatten_page
from pipeline.errors import ConfigError
from pipeline.flatten import Lineage, quarantine_table
from pipeline.redact import MASK, Redactor

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjE" + "A" * 120
AWS = Redactor.from_options(["aws"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"key={KEY_ID} done", f"key={MASK} done", id="access-key-id"),
        pytest.param("ASIAY34FZKBOKMUTVV7A", MASK, id="temporary-key-id"),
        pytest.param(
            f"aws_secret_access_key = {SECRET}\n",
            f"aws_secret_access_key = {MASK}\n",
            id="ini-secret",
        ),
        pytest.param(
            f'"SecretAccessKey": "{SECRET}"', f'"SecretAccessKey": "{MASK}"', id="json-secret"
        ),
        pytest.param(f"AWS_SESSION_TOKEN={TOKEN}", f"AWS_SESSION_TOKEN={MASK}", id="env-token"),
        pytest.param(
            "Installed 3 packages. Größe: 12 MB",
            "Installed 3 packages. Größe: 12 MB",
            id="no-secret",
        ),
        pytest.param(f"{SECRET}", SECRET, id="bare-40-chars-without-a-name-are-kept"),
    ],
)
def test_builtin_aws_patterns(text, expected):
    assert AWS(text) == expected


def test_off_by_default_and_custom_patterns():
    assert Redactor.from_options([]) is None
    custom = Redactor.from_options([r"password=\S+"])
    assert custom("login password=hunter2 ok") == f"login {MASK} ok"
    assert custom(None) is None and custom("") == ""


def test_bad_pattern_is_a_config_error():
    with pytest.raises(ConfigError, match="bad redaction pattern"):
        Redactor.from_options(["(unclosed"])


def test_flattening_redacts_outputs_and_quarantined_raw_json():
    lineage = Lineage("012345678901", "eu-west-1", "run-1", 0)
    good = {
        "CommandId": "c" * 36,
        "InstanceId": "i-12345678",
        "RequestedDateTime": 1767225600.0,
        "TraceOutput": f"trace {KEY_ID}",
        "CommandPlugins": [
            {"Name": "aws:runShellScript", "Output": f"export AWS_SESSION_TOKEN={TOKEN}"}
        ],
    }
    bad = {"InstanceId": "i-12345678", "CommandPlugins": [{"Output": f"{KEY_ID}"}]}
    page = flatten_page([good, bad], lineage, redactor=AWS)
    assert page.invocations.column("trace_output").to_pylist() == [f"trace {MASK}"]
    assert page.plugins.column("output").to_pylist() == [f"export AWS_SESSION_TOKEN={MASK}"]
    raw = quarantine_table(page.rejected, lineage, AWS).column("raw_json").to_pylist()
    assert len(raw) == 1 and KEY_ID not in raw[0] and MASK in raw[0]
    unredacted = flatten_page([good], lineage)
    assert unredacted.plugins.column("output").to_pylist() == [f"export AWS_SESSION_TOKEN={TOKEN}"]
