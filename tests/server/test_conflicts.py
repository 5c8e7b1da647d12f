"""Conflicts held for review, through a real server: who sees them, how they resolve, and
that every device converges on the resolution."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import MakeDevice
from tests.support import SyncApi
from waystation.core.hlc import HLC
from waystation.core.ids import uuid7

RX = {"medicine_id": "m-amox", "dose": "500 mg", "frequency": "twice daily"}


class Clinic:
    """Two tablets of one facility that last synced at the same version of a prescription,
    and the clinician who reviews what they disagree on."""

    def __init__(self, make_device: MakeDevice, facility: str) -> None:
        scope = (f"facility:{facility}",)
        self.facility = facility
        self.a = make_device("health_worker", scope)
        self.b = make_device("health_worker", scope)
        self.clinician = make_device("health_worker", scope)
        self.patient = f"p-{uuid7()[-10:]}"

    def prescription(self) -> str:
        rx = uuid7()
        fields = {**RX, "patient_id": self.patient, "facility_id": self.facility}
        assert self.a.push([self.a.change("prescriptions", rx, fields)])[0]["status"] == "applied"
        return rx

    def both_edit(
        self, rx: str, a_fields: dict[str, Any], b_fields: dict[str, Any], *, a_op: str = "upsert"
    ) -> dict[str, Any]:
        """Both tablets edit offline from version 1; B syncs first, A's edit is held."""
        b_result = self.b.push([self.b.change("prescriptions", rx, b_fields, base_version=1)])
        assert b_result[0]["status"] == "applied"
        held = self.a.push([self.a.change("prescriptions", rx, a_fields, op=a_op, base_version=1)])[
            0
        ]
        assert held["status"] == "conflict", held
        assert held["error"]["code"] == "MANUAL_REVIEW"
        return held


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def resolve(api: SyncApi, conflict_id: str, **body: Any) -> Any:
    return api.http.post(f"/v1/conflicts/{conflict_id}/resolve", json=body)


def listed(api: SyncApi, **params: Any) -> list[dict[str, Any]]:
    resp = api.http.get("/v1/conflicts", params=params)
    assert resp.status_code == 200, resp.text
    conflicts: list[dict[str, Any]] = resp.json()["conflicts"]
    return conflicts


def pulled(api: SyncApi, record_id: str) -> dict[str, Any]:
    seen, _ = api.pull_all()
    return seen[record_id]


@pytest.fixture
def clinic(make_device: MakeDevice, facility: str) -> Clinic:
    return Clinic(make_device, facility)


def test_two_offline_edits_of_a_prescription_reach_a_clinician_who_picks_one(
    clinic: Clinic,
) -> None:
    rx = clinic.prescription()
    held = clinic.both_edit(rx, {"dose": "250 mg", "frequency": "once daily"}, {"dose": "1 g"})
    record = pulled(clinic.clinician, rx)
    assert record["conflict"] is True
    assert record["fields"]["dose"] == "1 g"  # nothing of the held op took effect

    [shown] = [c for c in listed(clinic.clinician) if c["record_id"] == rx]
    assert shown["id"] == held["conflict_id"]
    assert shown["kind"] == "MANUAL_REVIEW"
    assert shown["status"] == "open"
    assert shown["device_id"] == clinic.a.device_id
    assert shown["client_fields"] == {"dose": "250 mg", "frequency": "once daily"}
    assert shown["server_fields"] == {"dose": "1 g", "frequency": "twice daily"}

    resp = resolve(clinic.clinician, held["conflict_id"], resolution="client_wins")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "resolved"
    assert body["resolution"] == "client_wins"
    assert body["resolved_by"] == clinic.clinician.user["id"]
    [change] = body["changes"]
    assert HLC.parse(change["hlc"]).node.startswith("s-")  # a fresh server clock

    for device in (clinic.a, clinic.b, clinic.clinician):
        record = pulled(device, rx)
        assert record["fields"]["dose"] == "250 mg"
        assert record["fields"]["frequency"] == "once daily"
        assert record["conflict"] is False
        assert record["seq"] == change["seq"]
    assert not [c for c in listed(clinic.clinician) if c["record_id"] == rx]
    assert [c["id"] for c in listed(clinic.clinician, status="resolved", record_id=rx)] == [
        held["conflict_id"]
    ]


