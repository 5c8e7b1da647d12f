"""The server's verdict on one pushed op: access, validation, clocks and conflict policies.

``decide`` is pure; the small ``Server`` below keeps the records and clocks the store would
keep, so each test reads as a short story of devices pushing ops.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from waystation.core.access import Principal
from waystation.core.apply import ApplyContext, Verdict, decide
from waystation.core.hlc import HLC, Clock
from waystation.core.protocol import Change
from waystation.core.record import RecordState
from waystation.core.schema import Schema, health_schema, parse_schema

T0 = 1_764_496_800_000  # 2025-11-30T10:00:00Z
MINUTE = 60_000
YEAR = 365 * 24 * 60 * MINUTE

ADMIN = Principal("u-admin", "ada", "admin", frozenset(), "d-admin")
ADMIN_LAPTOP = Principal("u-admin", "ada", "admin", frozenset(), "d-admin-2")
HW = Principal("u-hw", "hana", "health_worker", frozenset({"facility:f-1"}), "d-hw")
HW_TABLET = Principal("u-hw2", "omar", "health_worker", frozenset({"facility:f-1"}), "d-hw2")
HW_F2 = Principal("u-hw3", "lena", "health_worker", frozenset({"facility:f-2"}), "d-hw3")
PATIENT = Principal("u-p1", "amina", "patient", frozenset({"patient:p-1"}), "d-p1")
OTHER_PATIENT = Principal("u-p2", "bo", "patient", frozenset({"patient:p-2"}), "d-p2")
PHARMACIST = Principal("u-ph", "pat", "pharmacist", frozenset({"facility:f-1"}), "d-ph")

PATIENT_P1 = {"name": "Amina", "facility_id": "f-1", "village": "Kibera"}
ALERT = {"patient_id": "p-1", "facility_id": "f-1", "title": "Take your medicine"}
SYMPTOMS = {"patient_id": "p-1", "facility_id": "f-1", "date": "2025-11-30", "severity": 3}
PRESCRIPTION = {
    "patient_id": "p-1",
    "facility_id": "f-1",
    "medicine_id": "m-1",
    "dose": "500 mg",
    "frequency": "twice daily",
}
STOCK = {"facility_id": "f-1", "medicine_id": "m-1", "batch": "B-7"}
MEDICINE = {"name": "Amoxicillin", "form": "capsule", "strength": "500 mg"}


class Server:
    """The records and clock a store would keep around ``decide``; devices have correct
    clocks unless a test passes its own ``hlc``."""

    def __init__(self, schema: Schema | None = None) -> None:
        self.schema = schema or health_schema()
        self.now = T0
        self.clock = Clock("server-1", now_ms=lambda: self.now)
        self.records: dict[tuple[str, str], RecordState] = {}
        self._devices: dict[str, Clock] = {}
        self._op_ids = itertools.count(1)

    def device_clock(self, who: Principal) -> Clock:
        assert who.device_id is not None
        if who.device_id not in self._devices:
            self._devices[who.device_id] = Clock(who.device_id, now_ms=lambda: self.now)
        return self._devices[who.device_id]

    def version(self, collection: str, record_id: str) -> int:
        state = self.records.get((collection, record_id))
        return state.version if state else 0

    def push(
        self,
        who: Principal,
        op: str,
        collection: str,
        record_id: str,
        fields: dict[str, Any] | None = None,
        *,
        base_version: int | None = None,
        hlc: str | None = None,
    ) -> Verdict:
        """Decide one op (base_version defaults to what a device that just pulled has) and
        keep the new state when it is applied."""
        self.now += 1000
        change = Change(
            op_id=f"op-{next(self._op_ids)}",
            collection=collection,
            record_id=record_id,
            op=op,
            fields=fields or {},
            hlc=hlc or str(self.device_clock(who).send()),
            base_version=(
                self.version(collection, record_id) if base_version is None else base_version
            ),
        )
        verdict = decide(
            ApplyContext(self.schema, who, self.clock), change, self.get(collection, record_id)
        )
        if verdict.status == "applied":
            assert verdict.state is not None
            self.records[(collection, record_id)] = verdict.state
        return verdict

    def get(self, collection: str, record_id: str) -> RecordState | None:
        return self.records.get((collection, record_id))

    def fields(self, collection: str, record_id: str) -> dict[str, Any]:
        state = self.get(collection, record_id)
        assert state is not None
        return state.fields


@pytest.fixture
def server() -> Server:
    return Server()


def applied(verdict: Verdict) -> Verdict:
    assert verdict.status == "applied", verdict.error
    assert verdict.error is None
    return verdict


def rejected(verdict: Verdict, code: str) -> dict[str, Any]:
    assert verdict.status == "rejected"
    assert verdict.error is not None
    assert verdict.error.code == code, verdict.error.message
    assert verdict.state is None
    return verdict.error.details


def as_if_missing(
    server: Server,
    who: Principal,
    op: str,
    collection: str,
    record_id: str,
    fields: dict[str, Any] | None = None,
) -> str:
    """Push an op at a record ``who`` may not see, and the same op at an id nobody used:
    both are rejected with the same code, message (ids aside) and details. Returns the
    code."""
    base = server.version(collection, record_id)
    hidden = server.push(who, op, collection, record_id, fields, base_version=base)
    missing = server.push(who, op, collection, "never-used", fields, base_version=base)
    for verdict in (hidden, missing):
        assert verdict.status == "rejected"
        assert verdict.error is not None and verdict.state is None
    assert hidden.error is not None and missing.error is not None
    assert hidden.error.code == missing.error.code
    assert hidden.error.message.replace(record_id, "<id>") == missing.error.message.replace(
        "never-used", "<id>"
    )
    assert hidden.error.details == missing.error.details
    return hidden.error.code


# --- who may write what --------------------------------------------------------------------


def test_a_patient_logs_their_own_symptoms(server: Server) -> None:
    applied(server.push(PATIENT, "upsert", "symptom_logs", "s-1", SYMPTOMS))
    applied(server.push(PATIENT, "upsert", "symptom_logs", "s-1", {"severity": 6}))
    assert server.fields("symptom_logs", "s-1")["severity"] == 6


def test_a_patient_cannot_write_another_patients_records(server: Server) -> None:
    theirs = {**SYMPTOMS, "patient_id": "p-2"}
    rejected(server.push(PATIENT, "upsert", "symptom_logs", "s-2", theirs), "FORBIDDEN")
    applied(server.push(OTHER_PATIENT, "upsert", "symptom_logs", "s-2", theirs))
    # the other patient's log is, to this patient, a log that does not exist
    assert (
        as_if_missing(server, PATIENT, "upsert", "symptom_logs", "s-2", {"severity": 9})
        == "NOT_FOUND"
    )
    # nor take it over by rewriting whose record it is
    assert (
        as_if_missing(server, PATIENT, "upsert", "symptom_logs", "s-2", {"patient_id": "p-1"})
        == "NOT_FOUND"
    )
    assert as_if_missing(server, PATIENT, "delete", "symptom_logs", "s-2") == "NOT_FOUND"
    assert server.fields("symptom_logs", "s-2") == theirs


def test_a_patient_sees_only_their_own_records_and_the_catalogue(server: Server) -> None:
    logs = server.schema.collections["symptom_logs"]
    mine = logs.scopes_of("s-1", SYMPTOMS)
    theirs = logs.scopes_of("s-2", {**SYMPTOMS, "patient_id": "p-2", "facility_id": "f-2"})
    catalogue = server.schema.collections["medicines"].scopes_of("m-1", MEDICINE)
    assert PATIENT.can_see(mine)
    assert not PATIENT.can_see(theirs)
    assert PATIENT.can_see(catalogue)
    assert HW.can_see(mine) and not HW.can_see(theirs)
    assert HW_F2.can_see(theirs) and not HW_F2.can_see(mine)
    assert ADMIN.can_see(theirs) and ADMIN.can_see(frozenset())


def test_a_patient_may_only_mark_their_alerts_read(server: Server) -> None:
    applied(server.push(HW, "upsert", "alerts", "a-1", ALERT))
    applied(server.push(PATIENT, "upsert", "alerts", "a-1", {"read": True}))
    assert server.fields("alerts", "a-1")["read"] is True

    details = rejected(
        server.push(PATIENT, "upsert", "alerts", "a-1", {"title": "never mind"}), "FORBIDDEN"
    )
    assert details == {"field": "fields.title"}
    rejected(
        server.push(PATIENT, "upsert", "alerts", "a-1", {"read": True, "level": "info"}),
        "FORBIDDEN",
    )
    rejected(server.push(PATIENT, "upsert", "alerts", "a-2", ALERT), "FORBIDDEN")
    rejected(server.push(OTHER_PATIENT, "upsert", "alerts", "a-1", {"read": True}), "FORBIDDEN")
    assert server.fields("alerts", "a-1")["title"] == ALERT["title"]


def test_a_role_is_told_it_may_not_write_before_its_fields_are_checked(server: Server) -> None:
    """A patient creating an alert hears FORBIDDEN, not a lecture on required fields."""
    rejected(server.push(PATIENT, "upsert", "alerts", "a-9", {"read": True}), "FORBIDDEN")
    rejected(server.push(PATIENT, "upsert", "encounters", "e-9", {"notes": 5}), "FORBIDDEN")


def test_a_patient_cannot_delete_an_alert(server: Server) -> None:
    """Patients may set ``read`` on alerts and nothing else; deleting is not setting ``read``."""
    applied(server.push(HW, "upsert", "alerts", "a-1", ALERT))
    rejected(server.push(PATIENT, "delete", "alerts", "a-1"), "FORBIDDEN")


@pytest.mark.parametrize(
    ("collection", "fields"),
    [
        ("patients", PATIENT_P1),
        ("encounters", {"patient_id": "p-1", "facility_id": "f-1"}),
        ("prescriptions", PRESCRIPTION),
        ("medicines", MEDICINE),
        ("pharmacy_inventory", STOCK),
    ],
)
def test_a_patient_may_not_write_clinical_collections(
    server: Server, collection: str, fields: dict[str, Any]
) -> None:
    rejected(server.push(PATIENT, "upsert", collection, "r-1", fields), "FORBIDDEN")


def test_a_patient_sets_their_own_notification_preferences_and_nobody_else_does(
    server: Server,
) -> None:
    applied(
        server.push(
            PATIENT, "upsert", "notification_preferences", "n-1", {"patient_id": "p-1", "sms": True}
        )
    )
    rejected(
        server.push(HW, "upsert", "notification_preferences", "n-1", {"sms": False}), "FORBIDDEN"
    )
    assert (
        as_if_missing(
            server, OTHER_PATIENT, "upsert", "notification_preferences", "n-1", {"sms": False}
        )
        == "NOT_FOUND"
    )
    assert server.fields("notification_preferences", "n-1")["sms"] is True


def test_a_write_may_not_move_a_record_into_a_scope_the_caller_lacks(server: Server) -> None:
    applied(server.push(HW, "upsert", "patients", "p-1", PATIENT_P1))
    details = rejected(
        server.push(HW, "upsert", "patients", "p-1", {"facility_id": "f-2"}), "FORBIDDEN"
    )
    assert details == {"scopes": ["facility:f-2"]}  # names what the caller lacks
    assert server.fields("patients", "p-1")["facility_id"] == "f-1"
    # nor create a record there in the first place
    rejected(
        server.push(HW, "upsert", "patients", "p-2", {**PATIENT_P1, "facility_id": "f-2"}),
        "FORBIDDEN",
    )
    # an admin may transfer the patient; then f-1 can no longer touch the record
    applied(server.push(ADMIN, "upsert", "patients", "p-1", {"facility_id": "f-2"}))
    assert as_if_missing(server, HW, "upsert", "patients", "p-1", {"phone": "0700"}) == "NOT_FOUND"
    applied(server.push(HW_F2, "upsert", "patients", "p-1", {"phone": "0700"}))


def test_a_patient_cannot_refile_their_log_under_another_facility(server: Server) -> None:
    """Overlap is not enough for an update: the log stays in patient:p-1, but facility:f-9
    would start seeing it."""
    applied(server.push(PATIENT, "upsert", "symptom_logs", "s-1", SYMPTOMS))
    details = rejected(
        server.push(PATIENT, "upsert", "symptom_logs", "s-1", {"facility_id": "f-9"}), "FORBIDDEN"
    )
    assert details == {"scopes": ["facility:f-9"]}
    assert server.fields("symptom_logs", "s-1")["facility_id"] == "f-1"


def test_a_health_worker_cannot_hand_a_record_to_another_patient(server: Server) -> None:
    encounter = {"patient_id": "p-1", "facility_id": "f-1", "diagnosis": "malaria"}
    applied(server.push(HW, "upsert", "encounters", "e-1", encounter))
    details = rejected(
        server.push(HW, "upsert", "encounters", "e-1", {"patient_id": "p-2"}), "FORBIDDEN"
    )
    assert details == {"scopes": ["patient:p-2"]}
    # a change that keeps the record where it is goes through
    applied(server.push(HW, "upsert", "encounters", "e-1", {"diagnosis": "malaria, treated"}))


def test_a_health_worker_cannot_reach_into_another_facility(server: Server) -> None:
    applied(
        server.push(HW, "upsert", "encounters", "e-1", {"patient_id": "p-1", "facility_id": "f-1"})
    )
    # another facility's encounter is, to them, one that does not exist
    assert (
        as_if_missing(server, HW_F2, "upsert", "encounters", "e-1", {"diagnosis": "flu"})
        == "NOT_FOUND"
    )
    # even while moving it into their own facility
    assert (
        as_if_missing(server, HW_F2, "upsert", "encounters", "e-1", {"facility_id": "f-2"})
        == "NOT_FOUND"
    )
    assert as_if_missing(server, HW_F2, "delete", "encounters", "e-1") == "NOT_FOUND"
    assert "diagnosis" not in server.fields("encounters", "e-1")


def test_a_pharmacist_keeps_stock_in_their_own_facility_only(server: Server) -> None:
    applied(server.push(PHARMACIST, "upsert", "pharmacy_inventory", "i-1", STOCK))
    applied(server.push(PHARMACIST, "increment", "pharmacy_inventory", "i-1", {"quantity": 40}))
    applied(
        server.push(ADMIN, "upsert", "pharmacy_inventory", "i-2", {**STOCK, "facility_id": "f-2"})
    )
    assert (
        as_if_missing(
            server, PHARMACIST, "increment", "pharmacy_inventory", "i-2", {"quantity": -1}
        )
        == "NOT_FOUND"
    )
    rejected(server.push(PHARMACIST, "upsert", "prescriptions", "rx-1", PRESCRIPTION), "FORBIDDEN")
    assert server.fields("pharmacy_inventory", "i-1")["quantity"] == 40
    assert "quantity" not in server.fields("pharmacy_inventory", "i-2")


def test_only_admins_write_the_medicine_catalogue(server: Server) -> None:
    rejected(server.push(HW, "upsert", "medicines", "m-1", MEDICINE), "FORBIDDEN")
    applied(server.push(ADMIN, "upsert", "medicines", "m-1", MEDICINE))
    rejected(server.push(HW, "upsert", "medicines", "m-1", {"strength": "1 g"}), "FORBIDDEN")


# --- what does not exist, or is malformed --------------------------------------------------


def test_an_unknown_collection_is_a_validation_error(server: Server) -> None:
    details = rejected(
        server.push(ADMIN, "upsert", "lab_results", "r-1", {"x": 1}), "VALIDATION_ERROR"
    )
    assert details == {"field": "collection"}


def test_a_malformed_hlc_is_a_validation_error_and_leaves_the_clock_alone(server: Server) -> None:
    before = server.clock.last
    details = rejected(
        server.push(HW, "upsert", "patients", "p-1", PATIENT_P1, hlc="2025-11-30T10:00:00Z"),
        "VALIDATION_ERROR",
    )
    assert details == {"field": "hlc"}
    assert server.clock.last == before
    assert server.get("patients", "p-1") is None


def test_an_increment_of_a_missing_record_is_not_found(server: Server) -> None:
    rejected(
        server.push(PHARMACIST, "increment", "pharmacy_inventory", "i-9", {"quantity": -5}),
        "NOT_FOUND",
    )


def test_a_partial_upsert_of_a_missing_record_is_not_found(server: Server) -> None:
    rejected(
        server.push(HW, "upsert", "patients", "p-9", {"phone": "0700"}, base_version=3),
        "NOT_FOUND",
    )
    # with base_version 0 it is a create, and a create needs its required fields
    details = rejected(
        server.push(HW, "upsert", "patients", "p-9", {"phone": "0700"}, base_version=0),
        "VALIDATION_ERROR",
    )
    assert details["field"] in {"fields.name", "fields.facility_id"}


def test_a_delete_of_a_missing_record_is_not_found(server: Server) -> None:
    rejected(server.push(HW, "delete", "patients", "p-9"), "NOT_FOUND")


def test_schema_violations_are_rejected_per_op(server: Server) -> None:
    applied(server.push(PHARMACIST, "upsert", "pharmacy_inventory", "i-1", STOCK))
    details = rejected(
        server.push(PHARMACIST, "upsert", "pharmacy_inventory", "i-1", {"quantity": 100}),
        "VALIDATION_ERROR",
    )
    assert details == {"field": "fields.quantity"}
    details = rejected(
        server.push(PHARMACIST, "increment", "pharmacy_inventory", "i-1", {"batch": 1}),
        "VALIDATION_ERROR",
    )
    assert details == {"field": "fields.batch"}
    details = rejected(
        server.push(PHARMACIST, "delete", "pharmacy_inventory", "i-1", {"batch": None}),
        "VALIDATION_ERROR",
    )
    assert details == {"field": "fields"}
    details = rejected(
        server.push(PATIENT, "upsert", "symptom_logs", "s-1", {**SYMPTOMS, "severity": 11}),
        "VALIDATION_ERROR",
    )
    assert details == {"field": "fields.severity"}


# --- counters ------------------------------------------------------------------------------


def test_two_offline_dispenses_of_five_from_a_hundred_leave_ninety(server: Server) -> None:
    applied(server.push(PHARMACIST, "upsert", "pharmacy_inventory", "i-1", STOCK))
    applied(server.push(PHARMACIST, "increment", "pharmacy_inventory", "i-1", {"quantity": 100}))
    seen = server.version("pharmacy_inventory", "i-1")
    for who in (PHARMACIST, HW):  # two counters, both offline since `seen`
        verdict = applied(
            server.push(
                who, "increment", "pharmacy_inventory", "i-1", {"quantity": -5}, base_version=seen
            )
        )
        assert verdict.superseded == []
    assert server.fields("pharmacy_inventory", "i-1")["quantity"] == 90


def test_a_deleted_stock_line_keeps_counting_and_stays_deleted(server: Server) -> None:
    counters = server.schema.collections["pharmacy_inventory"].counters
    applied(server.push(PHARMACIST, "upsert", "pharmacy_inventory", "i-1", STOCK))
    applied(server.push(PHARMACIST, "increment", "pharmacy_inventory", "i-1", {"quantity": 100}))
    applied(server.push(HW, "delete", "pharmacy_inventory", "i-1"))
    applied(server.push(PHARMACIST, "increment", "pharmacy_inventory", "i-1", {"quantity": -5}))
    state = server.get("pharmacy_inventory", "i-1")
    assert state is not None
    assert state.fields["quantity"] == 95
    assert state.is_deleted(counters)


# --- clocks --------------------------------------------------------------------------------


def test_an_op_a_year_ahead_is_restamped_with_the_servers_clock(server: Server) -> None:
    future = HLC(T0 + YEAR, 0, "d-hw")
    verdict = applied(server.push(HW, "upsert", "patients", "p-1", PATIENT_P1, hlc=str(future)))
    assert verdict.restamped is True
    assert verdict.hlc is not None
    effective = HLC.parse(verdict.hlc)
    assert effective.node == "server-1"
    assert effective == server.clock.last
    assert effective.wall == server.now  # the server's own time, never "now + skew"
    assert server.clock.last.wall < future.wall  # the rejected value did not leak in
    state = server.get("patients", "p-1")
    assert state is not None
    assert set(state.clocks.values()) == {verdict.hlc}


def test_a_restamped_write_does_not_win_every_later_write(server: Server) -> None:
    applied(server.push(PATIENT, "upsert", "symptom_logs", "s-1", SYMPTOMS))
    broken_clock = str(HLC(T0 + YEAR, 0, "d-p1"))
    applied(
        server.push(PATIENT, "upsert", "symptom_logs", "s-1", {"severity": 9}, hlc=broken_clock)
    )
    later = applied(server.push(HW, "upsert", "symptom_logs", "s-1", {"severity": 2}))
    assert later.superseded == []
    assert server.fields("symptom_logs", "s-1")["severity"] == 2


def test_an_op_within_the_allowed_skew_keeps_its_clock(server: Server) -> None:
    ahead = HLC(T0 + 1000 + 4 * MINUTE, 3, "d-hw")  # push() advances the server by 1 s
    verdict = applied(server.push(HW, "upsert", "patients", "p-1", PATIENT_P1, hlc=str(ahead)))
    assert verdict.restamped is False
    assert verdict.hlc == str(ahead)
    assert server.clock.last > ahead  # folded in: the server's next stamps come after it
    edge = HLC(T0 + 2000 + 5 * MINUTE, 0, "d-hw2")
    verdict = applied(
        server.push(HW_TABLET, "upsert", "patients", "p-1", {"phone": "1"}, hlc=str(edge))
    )
    assert verdict.restamped is False


def test_the_allowed_skew_is_configurable(server: Server) -> None:
    server.now += 1000
    op = Change(
        op_id="op-x",
        collection="patients",
        record_id="p-1",
        op="upsert",
        fields=PATIENT_P1,
        hlc=str(HLC(server.now + 2000, 0, "d-hw")),
    )
    ctx = ApplyContext(server.schema, HW, server.clock, max_clock_skew_ms=1000)
    assert decide(ctx, op, None).restamped is True


# --- conflict policies ---------------------------------------------------------------------


def test_lww_keeps_the_newer_write_and_reports_the_older_superseded(server: Server) -> None:
    applied(server.push(HW, "upsert", "patients", "p-1", PATIENT_P1))
    stale = str(server.device_clock(HW_TABLET).send())  # written offline, earlier
    applied(server.push(HW, "upsert", "patients", "p-1", {"phone": "0711"}))
    verdict = applied(
        server.push(
            HW_TABLET,
            "upsert",
            "patients",
            "p-1",
            {"phone": "0722", "village": "Mathare"},
            hlc=stale,
        )
    )
    assert verdict.superseded == ["phone"]
    assert server.fields("patients", "p-1")["phone"] == "0711"
    assert server.fields("patients", "p-1")["village"] == "Mathare"


def test_two_devices_editing_different_fields_both_keep_their_edits(server: Server) -> None:
    applied(server.push(HW, "upsert", "patients", "p-1", PATIENT_P1))
    seen = server.version("patients", "p-1")
    applied(server.push(HW, "upsert", "patients", "p-1", {"phone": "0711"}, base_version=seen))
    applied(
        server.push(
            HW_TABLET, "upsert", "patients", "p-1", {"village": "Mathare"}, base_version=seen
        )
    )
    assert server.fields("patients", "p-1") == {**PATIENT_P1, "phone": "0711", "village": "Mathare"}


def test_manual_holds_an_op_touching_a_field_another_device_changed(server: Server) -> None:
    applied(server.push(HW, "upsert", "prescriptions", "rx-1", PRESCRIPTION))
    seen = server.version("prescriptions", "rx-1")
    applied(server.push(HW_TABLET, "upsert", "prescriptions", "rx-1", {"dose": "250 mg"}))
    before = server.get("prescriptions", "rx-1")

    verdict = server.push(
        HW,
        "upsert",
        "prescriptions",
        "rx-1",
        {"dose": "1 g", "duration_days": 7},
        base_version=seen,
    )
    assert verdict.status == "conflict"
    assert verdict.conflict is not None
    assert verdict.conflict.code == "MANUAL_REVIEW"
    assert "dose" in verdict.conflict.message
    assert verdict.conflict.server_fields["dose"] == "250 mg"
    assert verdict.conflict.client_fields == {"dose": "1 g", "duration_days": 7}
    # held whole: not even the untouched duration_days took effect
    assert server.get("prescriptions", "rx-1") == before
    assert verdict.state == before


def test_manual_never_conflicts_a_devices_own_consecutive_edits(server: Server) -> None:
    applied(server.push(HW, "upsert", "prescriptions", "rx-1", PRESCRIPTION))
    seen = server.version("prescriptions", "rx-1")
    for dose in ("250 mg", "300 mg", "350 mg"):  # offline: base_version never moves
        applied(
            server.push(HW, "upsert", "prescriptions", "rx-1", {"dose": dose}, base_version=seen)
        )
    assert server.fields("prescriptions", "rx-1")["dose"] == "350 mg"


def test_manual_lets_through_what_nobody_else_changed(server: Server) -> None:
    applied(server.push(HW, "upsert", "prescriptions", "rx-1", PRESCRIPTION))
    seen = server.version("prescriptions", "rx-1")
    applied(server.push(HW_TABLET, "upsert", "prescriptions", "rx-1", {"dose": "250 mg"}))
    # a different field than the one the tablet changed
    applied(
        server.push(
            HW, "upsert", "prescriptions", "rx-1", {"prescriber": "Dr K"}, base_version=seen
        )
    )
    # and a device that has pulled the tablet's change edits the dose freely
    applied(server.push(HW, "upsert", "prescriptions", "rx-1", {"dose": "750 mg"}))
    assert server.fields("prescriptions", "rx-1")["dose"] == "750 mg"


def test_manual_holds_a_delete_after_another_devices_change(server: Server) -> None:
    applied(server.push(HW, "upsert", "prescriptions", "rx-1", PRESCRIPTION))
    seen = server.version("prescriptions", "rx-1")
    applied(server.push(HW_TABLET, "upsert", "prescriptions", "rx-1", {"frequency": "daily"}))
    verdict = server.push(HW, "delete", "prescriptions", "rx-1", base_version=seen)
    assert verdict.status == "conflict"
    assert verdict.conflict is not None
    assert verdict.conflict.client_fields == {"_deleted": True}
    state = server.get("prescriptions", "rx-1")
    assert state is not None and state.deleted_clock is None


def test_server_wins_drops_fields_another_device_changed(server: Server) -> None:
    applied(server.push(ADMIN, "upsert", "medicines", "m-1", MEDICINE))
    seen = server.version("medicines", "m-1")
    applied(server.push(ADMIN_LAPTOP, "upsert", "medicines", "m-1", {"strength": "250 mg"}))
    verdict = applied(
        server.push(
            ADMIN,
            "upsert",
            "medicines",
            "m-1",
            {"strength": "1 g", "form": "tablet"},
            base_version=seen,
        )
    )
    assert verdict.superseded == ["strength"]
    assert server.fields("medicines", "m-1") == {**MEDICINE, "strength": "250 mg", "form": "tablet"}
    # once the device has seen the server's value, its write takes effect
    verdict = applied(server.push(ADMIN, "upsert", "medicines", "m-1", {"strength": "1 g"}))
    assert verdict.superseded == []
    assert server.fields("medicines", "m-1")["strength"] == "1 g"


def test_server_wins_keeps_a_record_another_device_changed_from_a_stale_delete(
    server: Server,
) -> None:
    applied(server.push(ADMIN, "upsert", "medicines", "m-1", MEDICINE))
    seen = server.version("medicines", "m-1")
    applied(server.push(ADMIN_LAPTOP, "upsert", "medicines", "m-1", {"strength": "250 mg"}))
    verdict = applied(server.push(ADMIN, "delete", "medicines", "m-1", base_version=seen))
    assert verdict.superseded == ["_deleted"]
    state = server.get("medicines", "m-1")
    assert state is not None and not state.is_deleted()


def test_server_wins_reports_a_restamp_even_when_the_delete_is_dropped(server: Server) -> None:
    """The client adopts the effective HLC only when told it was re-stamped."""
    applied(server.push(ADMIN, "upsert", "medicines", "m-1", MEDICINE))
    seen = server.version("medicines", "m-1")
    applied(server.push(ADMIN_LAPTOP, "upsert", "medicines", "m-1", {"strength": "250 mg"}))
    future = str(HLC(server.now + YEAR, 0, "d-admin"))
    verdict = applied(
        server.push(ADMIN, "delete", "medicines", "m-1", base_version=seen, hlc=future)
    )
    assert verdict.hlc != future
    assert verdict.restamped is True


CLIENT_WINS = parse_schema(
    {
        "collections": {
            "bed_board": {
                "policy": "client_wins",
                "scopes": ["facility:{facility_id}"],
                "writers": ["health_worker"],
                "fields": {"facility_id": {"type": "string"}, "status": {"type": "string"}},
            },
            "bed_board_lww": {
                "scopes": ["facility:{facility_id}"],
                "writers": ["health_worker"],
                "fields": {"facility_id": {"type": "string"}, "status": {"type": "string"}},
            },
        }
    }
)


@pytest.mark.parametrize(("collection", "wins"), [("bed_board", True), ("bed_board_lww", False)])
def test_client_wins_takes_effect_whatever_the_clocks(collection: str, wins: bool) -> None:
    server = Server(CLIENT_WINS)
    applied(server.push(HW, "upsert", collection, "b-1", {"facility_id": "f-1", "status": "free"}))
    ahead = HLC(server.now + 1000 + 4 * MINUTE, 0, "d-hw2")  # a tablet running 4 minutes fast
    applied(
        server.push(HW_TABLET, "upsert", collection, "b-1", {"status": "taken"}, hlc=str(ahead))
    )
    verdict = applied(server.push(HW, "upsert", collection, "b-1", {"status": "cleaning"}))
    assert verdict.hlc is not None
    if wins:
        assert verdict.superseded == []
        assert server.fields(collection, "b-1")["status"] == "cleaning"
        assert verdict.restamped is True
        assert HLC.parse(verdict.hlc) > ahead  # and it keeps winning on every replica
    else:
        assert verdict.superseded == ["status"]
        assert server.fields(collection, "b-1")["status"] == "taken"


def test_a_delete_that_loses_to_a_newer_edit_is_reported_superseded(server: Server) -> None:
    """A worker who deletes an appointment offline, after which someone else edited it, is
    told the delete did not take effect instead of seeing 'applied' and a live record."""
    appointment = {
        "patient_id": "p-1",
        "facility_id": "f-1",
        "scheduled_at": "2025-12-01T09:00:00Z",
    }
    applied(server.push(HW, "upsert", "appointments", "ap-1", appointment))
    offline_delete = str(server.device_clock(HW_TABLET).send())
    applied(server.push(HW, "upsert", "appointments", "ap-1", {"status": "CONFIRMED"}))
    verdict = applied(server.push(HW_TABLET, "delete", "appointments", "ap-1", hlc=offline_delete))
    state = server.get("appointments", "ap-1")
    assert state is not None and not state.is_deleted()
    assert verdict.superseded == ["_deleted"]
