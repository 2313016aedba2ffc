"""A CLI run's own Prefect server dies with the run, however the run dies."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

import httpx
import pytest

SCRIPT = """
import time
from flows.server import prefect_api
with prefect_api() as url:
    print(url, flush=True)
    time.sleep(600)
"""


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_temporary_server_dies_with_a_sigkilled_parent(tmp_path):
    """It also starts from this package's own code, wherever the run is started: a user's
    working directory may hold a `flows` package of its own."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    theirs = tmp_path / "work" / "flows"
    theirs.mkdir(parents=True)
    (theirs / "__init__.py").write_text("raise SystemExit('a user project of the same name')\n")
    (theirs / "server.py").write_text("raise SystemExit('a user project of the same name')\n")
    parent = subprocess.Popen(
        [sys.executable, "-P", "-c", SCRIPT],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=theirs.parent,
    )
    try:
        url = parent.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        port = urlparse(url).port
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _port_open(port), "the Prefect server outlived its run"
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


class _Started:
    """Stands for a LocalServer that is already up (`prefect_api` only waits on and stops it)."""

    url = "http://127.0.0.1:9/api"
    stopped = False

    def wait(self) -> str:
        return self.url

    def stop(self) -> None:
        self.stopped = True


def test_flows_on_the_run_s_own_server_send_no_heartbeats(monkeypatch):
    """Heartbeats tell a lasting server that a run died; this one dies with the run, and the
    flow would wait up to a second at its end for the thread that sends them."""
    from prefect.settings import get_current_settings

    from flows import server as module

    monkeypatch.setattr(module, "configured", lambda: False)
    monkeypatch.setattr(module, "_drain", lambda: None)
    started = _Started()
    default = get_current_settings().flows.heartbeat_frequency
    assert default is not None
    with module.prefect_api(started) as url:
        settings = get_current_settings()
        assert url == started.url and settings.api.url == started.url
        assert settings.flows.heartbeat_frequency is None
    assert started.stopped
    assert get_current_settings().flows.heartbeat_frequency == default


EXITS = """
import atexit, sys
from flows import cli
atexit.register(print, "exit handler ran")
sys.argv = ["ssm-etl", *sys.argv[1:]]
cli.entry()
print("not reached")
"""


def test_the_console_script_runs_exit_handlers_and_flushes_before_it_ends():
    """`entry` skips the interpreter's teardown, not what a command printed or registered."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # pipes buffer
    good = ["ddl", "--engine", "athena", "--location", "s3://bucket/lake"]
    done = subprocess.run(
        [sys.executable, "-c", EXITS, *good], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    ddl, _, tail = done.stdout.rpartition("exit handler ran\n")
    assert "'table_type' = 'DELTA'" in ddl and ddl.count("CREATE EXTERNAL TABLE") >= 6
    assert tail == "" and "not reached" not in done.stdout
    bad = ["ddl", "--engine", "athena", "--location", "/not/s3"]
    done = subprocess.run(
        [sys.executable, "-c", EXITS, *bad], capture_output=True, text=True, env=env
    )
    assert done.returncode == 2
    assert done.stdout == "exit handler ran\n"
    assert done.stderr.startswith("ssm-etl: error: --location") and done.stderr.count("\n") == 1


def test_the_server_builds_prefect_s_app_with_the_collector_paused(monkeypatch):
    """The factory uvicorn calls builds Prefect's app with the cyclic collector paused
    (`flows.startup`), and resumes it, with what was built frozen."""
    import prefect.server.api.server as prefect_server

    from flows.server import prefect_app

    seen: list[bool] = []
    app = object()

    def create_app() -> object:
        seen.append(gc.isenabled())
        return app

    monkeypatch.setattr(prefect_server, "create_app", create_app)
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    assert prefect_app() is app
    assert seen == [False]
    assert gc.isenabled() and gc.get_freeze_count() > frozen


def test_a_paused_collector_stays_off_if_it_was_off_and_resumes_after_an_error():
    from flows.startup import collector_paused

    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ImportError), collector_paused():
        raise ImportError("a module that failed to load")
    assert gc.isenabled()


def test_a_server_is_killed_if_it_has_not_answered_yet_and_ended_gracefully_if_it_has(
    tmp_path, monkeypatch
):
    """A run refused early stops a server still loading Prefect: uvicorn, holding the
    signals by then, would finish loading before it honoured SIGTERM."""
    from flows.server import LocalServer

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    early = LocalServer()
    early.stop()
    assert early.process.returncode == -signal.SIGKILL
    served = LocalServer()
    url = served.wait()
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    served.stop()
    assert served.process.returncode in (0, -signal.SIGTERM)
