"""The pull applies pages in bulk and fetches the next page while applying one: what the app
sees is still the server copy with the device's unsynced ops replayed, the cursor never
runs ahead of the records it covers, and a client killed mid-pull resumes where it stopped.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.client.conftest import MakeReplica, new_user, symptom_log
from tests.client.faults import Forwarder, is_pull
from tests.support import LiveServer
from waystation.client import Replica, sync_once
from waystation.client import outbox as ob
from waystation.client.db import MIGRATIONS, LocalDB, get_meta
from waystation.client.records import refresh_visible, store_pulled_page
from waystation.core.ids import uuid7

REPO = Path(__file__).resolve().parents[2]


def _visible(conn: sqlite3.Connection) -> dict[tuple[str, str], Any]:
    return {
        (c, i): orjson.loads(f)
        for c, i, f in conn.execute("SELECT collection, id, fields FROM records")
    }


def _replayed_one_by_one(db: LocalDB) -> dict[tuple[str, str], Any]:
    """The visible rows recomputed record by record (the reference), then rolled back."""
    with db.transaction() as conn:
        conn.execute("SAVEPOINT reference")
        keys = set(conn.execute("SELECT collection, id FROM server_records").fetchall())
        keys |= set(conn.execute("SELECT collection, record_id FROM outbox").fetchall())
        for collection, record_id in keys:
            refresh_visible(conn, collection, record_id)
        reference = _visible(conn)
        conn.execute("ROLLBACK TO reference")
        conn.execute("RELEASE reference")
    return reference


def _change(
    record_id: str, version: int, *, deleted: bool = False, **fields: Any
) -> dict[str, Any]:
    return {
        "collection": "patients",
        "id": record_id,
        "version": version,
        "seq": str(version),
        "deleted": deleted,
        "fields": {} if deleted else fields,
        "clocks": {name: f"0-{version}" for name in fields},
        "conflict": False,
        "updated_at": "2025-01-01T00:00:00.000Z",
    }


@pytest.mark.parametrize("seed", range(8))
def test_a_bulk_page_shows_what_replaying_each_record_would(tmp_path: Path, seed: int) -> None:
    """Random pages over random outboxes (every status, acknowledged versions below, at and
    above the pulled one, deletes, a record twice in a page): the bulk write of a page
    leaves exactly the visible rows a record-by-record replay computes."""
    rng = random.Random(seed)
    db = LocalDB(tmp_path / "replica.db")
    ids = [f"r{i}" for i in range(40)]
    with db.transaction() as conn:
        for n in range(rng.randint(0, 30)):
            record_id = rng.choice(ids)
            op = rng.choice(["upsert", "upsert", "delete", "increment"])
            fields = (
                {"stock": rng.randint(-3, 3)}
                if op == "increment"
                else ({} if op == "delete" else {"name": f"local-{n}", "village": rng.choice("ab")})
            )
            ob.enqueue(
                conn,
                op_id=uuid7(),
                collection="patients",
                record_id=record_id,
                op=op,
                fields=fields,
                hlc=f"1-{n}",
                base_version=0,
                priority=0,
            )
            status = rng.choice(list(ob.OpStatus))
            conn.execute(
                "UPDATE outbox SET status = ?, result_version = ?, superseded = ?"
                " WHERE seq = (SELECT max(seq) FROM outbox)",
                (
                    status.value,
                    rng.randint(1, 6) if status is ob.OpStatus.SYNCED else None,
                    orjson.dumps(rng.sample(["name", "village"], rng.randint(0, 1))).decode(),
                ),
            )
            refresh_visible(conn, "patients", record_id)  # as every local write does
    for _ in range(3):
        page = [
            _change(
                rng.choice(ids),
                rng.randint(1, 6),
                deleted=rng.random() < 0.2,
                name=f"server-{rng.random():.3f}",
                stock=rng.randint(0, 9),
            )
            for _ in range(rng.randint(1, 25))
        ]
        with db.transaction() as conn:
            assert store_pulled_page(conn, page, generation=0) == len(page)
        with db.read() as conn:
            assert _visible(conn) == _replayed_one_by_one(db)
    db.close()


def test_a_many_page_pull_keeps_pending_edits_and_follows_every_change(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    writer = make_replica(shared_server, new_user(shared_server))
    logs = [
        writer.put("symptom_logs", symptom_log(f"2025-08-{d:02d}", severity=1))
        for d in range(1, 29)
    ]
    assert writer.sync().ok
    reader = make_replica(shared_server, new_user(shared_server))
    assert reader.sync().ok
    writer.delete("symptom_logs", logs[0])
    for rid in logs[1:20]:
        writer.put("symptom_logs", {"severity": 7}, id=rid)
    assert writer.sync().ok
    reader.put("symptom_logs", {"severity": 2, "notes": "mine"}, id=logs[5])  # pending
    reader.delete("symptom_logs", logs[25])  # pending

    result = sync_once(reader, page_size=3, max_items=0)  # pull only, ~7 pages
    assert result.ok, result
    assert result.pulled == 20
    assert reader.get("symptom_logs", logs[0]) is None
    assert reader.get("symptom_logs", logs[25]) is None
    mine = reader.get("symptom_logs", logs[5])
    assert mine is not None and (mine["severity"], mine["notes"]) == (2, "mine")
    assert all(
        reader.get("symptom_logs", rid)["severity"] == 7  # type: ignore[index]
        for rid in logs[1:20]
        if rid != logs[5]
    )
    assert _visible_of(reader) == _replayed_one_by_one(reader.db)
    assert reader.status()["cursor"] == writer.status()["cursor"]


def _visible_of(rep: Replica) -> dict[tuple[str, str], Any]:
    with rep.db.read() as conn:
        return _visible(conn)


def test_a_failed_prefetch_leaves_the_cursor_at_the_last_page_applied(
    live_server: LiveServer, make_replica: MakeReplica, forwarder: Forwarder
) -> None:
    writer = make_replica(live_server, new_user(live_server))
    for d in range(1, 11):
        writer.put("symptom_logs", symptom_log(f"2025-07-{d:02d}"))
    assert writer.sync().ok
    reader = make_replica(live_server, new_user(live_server))
    pulls: list[httpx.Request] = []

    def third_pull_fails(request: httpx.Request, _: object) -> httpx.Response | None:
        if is_pull(request):
            pulls.append(request)
            if len(pulls) == 3:
                return httpx.Response(500, content=b'{"error": {"code": "INTERNAL"}}')
        return None

    forwarder.before = third_pull_fails
    transport = forwarder.transport_for(reader)
    failed = sync_once(reader, transport, page_size=4)
    assert failed.error_code == "SERVER_UNAVAILABLE"
    # Pages 1 and 2 (8 records) are in, with the cursor page 2 led to; page 3 never came.
    assert failed.pulled == 8
    assert reader.status()["records"] == 8
    assert reader.status()["cursor"] == str(pulls[2].url.params["since"])

    forwarder.before = None
    resumed = sync_once(reader, transport, page_size=4)
    assert resumed.ok and resumed.pulled == 2
    assert reader.status()["records"] == 10
    assert reader.status()["cursor"] == writer.status()["cursor"]


def test_the_prefetch_thread_reads_the_token_while_a_page_is_being_written(
    tmp_path: Path,
) -> None:
    """The next page's request must not wait for the commit of the page being applied."""
    rep = Replica.open(tmp_path / "replica.db")
    got: list[str | None] = []
    with rep.db.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('access_token', '\"uncommitted\"')")
        reader = threading.Thread(target=lambda: got.append(rep.session.access_token()))
        reader.start()
        reader.join(timeout=5)
        assert not reader.is_alive()
        assert got == [None]  # the last commit: no token yet
        assert rep.session.access_token() == "uncommitted"  # this thread sees its own write
    rep.close()


