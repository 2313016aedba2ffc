"""The credentials a run uses never reach its output, Prefect's records or the lake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emulator import Emulator, FleetSpec
from tests.conftest_emulator import EMULATOR_NOW

KEY_ID = "AKIAPLANTEDKEY000042"
SECRET = "planted/Secret+Key/0123456789abcdefghijKLMN"
TOKEN = "PlantedSessionToken" + "Z" * 80
PLANTED = (KEY_ID, SECRET, TOKEN)


def _strings_in_lake(lake: Path) -> list[str]:
    """Every string value in every Parquet file, plus every other file's raw text."""
    found: list[str] = []
    for path in lake.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for column in table.columns:
                if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                    found.extend(v for v in column.to_pylist() if v)
                elif pa.types.is_list(column.type):
                    found.extend(str(v) for v in column.to_pylist() if v)
        else:
            found.append(path.read_bytes().decode("utf-8", "replace"))
    return found


@pytest.fixture
def planted_env(prefect_api):
    return {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": TOKEN,
        "PREFECT_API_URL": prefect_api,
        "PREFECT_LOGGING_LEVEL": "DEBUG",
    }


def test_planted_credentials_appear_nowhere(tmp_path, planted_env):
    spec = FleetSpec(seed=5, now=EMULATOR_NOW, regions=("eu-west-1",), instances_per_region=6)
    lake = tmp_path / "lake"
    with Emulator(spec) as emulator:
        # One region succeeds; one fails with an AWS error whose message is printed.
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "run",
                "--regions",
                "eu-west-1,af-south-1",
                "--lake",
                str(lake),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **planted_env, "AWS_ENDPOINT_URL": emulator.url},
            timeout=300,
        )
    assert done.returncode == 1, done.stderr
    assert "af-south-1" in done.stdout
    haystacks = {"stdout": done.stdout, "stderr": done.stderr}
    haystacks["lake"] = "\n".join(_strings_in_lake(lake))
    haystacks["prefect"] = _prefect_records()
    for name, text in haystacks.items():
        for secret in PLANTED:
            assert secret not in text, f"{secret[:8]}... leaked into {name}"
    assert "eu-west-1" in haystacks["prefect"], "the Prefect records were read"


def _prefect_records() -> str:
    """Flow-run parameters, logs and artifacts, as Prefect's API returns them."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        logs = client.read_logs()
        artifacts = client.read_artifacts()
    parts = [repr(run.parameters) for run in runs]
    parts += [log.message for log in logs]
    parts += [repr(artifact.data) for artifact in artifacts]
    return "\n".join(parts)
