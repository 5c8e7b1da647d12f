"""The audit trail over HTTP (hole 9): what the server records — above all which device
received which patient's records — and ``GET /v1/audit``, for administrators alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.conftest import MakeDevice
from tests.support import LiveServer, SyncApi
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.store import SqlStore, open_store


@pytest.fixture
def server_store(shared_server: LiveServer) -> Iterator[SqlStore]:
    """The server's own database, read in-process (the chain's head and verification)."""
    store = open_store(shared_server.db_url, health_schema())
    yield store
    store.close()


def audit(admin: SyncApi, **params: Any) -> list[dict[str, Any]]:
    resp = admin.http.get("/v1/audit", params=params)
    assert resp.status_code == 200, resp.text
    entries: list[dict[str, Any]] = resp.json()["entries"]
    return entries


def without_reads(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries other than the admin's own reads of the trail."""
    return [e for e in entries if e["action"] != "audit.read"]


def test_hole_9_a_pull_records_which_device_received_which_patients_records(
    make_device: MakeDevice, facility: str, server_store: SqlStore
) -> None:
    writer = make_device("health_worker", (f"facility:{facility}",))
    reader = make_device("health_worker", (f"facility:{facility}",))
    elsewhere = make_device("health_worker", (f"facility:{facility}-b",))
    patient, other = uuid7(), uuid7()
    results = writer.push(
        [
            writer.change("patients", patient, {"name": "Akinyi", "facility_id": facility}),
            writer.change("encounters", uuid7(), {"patient_id": patient, "facility_id": facility}),
            writer.change(
                "encounters",
                uuid7(),
                {"patient_id": patient, "facility_id": facility, "vitals": {"pulse": 900}},
            ),  # rejected
        ]
    )
    assert [r["status"] for r in results] == ["applied", "applied", "rejected"]
    elsewhere.push(
        [elsewhere.change("patients", other, {"name": "Otieno", "facility_id": f"{facility}-b"})]
    )
    seen, cursor = reader.pull_all()
    assert len(seen) == 2
    admin = make_device("admin")

    [pulled] = without_reads(audit(admin, scope=f"patient:{patient}"))  # a pull alone
    assert pulled["action"] == "sync.pull"
    assert (pulled["device_id"], pulled["user_id"]) == (reader.device_id, reader.user["id"])
    assert pulled["client_address"] == "127.0.0.1"
    assert pulled["outcome"] == "ok"
    assert pulled["scopes"] == sorted([f"facility:{facility}", f"patient:{patient}"])
    assert pulled["details"]["count"] == 2
    assert (pulled["details"]["since"], pulled["details"]["cursor"]) == ("0", cursor)
    at = dt.datetime.fromisoformat(pulled["at"])
    assert abs((dt.datetime.now(dt.UTC) - at).total_seconds()) < 60
    # no device received the other facility's patient
    assert without_reads(audit(admin, scope=f"patient:{other}")) == []

    [pushed] = audit(admin, device_id=writer.device_id, action="sync.push")
    assert pushed["user_id"] == writer.user["id"]
    assert pushed["details"] == {"ops": 3, "by_status": {"applied": 2, "rejected": 1}}
    assert pushed["scopes"] == []  # the ops themselves are in the op log
    assert server_store.verify_audit().ok


