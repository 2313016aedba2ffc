"""Give the C heap's freed pages back to the operating system between a run's phases.

The region walks build their Arrow buffers on the C allocator (the CLI sets
`ARROW_DEFAULT_MEMORY_POOL=system`) from many threads, and glibc keeps what
each thread freed in that thread's arena. delta-rs allocates from its own
jemalloc, so none of it is reused by a merge: without a trim the walks' freed
pages stay resident beside the commit's. `malloc_trim(0)` returns every
arena's free pages. The committer calls it before each table's merge
(`pipeline.commit`) and maintenance before each table's optimize
(`pipeline.maintain`); measured in benchmarks/README.md ("Memory"). A no-op
where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any


@cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def release_free_memory() -> None:
    """Return the C heap's free pages to the OS, where the C library can."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
