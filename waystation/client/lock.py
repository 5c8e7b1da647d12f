"""One sync at a time per replica file, across threads and processes.

Two syncs of one replica (the app's continuous mode and a `waystation sync` in a terminal)
must not both push the same ops, and a sync must not reset the SYNCING ops of another one
that is still running. An exclusive ``flock`` on ``<replica>.sync-lock`` decides; the kernel
drops it when its holder dies, so a SIGKILLed sync never leaves it stuck. Where ``fcntl``
is missing (Windows) only the in-process lock applies.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


class SyncLock:
    """Non-blocking: ``acquire()`` returns False when another sync holds the replica."""

    def __init__(self, replica_path: Path) -> None:
        self._path = replica_path.with_name(replica_path.name + ".sync-lock")
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    def acquire(self) -> bool:
        if not self._thread_lock.acquire(blocking=False):
            return False
        if fcntl is None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            self._thread_lock.release()
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        self._thread_lock.release()
