"""S3 fixtures: moto's standalone server on loopback, and a fresh lake prefix per test.

The server is a real HTTP endpoint, so the lake's pyarrow, boto3 and DuckDB
paths are exercised over the wire. Only S3 clients see it: the endpoint is
set through `AWS_ENDPOINT_URL_S3`, per test, and never leaks into the SSM
emulator's clients.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

__all__ = ["s3_bucket", "s3_endpoint", "s3_lake"]

S3_BUCKET = "ssm-etl-tests"


def _moto_server() -> str:
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if found is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server for the session; its URL."""
    port = _free_port()
    server = subprocess.Popen(
        [_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> str:
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=S3_BUCKET)
    return S3_BUCKET


@pytest.fixture
def s3_lake(s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://<bucket>/<fresh prefix>`, with S3 clients pointed at the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    return f"s3://{s3_bucket}/lake-{uuid.uuid4().hex[:8]}"
