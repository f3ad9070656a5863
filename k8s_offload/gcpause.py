"""The cyclic garbage collector held off while a bulk operation builds long-lived objects.

A sync or a Write batch creates an object or three per entity, nearly all of which outlive it
(the device's state, the plan until it is written). CPython's collector runs a full collection
each time the objects promoted to its oldest generation since the last one exceed a quarter of
those there, and each walks every tracked object of the process: the loader's compiled state,
the target's tables. Growing by 100k entities that way costs several walks of the whole heap,
measured at about a third of an initial sync's CPU (docs/benchmarks.md, Loader). Held off, the
collector walks the new objects once or twice afterwards instead. Reference counting still frees
everything that is not in a cycle at once; cycles made meanwhile wait for the next collection.

The compiler pauses it the same way while it loads, builds, checks and renders: millions of
long-lived, acyclic records, each generation-0 collection rescanning them for nothing.

Nested and concurrent users share one pause: the collector is re-enabled when the last one ends,
and only if it was enabled when the first one began (an application that turned it off keeps it
off). On resuming, everything made meanwhile is moved to the oldest generation without a scan
(`gc.freeze()` then `gc.unfreeze()`): otherwise the first collection would walk it all as young
(1.5 s after a compile of M); any cycle among it is still found by the next full collection.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused"]

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside the block (`gc.collect()` still works)."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.freeze()
                gc.unfreeze()
                gc.enable()
