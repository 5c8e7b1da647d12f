"""Push and pull between devices through a real server process."""

from __future__ import annotations

from tests.server.conftest import MakeDevice
from tests.support import LiveServer
from waystation.core.ids import uuid7


def _log(api_facility: str, patient: str, date: str = "2025-11-30") -> dict[str, object]:
    return {"patient_id": patient, "facility_id": api_facility, "date": date, "severity": 3}


def test_push_then_pull_between_two_devices_of_one_facility(
    make_device: MakeDevice, facility: str
) -> None:
    tablet = make_device("health_worker", (f"facility:{facility}",))
    laptop = make_device("health_worker", (f"facility:{facility}",))
    pid = f"p-{uuid7()[-8:]}"
    results = tablet.push(
        [
            tablet.change("patients", pid, {"name": "Achieng", "facility_id": facility}),
            tablet.change("symptom_logs", uuid7(), _log(facility, pid)),
        ]
    )
    assert [r["status"] for r in results] == ["applied", "applied"]
    assert all(r["version"] == 1 and int(r["seq"]) > 0 for r in results)

    seen, _ = laptop.pull_all()
    assert seen[pid]["fields"] == {"name": "Achieng", "facility_id": facility}
    assert {c["collection"] for c in seen.values()} == {"patients", "symptom_logs"}


