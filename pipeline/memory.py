"""Give freed heap back to the operating system between a run's phases.

The region walks allocate and free on their own threads, and glibc keeps
what a thread freed in that thread's arena; delta-rs's writer threads then
allocate in other arenas, so the walks' freed pages stay resident beside the
commit's. `malloc_trim(0)` returns every arena's free pages. The committer
calls it before each table's merge (`pipeline.commit`) and maintenance
before each table's optimize (`pipeline.maintain`); measured in
benchmarks/README.md ("Memory"). A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_free_memory() -> bool:
    """Return freed heap pages to the OS; False where that is not available."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
