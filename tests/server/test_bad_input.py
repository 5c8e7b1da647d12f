"""A catalogue of bad input: each gets its documented code and a useful message, never a
5xx, and per-op errors never fail the rest of a batch."""

from __future__ import annotations

import gzip
import time
from typing import Any

import httpx
import jwt
import orjson
import pytest

from tests.server.conftest import MakeDevice
from tests.support import LiveServer, SyncApi
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.store import open_store


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["code"] == code
    assert len(error["message"]) > 10
    assert "Traceback" not in error["message"]
    return error


@pytest.fixture
def nurse(make_device: MakeDevice, facility: str) -> SyncApi:
    return make_device("health_worker", (f"facility:{facility}",))


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"device_id": "d-1"}', "changes"),
        (b'{"device_id": "d-1", "changes": "all of them"}', "changes"),
        (b'{"device_id": 7, "changes": []}', "device_id"),
        (b'{"device_id": "d-1", "changes": [], "extra": 1}', "extra"),
    ],
)
def test_malformed_push_bodies(nurse: SyncApi, content: bytes, field: str) -> None:
    resp = nurse.http.post(
        "/v1/sync/push", content=content, headers={"content-type": "application/json"}
    )
    assert _error(resp, 400, "VALIDATION_ERROR")["details"]["field"] == field


def test_per_op_errors_inside_an_otherwise_good_batch(nurse: SyncApi, facility: str) -> None:
    good = {"patient_id": "p-1", "facility_id": facility}
    item = uuid7()
    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            nurse.change("symptom_logs", uuid7(), {**good, "date": "2025-11-30", "severity": 42}),
            "VALIDATION_ERROR",
            "fields.severity",
        ),
        (
            nurse.change("symptom_logs", uuid7(), {**good, "date": "2025-11-31"}),
            "VALIDATION_ERROR",
            "fields.date",
        ),
        (
            nurse.change(
                "symptom_logs", uuid7(), {**good, "date": "2025-11-29", "severity": "high"}
            ),
            "VALIDATION_ERROR",
            "fields.severity",
        ),
        (
            nurse.change("encounters", uuid7(), {**good, "vitals": {"pulse": 900}}),
            "VALIDATION_ERROR",
            "fields.vitals.pulse",
        ),
        (
            nurse.change(
                "appointments",
                uuid7(),
                {**good, "scheduled_at": "2025-12-01T08:00:00Z", "status": "MAYBE"},
            ),
            "VALIDATION_ERROR",
            "fields.status",
        ),
        (
            nurse.change("patients", uuid7(), {"facility_id": facility}),
            "VALIDATION_ERROR",
            "fields.name",
        ),
        (
            nurse.change(
                "patients", uuid7(), {"name": "A", "facility_id": facility, "blood_type": "O"}
            ),
            "VALIDATION_ERROR",
            "fields.blood_type",
        ),
        (nurse.change("vaccinations", uuid7(), good), "VALIDATION_ERROR", "collection"),
        (
            {
                **nurse.change("patients", uuid7(), {"name": "A", "facility_id": facility}),
                "hlc": "yesterday",
            },
            "VALIDATION_ERROR",
            "hlc",
        ),
        ({**nurse.change("patients", uuid7(), {}), "op": "merge"}, "VALIDATION_ERROR", "op"),
        ({**nurse.change("patients", uuid7(), {}), "fields": [1]}, "VALIDATION_ERROR", "fields"),
        ({"collection": "patients"}, "VALIDATION_ERROR", "op_id"),
        (
            nurse.change(
                "pharmacy_inventory",
                item,
                {"facility_id": facility, "medicine_id": "m", "quantity": 5},
            ),
            "VALIDATION_ERROR",
            "fields.quantity",
        ),
        (
            nurse.change("pharmacy_inventory", uuid7(), {"quantity": -5}, op="increment"),
            "NOT_FOUND",
            "",
        ),
        (nurse.change("patients", uuid7(), {"phone": "1"}, base_version=3), "NOT_FOUND", ""),
        (nurse.change("medicines", uuid7(), {"name": "Aspirin"}), "FORBIDDEN", ""),
    ]
    batch = []
    for change, _, _ in cases:
        batch += [
            change,
            nurse.change("patients", uuid7(), {"name": "ok", "facility_id": facility}),
        ]
    results = nurse.push(batch)
    assert len(results) == len(batch)
    for i, (_, code, field) in enumerate(cases):
        bad, ok = results[2 * i], results[2 * i + 1]
        assert ok["status"] == "applied"
        assert bad["status"] == "rejected", (i, bad)
        assert bad["error"]["code"] == code, (i, bad)
        if field:
            assert bad["error"]["details"]["field"] == field, (i, bad)


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"since": "abc"}, 400, "VALIDATION_ERROR"),
        ({"since": "-1"}, 400, "VALIDATION_ERROR"),
        ({"since": "99999999999"}, 400, "VALIDATION_ERROR"),
        ({"limit": "0"}, 400, "VALIDATION_ERROR"),
        ({"limit": "many"}, 400, "VALIDATION_ERROR"),
        ({"collections": "patients,vaccinations"}, 400, "VALIDATION_ERROR"),
    ],
)
def test_bad_pull_parameters(
    nurse: SyncApi, params: dict[str, str], status: int, code: str
) -> None:
    _error(nurse.http.get("/v1/sync/pull", params=params), status, code)


