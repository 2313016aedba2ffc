"""Run an HTTP endpoint (the emulator, or the replay) in a child process.

Why a child: on a two-core machine an in-process server shares the
interpreter (and its GIL) with the client being measured, so a benchmark
would time the emulator as much as the pipeline. The child is spawned, not
forked, so it inherits none of the parent's threads, and it exits when the
parent closes the pipe, or dies.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any, Protocol


class Server(Protocol):
    url: str

    def start(self) -> Any: ...

    def stop(self) -> None: ...


def _serve(factory: Callable[..., Server], args: tuple[Any, ...], conn: Connection) -> None:
    server = factory(*args)
    server.start()
    conn.send(server.url)
    with contextlib.suppress(EOFError):
        conn.recv()  # blocks until the parent closes its end
    server.stop()


@contextmanager
def serve_in_child(
    factory: Callable[..., Server], *args: Any, startup_timeout: float = 1800.0
) -> Iterator[str]:
    """Yield the URL of `factory(*args)` serving from a spawned process."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(factory, args, theirs), daemon=True)
    process.start()
    theirs.close()
    try:
        if not ours.poll(startup_timeout):
            raise RuntimeError(f"{factory.__name__} did not start in {startup_timeout:.0f} s")
        yield ours.recv()
    finally:
        ours.close()
        process.join(15)
        if process.is_alive():
            process.terminate()
            process.join()
