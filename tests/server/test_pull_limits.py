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
        nurse.push([nurse.change("patients", uuid7(), {"name": name, "facility_id": facility})
                    for name in batch])
    reader = make_device("health_worker", (f"facility:{facility}",))
    first = reader.http.get("/v1/sync/pull", params={"since": "0", "limit": "100000"})
    assert first.headers["content-encoding"] == "gzip"
    body = first.json()
    assert len(body["changes"]) == 5000 and body["has_more"] is True
    rest = reader.http.get("/v1/sync/pull", params={"since": body["cursor"], "limit": "5000"})
    assert [len(rest.json()["changes"]), rest.json()["has_more"]] == [3, False]
    pulled = {c["fields"]["name"] for c in body["changes"] + rest.json()["changes"]}
    assert pulled == set(names)
