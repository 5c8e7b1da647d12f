"""Progress and status events a UI or the CLI can follow while a sync runs.

A callback subscribed with ``Replica.subscribe`` receives every ``SyncEvent``. Callbacks run
on the syncing thread and must be quick; one that raises is logged and skipped, never
allowed to break a sync.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from waystation.client.result import SyncResult

log = logging.getLogger("waystation.client")

Phase = Literal["start", "push", "pull", "done", "offline", "online"]


@dataclass(frozen=True, slots=True)
class SyncEvent:
    """Where a sync stands.

    ``phase``: ``start`` (``to_push`` known), ``push`` (after each answered batch), ``pull``
    (after each applied page), ``done`` (``error`` set when it could not finish), and, in
    continuous mode, ``offline`` / ``online`` when connectivity changes. Counters are totals
    of the current run; ``pending`` is what is still waiting in the outbox.
    """

    phase: Phase
    pending: int = 0
    to_push: int = 0
    pushed: int = 0
    pulled: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    conflicts: int = 0
    rejected: int = 0
    error: str | None = None

    @classmethod
    def of_run(
        cls,
        phase: Phase,
        result: SyncResult,
        *,
        pending: int,
        to_push: int = 0,
        error: str | None = None,
    ) -> SyncEvent:
        """An event carrying the run's totals so far (as push, pull and done report them)."""
        return cls(
            phase,
            pending=pending,
            to_push=to_push,
            pushed=result.pushed,
            pulled=result.pulled,
            bytes_sent=result.bytes_sent,
            bytes_received=result.bytes_received,
            conflicts=result.conflicts,
            rejected=result.rejected,
            error=error,
        )


Listener = Callable[[SyncEvent], None]


class EventHub:
    """Subscribers of one replica's events."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns a function that unsubscribes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: SyncEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("sync event listener %r failed", listener)
