"""Wall and CPU time of one call, and best-of-rounds over interleaved variants.

Variants run in turn within each round (a, b, c, a, b, c, ...) so that a
burst of noise on a shared machine hits them all alike; the best round of
each is kept, the usual estimate of what the code costs without the noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Timed:
    wall: float
    cpu: float
    """This process's CPU seconds, all threads; a server in a child is not counted."""


def timed(fn: Callable[[], T]) -> tuple[T, Timed]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, Timed(time.perf_counter() - wall, time.process_time() - cpu)


def best_of(rounds: int, variants: dict[str, Callable[[], T]]) -> dict[str, tuple[T, Timed]]:
    best: dict[str, tuple[T, Timed]] = {}
    for _ in range(rounds):
        for name, fn in variants.items():
            value, took = timed(fn)
            if name not in best or took.wall < best[name][1].wall:
                best[name] = (value, took)
    return best
