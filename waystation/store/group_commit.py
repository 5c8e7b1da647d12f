"""Group commit for SQLite: write transactions that arrive together share one COMMIT.

With ``synchronous=FULL`` every COMMIT waits for an fsync of the WAL (about 10 ms on the
machines we measured, a fifth of a 500-op push), and SQLite has one writer, so those waits
add up when many devices push at once. Here concurrent callers queue their work; one of them
(the leader) runs everything queued in a single transaction, each piece of work inside its
own SAVEPOINT, commits once, then hands each caller its own result or its own exception.
The next caller in the queue then leads the next group.

Nothing changes for a caller: its work commits before ``run`` returns (so an acknowledged
write is durable), and work that raises is rolled back alone (its savepoint) without
touching the others of its group. Alone, a caller leads a group of one at once: grouping
adds no wait, it only forms while a transaction is already running.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from waystation.store.transaction import Transaction

T = TypeVar("T")
MAX_GROUP = 32


class _Job(Generic[T]):
    __slots__ = ("error", "event", "finished", "lead", "result", "work")

    def __init__(self, work: Callable[[Transaction], T]) -> None:
        self.work = work
        self.event = threading.Event()  # set when finished, or when promoted to lead
        self.lead = False
        self.finished = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Runs write work in shared transactions, each opened by calling ``begin``
    (``store/transaction.py``, ``begin_sqlite``)."""

    def __init__(self, begin: Callable[[], AbstractContextManager[Transaction]]) -> None:
        self._begin = begin
        self._lock = threading.Lock()
        self._queue: list[_Job[Any]] = []
        self._leading = False
        self.groups = 0  # transactions committed (observability: jobs / groups = group size)
        self.jobs = 0

    def run(self, work: Callable[[Transaction], T]) -> T:
        """Run ``work`` in a write transaction (perhaps shared); its result once committed."""
        job: _Job[T] = _Job(work)
        with self._lock:
            self._queue.append(job)
            if not self._leading:
                self._leading = True
                job.lead = True
        if not job.lead:
            job.event.wait()
        if not job.finished:  # leading: this job is first in the queue
            self._lead()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]  # set when error is None

    def _lead(self) -> None:
        with self._lock:
            group = self._queue[:MAX_GROUP]
            del self._queue[:MAX_GROUP]
        try:
            self._run_group(group)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.event.set()
                else:
                    self._leading = False
            for job in group:
                job.finished = True
                job.event.set()

    def _run_group(self, group: list[_Job[Any]]) -> None:
        try:
            with self._begin() as tx:
                for job in group:
                    _run_in_savepoint(tx, job)
        except BaseException as error:  # the COMMIT (or BEGIN) failed: nothing was written
            for job in group:
                job.result, job.error = None, error
            if not isinstance(error, Exception):
                raise
        self.groups += 1
        self.jobs += len(group)


def _run_in_savepoint(tx: Transaction, job: _Job[Any]) -> None:
    saved = tx.notes.copy()
    tx.conn.exec_driver_sql("SAVEPOINT job")
    try:
        job.result = job.work(tx)
    except Exception as error:
        tx.conn.exec_driver_sql("ROLLBACK TO SAVEPOINT job")
        tx.conn.exec_driver_sql("RELEASE SAVEPOINT job")
        tx.notes = saved  # its changes are gone, so is their notice
        job.error = error
        return
    tx.conn.exec_driver_sql("RELEASE SAVEPOINT job")
