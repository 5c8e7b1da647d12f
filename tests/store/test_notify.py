"""Change notices from the store: what a commit announces, on both engines, and a LISTEN
connection that comes back after PostgreSQL dropped it."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.pg import PostgresCluster
from tests.store.conftest import ADMIN
from tests.store.test_store import patients, upsert
from waystation.core.schema import health_schema
from waystation.store import SqlStore, open_store
from waystation.store.notice import ANYTHING, ChangeNotice
from waystation.store.notify import NoticeSource, source_for
from waystation.store.sequence import allocate_seqs
from waystation.store.transaction import Transaction


@pytest.fixture
def heard(store: SqlStore) -> Iterator[queue.Queue[ChangeNotice]]:
    """Notices heard by a source on ``store``'s database (after any start-up notice)."""
    notices: queue.Queue[ChangeNotice] = queue.Queue()
    source = source_for(store.db)
    source.start(notices.put)
    if not store.db.is_sqlite:
        assert notices.get(timeout=10) == ANYTHING  # LISTEN took effect: re-check once
    yield notices
    source.close()


def test_a_commit_announces_its_newest_seq_collections_and_scopes(
    store: SqlStore, heard: queue.Queue[ChangeNotice]
) -> None:
    results = store.push(
        ADMIN,
        [
            *patients(2),
            upsert("alerts", "a-1", {"patient_id": "p-9", "facility_id": "f-1", "title": "t"}),
        ],
    )
    notice = heard.get(timeout=5)
    assert notice.seq == max(int(r["seq"]) for r in results)
    assert notice.collections == frozenset({"patients", "alerts"})
    assert notice.scopes is not None
    assert {"facility:f-1", "patient:p-9"} <= notice.scopes
    store.push(ADMIN, [])  # nothing changed: nothing to announce

    def refused(tx: Transaction) -> None:
        allocate_seqs(tx, 1)
        raise RuntimeError("rolled back: nothing to announce")

    with pytest.raises(RuntimeError):
        store.db.transact(refused)
    with pytest.raises(queue.Empty):
        heard.get(timeout=0.5)


def test_a_dropped_listen_connection_comes_back_and_says_so(
    postgres: PostgresCluster,
) -> None:
    url = postgres.new_database()
    store = open_store(url, health_schema())
    notices: queue.Queue[ChangeNotice] = queue.Queue()
    source: NoticeSource = source_for(store.db)
    source.start(notices.put)
    try:
        assert notices.get(timeout=10) == ANYTHING
        with psycopg.connect(url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'waystation-listen'"
                " AND datname = current_database()"
            ).fetchall()
        assert killed == [(True,)]
        started = time.monotonic()
        assert notices.get(timeout=15) == ANYTHING  # back: listeners re-check what they missed
        store.push(ADMIN, patients(1))
        assert notices.get(timeout=5).seq == 1
        print(f"\nLISTEN reconnected {time.monotonic() - started:.2f} s after being dropped")
    finally:
        source.close()
        store.close()