def test_server_wins_keeps_the_servers_values_and_clears_the_flag_with_a_new_seq(
    clinic: Clinic,
) -> None:
    rx = clinic.prescription()
    held = clinic.both_edit(rx, {"dose": "250 mg"}, {"dose": "1 g"})
    flagged = pulled(clinic.b, rx)
    _, cursor = clinic.b.pull_all()

    resp = resolve(clinic.clinician, held["conflict_id"], resolution="server_wins")
    assert resp.status_code == 200, resp.text
    seen, _ = clinic.b.pull_all(since=cursor)  # the cleared flag travels as a change
    assert seen[rx]["conflict"] is False
    assert int(seen[rx]["seq"]) > int(flagged["seq"])
    assert seen[rx]["fields"]["dose"] == "1 g"
    assert pulled(clinic.a, rx)["fields"] == pulled(clinic.b, rx)["fields"]


def test_server_wins_reasserts_a_value_the_held_edit_would_beat_on_clock_alone(
    clinic: Clinic,
) -> None:
    """A's edit was made later (higher clock) but from a stale version: a replica merging
    by clock would let it through, so the server's value is stamped again, higher."""
    rx = clinic.prescription()
    b_edit = clinic.b.change("prescriptions", rx, {"dose": "1 g"}, base_version=1)
    later = clinic.a.change(
        "prescriptions",
        rx,
        {"dose": "250 mg"},
        base_version=1,
        hlc=str(HLC(HLC.parse(b_edit["hlc"]).wall + 1000, 0, clinic.a.device_id)),
    )
    assert clinic.b.push([b_edit])[0]["status"] == "applied"
    held = clinic.a.push([later])[0]
    assert held["status"] == "conflict"

    body = resolve(clinic.clinician, held["conflict_id"], resolution="server_wins").json()
    [change] = body["changes"]
    record = pulled(clinic.a, rx)
    assert record["fields"]["dose"] == "1 g"
    assert record["clocks"]["dose"] == change["hlc"] > later["hlc"]


