"""The audit trail in the store (hole 9): one hash chain of entries, which ``verify`` walks
to find an edited, deleted or inserted entry and a truncated tail, on both engines and
under concurrent appends from several processes."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.store.conftest import ADMIN, NURSE
from tests.store.test_store import patients, upsert
from tests.support import wait_until
from waystation.core.audit import GENESIS_HASH, AuditEvent, entry_hash
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.store import SqlStore, open_store
from waystation.store.audit import AuditFilter, ChainHead
from waystation.store.pull import Cursor
from waystation.store.tables import audit_log, audit_scopes, meta


def login(n: int) -> AuditEvent:
    return AuditEvent(
        "auth.login",
        actor_user_id=f"u-{n}",
        client_address="10.0.0.7",
        details={"username": f"nurse{n}"},
        scopes=(f"facility:f-{n}",),
    )


def fill(store: SqlStore, n: int = 5) -> list[int]:
    return [store.audit(login(i)) for i in range(1, n + 1)]


def entries(store: SqlStore, **filters: Any) -> list[dict[str, Any]]:
    page = store.list_audit(AuditFilter(**filters), limit=1000)
    return page.entries


def tamper(store: SqlStore, statement: Any) -> None:
    """What someone with write access to the database can do behind the server's back."""
    with store.db.write() as conn:
        conn.execute(statement)


def test_hole_9_appended_entries_form_one_chain_that_verifies(store: SqlStore) -> None:
    assert store.audit_head() == ChainHead(0, GENESIS_HASH)
    assert store.verify_audit().ok  # an empty trail is intact
    assert fill(store) == [1, 2, 3, 4, 5]
    listed = entries(store)
    assert [e["id"] for e in listed] == ["1", "2", "3", "4", "5"]
    assert listed[0]["prev_hash"] == GENESIS_HASH
    for before, after in itertools.pairwise(listed):
        assert after["prev_hash"] == before["hash"]
    first = listed[0]
    assert (
        first["action"],
        first["user_id"],
        first["client_address"],
        first["outcome"],
        first["details"],
        first["scopes"],
    ) == ("auth.login", "u-1", "10.0.0.7", "ok", {"username": "nurse1"}, ["facility:f-1"])
    assert store.audit_head() == ChainHead(5, listed[-1]["hash"])
    result = store.verify_audit()
    assert (result.ok, result.checked, result.bad_id, result.problem) == (True, 5, None, None)


def test_hole_9_verify_catches_an_edited_entry(store: SqlStore) -> None:
    fill(store)
    tamper(
        store, sa.update(audit_log).where(audit_log.c.id == 3).values(client_address="192.168.1.99")
    )
    result = store.verify_audit()
    assert not result.ok
    assert result.bad_id == 3
    assert "entry 3" in (result.problem or "")


def test_hole_9_verify_catches_an_edited_entry_whose_hash_was_recomputed(store: SqlStore) -> None:
    """Rewriting an entry together with its own hash still breaks the next entry's link."""
    fill(store)
    third = entries(store)[2]
    with store.db.read() as conn:
        at = conn.execute(sa.select(audit_log.c.at).where(audit_log.c.id == 3)).scalar_one()
    forged = AuditEvent(
        "auth.login", "u-9", None, "10.0.0.7", "ok", None, {"username": "nurse9"}, ("facility:f-3",)
    )
    tamper(
        store,
        sa.update(audit_log)
        .where(audit_log.c.id == 3)
        .values(
            actor_user_id="u-9",
            details='{"username":"nurse9"}',
            hash=entry_hash(third["prev_hash"], 3, at, forged),
        ),
    )
    result = store.verify_audit()
    assert not result.ok
    assert result.bad_id == 4
    assert "entry 4" in (result.problem or "")


def test_hole_9_verify_catches_a_deleted_entry(store: SqlStore) -> None:
    fill(store)
    tamper(store, sa.delete(audit_scopes).where(audit_scopes.c.audit_id == 3))
    tamper(store, sa.delete(audit_log).where(audit_log.c.id == 3))
    result = store.verify_audit()
    assert not result.ok
    assert result.bad_id == 3
    assert "entry 3" in (result.problem or "") and "missing" in (result.problem or "")


def test_hole_9_verify_catches_a_deleted_scope_of_an_entry(store: SqlStore) -> None:
    """Which patients' records a device received is part of what the chain protects."""
    fill(store)
    tamper(store, sa.delete(audit_scopes).where(audit_scopes.c.audit_id == 2))
    result = store.verify_audit()
    assert (result.ok, result.bad_id) == (False, 2)


