"""The demo clinic: one facility, its staff, three patients and a few records of each kind.

``waystation demo`` seeds it once into a local SQLite file and reuses it on later runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from waystation.core.access import Principal
from waystation.core.hlc import Clock
from waystation.core.ids import uuid7
from waystation.server.auth import hash_password
from waystation.store import SqlStore

FACILITY = "f-1"
SEED_DEVICE = "demo-seed"


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: str
    scopes: tuple[str, ...]
    who: str


DEMO_USERS = (
    DemoUser("admin", "admin-demo", "admin", (), "administrator"),
    DemoUser("amina", "amina-demo", "health_worker", (f"facility:{FACILITY}",), "health worker"),
    DemoUser("joseph", "joseph-demo", "health_worker", (f"facility:{FACILITY}",), "health worker"),
    DemoUser("grace", "grace-demo", "pharmacist", (f"facility:{FACILITY}",), "pharmacist"),
    DemoUser("patient1", "patient1-demo", "patient", ("patient:p-1",), "patient Achieng"),
    DemoUser("patient2", "patient2-demo", "patient", ("patient:p-2",), "patient Baraka"),
    DemoUser("patient3", "patient3-demo", "patient", ("patient:p-3",), "patient Chausiku"),
)

PATIENTS = (
    (
        "p-1",
        {
            "name": "Achieng Otieno",
            "birth_date": "1988-04-12",
            "sex": "female",
            "village": "Kisumu Ndogo",
        },
    ),
    (
        "p-2",
        {"name": "Baraka Mwangi", "birth_date": "1975-09-30", "sex": "male", "village": "Ahero"},
    ),
    (
        "p-3",
        {
            "name": "Chausiku Njeri",
            "birth_date": "2001-01-17",
            "sex": "female",
            "village": "Maseno",
        },
    ),
)


def is_seeded(store: SqlStore) -> bool:
    return store.find_user(username="admin") is not None


def seed_demo(store: SqlStore) -> None:
    """Create the demo users and records (call once, on an empty database)."""
    admin = None
    for user in DEMO_USERS:
        created = store.add_user(
            user.username, hash_password(user.password), user.role, user.scopes
        )
        admin = created if user.role == "admin" else admin
    assert admin is not None
    store.add_device(SEED_DEVICE, admin.id, "demo seed", "-", refresh_expires_at=0)
    principal = Principal(admin.id, admin.username, "admin", frozenset(), SEED_DEVICE)
    clock = Clock(SEED_DEVICE)
    changes: list[dict[str, Any]] = []

    def op(
        collection: str, fields: dict[str, Any], record_id: str | None = None, kind: str = "upsert"
    ) -> str:
        rid = record_id or uuid7()
        changes.append(
            {
                "op_id": uuid7(),
                "collection": collection,
                "record_id": rid,
                "op": kind,
                "fields": fields,
                "hlc": str(clock.send()),
            }
        )
        return rid

    medicines = {
        "m-amox": {"name": "Amoxicillin", "form": "capsule", "strength": "500 mg"},
        "m-para": {"name": "Paracetamol", "form": "tablet", "strength": "500 mg"},
        "m-ors": {"name": "Oral rehydration salts", "form": "sachet", "strength": "20.5 g"},
    }
    for mid, fields in medicines.items():
        op("medicines", fields, mid)
    for mid in medicines:
        item = op(
            "pharmacy_inventory",
            {
                "facility_id": FACILITY,
                "medicine_id": mid,
                "batch": "B-2025-11",
                "expiry": "2027-06-30",
            },
        )
        op("pharmacy_inventory", {"quantity": 100}, item, kind="increment")
    for pid, fields in PATIENTS:
        op("patients", {**fields, "facility_id": FACILITY}, pid)
        scope = {"patient_id": pid, "facility_id": FACILITY}
        op(
            "encounters",
            {
                **scope,
                "diagnosis": "routine check",
                "occurred_at": "2025-11-28T09:30:00Z",
                "vitals": {"temperature": 37.1, "pulse": 72, "bp": "120/80"},
            },
        )
        op("symptom_logs", {**scope, "date": "2025-11-29", "symptoms": ["cough"], "severity": 3})
        op(
            "alerts",
            {
                **scope,
                "title": "Follow-up visit",
                "body": "Please come back on Monday for your follow-up.",
                "level": "info",
                "read": False,
            },
        )
        op(
            "notification_preferences",
            {"patient_id": pid, "sms": True, "email": False, "push": True},
            f"prefs-{pid}",
        )
        op(
            "appointments",
            {
                **scope,
                "scheduled_at": "2025-12-01T08:00:00Z",
                "status": "CONFIRMED",
                "reason": "follow-up",
            },
        )
    op(
        "prescriptions",
        {
            "patient_id": "p-1",
            "facility_id": FACILITY,
            "medicine_id": "m-amox",
            "dose": "500 mg",
            "frequency": "3x daily",
            "duration_days": 7,
            "prescriber": "amina",
        },
    )
    results = store.push(principal, changes)
    failed = [r for r in results if r["status"] != "applied"]
    if failed:
        raise RuntimeError(f"demo seed did not apply: {failed[0]}")
