"""Holes 1 and 5 of the security review, through a real server on both engines: a conflict
never shows a caller a record outside its scopes, and a record the caller may not see is
answered exactly like one that does not exist."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.conftest import MakeDevice
from tests.support import SyncApi
from waystation.core.ids import uuid7

SECRET = "confidential: HIV follow-up"


class TwoFacilities:
    """A patient of facility A with a symptom log, a health worker of each facility, and an
    admin."""

    def __init__(self, make_device: MakeDevice) -> None:
        self.fa, self.fb = f"f-{uuid7()[-10:]}", f"f-{uuid7()[-10:]}"
        self.nurse_a = make_device("health_worker", (f"facility:{self.fa}",))
        self.nurse_b = make_device("health_worker", (f"facility:{self.fb}",))
        self.admin = make_device("admin")
        self.patient = f"p-{uuid7()[-10:]}"
        self.log_id = uuid7()
        self.log = {
            "patient_id": self.patient,
            "facility_id": self.fa,
            "date": "2025-11-30",
            "severity": 4,
            "notes": SECRET,
        }
        [result] = self.nurse_a.push([self.nurse_a.change("symptom_logs", self.log_id, self.log)])
        assert result["status"] == "applied"

    def collide(self) -> dict[str, Any]:
        """Facility B's nurse files a log for A's patient on a day that already has one."""
        fields = {**self.log, "facility_id": self.fb, "notes": "seen at B"}
        [result] = self.nurse_b.push([self.nurse_b.change("symptom_logs", uuid7(), fields)])
        assert result["status"] == "conflict", result
        return result


@pytest.fixture
def clinics(make_device: MakeDevice) -> TwoFacilities:
    return TwoFacilities(make_device)


def _leaks(text: str, clinics: TwoFacilities) -> list[str]:
    return [s for s in (SECRET, clinics.log_id) if s in text]


def test_hole_1_unique_conflict_does_not_leak_other_facility_record(
    clinics: TwoFacilities,
) -> None:
    result = clinics.collide()
    # the push answer: the pusher's own key values, but neither the id nor the fields
    assert result["error"]["code"] == "UNIQUE_VIOLATION"
    assert result["error"]["details"] == {}
    assert "outside your scopes" in result["error"]["message"]
    assert _leaks(str(result), clinics) == []

    conflict_id = result["conflict_id"]
    shown = clinics.nurse_b.http.get(f"/v1/conflicts/{conflict_id}")
    assert shown.status_code == 200
    body = shown.json()
    assert _leaks(shown.text, clinics) == []
    assert body["server_fields"] is None and body["existing_id"] is None
    assert body["hidden"] == ["existing"]
    assert body["client_fields"]["notes"] == "seen at B"  # their own side stays visible
    listing = clinics.nurse_b.http.get("/v1/conflicts")
    assert conflict_id in listing.text and _leaks(listing.text, clinics) == []

    # merging into the hidden record gets the answer a deleted record gets, without its id
    merge = clinics.nurse_b.http.post(
        f"/v1/conflicts/{conflict_id}/resolve", json={"resolution": "merge", "target": "existing"}
    )
    assert merge.status_code == 400
    assert merge.json()["error"]["details"] == {"field": "target"}
    assert _leaks(merge.text, clinics) == []

    # facility A's nurse learns of the attempt on their patient, without B's side
    seen_by_a = clinics.nurse_a.http.get(f"/v1/conflicts/{conflict_id}").json()
    assert seen_by_a["existing_id"] == clinics.log_id
    assert seen_by_a["server_fields"]["notes"] == SECRET
    assert seen_by_a["client_fields"] is None and seen_by_a["record_id"] is None
    assert seen_by_a["hidden"] == ["record"]
    # an admin sees both sides
    seen_by_admin = clinics.admin.http.get(f"/v1/conflicts/{conflict_id}").json()
    assert seen_by_admin["hidden"] == []
    assert seen_by_admin["server_fields"]["notes"] == SECRET
    assert seen_by_admin["client_fields"]["notes"] == "seen at B"


def test_hole_1_a_resent_colliding_op_repeats_the_redacted_answer(
    clinics: TwoFacilities,
) -> None:
    fields = {**clinics.log, "facility_id": clinics.fb, "notes": "seen at B"}
    change = clinics.nurse_b.change("symptom_logs", uuid7(), fields)
    first = clinics.nurse_b.push([change])[0]
    again = clinics.nurse_b.push([change])[0]
    assert again["status"] == "conflict" and again["duplicate"] is True
    assert again["error"] == first["error"]
    assert _leaks(str(again), clinics) == []


def test_hole_1_a_nurse_who_sees_both_records_gets_the_existing_id(
    make_device: MakeDevice,
    clinics: TwoFacilities,
) -> None:
    both = make_device("health_worker", (f"facility:{clinics.fa}", f"facility:{clinics.fb}"))
    fields = {**clinics.log, "facility_id": clinics.fb}
    [result] = both.push([both.change("symptom_logs", uuid7(), fields)])
    assert result["error"]["details"] == {"existing_id": clinics.log_id}


def _same_answer(
    hidden: httpx.Response, missing: httpx.Response, hidden_id: str, missing_id: str
) -> None:
    assert hidden.status_code == missing.status_code
    assert hidden.text.replace(hidden_id, "<id>") == missing.text.replace(missing_id, "<id>")


def _push_one(api: SyncApi, change: dict[str, Any]) -> dict[str, Any]:
    [result] = api.push([change])
    result.pop("op_id")
    return result


@pytest.mark.parametrize(
    ("op", "fields", "base_version"),
    [
        ("delete", {}, 1),
        ("upsert", {"severity": 9}, 1),
        ("upsert", {"severity": 9}, 0),  # partial upsert as a create: required fields missing
        ("upsert", {"facility_id": "f-mine"}, 1),  # moving it into the caller's facility
    ],
)
def test_hole_5_push_answers_a_hidden_record_like_a_missing_one(
    clinics: TwoFacilities,
    op: str,
    fields: dict[str, Any],
    base_version: int,
) -> None:
    b = clinics.nurse_b
    missing_id = uuid7()
    hidden = _push_one(
        b, b.change("symptom_logs", clinics.log_id, fields, op=op, base_version=base_version)
    )
    missing = _push_one(
        b, b.change("symptom_logs", missing_id, fields, op=op, base_version=base_version)
    )
    assert hidden["status"] == "rejected"
    assert str(hidden).replace(clinics.log_id, "<id>") == str(missing).replace(missing_id, "<id>")


def test_hole_5_a_create_over_a_hidden_id_names_neither_record_nor_place(
    clinics: TwoFacilities,
) -> None:
    b = clinics.nurse_b
    fields = {**clinics.log, "facility_id": clinics.fb, "date": "2025-12-24", "notes": "x"}
    result = _push_one(b, b.change("symptom_logs", clinics.log_id, fields))
    assert result["status"] == "rejected"
    assert result["error"]["code"] == "VALIDATION_ERROR"
    assert result["error"]["details"] == {"field": "record_id"}
    assert SECRET not in str(result) and clinics.fa not in str(result)


def test_hole_5_an_increment_of_a_hidden_stock_line_is_not_found(
    make_device: MakeDevice,
    clinics: TwoFacilities,
) -> None:
    pharmacist_a = make_device("pharmacist", (f"facility:{clinics.fa}",))
    stock = uuid7()
    pharmacist_a.push(
        [
            pharmacist_a.change(
                "pharmacy_inventory", stock, {"facility_id": clinics.fa, "medicine_id": "m-1"}
            )
        ]
    )
    b = clinics.nurse_b
    missing_id = uuid7()
    hidden = _push_one(b, b.change("pharmacy_inventory", stock, {"quantity": -5}, op="increment"))
    missing = _push_one(
        b, b.change("pharmacy_inventory", missing_id, {"quantity": -5}, op="increment")
    )
    assert hidden["error"]["code"] == "NOT_FOUND"
    assert str(hidden).replace(stock, "<id>") == str(missing).replace(missing_id, "<id>")


@pytest.mark.parametrize(
    ("body", "if_match"),
    [
        ({"fields": {"severity": 9}}, None),  # a create missing its required fields: 400
        ({"fields": {"severity": 9}}, '"1"'),  # STALE_UPDATE against version 0, never 1
        ({"fields": {"severity": 9}}, '"0"'),
        ({"fields": {"severity": 42}}, None),
    ],
)
def test_hole_5_put_answers_a_hidden_record_like_a_missing_one(
    clinics: TwoFacilities,
    body: dict[str, Any],
    if_match: str | None,
) -> None:
    b = clinics.nurse_b
    headers = {"If-Match": if_match} if if_match else {}
    missing_id = uuid7()
    hidden = b.http.put(f"/v1/records/symptom_logs/{clinics.log_id}", json=body, headers=headers)
    missing = b.http.put(f"/v1/records/symptom_logs/{missing_id}", json=body, headers=headers)
    assert hidden.status_code in (400, 404, 409)
    _same_answer(hidden, missing, clinics.log_id, missing_id)
    assert SECRET not in hidden.text
    # and the hidden record is unchanged
    record = clinics.admin.http.get(f"/v1/records/symptom_logs/{clinics.log_id}").json()
    assert record["version"] == 1 and record["fields"]["severity"] == 4


def test_hole_5_get_answers_a_hidden_record_like_a_missing_one(clinics: TwoFacilities) -> None:
    b = clinics.nurse_b
    missing_id = uuid7()
    _same_answer(
        b.http.get(f"/v1/records/symptom_logs/{clinics.log_id}"),
        b.http.get(f"/v1/records/symptom_logs/{missing_id}"),
        clinics.log_id,
        missing_id,
    )


def test_hole_1_filtering_conflicts_by_a_hidden_record_id_finds_nothing(
    clinics: TwoFacilities,
) -> None:
    """Facility A's reviewer sees the clash on their patient, but asking for it by the
    other facility's record id must not confirm that id."""
    result = clinics.collide()
    b_side = clinics.nurse_b.http.get(f"/v1/conflicts/{result['conflict_id']}").json()
    held_record = b_side["record_id"]
    assert held_record is not None
    by_a = clinics.nurse_a.http.get("/v1/conflicts", params={"record_id": held_record})
    assert by_a.status_code == 200 and by_a.json()["conflicts"] == []
    by_b = clinics.nurse_b.http.get("/v1/conflicts", params={"record_id": held_record})
    assert [c["id"] for c in by_b.json()["conflicts"]] == [result["conflict_id"]]