def test_a_patient_never_receives_another_patients_records(
    make_device: MakeDevice, facility: str
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    mine, theirs = f"p-{uuid7()[-8:]}", f"p-{uuid7()[-8:]}"
    nurse.push(
        [
            nurse.change("patients", mine, {"name": "Mine", "facility_id": facility}),
            nurse.change("patients", theirs, {"name": "Theirs", "facility_id": facility}),
            nurse.change(
                "alerts", uuid7(), {"patient_id": mine, "facility_id": facility, "title": "for me"}
            ),
            nurse.change(
                "alerts",
                uuid7(),
                {"patient_id": theirs, "facility_id": facility, "title": "not for me"},
            ),
        ]
    )
    patient = make_device("patient", (f"patient:{mine}",))
    seen, _ = patient.pull_all()
    patients_seen = {c["id"] for c in seen.values() if c["collection"] == "patients"}
    assert patients_seen == {mine}
    titles = {c["fields"]["title"] for c in seen.values() if c["collection"] == "alerts"}
    assert titles == {"for me"}
    assert all(
        c["fields"].get("patient_id", mine) == mine
        for c in seen.values()
        if c["collection"] != "medicines"
    )


def test_a_push_outside_the_callers_scopes_is_rejected_per_op(
    make_device: MakeDevice, facility: str
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    results = nurse.push(
        [
            nurse.change("patients", uuid7(), {"name": "Here", "facility_id": facility}),
            nurse.change("patients", uuid7(), {"name": "Elsewhere", "facility_id": "f-other"}),
            nurse.change("patients", uuid7(), {"name": "Also here", "facility_id": facility}),
        ]
    )
    assert [r["status"] for r in results] == ["applied", "rejected", "applied"]
    assert results[1]["error"]["code"] == "FORBIDDEN"
    assert "scope" in results[1]["error"]["message"]


def test_a_write_cannot_move_a_record_into_a_scope_the_caller_lacks(
    make_device: MakeDevice, facility: str
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    pid = uuid7()
    nurse.push([nurse.change("patients", pid, {"name": "A", "facility_id": facility})])
    moved = nurse.push(
        [nurse.change("patients", pid, {"facility_id": "f-elsewhere"}, base_version=1)]
    )
    assert moved[0]["status"] == "rejected"
    assert moved[0]["error"]["code"] == "FORBIDDEN"


def test_a_patient_may_only_mark_an_alert_read(make_device: MakeDevice, facility: str) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    pid, alert = f"p-{uuid7()[-8:]}", uuid7()
    nurse.push(
        [
            nurse.change(
                "alerts",
                alert,
                {"patient_id": pid, "facility_id": facility, "title": "Take your pills"},
            )
        ]
    )
    patient = make_device("patient", (f"patient:{pid}",))
    results = patient.push(
        [
            patient.change("alerts", alert, {"read": True}, base_version=1),
            patient.change("alerts", alert, {"title": "changed"}, base_version=1),
        ]
    )
    assert results[0]["status"] == "applied"
    assert results[1]["status"] == "rejected"
    assert results[1]["error"]["code"] == "FORBIDDEN"
    assert results[1]["error"]["details"]["field"] == "fields.title"


def test_the_same_batch_twice_is_all_duplicates_and_changes_nothing(
    make_device: MakeDevice, facility: str
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    item = uuid7()
    batch = [
        nurse.change("pharmacy_inventory", item, {"facility_id": facility, "medicine_id": "m"}),
        nurse.change("pharmacy_inventory", item, {"quantity": 100}, op="increment"),
        nurse.change(
            "symptom_logs",
            uuid7(),
            {"patient_id": "p", "facility_id": facility, "date": "2025-11-30", "severity": 42},
        ),
    ]
    first = nurse.push(batch)
    seen_before, cursor = nurse.pull_all()
    second = nurse.push(batch)
    assert [r["status"] for r in first] == ["applied", "applied", "rejected"]
    assert [r["status"] for r in second] == ["duplicate", "duplicate", "rejected"]
    assert second[2]["duplicate"] is True
    assert second[2]["error"] == first[2]["error"]
    assert [r.get("seq") for r in second[:2]] == [r.get("seq") for r in first[:2]]
    seen_after, _ = nurse.pull_all(since=cursor)
    assert seen_after == {}  # nothing changed on the server
    assert seen_before[item]["fields"]["quantity"] == 100


def test_an_op_id_of_another_user_is_refused(make_device: MakeDevice, facility: str) -> None:
    one = make_device("health_worker", (f"facility:{facility}",))
    other = make_device("health_worker", (f"facility:{facility}",))
    change = one.change("patients", uuid7(), {"name": "A", "facility_id": facility})
    assert one.push([change])[0]["status"] == "applied"
    stolen = other.push([change])[0]
    assert stolen["status"] == "rejected"
    assert stolen["error"]["code"] == "VALIDATION_ERROR"
    assert stolen["error"]["details"]["field"] == "op_id"


def test_a_thousand_op_batch_in_one_request(make_device: MakeDevice, facility: str) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    changes = [
        nurse.change(
            "encounters",
            uuid7(),
            {"patient_id": f"p-{i % 50}", "facility_id": facility, "notes": "x" * 200},
        )
        for i in range(1000)
    ]
    results = nurse.push(changes)
    assert len(results) == 1000
    assert {r["status"] for r in results} == {"applied"}
    assert len({r["seq"] for r in results}) == 1000
    seen, _ = make_device("health_worker", (f"facility:{facility}",)).pull_all()
    assert len(seen) == 1000


def test_pull_pages_in_seq_order_without_gaps(make_device: MakeDevice, facility: str) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    nurse.push(
        [
            nurse.change("patients", uuid7(), {"name": str(i), "facility_id": facility})
            for i in range(25)
        ]
    )
    reader = make_device("health_worker", (f"facility:{facility}",))
    cursor, pages, seqs = "0", 0, []
    while True:
        body = reader.http.get("/v1/sync/pull", params={"since": cursor, "limit": 10}).json()
        pages += 1
        seqs += [int(c["seq"]) for c in body["changes"]]
        if body["has_more"]:
            assert len(body["changes"]) == 10  # a page is full whenever more follow
        cursor = body["cursor"]
        if not body["has_more"]:
            break
    assert pages == 3
    assert seqs == sorted(seqs) and len(seqs) == 25


def test_idle_pull_with_if_none_match_is_304_without_body(
    make_device: MakeDevice, facility: str
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    nurse.push([nurse.change("patients", uuid7(), {"name": "A", "facility_id": facility})])
    _, cursor = nurse.pull_all()
    first = nurse.http.get("/v1/sync/pull", params={"since": cursor})
    etag = first.headers["etag"]
    idle = nurse.http.get(
        "/v1/sync/pull", params={"since": cursor}, headers={"If-None-Match": etag}
    )
    assert idle.status_code == 304
    assert idle.content == b""
    nurse.push([nurse.change("patients", uuid7(), {"name": "B", "facility_id": facility})])
    fresh = nurse.http.get(
        "/v1/sync/pull", params={"since": cursor}, headers={"If-None-Match": etag}
    )
    assert fresh.status_code == 200
    assert [c["fields"]["name"] for c in fresh.json()["changes"]] == ["B"]


def test_large_pulls_are_gzip_compressed(make_device: MakeDevice, facility: str) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    nurse.push(
        [
            nurse.change(
                "encounters",
                uuid7(),
                {"patient_id": "p", "facility_id": facility, "notes": "fever " * 40},
            )
            for _ in range(50)
        ]
    )
    resp = nurse.http.get(
        "/v1/sync/pull", params={"since": "0"}, headers={"Accept-Encoding": "gzip"}
    )
    assert resp.headers["content-encoding"] == "gzip"
    assert int(resp.headers["content-length"]) < len(resp.content) / 3
    assert len(resp.json()["changes"]) == 50


def test_status_names_the_collections_and_the_device(
    make_device: MakeDevice, facility: str, shared_server: LiveServer
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    nurse.push([nurse.change("patients", uuid7(), {"name": "A", "facility_id": facility})])
    body = nurse.http.get("/v1/sync/status").json()
    policies = {c["name"]: c["policy"] for c in body["collections"]}
    assert policies["prescriptions"] == "manual"
    assert body["protocol_version"] == 1
    assert body["device"]["id"] == nurse.device_id
    assert body["device"]["last_push_at"].endswith("Z")


def test_a_patient_cannot_refile_their_log_under_another_facility(
    make_device: MakeDevice, facility: str
) -> None:
    pid = f"p-{uuid7()[-8:]}"
    patient = make_device("patient", (f"patient:{pid}",))
    log = uuid7()
    assert (
        patient.push([patient.change("symptom_logs", log, _log(facility, pid))])[0]["status"]
        == "applied"
    )
    moved = patient.push(
        [patient.change("symptom_logs", log, {"facility_id": "f-other"}, base_version=1)]
    )[0]
    assert moved["status"] == "rejected"
    assert moved["error"]["code"] == "FORBIDDEN"
    assert moved["error"]["details"]["scopes"] == ["facility:f-other"]


def test_a_cursor_is_only_valid_with_its_collections_filter(
    make_device: MakeDevice, facility: str
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    nurse.push([nurse.change("patients", uuid7(), {"name": "A", "facility_id": facility})])
    _, filtered = nurse.pull_all(collections="patients")
    _, unfiltered = nurse.pull_all()
    assert nurse.pull_all(since=filtered, collections="patients")[0] == {}
    for since, collections in (
        (filtered, None),
        (unfiltered, "patients"),
        (filtered, "patients,alerts"),
    ):
        params = {"since": since, **({"collections": collections} if collections else {})}
        resp = nurse.http.get("/v1/sync/pull", params=params)
        assert resp.status_code == 400
        assert resp.json()["error"]["details"]["field"] == "since"
