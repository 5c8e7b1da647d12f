"""Deterministic healthcare-like ops from a seed: symptom logs, encounters, inventory.

Every device of a run gets its own ``random.Random(f"{seed}:{device}")``, so a run's bodies
are the same on every machine. A record is about 400 bytes of JSON (fields + envelope); the
mix is 50% symptom logs, 35% encounters, 15% inventory increments (on the device's own stock
rows, created by its first ops). ``shared`` ops touch a pool of records that every device
edits (the conflict-heavy mix).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from waystation.core.hlc import Clock

# Clinical words plus pseudo-words (names, places, free text): gzip gets about what it
# gets on real notes, not the 8x it would get on a 26-word vocabulary.
_CLINICAL = (
    "fever cough headache rash fatigue nausea diarrhoea malaria dengue typhoid "
    "hypertension diabetes asthma pneumonia anaemia follow-up referral review "
    "paracetamol amoxicillin ORS zinc artemether counselling improving stable"
)
_SYLLABLES = (
    "ka",
    "mo",
    "ri",
    "ten",
    "wa",
    "lu",
    "si",
    "bo",
    "ne",
    "ya",
    "gi",
    "tho",
    "ma",
    "ru",
    "ze",
    "pa",
    "ko",
    "di",
    "hu",
    "ol",
)
_VOCAB = random.Random("vocabulary")
WORDS = _CLINICAL.split() + [
    "".join(_VOCAB.choice(_SYLLABLES) for _ in range(_VOCAB.randint(2, 4))) for _ in range(3000)
]
SYMPTOMS = ("fever", "cough", "headache", "rash", "fatigue", "nausea", "chills", "vomiting")
MEDICINES = [f"m-{i:03d}" for i in range(40)]
STOCK_ROWS = 8  # inventory rows per device, created before any increment


def _words(rnd: random.Random, n: int) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(n))


def facility_of(device: int) -> str:
    return f"f-{device % 10}"


class DeviceWorkload:
    """The ops of one simulated device, stamped with its own HLC (``device_id``)."""

    def __init__(self, seed: int, device: int, device_id: str, facility: str | None = None) -> None:
        self.rnd = random.Random(f"{seed}:{device}")
        self.device = device
        self.device_id = device_id
        self.facility = facility or facility_of(device)
        self.clock = Clock(device_id)
        self.n = 0

    def _id(self, kind: str) -> str:
        """A uuid7-shaped id (time prefix, random tail), deterministic from the seed."""
        self.n += 1
        ms = 0x0193_4000_0000 + self.device * 1_000_000 + self.n
        tail = self.rnd.getrandbits(74)
        value = (ms << 80) | (7 << 76) | ((tail >> 62) << 64) | (2 << 62) | (tail & ((1 << 62) - 1))
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _change(
        self, collection: str, record_id: str, op: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "op_id": self._id("op"),
            "collection": collection,
            "record_id": record_id,
            "op": op,
            "fields": fields,
            "hlc": str(self.clock.send()),
            "base_version": 0,
            "created_at_client": "2026-11-20T08:00:00Z",
        }

    def symptom_log(self) -> dict[str, Any]:
        rnd = self.rnd
        day = self.n % 28 + 1
        return self._change(
            "symptom_logs",
            self._id("sl"),
            "upsert",
            {
                # one patient per log keeps (patient_id, date) unique across the run
                "patient_id": self._id("p"),
                "facility_id": self.facility,
                "date": f"2026-11-{day:02d}",
                "symptoms": rnd.sample(SYMPTOMS, 3),
                "severity": rnd.randint(0, 10),
                "temperature": round(rnd.uniform(36, 40), 1),
                "notes": _words(rnd, 10),
            },
        )

    def encounter(self) -> dict[str, Any]:
        rnd = self.rnd
        return self._change(
            "encounters",
            self._id("en"),
            "upsert",
            {
                "patient_id": f"p-{self.device_id}-{rnd.randint(0, 999):04d}",  # returning
                "facility_id": self.facility,
                "diagnosis": _words(rnd, 3),
                "notes": _words(rnd, 9),
                "occurred_at": "2026-11-20T09:30:00Z",
                "vitals": {
                    "temperature": round(rnd.uniform(36, 40), 1),
                    "pulse": rnd.randint(50, 130),
                    "bp": f"{rnd.randint(95, 160)}/80",
                },
            },
        )

    def stock_row(self, i: int) -> tuple[str, dict[str, Any]]:
        rid = f"inv-{self.device_id}-{i}"
        return rid, self._change(
            "pharmacy_inventory",
            rid,
            "upsert",
            {
                "facility_id": self.facility,
                "medicine_id": MEDICINES[i % len(MEDICINES)],
                "batch": f"B{self.rnd.randint(10000, 99999)}",
                "expiry": "2027-06-30",
            },
        )

    def increment(self) -> dict[str, Any]:
        rid = f"inv-{self.device_id}-{self.rnd.randrange(STOCK_ROWS)}"
        return self._change(
            "pharmacy_inventory", rid, "increment", {"quantity": self.rnd.randint(-20, 50)}
        )

    def shared_edit(self, shared: list[str]) -> dict[str, Any]:
        """A partial upsert of an encounter that other devices edit too (LWW merge)."""
        return self._change(
            "encounters",
            self.rnd.choice(shared),
            "upsert",
            {"diagnosis": _words(self.rnd, 3), "notes": _words(self.rnd, 12)},
        )

    def ops(
        self, count: int, shared: list[str] | None = None, shared_share: float = 0.0
    ) -> list[dict[str, Any]]:
        """``count`` ops: stock rows first, then the mix; ``shared_share`` of them (after
        the stock rows) edit ``shared`` records."""
        out = [self.stock_row(i)[1] for i in range(min(STOCK_ROWS, count))]
        while len(out) < count:
            r = self.rnd.random()
            if shared and r < shared_share:
                out.append(self.shared_edit(shared))
            elif r < 0.5 + shared_share / 2:
                out.append(self.symptom_log())
            elif r < 0.85:
                out.append(self.encounter())
            else:
                out.append(self.increment())
        return out


def shared_records(n: int = 200) -> list[str]:
    return [f"en-shared-{i:05d}" for i in range(n)]


def shared_seed_ops(ids: list[str]) -> list[dict[str, Any]]:
    """Create the shared encounters (pushed once before a conflict-heavy run)."""
    w = DeviceWorkload(0, 0, "d-seed")
    return [
        w._change(
            "encounters",
            rid,
            "upsert",
            {
                "patient_id": f"p-shared-{i}",
                "facility_id": "f-0",
                "diagnosis": "initial",
                "notes": _words(w.rnd, 12),
            },
        )
        for i, rid in enumerate(ids)
    ]


def batches(ops: list[dict[str, Any]], size: int = 500) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(ops), size):
        yield ops[i : i + size]
