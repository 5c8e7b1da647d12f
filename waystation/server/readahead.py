"""Read-ahead for pulls: a device's next page, built while the device still reads this one.

A device that pulls a backlog asks for page n+1 only once it has received and parsed page n,
so without read-ahead the server idles while the device parses and the device idles while
the server reads, renders and compresses: their times add up. With it, the server starts
page n+1 as soon as it has answered page n with ``has_more``, on a core the device is not
waiting on, and the request for n+1 finds it built (or waits for the rest of the build).

What is built ahead is only ever served when it is what the request would have got: the
route keeps the feed's state (``store.pull.FeedState``) the page was read at and serves it
only if the feed is still in that state (no seq allocated, no tombstone collected since);
otherwise the page is built again. The key holds the whole request as the page depends on
it: the principal (user, role, scopes and device, as authenticated by this very request),
cursor, page size, collections filter and content coding.

Speculative work is bounded: at most ``workers`` builds at once (a page offered while they
are busy is not built ahead: under load the device just gets the usual sequential pull), at
most ``max_entries`` pages held, each for at most ``max_age_s``. A build that has not
started when its request arrives is cancelled and done by the request itself. The price:
while other devices keep pushing, the feed moves between a build and its request and the
build is thrown away, so a pull during a push storm may cost up to twice its CPU (for at
most ``workers`` pages at a time). ``Settings.pull_read_ahead`` turns it off.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """Results built ahead of the request that will ask for them, by key."""

    def __init__(self, *, workers: int = 2, max_entries: int = 16, max_age_s: float = 30.0) -> None:
        self.workers = workers
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="waystation-readahead"
        )
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[float, Future[T]]] = OrderedDict()
        # What became of the pages taken: built ahead and used, or not (for tests and
        # for reading the effect off a running server).
        self.served = 0
        self.refused = 0

    def offer(self, key: Hashable, build: Callable[[], T]) -> bool:
        """Start ``build`` for ``key`` unless it is already under way or the workers are
        busy; returns whether it was started."""
        now = time.monotonic()
        with self._lock:
            self._drop_old(now)
            if key in self._entries:
                return False
            if sum(not f.done() for _, f in self._entries.values()) >= self.workers:
                return False
            self._entries[key] = (now, self._pool.submit(build))
            while len(self._entries) > self.max_entries:
                _, (_, oldest) = self._entries.popitem(last=False)
                oldest.cancel()
            return True

    def take(self, key: Hashable) -> T | None:
        """The result built for ``key`` (waiting for a build under way), or None: nothing
        was built, it had not started (then it is cancelled) or it failed (the request
        builds the page itself, and meets the same error if it is one)."""
        with self._lock:
            entry = self._entries.pop(key, None)
            self._drop_old(time.monotonic())
        if entry is None:
            return None
        started, future = entry
        if future.cancel() or time.monotonic() - started > self.max_age_s:
            return None
        try:
            return future.result()
        except Exception:
            return None

    def note(self, served: bool) -> None:
        """Count a page taken: ``served`` if it went out as built, else refused (stale)."""
        with self._lock:
            if served:
                self.served += 1
            else:
                self.refused += 1

    def settle(self, timeout: float | None = None) -> None:
        """Wait until no build is under way (tests use it to know a page is built)."""
        with self._lock:
            futures = [future for _, future in self._entries.values()]
        wait(futures, timeout)

    def _drop_old(self, now: float) -> None:
        while self._entries:
            key, (started, future) = next(iter(self._entries.items()))
            if now - started <= self.max_age_s:
                return
            del self._entries[key]
            future.cancel()

    def close(self) -> None:
        with self._lock:
            for _, future in self._entries.values():
                future.cancel()
            self._entries.clear()
        self._pool.shutdown(wait=False)
