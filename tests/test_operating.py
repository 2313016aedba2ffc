"""Operating `ssm-etl run` every night, through the installed console script (issue 14).

Each test starts `.venv/bin/ssm-etl` as its own process group, the way cron or a
terminal does, and looks at what an operator sees: the exit code, the lines
printed, what the lake and its ledger hold, and what is left running.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from emulator import Emulator
from tests.nights import spec
from tests.truth import view_rows

SSM_ETL = str(Path(sys.executable).with_name("ssm-etl"))
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1")
PREFECT_DEFAULTS = ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_LOGGING_LEVEL")
"""Set by conftest for the whole session; removed here so the CLI's own defaults show."""


def _env(prefect_api: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PREFECT_DEFAULTS}
    env.pop("PREFECT_API_URL", None)
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    return env


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [SSM_ETL, *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
    )


class _Lines:
    """A stream's lines, each with the time it arrived."""

    def __init__(self, stream) -> None:
        self.lines: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append((time.monotonic(), line))

    def result(self) -> list[tuple[float, str]]:
        self.thread.join(timeout=10)
        return self.lines


def _gone(pgid: int, home: str, within: float = 5.0) -> bool:
    """No process of the group is left, nor any other that carries the run's PREFECT_HOME
    (its Prefect server runs in a session of its own)."""
    mark = f"PREFECT_HOME={home}".encode()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and mark in (proc / "environ").read_bytes():
                    left.append(proc.name)
            except OSError:
                continue
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            if not left:
                return True
        time.sleep(0.1)
    return False


def _walking(emulator: Emulator, pages: int) -> bool:
    """The run's own walk has begun (the probe asks for one item, MaxResults=1)."""
    return (
        sum(
            1
            for r in list(emulator.request_log)
            if r["operation"] == "ListCommandInvocations"
            and (r["params"] or {}).get("MaxResults") != 1
        )
        >= pages
    )


@pytest.mark.parametrize(
    ("signum", "code", "configured"),
    [
        pytest.param(signal.SIGINT, 130, False, id="ctrl-c-own-prefect-server"),
        pytest.param(signal.SIGTERM, 143, True, id="sigterm-configured-prefect"),
    ],
)
def test_a_signal_stops_the_run_in_seconds_with_one_line(
    tmp_path, prefect_api, signum, code, configured
):
    lake = tmp_path / "lake"
    slow = spec(regions=REGIONS, instances_per_region=40, page_delay=0.25)
    with Emulator(slow) as emulator:
        argv = ["run", "--lake", str(lake), "--regions", ",".join(REGIONS)]
        argv += ["--endpoint-url", emulator.url, "--concurrency", "2"]
        env = _env(prefect_api if configured else None)
        home = env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # marks the run's processes
        process = _start(argv, env)
        reader = _Lines(process.stderr)
        deadline = time.monotonic() + 120
        while not _walking(emulator, 3):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never started walking"
            time.sleep(0.1)
        os.killpg(process.pid, signum)  # what Ctrl-C does: the whole foreground group
        sent = time.monotonic()
        process.wait(timeout=60)
        stopped = time.monotonic() - sent
    out, err = process.stdout.read(), reader.result()
    assert process.returncode == code, (out, err)
    assert stopped < 5, f"took {stopped:.1f} s to stop"
    assert _gone(process.pid, home), "a process of the run (its Prefect server?) was left behind"
    after = [line for at, line in err if at >= sent]
    assert len(after) == 1, "".join(after)
    line = after[0]
    assert line.startswith("interrupted: ") and "a rerun resumes" in line
    assert out == "", "an interrupted run prints its one line, not a summary"
    everything = out + "".join(text for _, text in err)
    assert "Traceback" not in everything and "concurrency" not in everything.lower()
    statuses = {row["region"]: row["status"] for row in view_rows(lake, "ingest_runs")}
    assert set(statuses) == set(REGIONS), "each region of the run is in the ledger"
    assert "interrupted" in statuses.values()
    assert set(statuses.values()) <= {"succeeded", "interrupted"}, statuses
    committed = [r for r, s in statuses.items() if s == "succeeded"]
    assert f"{len(committed)} of {len(REGIONS)} regions committed" in line


