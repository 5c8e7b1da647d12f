"""The merge rules as two offline devices experience them through the server."""

from __future__ import annotations

import sqlalchemy as sa

from tests.server.conftest import MakeDevice
from tests.support import LiveServer, SyncApi
from waystation.core.hlc import HLC
from waystation.core.ids import uuid7
from waystation.store import normalise_url

YEAR_MS = 365 * 24 * 3600 * 1000


def _hlc(api: SyncApi, wall: int) -> str:
    return str(HLC(wall, 0, api.device_id))


def _pair(make_device: MakeDevice, facility: str) -> tuple[SyncApi, SyncApi, str]:
    a = make_device("health_worker", (f"facility:{facility}",))
    b = make_device("health_worker", (f"facility:{facility}",))
    pid = uuid7()
    a.push([a.change("patients", pid, {"name": "Baraka", "facility_id": facility})])
    return a, b, pid


def _fields(api: SyncApi, record_id: str) -> dict[str, object]:
    resp = api.http.get(f"/v1/records/patients/{record_id}")
    assert resp.status_code == 200, resp.text
    fields: dict[str, object] = resp.json()["fields"]
    return fields


def test_edits_of_different_fields_are_both_kept(make_device: MakeDevice, facility: str) -> None:
    a, b, pid = _pair(make_device, facility)
    a_edit = a.change("patients", pid, {"phone": "+254700000001"}, base_version=1)
    b_edit = b.change("patients", pid, {"village": "Ahero"}, base_version=1)
    assert b.push([b_edit])[0]["status"] == "applied"
    assert a.push([a_edit])[0]["status"] == "applied"
    assert _fields(a, pid) == {
        "name": "Baraka",
        "facility_id": facility,
        "phone": "+254700000001",
        "village": "Ahero",
    }


def test_same_field_higher_clock_wins_whatever_the_arrival_order(
    make_device: MakeDevice, facility: str, shared_server: LiveServer
) -> None:
    for newer_arrives_first in (True, False):
        a, b, pid = _pair(make_device, facility)
        now = a.clock.send().wall
        older = a.change("patients", pid, {"phone": "older"}, base_version=1, hlc=_hlc(a, now + 1))
        newer = b.change("patients", pid, {"phone": "newer"}, base_version=1, hlc=_hlc(b, now + 2))
        order = [(b, newer), (a, older)] if newer_arrives_first else [(a, older), (b, newer)]
        results = {change["op_id"]: api.push([change])[0] for api, change in order}
        assert _fields(a, pid)["phone"] == "newer"
        assert results[older["op_id"]]["status"] == "applied"  # delivered, but lost
        if newer_arrives_first:
            assert results[older["op_id"]]["superseded"] == ["phone"]
        # the losing value is never erased: it stays in the op log
        engine = sa.create_engine(normalise_url(shared_server.db_url))
        with engine.connect() as conn:
            logged = conn.execute(
                sa.text("SELECT fields FROM op_log WHERE op_id = :id"), {"id": older["op_id"]}
            ).scalar_one()
        engine.dispose()
        assert '"older"' in logged


def test_a_device_a_year_ahead_is_restamped_and_cannot_win_forever(
    make_device: MakeDevice, facility: str
) -> None:
    a, b, pid = _pair(make_device, facility)
    future = a.change(
        "patients",
        pid,
        {"phone": "from the future"},
        base_version=1,
        hlc=_hlc(a, a.clock.send().wall + YEAR_MS),
    )
    result = a.push([future])[0]
    assert result["status"] == "applied"
    assert result["restamped"] is True
    assert HLC.parse(result["hlc"]).wall < HLC.parse(future["hlc"]).wall - YEAR_MS // 2
    resent = a.push([future])[0]  # the ack was lost: the re-send still tells the new clock
    assert resent["status"] == "duplicate"
    assert (resent["restamped"], resent["hlc"]) == (True, result["hlc"])
    later = b.change("patients", pid, {"phone": "a minute later"}, base_version=2)
    assert b.push([later])[0]["status"] == "applied"
    assert _fields(b, pid)["phone"] == "a minute later"


def test_delete_travels_as_a_tombstone_and_a_later_upsert_resurrects(
    make_device: MakeDevice, facility: str
) -> None:
    a, b, pid = _pair(make_device, facility)
    _, cursor = b.pull_all()
    assert (
        a.push([a.change("patients", pid, op="delete", base_version=1)])[0]["status"] == "applied"
    )
    seen, cursor = b.pull_all(since=cursor)
    assert seen[pid]["deleted"] is True
    assert seen[pid]["fields"] == {}
    assert "deleted_hlc" in seen[pid]

    back = b.push([b.change("patients", pid, {"phone": "+254"}, base_version=2)])[0]
    assert back["status"] == "applied"
    seen, _ = a.pull_all(since=cursor)
    assert seen[pid]["deleted"] is False
    # resurrected with all its fields, scope fields included
    assert seen[pid]["fields"] == {"name": "Baraka", "facility_id": facility, "phone": "+254"}


def test_an_older_upsert_does_not_resurrect(make_device: MakeDevice, facility: str) -> None:
    a, b, pid = _pair(make_device, facility)
    now = a.clock.send().wall
    stale = b.change("patients", pid, {"phone": "stale"}, base_version=1, hlc=_hlc(b, now + 1))
    a.push([a.change("patients", pid, op="delete", base_version=1, hlc=_hlc(a, now + 2))])
    assert b.push([stale])[0]["status"] == "applied"
    seen, _ = b.pull_all()
    assert seen[pid]["deleted"] is True


