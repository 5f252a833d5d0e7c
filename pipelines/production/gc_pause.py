"""Pause Python's cyclic garbage collector around allocation-heavy work that makes no reference cycles.

Planning a chunk of 1000 products makes ~100k small objects (job states, plans, outcomes) that live on; each
600-700 allocations Python's collector walks the young ones and, ever more often as the run's live objects
grow, all of them. That is a quarter to a third of planning's CPU time at 10k products (bench/incremental.py).
Reference counting still frees everything at once; only the search for cycles waits until the pause ends.

Threads share the collector: the first to enter pauses it (if it was on), the last to leave turns it back on.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Automatic cyclic collection off inside the block (keep the block short: one chunk's planning)."""
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()