def _closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])  # nothing listens once it is closed


def test_an_unreachable_endpoint_fails_in_seconds_naming_it(tmp_path):
    lake = tmp_path / "lake"
    url = f"http://127.0.0.1:{_closed_port()}"
    began = time.monotonic()
    done = subprocess.run(
        [SSM_ETL, "run", "--lake", str(lake), "--regions", "us-east-1", "--endpoint-url", url],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - began
    assert done.returncode == 4, done
    assert took < 20, f"took {took:.1f} s"
    lines = done.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, done.stderr
    assert url in lines[0] and "--endpoint-url" in lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert not lake.exists(), "a run that reached nothing leaves no lake skeleton"


def test_no_credentials_fail_in_seconds_naming_the_fix(tmp_path):
    lake = tmp_path / "lake"
    env = {k: v for k, v in _env().items() if not k.startswith("AWS_ACCESS_KEY_ID")}
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    with Emulator(spec(regions=("us-east-1",))) as emulator:
        done = subprocess.run(
            [SSM_ETL, "run", "--lake", str(lake), "--regions", "us-east-1"]
            + ["--endpoint-url", emulator.url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 4, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "credentials" in lines[0] and "--profile" in lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert not lake.exists()


@pytest.mark.parametrize(
    ("lake", "fragment"),
    [
        pytest.param("/proc/ssm-etl-lake", "/proc/ssm-etl-lake", id="not-creatable"),
        pytest.param("s3://", "s3://", id="no-bucket"),
    ],
)
def test_a_bad_lake_is_refused_before_prefect_starts(tmp_path, lake, fragment):
    """Refused before Prefect is even imported (that is what takes seconds): one line, exit 2."""
    code = (
        "import sys; from flows.cli import main; rc = main(sys.argv[1:]); "
        "heavy = sorted(m for m in ('prefect', 'deltalake') "
        "if m in sys.modules); print('imported:', ','.join(heavy)); sys.exit(rc)"
    )
    argv = ["run", "--lake", lake, "--regions", "us-east-1"]
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 2, done
    assert done.stdout.strip() == "imported:", done.stdout
    assert len(done.stderr.strip().splitlines()) == 1 and fragment in done.stderr
    installed = subprocess.run([SSM_ETL, *argv], env=_env(), capture_output=True, text=True)
    assert installed.returncode == 2 and installed.stderr == done.stderr
    assert not list(tmp_path.iterdir())


def test_help_imports_nothing_heavy():
    """`--help` answers in well under a second because it imports no Prefect or pyarrow."""
    code = (
        "import sys\nfrom flows.cli import main\ntry:\n    main(['run', '--help'])\n"
        "except SystemExit:\n    pass\nprint(sorted(m for m in ('prefect', 'pyarrow', 'boto3', "
        "'duckdb', 'deltalake') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
    installed = subprocess.run([SSM_ETL, "--help"], capture_output=True, text=True)
    assert installed.returncode == 0 and "run" in installed.stdout


def test_a_healthy_run_prints_no_error_and_no_telemetry(tmp_path):
    """Without a configured Prefect server, as `make demo` and a first cron night run."""
    lake = tmp_path / "lake"
    env = _env()
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    with Emulator(spec(regions=("us-east-1",))) as emulator:
        argv = ["run", "--lake", str(lake), "--regions", "us-east-1"]
        argv += ["--endpoint-url", emulator.url]
        done = subprocess.run([SSM_ETL, *argv], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done
    text = done.stdout + done.stderr
    assert "Traceback" not in text
    noisy = [
        line
        for line in text.splitlines()
        if any(word in line.lower() for word in ("error", "telemetry", "warning", "exception"))
    ]
    assert noisy == [], noisy
    assert done.stderr.strip() == "", done.stderr
    assert [row["status"] for row in view_rows(lake, "ingest_runs")] == ["succeeded"]
