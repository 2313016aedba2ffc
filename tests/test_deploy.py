"""`ssm-etl deploy`: a scheduled deployment on a Prefect server whose runs commit, one at a
time (a deployment concurrency limit of 1 that queues)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from emulator import Emulator, FleetSpec
from pipeline.lake import Lake
from pipeline.views import connect
from tests.conftest_emulator import EMULATOR_NOW


@pytest.fixture
def fleet():
    spec = FleetSpec(seed=9, now=EMULATOR_NOW, regions=("eu-west-1",), instances_per_region=5)
    with Emulator(spec) as emulator:
        yield emulator


def _wait_final(client, run_ids, deadline: float) -> list:
    while True:
        runs = [client.read_flow_run(run_id) for run_id in run_ids]
        if all(run.state.is_final() for run in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(1)


def test_deploy_creates_a_scheduled_deployment_whose_runs_commit_one_at_a_time(
    fleet, prefect_api, tmp_path
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy
    from prefect.deployments import run_deployment

    lake = tmp_path / "lake"
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "AWS_ENDPOINT_URL": fleet.url}
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "deploy", "--name", "nightly-test", "--cron", "15 3 * * *",
         "--timezone", "Europe/Berlin", "--regions", "eu-west-1", "--lake", str(lake)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deployment = None
        deadline = time.monotonic() + 120
        with get_client(sync_client=True) as client:
            while deployment is None and time.monotonic() < deadline:
                try:
                    deployment = client.read_deployment_by_name("ssm-etl-nightly/nightly-test")
                except Exception:
                    time.sleep(1)
        assert deployment is not None, "the deployment was not created"
        (schedule,) = deployment.schedules
        assert schedule.schedule.cron == "15 3 * * *"
        assert schedule.schedule.timezone == "Europe/Berlin"
        assert deployment.parameters["lake"] == str(lake.resolve())
        assert deployment.parameters["keep_days"] == 7.0
        assert "grace_seconds" not in deployment.parameters
        # One run at a time, and a run that finds the slot taken waits for it in Prefect's
        # queue rather than failing on the lake's lock.
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.global_concurrency_limit.active
        strategy = deployment.concurrency_options.collision_strategy
        assert strategy == ConcurrencyLimitStrategy.ENQUEUE
        name = "ssm-etl-nightly/nightly-test"
        first = run_deployment(name, timeout=0)
        second = run_deployment(name, timeout=0)
        with get_client(sync_client=True) as client:
            runs = _wait_final(client, [first.id, second.id], time.monotonic() + 240)
            states = [[s.name for s in client.read_flow_run_states(r.id)] for r in runs]
        assert [run.state.is_completed() for run in runs] == [True, True], (runs, states)
        earlier, later = sorted(runs, key=lambda run: run.start_time)
        assert earlier.end_time <= later.start_time, "the two runs overlapped"
        count = connect(Lake.open(lake)).sql("SELECT count(*) FROM invocations").fetchall()[0][0]
        assert count == len(fleet.ground_truth("123456789012", "eu-west-1"))
        ledger = connect(Lake.open(lake)).sql("SELECT status FROM ingest_runs").fetchall()
        assert ledger == [("succeeded",), ("succeeded",)]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_deploy_without_a_server_is_a_one_line_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "deploy",
            "--regions",
            "eu-west-1",
            "--lake",
            str(tmp_path / "l"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "ssm-etl: error: ssm-etl deploy needs a Prefect server: start one "
        "(`prefect server start`) and set PREFECT_API_URL"
    )
