"""Ctrl-C and SIGTERM as a request to stop cleanly, for the process that runs a night."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .ingest import Stop

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stopping_on_signals(stop: Stop | None = None) -> Iterator[Stop]:
    """While the block runs, SIGINT and SIGTERM set `stop` (and `stop.signal`) instead of
    raising; a second one ends the process at once (exit 128 + signal number).

    Only the main thread can take signals; elsewhere the block runs without handlers.
    """
    stop = stop or Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.signal = signum
        stop.set()

    previous = {signum: signal.signal(signum, handle) for signum in SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
