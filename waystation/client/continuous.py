"""Continuous mode: keep a replica in sync for as long as the app (or `waystation sync
--continuous`) runs.

While online it syncs every ``interval`` seconds (sooner when an op's backoff ends, the
app calls ``poke()``, or the server reports changes: a second thread long-polls
``GET /v1/sync/events`` and wakes the loop; when that fails — offline, an older server —
it backs off and the interval polling goes on alone). While offline it only sends a
cheap ``/healthz`` probe every ``probe_interval`` seconds and syncs at once when the
server answers again. It stops on ``stop()`` or when the replica needs a new login (a loop
cannot fix that).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from waystation.client import outbox
from waystation.client.errors import LoginRequired
from waystation.client.events import SyncEvent
from waystation.client.pull import read_cursor
from waystation.client.replica import Replica, sync_once
from waystation.client.result import SyncResult
from waystation.client.transport import Transport


class Continuous:
    """The sync loop around ``sync_once``; ``run()`` blocks, ``start()`` runs it in a thread."""

    def __init__(
        self,
        replica: Replica,
        *,
        interval: float = 300.0,
        probe_interval: float = 10.0,
        max_items: int | None = None,
        transport: Transport | None = None,
        on_result: Callable[[SyncResult], None] | None = None,
        live: bool = True,
    ) -> None:
        self.replica = replica
        self.interval = interval
        self.probe_interval = probe_interval
        self.max_items = max_items
        self.on_result = on_result
        self.online: bool | None = None
        self.last_result: SyncResult | None = None
        self._transport = transport
        self._stop = threading.Event()
        self._wake = _Wakeup()
        self._thread: threading.Thread | None = None
        self.live = live
        self._synced = threading.Event()

    def run(self, *, max_syncs: int | None = None) -> SyncResult | None:
        """Loop until ``stop()``, a login problem, or ``max_syncs`` syncs; returns the last
        result."""
        try:
            transport = self._transport or self.replica.transport()
        except LoginRequired as exc:
            result = SyncResult()
            result.fail(exc.code, exc.message)
            self.last_result = result
            if self.on_result is not None:
                self.on_result(result)
            return result
        syncs = 0
        listening = threading.Event()
        if self.live:
            threading.Thread(
                target=self._listen, args=(listening,), name="waystation-events", daemon=True
            ).start()
        try:
            while not self._stop.is_set():
                if self.online is False and not transport.healthz():
                    self._sleep(self.probe_interval)
                    continue
                if self.online is False:
                    self._set_online(True)
                result = sync_once(
                    self.replica, transport, max_items=self.max_items, respect_backoff=True
                )
                syncs += 1
                self.last_result = result
                self._synced.set()
                if self.on_result is not None:
                    self.on_result(result)
                if result.needs_login or (max_syncs is not None and syncs >= max_syncs):
                    break
                if result.offline:
                    self._set_online(False)
                    self._sleep(self.probe_interval)
                    continue
                self._set_online(True)
                self._sleep(self._next_wait())
        finally:
            listening.set()
            if self._transport is None:
                transport.close()
        return self.last_result

    def _listen(self, done: threading.Event) -> None:
        """Wake the loop as soon as the server reports changes after the replica's cursor."""
        try:  # its own transport: a long poll holds a connection, and an injected (test)
            transport = self.replica.transport()  # transport keeps its own request count
        except LoginRequired:
            return
        backoff = 1.0
        try:
            while not (done.is_set() or self._stop.is_set()):
                try:
                    changed = transport.wait_for_changes(read_cursor(self.replica.local), wait=25.0)
                except Exception:  # offline, no such endpoint, token expired: poll meanwhile
                    done.wait(backoff)
                    backoff = min(backoff * 2, self.interval)
                    continue
                backoff = 1.0
                if changed:
                    self._synced.clear()
                    self._wake.set()
                    self._synced.wait(60)  # ask again once the sync moved the cursor
        finally:
            transport.close()

    def start(self) -> threading.Thread:
        """Run the loop in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="waystation-sync", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the loop to end after the current sync (and wait for its thread, when it runs
        in one). Safe to call from a signal handler on the loop's own thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def poke(self) -> None:
        """Sync as soon as possible (e.g. after the user saved a form)."""
        self._wake.set()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait_and_clear(max(0.0, seconds))

    def _next_wait(self) -> float:
        """The interval, or sooner when a PENDING op's backoff ends before it."""
        with self.replica.db.read() as conn:
            row = conn.execute(
                "SELECT min(next_attempt_at) FROM outbox WHERE status = 'PENDING'"
            ).fetchone()
        due_ms = row[0] if row and row[0] else None
        if due_ms is None:
            return self.interval
        return max(1.0, min(self.interval, (int(due_ms) - outbox.now_ms()) / 1000))

    def _set_online(self, online: bool) -> None:
        if self.online is online:
            return
        self.online = online
        self.replica.events.emit(
            SyncEvent("online" if online else "offline", pending=self.replica.pending_count())
        )


class _Wakeup:
    """What the loop sleeps on: ``set()`` wakes it early.

    Like ``threading.Event`` but over a re-entrant lock: ``stop()`` may run in a signal
    handler (Ctrl-C in ``waystation sync --continuous``) that interrupted this very thread
    inside ``wait_and_clear``, while it held the lock; an Event's plain lock would then
    deadlock the process for good.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._flag = False

    def set(self) -> None:
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def wait_and_clear(self, timeout: float) -> None:
        """Return once set (at once if it already is) or after ``timeout`` seconds, and
        clear it."""
        with self._cond:
            if not self._flag:
                self._cond.wait(timeout)
            self._flag = False
