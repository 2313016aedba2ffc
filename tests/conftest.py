"""Shared fixtures. Tests never reach AWS: they run against the project's emulator."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports boto3 or Prefect: no real credentials, profiles or
# instance metadata, and a private Prefect home. Subprocesses inherit this.
_HOME = Path(tempfile.mkdtemp(prefix="ssm-etl-tests-"))
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "AKIATESTS00000000000",
        "AWS_SECRET_ACCESS_KEY": "tests-secret-key-not-real",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(_HOME / "aws-config-absent"),
        "AWS_SHARED_CREDENTIALS_FILE": str(_HOME / "aws-credentials-absent"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PREFECT_HOME": str(_HOME / "prefect"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
)
for _name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "PREFECT_API_URL"):
    os.environ.pop(_name, None)
for _name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
    os.environ.pop(_name)

import pytest  # noqa: E402

from tests.conftest_emulator import *  # noqa: E402,F401,F403  (the emulator's fixtures)
from tests.conftest_s3 import *  # noqa: E402,F401,F403  (a moto S3 server on loopback)


@pytest.fixture(scope="session")
def prefect_api() -> str:
    """One temporary Prefect server for the session; its URL for subprocesses."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield PREFECT_API_URL.value()
