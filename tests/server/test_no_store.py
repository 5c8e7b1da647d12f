"""Issue 11, hole 10: answers that carry patient data or tokens say ``Cache-Control:
no-store``, so no browser, proxy or shared cache keeps a copy (304s and errors too)."""

from __future__ import annotations

import httpx

from tests.server.conftest import MakeDevice
from tests.support import LiveServer, SyncApi
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.server.app import api_routes
from waystation.server.openapi import build_openapi


def no_store(response: httpx.Response) -> bool:
    return bool(response.headers.get("cache-control") == "no-store")


def test_hole_10_every_data_and_token_answer_is_no_store(
    shared_server: LiveServer, make_device: MakeDevice, facility: str
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    admin = make_device("admin")
    record = uuid7()
    answers: dict[str, httpx.Response] = {}

    with httpx.Client(base_url=shared_server.url, timeout=30) as anonymous:
        answers["token"] = anonymous.post(
            "/v1/auth/token", json={"username": nurse.user["username"], "password": "pw"}
        )
        answers["token refused"] = anonymous.post(
            "/v1/auth/token", json={"username": nurse.user["username"], "password": "wrong"}
        )
        user_token = answers["token"].json()["access_token"]
        answers["devices"] = anonymous.post(
            "/v1/devices",
            json={"name": "t", "device_id": f"d-{uuid7()[-16:]}"},
            headers={"Authorization": f"Bearer {user_token}"},
        )
        answers["refresh"] = anonymous.post(
            "/v1/auth/refresh", json={"refresh_token": answers["devices"].json()["refresh_token"]}
        )
        answers["no token"] = anonymous.get("/v1/sync/pull")

    http = nurse.http
    answers["push"] = http.post(
        "/v1/sync/push",
        json={
            "device_id": nurse.device_id,
            "changes": [
                nurse.change("patients", record, {"name": "Nadia", "facility_id": facility})
            ],
        },
    )
    pulled = http.get("/v1/sync/pull", params={"since": "0"})
    answers["pull"] = pulled
    answers["pull 304"] = http.get(
        "/v1/sync/pull", params={"since": "0"}, headers={"If-None-Match": pulled.headers["etag"]}
    )
    answers["status"] = http.get("/v1/sync/status")
    answers["events"] = http.get(
        "/v1/sync/events", params={"since": pulled.json()["cursor"], "wait": "0.1"}
    )
    answers["record"] = http.get(f"/v1/records/patients/{record}")
    answers["record put"] = http.put(
        f"/v1/records/patients/{record}",
        json={"fields": {"village": "Kisumu"}},
        headers={"If-Match": answers["record"].headers["etag"]},
    )
    answers["conflicts"] = http.get("/v1/conflicts", params={"status": "open"})
    answers["stats"] = admin.http.get("/v1/sync/stats")
    answers["audit"] = admin.http.get("/v1/audit")

    assert answers["pull 304"].status_code == 304
    assert answers["token refused"].status_code == 401
    failed = {
        name: response.status_code
        for name, response in answers.items()
        if response.status_code >= 500
    }
    assert not failed
    missing = {
        name: response.headers.get("cache-control")
        for name, response in answers.items()
        if not no_store(response)
    }
    assert missing == {}


def test_an_idle_sync_is_still_answered_304_with_no_store(make_device: MakeDevice) -> None:
    """no-store keeps caches from storing an answer; a client's own If-None-Match still
    gets a 304 (the SDK remembers the ETag itself)."""
    device: SyncApi = make_device("health_worker", ("facility:f-nowhere",))
    first = device.http.get("/v1/sync/pull", params={"since": "0"})
    again = device.http.get(
        "/v1/sync/pull", params={"since": "0"}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert (first.status_code, again.status_code) == (200, 304)
    assert no_store(first) and no_store(again)


def test_health_probes_carry_no_cache_header(shared_server: LiveServer) -> None:
    assert "cache-control" not in httpx.get(f"{shared_server.url}/healthz").headers


def test_the_openapi_document_names_no_store_on_every_api_answer() -> None:
    """Every status of every ``/v1/`` operation (401s included) documents the header the
    server sends; the health probes, which carry none, document none."""
    doc = build_openapi(health_schema(), api_routes())
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            for status, answer in operation["responses"].items():
                named = "Cache-Control" in answer.get("headers", {})
                assert named == path.startswith("/v1/"), (method, path, status)
