"""The store in-process: migrations, the change sequence, cursors, and the cost of a pull."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.store.conftest import ADMIN, NURSE
from waystation.core.errors import CursorExpired, ValidationError
from waystation.core.hlc import Clock
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.store import SqlStore, open_store
from waystation.store.migrate import current_revision, head_revision
from waystation.store.pull import Cursor, changes_since
from waystation.store.sequence import set_counter
from waystation.store.tables import metadata

CLOCK = Clock("d-test")


def upsert(collection: str, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "op_id": uuid7(),
        "collection": collection,
        "record_id": record_id,
        "op": "upsert",
        "fields": fields,
        "hlc": str(CLOCK.send()),
    }


def patients(n: int, facility: str = "f-1") -> list[dict[str, Any]]:
    return [
        upsert(
            "patients",
            uuid7(),
            {"name": f"patient {i}", "facility_id": facility, "village": "Ahero"},
        )
        for i in range(n)
    ]


def test_a_new_database_is_migrated_to_head_and_reopening_is_a_no_op(db_url: str) -> None:
    path = db_url
    store = open_store(path, health_schema())
    assert current_revision(store.db) == head_revision() == "0003"
    store.push(ADMIN, patients(3))
    store.close()
    again = open_store(path, health_schema())
    assert again.current_cursor() == Cursor(3)
    again.close()


def test_the_migration_builds_exactly_the_declared_tables(store: SqlStore) -> None:
    """One Alembic migration for both engines: what it built is what tables.py declares."""
    with store.db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_sqlite_runs_in_wal_mode_with_full_sync(sqlite_store: SqlStore) -> None:
    with sqlite_store.db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_each_changed_record_gets_the_next_seq_once_per_batch(store: SqlStore) -> None:
    rid = uuid7()
    results = store.push(
        ADMIN,
        [
            upsert("patients", rid, {"name": "a", "facility_id": "f-1"}),
            upsert("patients", rid, {"name": "b"}),
            *patients(2),
        ],
    )
    assert [r["version"] for r in results] == [1, 2, 1, 1]
    assert results[0]["seq"] == results[1]["seq"]  # newest state only, one seq
    assert sorted(int(r["seq"]) for r in results[1:]) == [1, 2, 3]
    page = store.pull(ADMIN, Cursor(0), 10)
    assert [c["fields"]["name"] for c in page.changes if c["id"] == rid] == ["b"]


def test_pull_filters_scopes_before_cutting_the_page(store: SqlStore) -> None:
    store.push(ADMIN, patients(30, facility="f-2") + patients(5) + patients(30, "f-2"))
    page = store.pull(NURSE, Cursor(0), 5)
    assert len(page.changes) == 5
    assert page.has_more is False
    assert {c["fields"]["facility_id"] for c in page.changes} == {"f-1"}


def test_cursors_never_issued_and_below_the_horizon(store: SqlStore) -> None:
    store.push(ADMIN, patients(10))
    with pytest.raises(ValidationError):
        store.pull(NURSE, Cursor(11), 10)
    with store.db.write() as conn:
        set_counter(conn, "purged_seq", 5)
    with pytest.raises(CursorExpired):
        store.pull(NURSE, Cursor(4), 10)
    assert len(store.pull(NURSE, Cursor(0), 100).changes) == 10  # from zero always works
    assert len(store.pull(NURSE, Cursor(5), 100).changes) == 5


def test_the_acknowledged_hlc_is_persisted_for_the_next_process(db_url: str) -> None:
    path = db_url
    first = open_store(path, health_schema())
    first.push(ADMIN, patients(1))
    issued = first.clock.send()
    first.push(ADMIN, patients(1))
    first.close()
    second = open_store(path, health_schema())
    assert second.clock.send() > issued
    second.close()


def _vm_steps_of_incremental_pull(store: SqlStore, changed: int) -> int:
    """SQLite VM instructions spent on one pull of the last ``changed`` changes: a count of
    work done, independent of machine speed."""
    cursor = Cursor(store.current_cursor().seq - changed)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    with store.db.read() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.set_progress_handler(count, 10)
        page = changes_since(conn, NURSE, cursor, 500)
        raw.set_progress_handler(None, 0)
    assert len(page.changes) == changed
    return steps


def test_an_incremental_pull_costs_the_changes_not_the_database(tmp_path: Path) -> None:
    costs = []
    for size in (1_000, 20_000):
        store = open_store(str(tmp_path / f"size-{size}.db"), health_schema())
        for _ in range(size // 1000):
            store.push(ADMIN, patients(500, facility="f-other") + patients(500))
        store.push(ADMIN, patients(10))
        costs.append(_vm_steps_of_incremental_pull(store, 10))
        store.close()
    small, large = costs
    assert large < small * 1.5, f"pull work grew with the database: {costs}"


def test_the_op_log_holds_every_receipt_with_its_outcome(store: SqlStore) -> None:
    batch = [*patients(2), upsert("patients", uuid7(), {"facility_id": "f-1"})]
    store.push(NURSE, batch)
    store.push(NURSE, batch)
    with store.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT status, duplicate, device_id, error_code FROM op_log ORDER BY id")
        ).all()
    assert [(r.status, bool(r.duplicate)) for r in rows] == [
        ("applied", False),
        ("applied", False),
        ("rejected", False),
        ("duplicate", True),
        ("duplicate", True),
        ("rejected", True),
    ]
    assert {r.device_id for r in rows} == {"d-nurse"}
    assert rows[2].error_code == "VALIDATION_ERROR"


def test_tombstones_past_retention_are_collected_and_old_cursors_expire(store: SqlStore) -> None:
    gone, kept = uuid7(), uuid7()
    store.push(
        ADMIN,
        [upsert("patients", rid, {"name": "x", "facility_id": "f-1"}) for rid in (gone, kept)],
    )
    store.push(
        ADMIN,
        [
            {
                "op_id": uuid7(),
                "collection": "patients",
                "record_id": gone,
                "op": "delete",
                "hlc": str(CLOCK.send()),
                "base_version": 1,
            }
        ],
    )
    cursor_before_delete = Cursor(2)
    assert store.collect_tombstones(retention_ms=3_600_000) == 0  # still within retention
    assert store.collect_tombstones(retention_ms=-1) == 1
    assert store.get_record("patients", gone) is None
    assert store.get_record("patients", kept) is not None
    with pytest.raises(CursorExpired):
        store.pull(NURSE, cursor_before_delete, 10)
    fresh = store.pull(NURSE, Cursor(0), 10)  # a re-sync from zero no longer has it
    assert [c["id"] for c in fresh.changes] == [kept]


def test_a_resync_after_expiry_is_not_told_expired_again(store: SqlStore) -> None:
    """The newest change a nurse may see is older than the last tombstone collected (in
    another facility): the cursor after a re-sync must still be valid."""
    store.push(ADMIN, patients(3))
    elsewhere = uuid7()
    store.push(ADMIN, [upsert("patients", elsewhere, {"name": "x", "facility_id": "f-2"})])
    store.push(
        ADMIN,
        [
            {
                "op_id": uuid7(),
                "collection": "patients",
                "record_id": elsewhere,
                "op": "delete",
                "hlc": str(CLOCK.send()),
                "base_version": 1,
            }
        ],
    )
    assert store.collect_tombstones(retention_ms=-1) == 1
    page = store.pull(NURSE, Cursor(0), 100)
    assert len(page.changes) == 3 and not page.has_more
    again = store.pull(NURSE, page.cursor, 100)  # no CursorExpired
    assert again.changes == []


def test_a_device_id_taken_meanwhile_is_reported_not_raised(store: SqlStore) -> None:
    """The registration route relies on this when two requests register one id at once."""
    user = store.add_user(f"u-{uuid7()[-8:]}", "-", "health_worker", [])
    assert (
        store.add_device("d-tablet-race", user.id, "tablet", "hash-1", refresh_expires_at=0) is True
    )
    assert (
        store.add_device("d-tablet-race", user.id, "tablet", "hash-2", refresh_expires_at=0)
        is False
    )
    device = store.find_device("d-tablet-race")
    assert device is not None and device.refresh_hash == "hash-1"
