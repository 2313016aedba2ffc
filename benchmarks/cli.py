"""Run a whole command (the installed `ssm-etl`, or a baseline script) and measure its tree.

What a user waits for is the command's process tree: `ssm-etl run` starts a
Prefect server in a child process when none is configured, and a Dask run
has workers. So the wall time is the top process's, from spawn to exit, and
memory is the peak RSS of the largest process of the tree: every process's
own high-water mark (`VmHWM` in /proc, via psutil), read every `interval`
seconds while it lives. `VmHWM` belongs to the process's own address space,
so nothing of this benchmark's process is counted in it (`ru_maxrss` of a
child would start from the parent's).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

MB = 1024 * 1024


def ssm_etl() -> str:
    """The installed console script of this virtual environment."""
    return str(Path(sys.executable).with_name("ssm-etl"))


@dataclass(frozen=True)
class Measured:
    wall: float
    returncode: int
    stdout: str
    stderr: str
    peak_bytes: int
    """Peak RSS of the largest process of the tree."""
    peak_process: str
    processes: int
    started: float
    """Epoch seconds at spawn."""
    peak_at: float
    """Seconds after spawn when the largest resident set was sampled."""

    def check(self) -> Measured:
        if self.returncode != 0:
            tail = "\n".join(self.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"exit {self.returncode}: {tail or self.stdout[-2000:]}")
        return self


def _memory(process: psutil.Process) -> tuple[int, int]:
    """(VmHWM, VmRSS) in bytes; zeros once the process is gone."""
    found = {}
    try:
        with open(f"/proc/{process.pid}/status") as status:
            for line in status:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    found[line[:5]] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return found.get("VmHWM", 0), found.get("VmRSS", 0)


def _label(process: psutil.Process) -> str:
    try:
        argv = process.cmdline()
    except psutil.Error:
        return "?"
    text = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv[:4]))
    return "Prefect server (uvicorn)" if "uvicorn" in text else text[:60]


def run(argv: list[str], env: dict[str, str] | None = None, interval: float = 0.05) -> Measured:
    """Run `argv` to its end; output goes to files so a full pipe never stalls it."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        epoch, started = time.time(), time.perf_counter()
        top = psutil.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        peaks: dict[int, tuple[int, str]] = {}
        resident = (0, 0.0)
        while True:
            try:
                tree = [top, *top.children(recursive=True)]
            except psutil.NoSuchProcess:
                tree = [top]
            for process in tree:
                hwm, rss = _memory(process)
                if hwm and hwm > peaks.get(process.pid, (0, ""))[0]:
                    label = peaks.get(process.pid, (0, ""))[1] or _label(process)
                    peaks[process.pid] = (hwm, label)
                resident = max(resident, (rss, time.perf_counter() - started))
            if top.poll() is not None:
                break
            time.sleep(interval)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        peak, label = max(peaks.values(), default=(0, "?"))
        return Measured(
            wall, top.returncode, out.read(), err.read(), peak, label, len(peaks), epoch,
            resident[1],
        )  # fmt: skip


def environment(**extra: str) -> dict[str, str]:
    """This process's environment (set up by `benchmarks.__main__`) plus `extra`."""
    return {**os.environ, **extra}
