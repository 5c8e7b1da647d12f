"""Garbage-collector settings for a long-running ``waystation serve`` process.

A push of 500 ops builds tens of thousands of short-lived containers (parsed ops, merged
states, row tuples). With CPython's defaults a young collection runs every 700 net
allocations, and every few pages of work a full collection rescans every object the
process holds: the framework, the schema, the routes (~100 ms each in a served process).
In the push storm benchmark that was 0.5 s of collections per 20,000 ops, about a fifth of
the server's CPU. Freezing what exists once the app is built takes it out of every later
scan, and a young threshold of 50,000 lets a request's garbage die by reference count
before a collection looks at it. Reference cycles are still found and freed.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def tune_gc_for_serving() -> None:
    """Call once the app is built, before the first request."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
