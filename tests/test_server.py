"""A CLI run's own Prefect server dies with the run, however the run dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

import httpx

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
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    parent = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True, env=env
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
