"""Fan change notices out to the event streams open on this server process.

One ``NoticeSource`` per process (``store/notify.py``: LISTEN on PostgreSQL, the process's
own commits on SQLite), started by the first subscriber. Notices arrive on any thread and
are handed to the event loop, where each ``Subscription`` keeps only what concerns it: the
newest seq of a notice in its scopes and collections, or "re-check" for a notice that
names none (a batch too large to describe, or a reconnected LISTEN).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import FastAPI

from waystation.store.port import ChangeNotice, NoticeSource


@dataclass(frozen=True, slots=True)
class Heard:
    """What a subscriber heard since it last asked: the newest seq of a notice that
    concerns it (0: none), and whether it must re-check the database."""

    seq: int
    recheck: bool


class Subscription:
    """One listener: a device's event stream or long poll. Use on the event loop."""

    def __init__(
        self, hub: Broadcaster, scopes: frozenset[str] | None, collections: frozenset[str] | None
    ) -> None:
        self._hub = hub
        self.scopes = scopes  # None: every scope (admins)
        self.collections = collections  # None: every collection
        self._event = asyncio.Event()
        self._seq = 0
        self._recheck = False

    def offer(self, notice: ChangeNotice) -> None:
        if not notice.may_concern(self.scopes, self.collections):
            return
        if notice.precise:
            self._seq = max(self._seq, notice.seq)
        else:
            self._recheck = True
        self._event.set()

    async def next(self, timeout: float) -> Heard | None:
        """What was heard, waiting up to ``timeout`` seconds for something (None)."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return None
        self._event.clear()
        heard = Heard(self._seq, self._recheck)
        self._seq, self._recheck = 0, False
        return heard

    def close(self) -> None:
        self._hub.unsubscribe(self)


class Broadcaster:
    """The subscriptions of one process and the notice source feeding them."""

    def __init__(self, make_source: Callable[[], NoticeSource]) -> None:
        self._make_source = make_source
        self._source: NoticeSource | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscriptions: set[Subscription] = set()
        # Subscriptions by scope, so a notice costs the listeners it concerns, not all of
        # them; admins (every scope) are in ``_everywhere``.
        self._by_scope: dict[str, set[Subscription]] = {}
        self._everywhere: set[Subscription] = set()
        self._lock = threading.Lock()

    def subscribe(
        self, scopes: frozenset[str] | None, collections: frozenset[str] | None
    ) -> Subscription:
        """A new subscription (call on the event loop); starts the source the first time."""
        with self._lock:
            if self._source is None:
                self._loop = asyncio.get_running_loop()
                self._source = self._make_source()
                self._source.start(self._deliver)
        subscription = Subscription(self, scopes, collections)
        self._subscriptions.add(subscription)
        if scopes is None:
            self._everywhere.add(subscription)
        for scope in scopes or ():
            self._by_scope.setdefault(scope, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription not in self._subscriptions:
            return
        self._subscriptions.discard(subscription)
        self._everywhere.discard(subscription)
        for scope in subscription.scopes or ():
            listeners = self._by_scope.get(scope)
            if listeners is not None:
                listeners.discard(subscription)
                if not listeners:
                    del self._by_scope[scope]

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def _deliver(self, notice: ChangeNotice) -> None:
        """From any thread: hand the notice to the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._dispatch, notice)

    def _dispatch(self, notice: ChangeNotice) -> None:
        if notice.scopes is None:
            targets = set(self._subscriptions)
        else:
            targets = set(self._everywhere)
            for scope in notice.scopes:
                targets.update(self._by_scope.get(scope, ()))
        for subscription in targets:
            subscription.offer(notice)

    def close(self) -> None:
        with self._lock:
            if self._source is not None:
                self._source.close()
                self._source = None


def closing_broadcaster(
    lifespan: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]],
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Wrap an app's lifespan so that the app's broadcaster stops when the app does."""

    @contextlib.asynccontextmanager
    async def wrapped(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            try:
                yield
            finally:
                app.state.broadcaster.close()

    return wrapped
