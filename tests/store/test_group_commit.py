"""Group commit on SQLite: writers that arrive together share one COMMIT, and each still
gets its own outcome (store/group_commit.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from waystation.store.database import Database
from waystation.store.migrate import upgrade
from waystation.store.notice import ChangeNotice
from waystation.store.sequence import allocate_seqs, get_meta, put_meta, read_counter
from waystation.store.transaction import Transaction

WRITERS = 12


class Refused(Exception):
    pass


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(str(tmp_path / "group.db"))
    upgrade(database)
    return database


def _write_all_at_once(db: Database, fail: set[int], *, changes: bool = False) -> dict[int, object]:
    """Start WRITERS transactions together while a first one holds the writer, so the rest
    queue up behind it; return each writer's result or exception. With ``changes``, writer
    ``i`` also allocates a seq for a change of collection ``c{i}`` in scope ``s{i}``."""
    outcomes: dict[int, object] = {}
    holding = threading.Event()
    release = threading.Event()

    def hold(tx: Transaction) -> None:
        put_meta(tx.conn, "first", "yes")
        holding.set()
        release.wait(10)

    def writer(i: int) -> None:
        def work(tx: Transaction) -> int:
            put_meta(tx.conn, f"k{i}", str(i))
            if changes:
                allocate_seqs(tx, 1)
                tx.notes.note_changes({f"c{i}"}, {f"s{i}"})
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
        assert [get_meta(conn, f"k{i}") for i in range(WRITERS)] == [str(i) for i in range(WRITERS)]


def test_a_failing_writer_is_rolled_back_alone_and_told_alone(db: Database) -> None:
    outcomes = _write_all_at_once(db, fail={3, 7})
    assert isinstance(outcomes[3], Refused) and str(outcomes[3]) == "writer 3 refuses"
    assert isinstance(outcomes[7], Refused)
    assert {i: outcomes[i] for i in range(WRITERS) if i not in (3, 7)} == {
        i: i for i in range(WRITERS) if i not in (3, 7)
    }
    with db.read() as conn:
        assert get_meta(conn, "k3") is None and get_meta(conn, "k7") is None
        assert get_meta(conn, "k2") == "2" and get_meta(conn, "k8") == "8"


def test_a_failing_writer_s_changes_are_not_announced_with_its_group(db: Database) -> None:
    heard: list[ChangeNotice] = []
    db.listeners.add(heard.append)
    outcomes = _write_all_at_once(db, fail={3, 7}, changes=True)
    assert isinstance(outcomes[3], Refused) and isinstance(outcomes[7], Refused)
    survivors = [i for i in range(WRITERS) if i not in (3, 7)]
    # one group, one notice: the seqs and changes of the writers that committed, only
    assert heard == [
        ChangeNotice(
            len(survivors),
            frozenset(f"c{i}" for i in survivors),
            frozenset(f"s{i}" for i in survivors),
        )
    ]
    with db.read() as conn:
        assert read_counter(conn, "seq") == len(survivors)


def test_a_lone_writer_commits_at_once(db: Database) -> None:
    assert db.transact(lambda tx: put_meta(tx.conn, "alone", "1")) is None
    with db.read() as conn:
        assert get_meta(conn, "alone") == "1"