def test_merge_applies_the_reviewers_values(clinic: Clinic) -> None:
    rx = clinic.prescription()
    held = clinic.both_edit(rx, {"dose": "250 mg", "frequency": "once daily"}, {"dose": "1 g"})
    resp = resolve(
        clinic.clinician,
        held["conflict_id"],
        resolution="merge",
        fields={"dose": "1 g", "duration_days": 5},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["resolution"] == "merge"
    fields = pulled(clinic.b, rx)["fields"]
    assert fields["dose"] == "1 g"
    assert fields["frequency"] == "once daily"  # not overridden: the held op's value
    assert fields["duration_days"] == 5


def test_a_merge_needs_fields_the_schema_accepts_and_a_bad_one_changes_nothing(
    clinic: Clinic,
) -> None:
    rx = clinic.prescription()
    held = clinic.both_edit(rx, {"dose": "250 mg"}, {"dose": "1 g"})
    for body, field in (
        ({"resolution": "merge"}, "fields"),
        ({"resolution": "merge", "fields": {"duration_days": 0}}, "fields.duration_days"),
        # refused as a pushed op's fields would be: nested too deep, wherever
        ({"resolution": "merge", "fields": {"dose": _nested(40)}}, "fields.dose" + ".a" * 7),
        ({"resolution": "merge", "fields": {"dose": "x"}, "target": "existing"}, "target"),
        ({"resolution": "client_wins", "fields": {"dose": "x"}}, "fields"),
        ({"resolution": "coin_toss"}, "resolution"),
    ):
        resp = resolve(clinic.clinician, held["conflict_id"], **body)
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["error"]["code"] == "VALIDATION_ERROR"
        assert resp.json()["error"]["details"]["field"] == field, body
    assert [c["status"] for c in listed(clinic.clinician, record_id=rx)] == ["open"]
    assert pulled(clinic.b, rx)["fields"]["dose"] == "1 g"


def test_resolving_twice_is_a_clear_error(clinic: Clinic) -> None:
    rx = clinic.prescription()
    held = clinic.both_edit(rx, {"dose": "250 mg"}, {"dose": "1 g"})
    assert resolve(clinic.clinician, held["conflict_id"], resolution="server_wins").is_success
    again = resolve(clinic.a, held["conflict_id"], resolution="client_wins")
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "ALREADY_RESOLVED"
    assert error["details"]["resolution"] == "server_wins"
    assert error["details"]["resolved_by"] == clinic.clinician.user["id"]
    assert pulled(clinic.a, rx)["fields"]["dose"] == "1 g"


def test_a_held_delete_is_kept_or_carried_out(clinic: Clinic) -> None:
    rx = clinic.prescription()
    held = clinic.both_edit(rx, {}, {"dose": "1 g"}, a_op="delete")
    conflict = clinic.clinician.http.get(f"/v1/conflicts/{held['conflict_id']}").json()
    assert conflict["op"] == "delete"
    assert conflict["client_fields"] == {"_deleted": True}
    merge = resolve(clinic.clinician, held["conflict_id"], resolution="merge", fields={"dose": "x"})
    assert merge.status_code == 400
    assert resolve(clinic.clinician, held["conflict_id"], resolution="client_wins").is_success
    record = pulled(clinic.b, rx)
    assert record["deleted"] is True
    assert record["conflict"] is False


def test_the_flag_stays_until_the_records_last_conflict_is_resolved(
    clinic: Clinic, make_device: MakeDevice
) -> None:
    rx = clinic.prescription()
    first = clinic.both_edit(rx, {"dose": "250 mg"}, {"dose": "1 g"})
    third = make_device("health_worker", (f"facility:{clinic.facility}",))
    second = third.push([third.change("prescriptions", rx, {"dose": "2 g"}, base_version=1)])[0]
    assert second["status"] == "conflict"

    assert resolve(clinic.clinician, first["conflict_id"], resolution="server_wins").is_success
    assert pulled(clinic.b, rx)["conflict"] is True
    assert resolve(clinic.clinician, second["conflict_id"], resolution="client_wins").is_success
    record = pulled(clinic.b, rx)
    assert record["conflict"] is False
    assert record["fields"]["dose"] == "2 g"


def test_only_admins_and_health_workers_of_the_records_scopes_review(
    clinic: Clinic, make_device: MakeDevice
) -> None:
    rx = clinic.prescription()
    held = clinic.both_edit(rx, {"dose": "250 mg"}, {"dose": "1 g"})
    patient = make_device("patient", (f"patient:{clinic.patient}",))
    pharmacist = make_device("pharmacist", (f"facility:{clinic.facility}",))
    elsewhere = make_device("health_worker", ("facility:f-elsewhere",))
    admin = make_device("admin")

    for outsider in (patient, pharmacist):
        assert outsider.http.get("/v1/conflicts").status_code == 403
        assert resolve(outsider, held["conflict_id"], resolution="server_wins").status_code == 403
        assert outsider.http.get(f"/v1/conflicts/{held['conflict_id']}").status_code == 403
    # a health worker of another facility does not even learn that it exists
    assert not [c for c in listed(elsewhere) if c["record_id"] == rx]
    assert resolve(elsewhere, held["conflict_id"], resolution="server_wins").status_code == 404
    assert [c["id"] for c in listed(admin, record_id=rx)] == [held["conflict_id"]]

    # a reviewer cannot use a resolution to move the record out of their scopes
    moved = resolve(
        clinic.clinician,
        held["conflict_id"],
        resolution="merge",
        fields={"facility_id": "f-elsewhere"},
    )
    assert moved.status_code == 403
    assert [c["status"] for c in listed(admin, record_id=rx)] == ["open"]
    assert resolve(admin, held["conflict_id"], resolution="server_wins").is_success
    assert resolve(admin, "no-such-conflict", resolution="server_wins").status_code == 404


def test_a_listing_pages_oldest_first(clinic: Clinic) -> None:
    ids = []
    for _ in range(3):
        rx = clinic.prescription()
        ids.append(clinic.both_edit(rx, {"dose": "250 mg"}, {"dose": "1 g"})["conflict_id"])
    mine = [c["id"] for c in listed(clinic.clinician) if c["id"] in ids]
    assert mine == sorted(ids)
    first = clinic.clinician.http.get("/v1/conflicts", params={"limit": 1, "after": ids[0]})
    assert first.json()["conflicts"][0]["id"] == ids[1]
    assert first.json()["has_more"] is True
    assert clinic.clinician.http.get("/v1/conflicts", params={"status": "all"}).status_code == 400


# -- unique keys: one symptom log per patient per day ----------------------------------------


class Duplicate:
    """A patient logged today's symptoms on their phone; a health worker, offline, logged
    the same day for them on a tablet. The tablet's log is held."""

    def __init__(self, make_device: MakeDevice, facility: str) -> None:
        self.patient = f"p-{uuid7()[-10:]}"
        self.facility = facility
        self.phone = make_device("patient", (f"patient:{self.patient}",))
        self.tablet = make_device("health_worker", (f"facility:{facility}",))
        self.existing = uuid7()
        self.duplicate = uuid7()
        first = self.phone.push(
            [self.phone.change("symptom_logs", self.existing, self.log(severity=3))]
        )[0]
        assert first["status"] == "applied"
        held = self.tablet.push(
            [
                self.tablet.change(
                    "symptom_logs", self.duplicate, self.log(severity=7, notes="fever at night")
                )
            ]
        )[0]
        assert held["status"] == "conflict"
        assert held["error"]["code"] == "UNIQUE_VIOLATION"
        assert held["error"]["details"] == {"existing_id": self.existing}
        self.conflict_id = held["conflict_id"]

    def log(self, **fields: Any) -> dict[str, Any]:
        return {
            "patient_id": self.patient,
            "facility_id": self.facility,
            "date": "2025-11-30",
            **fields,
        }

    def records(self) -> dict[str, dict[str, Any]]:
        seen, _ = self.tablet.pull_all()
        return {rid: c for rid, c in seen.items() if rid in (self.existing, self.duplicate)}


@pytest.fixture
def duplicate(make_device: MakeDevice, facility: str) -> Duplicate:
    return Duplicate(make_device, facility)


def test_client_wins_cannot_resolve_a_unique_violation(duplicate: Duplicate) -> None:
    resp = resolve(duplicate.tablet, duplicate.conflict_id, resolution="client_wins")
    assert resp.status_code == 400
    assert resp.json()["error"]["details"] == {"field": "resolution"}
    assert "merge" in resp.json()["error"]["message"]


def test_merge_into_the_existing_record(duplicate: Duplicate) -> None:
    [shown] = [c for c in listed(duplicate.tablet) if c["id"] == duplicate.conflict_id]
    assert shown["kind"] == "UNIQUE_VIOLATION"
    assert shown["existing_id"] == duplicate.existing
    resp = resolve(
        duplicate.tablet,
        duplicate.conflict_id,
        resolution="merge",
        target="existing",
        fields={"severity": 6},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["target"] == "existing"
    records = duplicate.records()
    assert set(records) == {duplicate.existing}
    assert records[duplicate.existing]["fields"] == duplicate.log(
        severity=6, notes="fever at night"
    )
    phone_view, _ = duplicate.phone.pull_all()
    assert phone_view[duplicate.existing]["fields"]["severity"] == 6


def test_keep_both_by_changing_the_key(duplicate: Duplicate) -> None:
    taken = resolve(
        duplicate.tablet, duplicate.conflict_id, resolution="merge", fields={"notes": "same day"}
    )
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "UNIQUE_VIOLATION"
    assert taken.json()["error"]["details"] == {"existing_id": duplicate.existing}
    assert duplicate.records().keys() == {duplicate.existing}

    moved = resolve(
        duplicate.tablet, duplicate.conflict_id, resolution="merge", fields={"date": "2025-11-29"}
    )
    assert moved.status_code == 200, moved.text
    records = duplicate.records()
    assert records[duplicate.duplicate]["fields"] == duplicate.log(
        date="2025-11-29", severity=7, notes="fever at night"
    )
    assert records[duplicate.existing]["fields"]["severity"] == 3


def test_discard_drops_the_held_log(duplicate: Duplicate) -> None:
    resp = resolve(duplicate.tablet, duplicate.conflict_id, resolution="server_wins")
    assert resp.status_code == 200, resp.text
    assert resp.json()["changes"] == []
    assert duplicate.records().keys() == {duplicate.existing}
    assert duplicate.records()[duplicate.existing]["fields"]["severity"] == 3