def test_a_replica_made_before_bulk_pulls_migrates_and_pulls(
    shared_server: LiveServer, tmp_path: Path
) -> None:
    """Files created with 4 KiB pages and the generation index keep working."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    old.executescript(MIGRATIONS[0][1])
    old.execute("INSERT INTO migrations VALUES (?, 'then')", (MIGRATIONS[0][0],))
    old.close()
    user = new_user(shared_server)
    writer = Replica.open(tmp_path / "w.db", server=shared_server.url, username=user, password="pw")
    writer.put("symptom_logs", symptom_log("2025-06-01"))
    assert writer.sync().ok
    rep = Replica.open(path, server=shared_server.url, username=user, password="pw")
    with rep.db.read() as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
        assert (
            conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                " AND name = 'server_records_generation'"
            ).fetchone()[0]
            == 0
        )
    assert rep.sync().ok and rep.status()["records"] >= 1
    rep.close()
    writer.close()


def _pull_and_kill(path: Path, pages: int, delay: float) -> str:
    """Start a client pulling 10 records a page; SIGKILL it ``delay`` seconds after it
    reported ``pages`` applied pages (mid-request, mid-apply, mid-commit)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.client.sync_child", str(path), "--page-size", "10"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    while pages > 0 and line:
        line = child.stdout.readline()
        pages -= line.startswith("pull")
    time.sleep(delay)  # the behaviour: a kill at a random moment of the pull, not a wait
    child.kill()
    rest, _ = child.communicate(timeout=10)
    return line + rest


def _assert_whole_pages_with_their_cursor(path: Path, runs: list[str]) -> None:
    """Each commit holds a whole page (10 records) and the cursor it led to: the seq of the
    last change it delivered (the server's cursor, opaque to apps, read here as a test may)."""
    db = LocalDB(path)
    with db.read() as conn:
        held = conn.execute("SELECT count(*) FROM server_records").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == held, runs
        assert held % 10 == 0, runs
        newest = conn.execute("SELECT max(CAST(seq AS INTEGER)) FROM server_records")
        assert str(newest.fetchone()[0] or 0) == get_meta(conn, "cursor", "0"), runs
    db.close()


def test_killed_mid_pull_then_the_replica_matches_the_server(
    live_server: LiveServer, make_replica: MakeReplica
) -> None:
    writer = make_replica(live_server, new_user(live_server))
    with writer.atomic():
        ids = [
            writer.put("symptom_logs", symptom_log(f"2025-05-{1 + n % 28:02d}", notes=f"n{n}"))
            for n in range(400)
        ]
    assert writer.sync().ok
    reader = make_replica(live_server, new_user(live_server))
    path = reader.path
    reader.close()

    rng = random.Random()
    runs: list[str] = []
    for _ in range(4):
        runs.append(_pull_and_kill(path, rng.randint(0, 12), rng.uniform(0.0, 0.05)))
        _assert_whole_pages_with_their_cursor(path, runs)
    assert sum("result ok" not in run for run in runs) >= 3, runs  # died mid-sync

    with Replica(path) as resumed:
        assert resumed.sync().ok
        assert sorted(r["id"] for r in resumed.query("symptom_logs")) == sorted(ids)
        assert all(
            resumed.get("symptom_logs", rid) == writer.get("symptom_logs", rid) for rid in ids
        )
        assert resumed.status()["cursor"] == writer.status()["cursor"]


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    fwd = Forwarder()
    yield fwd
    fwd.close()
