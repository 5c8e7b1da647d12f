"""``GET /v1/sync/stats``: what an administrator reads to find the devices that are behind,
failing or conflicting."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.server.conftest import MakeDevice
from tests.support import LiveServer, SyncApi
from waystation.core.ids import uuid7


def stats(admin: SyncApi, **params: Any) -> dict[str, Any]:
    resp = admin.http.get("/v1/sync/stats", params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def created_ago(change: dict[str, Any], seconds: int) -> dict[str, Any]:
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    return {**change, "created_at_client": moment.isoformat().replace("+00:00", "Z")}


def test_counts_every_op_received_by_outcome(make_device: MakeDevice, facility: str) -> None:
    admin = make_device("admin")
    tablet = make_device("health_worker", (f"facility:{facility}",))
    phone_user = f"p-{uuid7()[-10:]}"
    log = {"patient_id": phone_user, "facility_id": facility, "date": "2025-11-30"}
    first = tablet.change("symptom_logs", uuid7(), log)
    results = tablet.push(
        [
            first,
            tablet.change("patients", uuid7(), {"name": "Wanjiru", "facility_id": facility}),
            tablet.change("symptom_logs", uuid7(), {**log, "severity": 99}),  # rejected
            tablet.change("symptom_logs", uuid7(), log),  # same patient and day: conflict
        ]
    )
    assert [r["status"] for r in results] == ["applied", "applied", "rejected", "conflict"]
    assert tablet.push([first])[0]["status"] == "duplicate"  # a lost ack, re-sent

    body = stats(admin, device_id=tablet.device_id)
    assert {
        k: body[k]
        for k in ("total", "applied", "duplicate", "conflicts", "rejected", "open_conflicts")
    } == {
        "total": 5,
        "applied": 2,
        "duplicate": 1,
        "conflicts": 1,
        "rejected": 1,
        "open_conflicts": 1,
    }
    assert body["sync_rate"] == 3 / 5
    [device] = body["by_device"]
    assert device["device_id"] == tablet.device_id
    assert device["user_id"] == tablet.user["id"]
    assert {k: device[k] for k in ("total", "applied", "conflicts", "rejected")} == {
        "total": 5,
        "applied": 2,
        "conflicts": 1,
        "rejected": 1,
    }
    assert device["last_push_at"] is not None
    assert device["last_pull_at"] is None
    tablet.pull_all()
    [device] = stats(admin, device_id=tablet.device_id)["by_device"]
    assert device["last_pull_at"] is not None


def test_filters_by_user_and_time(make_device: MakeDevice, facility: str) -> None:
    admin = make_device("admin")
    nurse = make_device("health_worker", (f"facility:{facility}",))
    other = make_device("health_worker", (f"facility:{facility}",))
    for api in (nurse, other):
        api.push([api.change("patients", uuid7(), {"name": "Juma", "facility_id": facility})])
    mine = stats(admin, user_id=nurse.user["id"])
    assert mine["total"] == 1
    assert [d["device_id"] for d in mine["by_device"]] == [nurse.device_id]

    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    later = stats(admin, user_id=nurse.user["id"], since=tomorrow)
    assert later["total"] == 0
    assert later["sync_rate"] is None
    # the device is still listed: it is the one that has sent nothing since
    assert [(d["device_id"], d["total"]) for d in later["by_device"]] == [(nurse.device_id, 0)]


def test_delay_is_receive_time_minus_client_creation_time(
    make_device: MakeDevice, facility: str
) -> None:
    admin = make_device("admin")
    tablet = make_device("health_worker", (f"facility:{facility}",))
    ages = [60, 120, 180, 240, 3600]  # an hour offline for the last one
    tablet.push(
        [
            created_ago(
                tablet.change("patients", uuid7(), {"name": "N", "facility_id": facility}), age
            )
            for age in ages
        ]
    )
    delay = stats(admin, device_id=tablet.device_id)["delay_ms"]
    assert 180_000 <= delay["p50"] < 190_000  # nearest rank: the 3rd of 5
    assert 3_600_000 <= delay["p95"] < 3_610_000


def test_only_admins_read_stats_and_since_must_be_rfc_3339(
    make_device: MakeDevice, facility: str
) -> None:
    for role in ("health_worker", "pharmacist", "patient"):
        api = make_device(role, (f"facility:{facility}",))
        resp = api.http.get("/v1/sync/stats")
        assert resp.status_code == 403
        assert resp.json()["error"]["code"] == "FORBIDDEN"
    admin = make_device("admin")
    for bad in ("yesterday", "2025-11-30", "2025-11-30T10:00:00"):
        resp = admin.http.get("/v1/sync/stats", params={"since": bad})
        assert resp.status_code == 400, bad
        assert resp.json()["error"]["details"] == {"field": "since"}


def test_an_idle_server_answers_with_empty_stats(live_server: LiveServer) -> None:
    live_server.add_user("root", "admin")
    admin = SyncApi(live_server.url, "root")
    try:
        body = stats(admin)
    finally:
        admin.close()
    assert body == {
        "total": 0,
        "applied": 0,
        "duplicate": 0,
        "conflicts": 0,
        "rejected": 0,
        "open_conflicts": 0,
        "sync_rate": None,
        "delay_ms": {"p50": None, "p95": None},
        "by_device": [
            {
                "device_id": admin.device_id,
                "user_id": admin.user["id"],
                "total": 0,
                "applied": 0,
                "duplicate": 0,
                "conflicts": 0,
                "rejected": 0,
                "last_push_at": None,
                "last_pull_at": None,
                "revoked": False,
            }
        ],
    }