def test_two_offline_decrements_of_five_from_a_hundred_leave_ninety(
    make_device: MakeDevice, facility: str
) -> None:
    counter_a = make_device("pharmacist", (f"facility:{facility}",))
    counter_b = make_device("pharmacist", (f"facility:{facility}",))
    item = uuid7()
    counter_a.push(
        [
            counter_a.change(
                "pharmacy_inventory", item, {"facility_id": facility, "medicine_id": "m-amox"}
            ),
            counter_a.change("pharmacy_inventory", item, {"quantity": 100}, op="increment"),
        ]
    )
    # both counters took 5 while offline, then reconnect in any order
    take_a = counter_a.change("pharmacy_inventory", item, {"quantity": -5}, op="increment")
    take_b = counter_b.change("pharmacy_inventory", item, {"quantity": -5}, op="increment")
    assert counter_b.push([take_b])[0]["status"] == "applied"
    assert counter_a.push([take_a])[0]["status"] == "applied"
    counter_a.push([take_a])  # a lost ack: the resend counts once
    seen, _ = counter_b.pull_all()
    assert seen[item]["fields"]["quantity"] == 90


def test_counters_survive_delete_and_increment_does_not_resurrect(
    make_device: MakeDevice, facility: str
) -> None:
    pharmacist = make_device("pharmacist", (f"facility:{facility}",))
    item = uuid7()
    pharmacist.push(
        [
            pharmacist.change(
                "pharmacy_inventory", item, {"facility_id": facility, "medicine_id": "m"}
            ),
            pharmacist.change("pharmacy_inventory", item, {"quantity": 10}, op="increment"),
            pharmacist.change("pharmacy_inventory", item, op="delete", base_version=2),
            pharmacist.change("pharmacy_inventory", item, {"quantity": 5}, op="increment"),
        ]
    )
    record = pharmacist.http.get(f"/v1/records/pharmacy_inventory/{item}").json()
    assert record["deleted"] is True
    pharmacist.push(
        [pharmacist.change("pharmacy_inventory", item, {"batch": "B2"}, base_version=4)]
    )
    record = pharmacist.http.get(f"/v1/records/pharmacy_inventory/{item}").json()
    assert record["deleted"] is False
    assert record["fields"]["quantity"] == 15


def test_read_flag_once_true_stays_true(make_device: MakeDevice, facility: str) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    alert = uuid7()
    nurse.push(
        [
            nurse.change(
                "alerts",
                alert,
                {"patient_id": "p", "facility_id": facility, "title": "t", "read": False},
            )
        ]
    )
    read = nurse.change("alerts", alert, {"read": True}, base_version=1)
    unread = nurse.change("alerts", alert, {"read": False}, base_version=1)
    nurse.push([read])
    result = nurse.push([unread])[0]
    assert result["superseded"] == ["read"]
    assert nurse.http.get(f"/v1/records/alerts/{alert}").json()["fields"]["read"] is True


def test_unique_key_violation_is_a_conflict_naming_the_existing_record(
    make_device: MakeDevice, facility: str
) -> None:
    a, b, _ = _pair(make_device, facility)
    day = {"patient_id": "p-u", "facility_id": facility, "date": "2025-11-30"}
    first, second = uuid7(), uuid7()
    assert (
        a.push([a.change("symptom_logs", first, {**day, "severity": 2})])[0]["status"] == "applied"
    )
    result = b.push([b.change("symptom_logs", second, {**day, "severity": 7})])[0]
    assert result["status"] == "conflict"
    assert result["error"]["code"] == "UNIQUE_VIOLATION"
    assert result["error"]["details"]["existing_id"] == first
    assert result["conflict_id"]
    # the next day is fine, and a deleted log frees its day
    assert (
        b.push([b.change("symptom_logs", uuid7(), {**day, "date": "2025-12-01"})])[0]["status"]
        == "applied"
    )
    a.push([a.change("symptom_logs", first, op="delete", base_version=1)])
    assert b.push([b.change("symptom_logs", uuid7(), day)])[0]["status"] == "applied"


def test_prescription_edited_on_two_devices_is_held_for_review(
    make_device: MakeDevice, facility: str
) -> None:
    a = make_device("health_worker", (f"facility:{facility}",))
    b = make_device("health_worker", (f"facility:{facility}",))
    rx = uuid7()
    a.push(
        [
            a.change(
                "prescriptions",
                rx,
                {
                    "patient_id": "p",
                    "facility_id": facility,
                    "medicine_id": "m-amox",
                    "dose": "250 mg",
                },
            )
        ]
    )
    # a edits twice offline: its own consecutive edits never conflict
    assert [
        r["status"]
        for r in a.push(
            [
                a.change("prescriptions", rx, {"dose": "500 mg"}, base_version=1),
                a.change("prescriptions", rx, {"frequency": "2x daily"}, base_version=1),
            ]
        )
    ] == ["applied", "applied"]
    held = b.push([b.change("prescriptions", rx, {"dose": "1 g"}, base_version=1)])[0]
    assert held["status"] == "conflict"
    assert held["error"]["code"] == "MANUAL_REVIEW"
    record = b.http.get(f"/v1/records/prescriptions/{rx}").json()
    assert record["fields"]["dose"] == "500 mg"  # held whole, nothing applied
    assert record["conflict"] is True
