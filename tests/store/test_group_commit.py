"""Group commit on SQLite: writers that arrive together share one COMMIT, and each still
gets its own outcome (store/group_commit.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from waystation.store.database import Database
from waystation.store.migrate import upgrade
from waystation.store.sequence import get_meta, put_meta

WRITERS = 12


class Refused(Exception):
    pass


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(str(tmp_path / "group.db"))
    upgrade(database)
    return database


def _write_all_at_once(db: Database, fail: set[int]) -> dict[int, object]:
    """Start WRITERS transactions together while a first one holds the writer, so the rest
    queue up behind it; return each writer's result or exception."""
    outcomes: dict[int, object] = {}
    holding = threading.Event()
    release = threading.Event()

    def hold(conn: Connection) -> None:
        put_meta(conn, "first", "yes")
        holding.set()
        release.wait(10)

    def writer(i: int) -> None:
        def work(conn: Connection) -> int:
            put_meta(conn, f"k{i}", str(i))
            if i in fail:
                raise Refused(f"writer {i} refuses")
            return i

        try:
            outcomes[i] = db.transact(work)
        except Refused as exc:
            outcomes[i] = exc

    first = threading.Thread(target=db.transact, args=(hold,))
    first.start()
    assert holding.wait(10)
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    while len(db._group_commit._queue) < WRITERS:  # all queued behind the first
        threading.Event().wait(0.005)
    release.set()
    for t in [first, *threads]:
        t.join(10)
    return outcomes


def test_writers_that_arrive_together_share_a_commit_and_all_land(db: Database) -> None:
    before = db._group_commit.groups
    outcomes = _write_all_at_once(db, fail=set())
    assert outcomes == {i: i for i in range(WRITERS)}
    # the first transaction, then the twelve queued behind it in one
    assert db._group_commit.groups - before == 2
    with db.read() as conn:
        assert [get_meta(conn, f"k{i}") for i in range(WRITERS)] == [
            str(i) for i in range(WRITERS)]


def test_a_failing_writer_is_rolled_back_alone_and_told_alone(db: Database) -> None:
    outcomes = _write_all_at_once(db, fail={3, 7})
    assert isinstance(outcomes[3], Refused) and str(outcomes[3]) == "writer 3 refuses"
    assert isinstance(outcomes[7], Refused)
    assert {i: outcomes[i] for i in range(WRITERS) if i not in (3, 7)} == {
        i: i for i in range(WRITERS) if i not in (3, 7)}
    with db.read() as conn:
        assert get_meta(conn, "k3") is None and get_meta(conn, "k7") is None
        assert get_meta(conn, "k2") == "2" and get_meta(conn, "k8") == "8"


def test_a_lone_writer_commits_at_once(db: Database) -> None:
    assert db.transact(lambda conn: put_meta(conn, "alone", "1")) is None
    with db.read() as conn:
        assert get_meta(conn, "alone") == "1"