def test_hole_9_verify_catches_a_truncated_tail(store: SqlStore) -> None:
    fill(store)
    tamper(store, sa.delete(audit_scopes).where(audit_scopes.c.audit_id >= 4))
    tamper(store, sa.delete(audit_log).where(audit_log.c.id >= 4))
    result = store.verify_audit()
    assert not result.ok
    assert result.bad_id == 4
    assert "head" in (result.problem or "")


def test_hole_9_a_rewritten_chain_is_caught_only_against_a_head_kept_elsewhere(
    store: SqlStore,
) -> None:
    """Someone who can write the database can cut the tail and the head together: the
    database alone cannot tell (docs/operations.md says so). A head an operator kept
    elsewhere (``waystation audit head``) can."""
    fill(store)
    kept = store.audit_head()
    assert store.verify_audit(kept).ok
    second = entries(store)[1]["hash"]
    tamper(store, sa.delete(audit_scopes).where(audit_scopes.c.audit_id >= 3))
    tamper(store, sa.delete(audit_log).where(audit_log.c.id >= 3))
    tamper(store, sa.update(meta).where(meta.c.key == "audit_head").values(value=f"2:{second}"))
    assert store.verify_audit().ok  # consistent in itself
    result = store.verify_audit(kept)
    assert not result.ok
    assert "5" in (result.problem or "")
    # the same head parsed from its printed form; an older head of this chain still holds
    assert store.verify_audit(ChainHead.parse(f"2:{second}")).ok
    assert not store.verify_audit(ChainHead.parse(str(kept))).ok


def test_hole_9_concurrent_appends_from_two_processes_keep_one_chain(
    db_url: str, tmp_path: Path
) -> None:
    """Two processes (two servers on one PostgreSQL, or on one SQLite file) append at once:
    every entry lands in one chain, none forks it. The children start appending together
    (tests/store/audit_child.py) and report when they started and finished, so the test
    also checks that they did overlap."""
    open_store(db_url, health_schema()).close()  # migrated before the race
    per_child = 150
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.store.audit_child",
                db_url,
                str(per_child),
                f"child{i}",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]

    def ready() -> bool:
        assert all(c.poll() is None for c in children), "a child exited before the race"
        return all((tmp_path / f"child{i}.ready").exists() for i in range(2))

    wait_until(ready, 60, what="both children to open the store")
    (tmp_path / "go").touch()
    spans = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0, out
        first, last = (float(x) for x in out.split())
        spans.append((first, last))
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans  # they overlapped
    store = open_store(db_url, health_schema())
    try:
        result = store.verify_audit()
        assert (result.ok, result.checked) == (True, 2 * per_child), result.problem
        listed = entries(store)
        for tag in ("child0", "child1"):
            assert sorted(e["details"]["n"] for e in listed if e["user_id"] == tag) == list(
                range(per_child)
            )
        assert len({e["prev_hash"] for e in listed}) == 2 * per_child  # no fork
    finally:
        store.close()


def test_hole_9_a_page_names_the_scopes_of_the_records_it_delivered(store: SqlStore) -> None:
    """What the pull route records: every distinct scope of the page's records (a health
    worker of f-1 receives patient p-1's encounter: the entry names patient:p-1), and none
    of the records it did not deliver."""
    mine = uuid7()
    store.push(
        ADMIN,
        [
            upsert("patients", mine, {"name": "Akinyi", "facility_id": "f-1"}),
            *patients(2, facility="f-2"),
            upsert("encounters", uuid7(), {"patient_id": mine, "facility_id": "f-1"}),
            upsert("medicines", "m-1", {"name": "amoxicillin"}),
        ],
    )
    page = store.pull(NURSE, Cursor(0), 100)
    assert len(page.rows) == 3
    assert page.scopes == ("*", "facility:f-1", f"patient:{mine}")
    first = store.pull(NURSE, Cursor(0), 1)  # a page of one record: its scopes alone
    assert first.scopes == ("facility:f-1", f"patient:{mine}")
    everything = store.pull(ADMIN, Cursor(0), 100)
    assert len(everything.rows) == 5
    assert {s for s in everything.scopes if s.startswith("facility:")} == {
        "facility:f-1",
        "facility:f-2",
    }
    filtered = store.pull(ADMIN, Cursor(0), 100, ["medicines"])
    assert filtered.scopes == ("*",)
    assert store.pull(NURSE, page.cursor, 100).scopes == ()  # nothing new: nothing named
