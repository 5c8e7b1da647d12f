"""Replicas syncing through the server: what a field team sees. Through a real ``waystation
serve`` process, or the app in this process (``app_server``) where no process is needed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.client.conftest import MakeReplica, new_user, symptom_log
from tests.inprocess import InProcessServer
from tests.support import LiveServer, hash_test_password
from waystation.client import OpStatus, Replica
from waystation.core.accounts import User
from waystation.core.schema import health_schema
from waystation.store import open_store


def test_offline_writes_are_kept_then_one_sync_delivers_them_all(
    live_server: LiveServer, make_replica: MakeReplica
) -> None:
    hw = new_user(live_server)
    tablet = make_replica(live_server, hw)
    clinic = make_replica(live_server, new_user(live_server))
    live_server.stop()

    patient = tablet.put("patients", {"name": "Amina", "facility_id": "f-1"})
    logs = [
        tablet.put("symptom_logs", symptom_log(f"2025-11-{d:02d}", patient_id=patient))
        for d in range(1, 21)
    ]
    tablet.put("patients", {"village": "Kisima"}, id=patient)
    assert tablet.get("patients", patient) == {
        "id": patient,
        "name": "Amina",
        "facility_id": "f-1",
        "village": "Kisima",
    }

    down = tablet.sync()  # must not raise
    assert down.offline and not down.ok
    assert tablet.status()["pending"] == 22
    assert {e.status for e in tablet.outbox()} == {OpStatus.PENDING}

    live_server.start()
    up = tablet.sync()
    assert up.ok, up
    assert (up.pushed, up.applied, up.rejected, up.conflicts) == (22, 22, 0, 0)
    assert tablet.status()["pending"] == 0
    assert {e.status for e in tablet.outbox()} == {OpStatus.SYNCED}

    assert clinic.sync().ok
    assert clinic.get("patients", patient) == tablet.get("patients", patient)
    assert sorted(r["id"] for r in clinic.query("symptom_logs", patient_id=patient)) == sorted(logs)


def test_edits_of_different_fields_both_survive(
    app_server: InProcessServer, make_replica: MakeReplica
) -> None:
    a = make_replica(app_server, new_user(app_server))
    b = make_replica(app_server, new_user(app_server))
    pid = a.put("patients", {"name": "Baraka", "facility_id": "f-1"})
    assert a.sync().ok and b.sync().ok

    a.put("patients", {"phone": "+255 700 000 001"}, id=pid)  # both offline
    b.put("patients", {"village": "Mlima"}, id=pid)
    for rep in (a, b, a):
        assert rep.sync().ok

    expected = {
        "id": pid,
        "name": "Baraka",
        "facility_id": "f-1",
        "phone": "+255 700 000 001",
        "village": "Mlima",
    }
    assert a.get("patients", pid) == b.get("patients", pid) == expected


def test_the_newer_edit_of_the_same_field_wins_everywhere(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    a = make_replica(shared_server, new_user(shared_server))
    b = make_replica(shared_server, new_user(shared_server))
    pid = a.put("patients", {"name": "Chausiku", "facility_id": "f-1"})
    assert a.sync().ok and b.sync().ok

    b.put("patients", {"village": "older"}, id=pid)
    time.sleep(0.2)  # people edit seconds apart; clocks agree to a few milliseconds
    a.put("patients", {"village": "newer"}, id=pid)
    assert a.sync().ok
    assert b.sync().ok  # b's older edit arrives last and still loses
    assert a.sync().ok
    assert a.get("patients", pid)["village"] == "newer"  # type: ignore[index]
    assert b.get("patients", pid)["village"] == "newer"  # type: ignore[index]
    [older] = b.outbox(collection="patients", record_id=pid, status="SYNCED")[-1:]
    assert older.superseded == ["village"]  # delivered, and the server says it lost


def test_two_pharmacy_counters_each_dispensing_5_from_100_leave_90(
    app_server: InProcessServer, make_replica: MakeReplica
) -> None:
    counter1 = make_replica(app_server, new_user(app_server, "pharmacist"))
    counter2 = make_replica(app_server, new_user(app_server, "pharmacist"))
    item = counter1.put("pharmacy_inventory", {"facility_id": "f-1", "medicine_id": "amox"})
    counter1.increment("pharmacy_inventory", item, "quantity", 100)
    assert counter1.sync().ok and counter2.sync().ok

    counter1.increment("pharmacy_inventory", item, "quantity", -5)  # both offline
    counter2.increment("pharmacy_inventory", item, "quantity", -5)
    assert counter1.get("pharmacy_inventory", item)["quantity"] == 95  # type: ignore[index]
    for rep in (counter1, counter2, counter1):
        assert rep.sync().ok
    assert counter1.get("pharmacy_inventory", item)["quantity"] == 90  # type: ignore[index]
    assert counter2.get("pharmacy_inventory", item)["quantity"] == 90  # type: ignore[index]


def test_an_invalid_entry_ends_rejected_with_its_reason(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    rep = make_replica(shared_server, new_user(shared_server))
    good = rep.put("symptom_logs", symptom_log("2025-10-01"))
    bad = rep.put("symptom_logs", symptom_log("2025-10-02", severity=42))
    result = rep.sync()
    assert (result.applied, result.rejected) == (1, 1)
    assert [(i.record_id, i.code) for i in result.issues] == [(bad, "VALIDATION_ERROR")]

    [entry] = rep.outbox(status="REJECTED")
    assert entry.record_id == bad
    assert entry.last_error is not None
    assert entry.last_error["code"] == "VALIDATION_ERROR"
    assert "severity" in entry.last_error["details"]["field"]
    assert rep.get("symptom_logs", bad) is None  # the server's verdict: it never existed
    assert rep.get("symptom_logs", good) is not None
    assert rep.status()["rejected"] == 1

    again = rep.sync()  # an old rejection is not news
    assert again.ok and again.rejected == 0


def test_a_pull_never_overwrites_a_pending_local_edit(
    app_server: InProcessServer, make_replica: MakeReplica
) -> None:
    a = make_replica(app_server, new_user(app_server))
    b = make_replica(app_server, new_user(app_server))
    pid = a.put("patients", {"name": "Dalila", "facility_id": "f-1"})
    assert a.sync().ok and b.sync().ok

    b.put("patients", {"phone": "111", "village": "from-b"}, id=pid)
    assert b.sync().ok
    a.put("patients", {"phone": "222"}, id=pid)
    pulled_only = a.sync(max_items=0)
    assert pulled_only.pushed == 0 and pulled_only.pulled >= 1
    assert a.get("patients", pid) == {
        "id": pid,
        "name": "Dalila",
        "facility_id": "f-1",
        "phone": "222",  # still the pending local edit
        "village": "from-b",  # the pulled change of another field
    }
    assert a.sync().ok and b.sync().ok
    assert b.get("patients", pid)["phone"] == "222"  # type: ignore[index]


def test_deletes_travel_and_an_idle_sync_costs_one_304(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    a = make_replica(shared_server, new_user(shared_server))
    b = make_replica(shared_server, new_user(shared_server))
    rid = a.put("symptom_logs", symptom_log("2025-09-01"))
    assert a.sync().ok and b.sync().ok
    assert b.get("symptom_logs", rid) is not None
    a.delete("symptom_logs", rid)
    assert a.sync().ok and b.sync().ok
    assert b.get("symptom_logs", rid) is None

    b.sync()
    idle = b.sync()
    assert idle.ok and (idle.pushed, idle.pulled, idle.bytes_received) == (0, 0, 0)


def test_max_items_pushes_the_oldest_highest_priority_entries_first(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    rep = make_replica(shared_server, new_user(shared_server))
    logs = [rep.put("symptom_logs", symptom_log(f"2025-08-{d:02d}")) for d in (1, 2)]
    encounter = rep.put("encounters", {"patient_id": "p-1", "facility_id": "f-1"})
    first = rep.sync(max_items=2)
    assert first.ok and first.pushed == 2
    assert {e.record_id for e in rep.outbox(status="SYNCED")} == {encounter, logs[0]}
    assert [e.record_id for e in rep.outbox(status="PENDING")] == [logs[1]]
    assert rep.sync().pushed == 1


def test_a_device_clock_far_ahead_adopts_the_servers_stamp(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    rep = make_replica(shared_server, new_user(shared_server))
    rep.clock.offset_ms = 6 * 3600 * 1000  # the tablet's clock runs six hours fast
    rid = rep.put("patients", {"name": "Eshe", "facility_id": "f-1"})
    stamped = rep.outbox()[0].hlc
    result = rep.sync()
    assert result.ok
    [entry] = rep.outbox(record_id=rid)
    assert entry.hlc < stamped  # re-stamped by the server, and adopted
    rep.put("patients", {"village": "Pwani"}, id=rid)
    later = rep.outbox(record_id=rid)[-1].hlc
    assert later < stamped  # the learned offset puts the next stamp back near server time
    assert rep.sync().ok and rep.get("patients", rid)["village"] == "Pwani"  # type: ignore[index]


def test_reopening_needs_no_network_and_the_password_is_never_stored(
    shared_server: LiveServer, tmp_path: Path
) -> None:
    # A password long enough to grep for: "pw" turns up by chance in random ids and tokens.
    user, password = "reopening-nurse", "Kilimanjaro-dawn-4417"
    shared_server.add_user(user, "health_worker", ["facility:f-1"], password=password)
    path = tmp_path / "tablet.db"
    with Replica.open(path, server=shared_server.url, username=user, password=password) as rep:
        rid = rep.put("symptom_logs", symptom_log("2025-07-01"))
        device = rep.device_id
    # The password is not even checked again: nothing goes over the network.
    with Replica.open(path, server=shared_server.url, username=user, password="wrong") as rep:
        assert rep.device_id == device
        assert rep.get("symptom_logs", rid) is not None
        assert rep.sync().ok
    for part in path.parent.glob("tablet.db*"):
        assert password.encode() not in part.read_bytes()
    with pytest.raises(ValueError):
        Replica.open(path, server=shared_server.url, username="someone-else", password="pw")


def test_an_expired_access_token_is_refreshed_and_rotated(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    rep = make_replica(shared_server, new_user(shared_server))
    refresh_before = rep.session.refresh_token()
    with rep.db.transaction() as conn:  # as if the tablet had been offline for weeks
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'access_expires_at'")
    rep.put("symptom_logs", symptom_log("2025-06-01"))
    assert rep.sync().ok
    assert rep.session.refresh_token() not in (None, refresh_before)


def test_a_refused_refresh_asks_to_log_in_again_and_keeps_the_ops(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    rep = make_replica(shared_server, new_user(shared_server))
    with rep.db.transaction() as conn:
        conn.execute("DELETE FROM meta WHERE key = 'access_token'")
        conn.execute(
            "UPDATE meta SET value = '\"d-x.notavalidsecret00000\"' WHERE key = 'refresh_token'"
        )
    rep.put("symptom_logs", symptom_log("2025-06-02"))
    result = rep.sync()
    assert result.needs_login and result.error_code == "LOGIN_REQUIRED"
    assert "waystation login" in (result.error or "")
    assert [e.status for e in rep.outbox()] == [OpStatus.PENDING]


def test_hole_2_a_replica_whose_user_lost_a_scope_drops_its_records_after_login(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    """A demotion ends the device's session; when it logs in again, the next sync
    re-pulls from zero and the records of the lost facility leave the device (its own
    pending edits stay)."""
    name = new_user(shared_server, scopes=("facility:f-1", "facility:f-lost"))
    rep = make_replica(shared_server, name)
    kept = rep.put("symptom_logs", symptom_log("2025-07-01"))
    lost = rep.put("symptom_logs", {**symptom_log("2025-07-01"), "facility_id": "f-lost"})
    assert rep.sync().ok
    store = open_store(shared_server.db_url, health_schema())
    try:
        user = store.find_user(username=name)
        assert user is not None
        assert store.update_user(
            User(user.id, name, hash_test_password("pw"), user.role, ("facility:f-1",))
        )
    finally:
        store.close()
    pending = rep.put("symptom_logs", symptom_log("2025-07-02"))
    assert rep.sync().needs_login
    rep.login(shared_server.url, name, "pw")
    assert rep.sync().ok
    assert rep.get("symptom_logs", kept) is not None
    assert rep.get("symptom_logs", pending) is not None
    assert rep.get("symptom_logs", lost) is None


def test_hole_2_a_replica_whose_user_was_demoted_re_pulls_after_login(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    """An admin sees every facility; demoted to health worker with the same (no) scopes,
    the device must not keep what an admin saw."""
    admin = new_user(shared_server, role="admin", scopes=())
    rep = make_replica(shared_server, admin)
    elsewhere = rep.put("symptom_logs", {**symptom_log("2025-07-03"), "facility_id": "f-far"})
    assert rep.sync().ok
    store = open_store(shared_server.db_url, health_schema())
    try:
        user = store.find_user(username=admin)
        assert user is not None
        assert store.update_user(
            User(user.id, admin, user.password_hash, "health_worker", ("facility:f-1",))
        )
    finally:
        store.close()
    assert rep.sync().needs_login
    rep.login(shared_server.url, admin, "pw")
    assert rep.sync().ok
    assert rep.get("symptom_logs", elsewhere) is None
