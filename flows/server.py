"""A Prefect API for one CLI run, tied to the life of this process.

With no Prefect server configured, Prefect starts a temporary one in a
subprocess that survives a SIGKILL of its parent, keeping a port and a
database open. This starts the same server (Prefect's own app under uvicorn,
as Prefect does) but asks the kernel to kill it when this process dies, by
any means. A configured server (PREFECT_API_URL) is used as is.
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

import httpx
import prefect
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec (Linux only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _drain() -> None:
    """Flush Prefect's background log and event workers while the server still answers."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    try:
        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
    except Exception:  # best effort: the run itself has already finished
        pass


@contextmanager
def prefect_api(startup_timeout: float = 120.0) -> Iterator[str | None]:
    """Yield the API URL flows will use, starting a process-bound server if none is set."""
    if get_current_settings().api.url:
        yield None
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    command = [
        sys.executable, "-m", "uvicorn",
        "--app-dir", str(Path(prefect.__file__).parent.parent),
        "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "error", "--lifespan", "on",
    ]  # fmt: skip
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1"}
    server = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the Prefect server exited with code {server.returncode}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Prefect server did not start in time")
            time.sleep(0.25)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield url
            finally:
                _drain()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
