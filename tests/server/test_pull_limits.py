"""Pull page sizes: a new device may pull its backlog 5,000 changes at a time."""

from __future__ import annotations

from tests.server.conftest import MakeDevice
from waystation.core.ids import uuid7


def test_a_page_holds_up_to_5000_changes_and_larger_limits_are_clamped(
    make_device: MakeDevice, facility: str
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    names = [str(i) for i in range(5003)]
    for batch in (names[:4000], names[4000:]):  # a push takes 5,000 ops at most
        nurse.push(
            [
                nurse.change("patients", uuid7(), {"name": name, "facility_id": facility})
                for name in batch
            ]
        )
    reader = make_device("health_worker", (f"facility:{facility}",))
    first = reader.http.get("/v1/sync/pull", params={"since": "0", "limit": "100000"})
    assert first.headers["content-encoding"] == "gzip"
    body = first.json()
    assert len(body["changes"]) == 5000 and body["has_more"] is True
    rest = reader.http.get("/v1/sync/pull", params={"since": body["cursor"], "limit": "5000"})
    assert [len(rest.json()["changes"]), rest.json()["has_more"]] == [3, False]
    pulled = {c["fields"]["name"] for c in body["changes"] + rest.json()["changes"]}
    assert pulled == set(names)


def test_an_incremental_pull_of_ten_encounters_fits_in_3_kb_on_the_wire(
    make_device: MakeDevice, facility: str
) -> None:
    """A clinic on a 2G link: ten new encounters (notes, vitals) arrive in one small answer.
    (ISA-L once compressed such a small page, fed in pieces, at half its usual ratio.)"""
    nurse = make_device("health_worker", (f"facility:{facility}",))
    before = nurse.http.get("/v1/sync/pull", params={"since": "0"}).json()["cursor"]
    nurse.push(
        [
            nurse.change(
                "encounters",
                uuid7(),
                {
                    "patient_id": f"p-{i:04d}",
                    "facility_id": facility,
                    "diagnosis": "malaria, uncomplicated",
                    "occurred_at": "2026-11-20T09:30:00Z",
                    "notes": f"fever for {i + 2} days, rapid test positive, started artemether; "
                    f"review in 3 days, counselled on bed nets (visit {i})",
                    "vitals": {"temperature": 38.5, "pulse": 96 + i, "bp": "118/76"},
                },
            )
            for i in range(10)
        ]
    )
    reader = make_device("health_worker", (f"facility:{facility}",))
    answer = reader.http.get("/v1/sync/pull", params={"since": before})
    assert len(answer.json()["changes"]) == 10
    assert answer.headers["content-encoding"] == "gzip"
    sent = int(answer.headers["content-length"])
    assert sent < 3072
    assert sent < len(answer.content) / 2.5  # compressed as well as a small page can be