def test_pull_limit_above_the_maximum_is_clamped(nurse: SyncApi) -> None:
    assert nurse.http.get("/v1/sync/pull", params={"limit": "100000"}).status_code == 200


def test_oversized_bodies_are_413(nurse: SyncApi) -> None:
    big = b'{"device_id": "x", "changes": ["' + b"a" * (17 * 1024 * 1024) + b'"]}'
    resp = nurse.http.post(
        "/v1/sync/push", content=big, headers={"content-type": "application/json"}
    )
    assert _error(resp, 413, "PAYLOAD_TOO_LARGE")["details"]["limit"] == 16 * 1024 * 1024
    bomb = gzip.compress(b"{" + b" " * (17 * 1024 * 1024) + b"}")
    assert len(bomb) < 100_000
    resp = nurse.http.post(
        "/v1/sync/push",
        content=bomb,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    _error(resp, 413, "PAYLOAD_TOO_LARGE")


def test_gzip_request_bodies_are_accepted_and_bad_encodings_refused(
    nurse: SyncApi, facility: str
) -> None:
    body = {
        "device_id": nurse.device_id,
        "changes": [nurse.change("patients", uuid7(), {"name": "gz", "facility_id": facility})],
    }
    resp = nurse.http.post(
        "/v1/sync/push",
        content=gzip.compress(orjson.dumps(body)),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert resp.json()["results"][0]["status"] == "applied"
    resp = nurse.http.post(
        "/v1/sync/push", content=b"not gzip", headers={"content-encoding": "gzip"}
    )
    _error(resp, 400, "VALIDATION_ERROR")
    resp = nurse.http.post("/v1/sync/push", content=b"{}", headers={"content-encoding": "br"})
    _error(resp, 400, "VALIDATION_ERROR")


def test_too_many_changes_in_one_push(nurse: SyncApi) -> None:
    resp = nurse.http.post(
        "/v1/sync/push", json={"device_id": nurse.device_id, "changes": [{}] * 5001}
    )
    _error(resp, 400, "VALIDATION_ERROR")


def test_tokens_and_passwords(shared_server: LiveServer, nurse: SyncApi) -> None:
    url = shared_server.url
    pull = f"{url}/v1/sync/pull"
    assert "bearer" in _error(httpx.get(pull), 401, "UNAUTHORIZED")["message"]
    _error(httpx.get(pull, headers={"Authorization": "Bearer nonsense"}), 401, "UNAUTHORIZED")
    _error(httpx.get(pull, headers={"Authorization": "Basic abc"}), 401, "UNAUTHORIZED")
    forged = jwt.encode(
        {"sub": nurse.user["id"], "dev": nurse.device_id, "exp": int(time.time()) + 60},
        "a signing key that is not the server key",
        algorithm="HS256",
    )
    _error(httpx.get(pull, headers={"Authorization": f"Bearer {forged}"}), 401, "UNAUTHORIZED")
    login = f"{url}/v1/auth/token"
    wrong = httpx.post(login, json={"username": nurse.user["username"], "password": "nope"})
    assert _error(wrong, 401, "UNAUTHORIZED")["message"] == "wrong username or password"
    nobody = httpx.post(login, json={"username": "nobody-at-all", "password": "pw"})
    assert _error(nobody, 401, "UNAUTHORIZED")["message"] == "wrong username or password"
    _error(httpx.post(login, json={"username": "x"}), 400, "VALIDATION_ERROR")


def test_expired_token_says_how_to_recover(shared_server: LiveServer) -> None:
    store = open_store(shared_server.db_url, health_schema())
    key = store.signing_key
    store.close()
    expired = jwt.encode({"sub": "u", "exp": int(time.time()) - 10}, key, algorithm="HS256")
    resp = httpx.get(
        f"{shared_server.url}/v1/sync/pull", headers={"Authorization": f"Bearer {expired}"}
    )
    error = _error(resp, 401, "UNAUTHORIZED")
    assert error["details"]["reason"] == "expired"
    assert "refresh" in error["message"]


def test_sync_needs_a_device_token_and_the_right_device(
    shared_server: LiveServer, nurse: SyncApi
) -> None:
    login = httpx.post(
        f"{shared_server.url}/v1/auth/token",
        json={"username": nurse.user["username"], "password": "pw"},
    ).json()
    user_only = {"Authorization": f"Bearer {login['access_token']}"}
    resp = httpx.post(
        f"{shared_server.url}/v1/sync/push",
        headers=user_only,
        json={"device_id": "d-x", "changes": []},
    )
    assert "POST /v1/devices" in _error(resp, 403, "FORBIDDEN")["message"]
    resp = nurse.http.post("/v1/sync/push", json={"device_id": "d-someone-else", "changes": []})
    _error(resp, 403, "FORBIDDEN")


def test_unknown_endpoints_and_methods(nurse: SyncApi) -> None:
    _error(nurse.http.get("/v1/nothing-here"), 404, "NOT_FOUND")
    _error(nurse.http.delete("/v1/sync/push"), 405, "METHOD_NOT_ALLOWED")


def test_records_endpoint_errors(nurse: SyncApi, facility: str, make_device: MakeDevice) -> None:
    pid = uuid7()
    nurse.push([nurse.change("patients", pid, {"name": "A", "facility_id": facility})])
    record = nurse.http.get(f"/v1/records/patients/{pid}")
    assert record.headers["etag"] == '"1"'
    updated = nurse.http.put(
        f"/v1/records/patients/{pid}", json={"fields": {"phone": "1"}}, headers={"If-Match": '"1"'}
    )
    assert updated.status_code == 200
    assert updated.headers["etag"] == '"2"'
    stale = nurse.http.put(
        f"/v1/records/patients/{pid}", json={"fields": {"phone": "2"}}, headers={"If-Match": '"1"'}
    )
    assert _error(stale, 409, "STALE_UPDATE")["details"]["version"] == 2
    _error(
        nurse.http.put(f"/v1/records/patients/{pid}", json={"fields": {"sex": "x"}}),
        400,
        "VALIDATION_ERROR",
    )
    _error(
        nurse.http.put(f"/v1/records/patients/{pid}", json={"phone": "1"}), 400, "VALIDATION_ERROR"
    )
    _error(
        nurse.http.put(
            f"/v1/records/patients/{pid}", json={"fields": {}}, headers={"If-Match": "yesterday"}
        ),
        400,
        "VALIDATION_ERROR",
    )
    # a PUT is held to a pushed op's rules: an id or fields a push would refuse
    bad_id = nurse.http.put(
        f"/v1/records/patients/{'r' * 129}", json={"fields": {"name": "A", "facility_id": facility}}
    )
    assert _error(bad_id, 400, "VALIDATION_ERROR")["details"] == {"field": "record_id"}
    too_big = nurse.http.put(f"/v1/records/patients/{pid}", json={"fields": {"phone": 2**60}})
    assert _error(too_big, 400, "VALIDATION_ERROR")["details"] == {"field": "fields.phone"}
    _error(nurse.http.get(f"/v1/records/patients/{uuid7()}"), 404, "NOT_FOUND")
    _error(nurse.http.get(f"/v1/records/vaccinations/{pid}"), 404, "NOT_FOUND")
    stranger = make_device("health_worker", ("facility:f-elsewhere",))
    _error(stranger.http.get(f"/v1/records/patients/{pid}"), 404, "NOT_FOUND")


def test_the_server_logged_no_crash(shared_server: LiveServer) -> None:
    """Runs last in this module: nothing above made the server fail internally."""
    assert "Traceback" not in shared_server.log()
    assert httpx.get(f"{shared_server.url}/healthz").status_code == 200