def test_hole_9_an_idle_pull_writes_nothing(
    make_device: MakeDevice, facility: str, server_store: SqlStore
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    nurse.push([nurse.change("patients", uuid7(), {"name": "Wanjiru", "facility_id": facility})])
    first = nurse.http.get("/v1/sync/pull", params={"since": "0"})
    assert first.status_code == 200 and len(first.json()["changes"]) == 1
    cursor = first.json()["cursor"]
    head = server_store.audit_head()
    idle = nurse.http.get(
        "/v1/sync/pull", params={"since": cursor}, headers={"If-None-Match": f'"{cursor}"'}
    )
    assert idle.status_code == 304
    again = nurse.http.get(
        "/v1/sync/pull", params={"since": "0"}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304  # a page the device already has: not delivered again
    empty = nurse.http.get("/v1/sync/pull", params={"since": cursor})
    assert empty.status_code == 200 and empty.json()["changes"] == []
    assert server_store.audit_head() == head


def test_hole_9_only_admins_read_the_audit_log(
    make_device: MakeDevice, facility: str, shared_server: LiveServer
) -> None:
    refused = []
    for role in ("health_worker", "pharmacist", "patient"):
        api = make_device(role, (f"facility:{facility}",))
        resp = api.http.get("/v1/audit")
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "FORBIDDEN"
        refused.append(api.user["id"])
    assert httpx.get(f"{shared_server.url}/v1/audit").status_code == 401
    admin = make_device("admin")
    for user_id in refused:  # the attempts are themselves on the record
        [attempt] = audit(admin, user_id=user_id, action="audit.read")
        assert attempt["outcome"] == "denied"


def test_filters_paging_and_no_store(make_device: MakeDevice, facility: str) -> None:
    admin = make_device("admin")
    nurses = [make_device("health_worker", (f"facility:{facility}",)) for _ in range(3)]
    for nurse in nurses:
        nurse.push([nurse.change("patients", uuid7(), {"name": "Juma", "facility_id": facility})])
    resp = admin.http.get("/v1/audit", params={"action": "sync.push", "limit": 1})
    assert resp.headers["cache-control"] == "no-store"
    mine = [
        e
        for e in audit(admin, action="sync.push", limit=1000)
        if e["user_id"] in {n.user["id"] for n in nurses}
    ]
    assert [e["device_id"] for e in mine] == [n.device_id for n in nurses]  # oldest first
    [only] = audit(admin, user_id=nurses[1].user["id"], action="sync.push")
    assert only["device_id"] == nurses[1].device_id
    assert len(audit(admin, device_id=nurses[2].device_id, action="sync.push")) == 1

    # paging: after = the last id of the previous page
    ids = [e["id"] for e in mine]
    page = admin.http.get(
        "/v1/audit", params={"action": "sync.push", "after": ids[0], "limit": 1}
    ).json()
    assert [e["id"] for e in page["entries"]] == [ids[1]]
    assert page["has_more"] is True
    last = admin.http.get("/v1/audit", params={"action": "sync.push", "after": ids[-1]}).json()
    assert last == {"entries": [], "has_more": False}

    now = dt.datetime.now(dt.UTC)
    hour = dt.timedelta(hours=1)
    assert audit(admin, user_id=nurses[0].user["id"], since=(now + hour).isoformat()) == []
    assert audit(admin, user_id=nurses[0].user["id"], until=(now - hour).isoformat()) == []
    within = audit(
        admin,
        user_id=nurses[0].user["id"],
        since=(now - hour).isoformat(),
        until=(now + hour).isoformat(),
    )
    assert [e["action"] for e in within] == ["auth.login", "device.register", "sync.push"]

    # the admin's reads are recorded, with what was asked
    reads = audit(admin, user_id=admin.user["id"], action="audit.read")
    assert reads[0]["details"]["filters"] == {"action": "sync.push", "limit": 1}

    for params, field in (
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-11-30"}, "until"),
        ({"after": "x"}, "after"),
        ({"limit": 0}, "limit"),
    ):
        bad = admin.http.get("/v1/audit", params=params)
        assert bad.status_code == 400, params
        assert bad.json()["error"]["details"] == {"field": field}


def test_hole_9_records_stats_reads_record_reads_and_writes_and_resolutions(
    make_device: MakeDevice, facility: str
) -> None:
    admin = make_device("admin")
    nurse = make_device("health_worker", (f"facility:{facility}",))
    patient = uuid7()
    assert (
        admin.http.get("/v1/sync/stats", params={"device_id": nurse.device_id}).status_code == 200
    )
    assert nurse.http.get("/v1/sync/stats").status_code == 403

    put = nurse.http.put(
        f"/v1/records/patients/{patient}",
        json={"fields": {"name": "Achieng", "facility_id": facility}},
    )
    assert put.status_code == 200, put.text
    assert nurse.http.get(f"/v1/records/patients/{patient}").status_code == 200

    log = {"patient_id": patient, "facility_id": facility, "date": "2025-11-30"}
    first = nurse.change("symptom_logs", uuid7(), log)
    second = nurse.change("symptom_logs", uuid7(), log)  # same patient and day: conflict
    held = nurse.push([first, second])[1]
    assert held["status"] == "conflict"
    resolved = nurse.http.post(
        f"/v1/conflicts/{held['conflict_id']}/resolve", json={"resolution": "server_wins"}
    )
    assert resolved.status_code == 200, resolved.text

    [stats_read] = audit(admin, user_id=admin.user["id"], action="stats.read")
    assert stats_read["details"]["filters"] == {"device_id": nurse.device_id}
    [denied] = audit(admin, user_id=nurse.user["id"], action="stats.read")
    assert denied["outcome"] == "denied"
    by_nurse = {e["action"]: e for e in audit(admin, user_id=nurse.user["id"])}
    assert by_nurse["record.put"]["target"] == f"record:patients/{patient}"
    assert by_nurse["record.put"]["scopes"] == sorted(
        [f"facility:{facility}", f"patient:{patient}"]
    )
    assert by_nurse["record.put"]["details"]["status"] == "applied"
    assert by_nurse["record.get"]["target"] == f"record:patients/{patient}"
    assert by_nurse["record.get"]["scopes"] == by_nurse["record.put"]["scopes"]
    resolution = by_nurse["conflict.resolve"]
    assert resolution["target"] == f"conflict:{held['conflict_id']}"
    assert resolution["details"]["resolution"] == "server_wins"
    assert resolution["scopes"] == sorted([f"facility:{facility}", f"patient:{patient}"])


def test_hole_9_logins_refreshes_and_registrations_are_recorded(
    shared_server: LiveServer,
    make_device: MakeDevice,
    facility: str,
) -> None:
    admin = make_device("admin")
    nurse = make_device("health_worker", (f"facility:{facility}",))
    url = shared_server.url
    wrong = httpx.post(
        f"{url}/v1/auth/token",
        json={"username": nurse.user["username"], "password": "nope"},
        headers={"X-Forwarded-For": "10.20.30.40"},
        timeout=60,
    )
    assert wrong.status_code == 401
    typed = f"hunter2-typed-as-a-name-{uuid7()[-6:]}"
    httpx.post(f"{url}/v1/auth/token", json={"username": typed, "password": "x"}, timeout=60)
    logins = audit(admin, user_id=nurse.user["id"], action="auth.login")
    assert [(e["outcome"], e["details"].get("reason")) for e in logins] == [
        ("ok", None),
        ("denied", "password"),
    ]
    assert logins[1]["client_address"] == "10.20.30.40"
    unknown = [
        e
        for e in audit(admin, action="auth.login", limit=1000)
        if e["details"].get("reason") == "unknown_user"
    ]
    assert unknown and all(typed not in str(e) for e in unknown)  # kept as a hash only
    [registered] = audit(admin, user_id=nurse.user["id"], action="device.register")
    assert registered["target"] == f"device:{nurse.device_id}"

    token = httpx.post(
        f"{url}/v1/auth/token", json={"username": nurse.user["username"], "password": "pw"}
    ).json()["access_token"]
    reg = httpx.post(
        f"{url}/v1/devices", json={"name": "t2"}, headers={"Authorization": f"Bearer {token}"}
    ).json()
    first = httpx.post(f"{url}/v1/auth/refresh", json={"refresh_token": reg["refresh_token"]})
    again = httpx.post(f"{url}/v1/auth/refresh", json={"refresh_token": reg["refresh_token"]})
    assert (first.status_code, again.status_code) == (200, 401)
    refreshes = audit(admin, device_id=reg["device_id"], action="auth.refresh")
    assert [(e["outcome"], e["details"].get("reason")) for e in refreshes] == [
        ("ok", None),
        ("denied", "refresh_reused"),
    ]
