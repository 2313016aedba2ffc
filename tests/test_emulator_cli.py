"""`ssm-etl emulator`: a standalone endpoint that real clients and the admin API drive."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import boto3
import pytest


@pytest.fixture
def served(tmp_path):
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"regions": {"eu-west-1": {"access_denied": True}}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "emulator", "--port", "0", "--instances", "5",
         "--regions", "us-east-1,eu-west-1", "--now", "2026-03-02T06:00:00Z", "--faults", str(faults)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("ssm-etl emulator listening on http://127.0.0.1:"), line
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def _admin(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_standalone_emulator_serves_boto3_faults_and_the_admin_api(served):
    client = boto3.client("ssm", endpoint_url=served, region_name="us-east-1")
    pages = client.get_paginator("list_command_invocations").paginate(Details=True)
    records = [r for page in pages for r in page["CommandInvocations"]]
    assert records and all(r["RequestedDateTime"].year == 2026 for r in records)
    denied = boto3.client("ssm", endpoint_url=served, region_name="eu-west-1")
    with pytest.raises(denied.exceptions.ClientError, match="AccessDeniedException"):
        denied.list_command_invocations()
    assert _admin(served, "/_emulator/clock") == {"now": "2026-03-02T06:00:00.000Z"}
    assert _admin(served, "/_emulator/clock", {"advance_seconds": 86400}) == {
        "now": "2026-03-03T06:00:00.000Z"
    }
    paginator = client.get_paginator("list_command_invocations")
    later = paginator.paginate(Details=True).build_full_result()["CommandInvocations"]
    assert max(r["RequestedDateTime"] for r in later) > max(r["RequestedDateTime"] for r in records)


def test_a_bad_faults_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "faults.json"
    bad.write_text('{"regions": {"eu-west-1": {"error_rate": 7}}}')
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "emulator", "--faults", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        done.stderr.startswith("ssm-etl: error: bad --faults file")
        and len(done.stderr.splitlines()) == 1
    )
