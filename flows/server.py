"""A Prefect API for one CLI run, tied to the life of this process.

With no Prefect server configured, Prefect would start a temporary one in a
subprocess that survives a SIGKILL of its parent, keeping a port and a
database open. This starts the same server (Prefect's own app under uvicorn,
as Prefect does) but asks the kernel to kill it when this process dies, by
any means; it starts before the run has checked AWS and imported Prefect, so
the two overlap, and it runs only what a single run needs (no UI, no
scheduler or automations, no telemetry). A configured server (PREFECT_API_URL)
is used as is: on a host that runs ssm-etl every night, `prefect server start`
once (systemd) and PREFECT_API_URL save those seconds every night.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flows.startup import collector_paused

_PR_SET_PDEATHSIG = 1
SERVER_SETTINGS = {
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # Services a single run never needs: schedules, late runs, automations, workers.
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
    # Its database is Prefect's own, reused night after night: keep 30 days of runs.
    "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
    "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(30 * 86400),
}


def prefect_app() -> Any:
    """uvicorn's app factory, in the server process: Prefect's own app, built with the
    collector paused (`flows.startup`)."""
    with collector_paused():
        from prefect.server.api.server import create_app

        return create_app()


def _die_with_parent() -> None:
    """Runs in the child between fork and exec (Linux only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def configured() -> bool:
    """Whether the user points at a Prefect server (then nothing is started)."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


class LocalServer:
    """Prefect's API server in a child process that dies with this one."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.answered = False
        command = [
            # -P: the working directory, which may hold a user's own `flows`, is not searched;
            # the app directory is where this package lives.
            sys.executable, "-P", "-m", "uvicorn",
            "--app-dir", str(Path(__file__).resolve().parent.parent),
            "--factory", "flows.server:prefect_app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **SERVER_SETTINGS},
            stdin=subprocess.DEVNULL,
            # Ctrl-C reaches the terminal's whole foreground group: the server must not
            # die before the run has recorded its interruption (`stop` ends it after).
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def wait(self, timeout: float = 120.0) -> str:
        """The API URL, once the server answers.

        The run waits on this, so it looks often, but with a bare connect: uvicorn
        listens only once the app has started, and an HTTP request per look (a new
        client each) cost 20 ms of CPU that the booting server needed more.
        """
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while True:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    raise RuntimeError(f"the Prefect server exited with code {code}")
                try:
                    if _listening(self.port) and client.get(f"{self.url}/health").is_success:
                        self.answered = True
                        return self.url
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the Prefect server did not start in time")
                time.sleep(0.02)

    def stop(self) -> None:
        """End the server: gracefully once it has served the run, at once before that.

        A run refused early (a bad region, unreachable AWS) stops a server that is still
        loading Prefect, and uvicorn, once it has taken over the signals, would finish
        loading before it honoured SIGTERM: seconds for nothing. Nothing has been asked
        of it yet, so it is killed.
        """
        if not self.answered:
            self.process.kill()
            self.process.wait()
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _drain() -> None:
    """Flush Prefect's background log and event workers while the server still answers."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    try:
        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
    except Exception:  # best effort: the run itself has already finished
        pass


def early_server() -> LocalServer | None:
    """A local server started now, unless PREFECT_API_URL names one (`prefect_api` checks
    Prefect's profiles too, once Prefect is imported, and stops this one if one does)."""
    return None if os.environ.get("PREFECT_API_URL") else LocalServer()


@contextmanager
def prefect_api(server: LocalServer | None = None) -> Iterator[str | None]:
    """The API URL flows will use: the configured one, or `server` (started if not given)."""
    if configured():
        if server is not None:
            server.stop()
        yield None
        return
    server = server or LocalServer()
    try:
        url = server.wait()
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            temporary_settings,
        )

        # No flow heartbeats: they tell a lasting server that a run died, and this server dies
        # with the run. Prefect sends them from a thread that sleeps in 1 s steps and joins it
        # when the flow ends, which cost every run up to a second after its last commit.
        updates = {PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        with temporary_settings(updates=updates):
            try:
                yield url
            finally:
                _drain()
    finally:
        server.stop()
