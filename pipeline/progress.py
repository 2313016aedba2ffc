"""Live progress of a run on a terminal; plain log lines when not a terminal.

The walk logs a DEBUG record per page carrying `extra={"progress": {...}}`;
this module turns those into a table that updates in place (rich), or into
an INFO line every few pages when output goes to a file or a pipe.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

PLAIN_EVERY_PAGES = 20


class _Regions(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.started = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        progress = getattr(record, "progress", None)
        if not progress:
            return
        key = (progress["account_id"], progress["region"])
        row = self.rows.setdefault(key, {"first": time.monotonic()})
        row.update(progress, last=time.monotonic())
        self.update(key, row)

    def update(self, key: tuple[str, str], row: dict[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError


class _Plain(_Regions):
    def __init__(self, stream: Any) -> None:
        super().__init__()
        self.stream = stream

    def update(self, key: tuple[str, str], row: dict[str, Any]) -> None:
        if row["pages"] % PLAIN_EVERY_PAGES == 0:
            line = f"{key[0]} {key[1]}: {row['pages']} pages, {row['invocations']} invocations"
            print(line, file=self.stream, flush=True)


class _Live(_Regions):
    def __init__(self, live: Any) -> None:
        super().__init__()
        self.live = live

    def update(self, key: tuple[str, str], row: dict[str, Any]) -> None:
        from rich.table import Table

        table = Table("account", "region", "pages", "invocations", "invocations/s")
        for (account, region), data in sorted(self.rows.items()):
            elapsed = max(data["last"] - data["first"], 1e-3)
            rate = f"{data['invocations'] / elapsed:,.0f}" if data["pages"] > 1 else "-"
            table.add_row(account, region, str(data["pages"]), f"{data['invocations']:,}", rate)
        self.live.update(table)


@contextmanager
def shown(stream: Any = None) -> Iterator[None]:
    """Show per-region progress while the block runs."""
    stream = stream or sys.stderr
    with ExitStack() as stack:
        if stream.isatty():
            from rich.console import Console
            from rich.live import Live

            live = stack.enter_context(Live(console=Console(file=stream), refresh_per_second=4))
            handler: _Regions = _Live(live)
        else:
            handler = _Plain(stream)
        # Only the walk's per-page records, and only to this handler: the run's other
        # log lines keep their level, and no DEBUG line reaches the console.
        logger = logging.getLogger("ssm_etl.progress")
        previous = logger.level, logger.propagate
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(handler)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous[0])
            logger.propagate = previous[1]
