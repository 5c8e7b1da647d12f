"""A NUL character (U+0000) anywhere a client can put one is bad input, answered like any
other (400 VALIDATION_ERROR naming the field, or a rejected op), never a 500.

PostgreSQL text cannot hold NUL, so before these checks a NUL in a lookup (a username, a
record id in a URL, a conflict id, a stats filter, a refresh token's device) or in a stored
value (a device name, a pushed op's collection, clock or field value) failed the request
with a 500 on PostgreSQL (and a whole push batch with it); schemathesis found them
(test_openapi_conformance.py). A stats ``since`` ending in a NUL was read as the time
before it (``datetime.fromisoformat`` stops at a NUL).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.conftest import MakeDevice
from tests.support import SyncApi
from waystation.core.ids import uuid7

NUL = "\x00"
ENCODED = "%00"  # NUL in a URL


def _validation_error(resp: httpx.Response) -> str:
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    field: str = error["details"]["field"]
    return field


@pytest.fixture
def admin(make_device: MakeDevice) -> SyncApi:
    return make_device("admin")


@pytest.mark.parametrize(
    ("method", "url", "field"),
    [
        ("GET", f"/v1/records/patients/p{ENCODED}1", "record_id"),
        ("PUT", f"/v1/records/patients/p{ENCODED}1", "record_id"),
        ("GET", f"/v1/conflicts/c{ENCODED}1", "conflict_id"),
        ("POST", f"/v1/conflicts/c{ENCODED}1/resolve", "conflict_id"),
        ("GET", f"/v1/conflicts?after=c{ENCODED}1", "after"),
        ("GET", f"/v1/conflicts?collection=patients{ENCODED}", "collection"),
        ("GET", f"/v1/sync/stats?user_id=u{ENCODED}1", "user_id"),
        ("GET", f"/v1/sync/stats?device_id=d{ENCODED}1", "device_id"),
        ("GET", f"/v1/sync/stats?since=2025-11-30T00:00:00Z{ENCODED}", "since"),
    ],
)
def test_hole_11_a_nul_in_a_url_is_a_400_not_a_500(
    admin: SyncApi, method: str, url: str, field: str
) -> None:
    body = (
        {"fields": {"name": "x"}}
        if method == "PUT"
        else ({"resolution": "server_wins"} if method == "POST" else None)
    )
    resp = admin.http.request(method, url, json=body)
    assert _validation_error(resp) == field


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/v1/auth/token", {"username": f"admin{NUL}", "password": "pw"}, "username"),
        ("/v1/devices", {"name": f"tablet{NUL}"}, "name"),
        ("/v1/auth/refresh", {"refresh_token": f"d-1{NUL}.{'x' * 43}"}, "refresh_token"),
    ],
)
def test_hole_11_a_nul_in_a_body_is_a_400_not_a_500(
    admin: SyncApi, url: str, body: dict[str, Any], field: str
) -> None:
    login = admin.http.post(
        "/v1/auth/token", json={"username": admin.user["username"], "password": "pw"}
    )
    user_token = login.json()["access_token"]  # only a user token registers devices
    resp = admin.http.post(url, json=body, headers={"Authorization": f"Bearer {user_token}"})
    assert _validation_error(resp) == field


def test_hole_11_a_nul_in_an_op_rejects_that_op_alone(admin: SyncApi) -> None:
    good = admin.change("patients", uuid7(), {"name": "Achieng", "facility_id": "f-nul"})
    bad = [
        (
            {
                **admin.change("patients", uuid7(), {"name": "x", "facility_id": "f-nul"}),
                "collection": f"patients{NUL}",
            },
            "collection",
        ),
        (
            {
                **admin.change("patients", uuid7(), {"name": "x", "facility_id": "f-nul"}),
                "hlc": f"001764496800000-00000-d{NUL}",
            },
            "hlc",
        ),
        (
            admin.change("patients", uuid7(), {"name": "x", "facility_id": f"f{NUL}"}),
            "fields.facility_id",
        ),
        (
            admin.change("patients", uuid7(), {"name": f"x{NUL}", "facility_id": "f-nul"}),
            "fields.name",
        ),
    ]
    results = admin.push([good, *(op for op, _ in bad)])
    assert results[0]["status"] == "applied", results[0]
    for (_, field), result in zip(bad, results[1:], strict=True):
        assert result["status"] == "rejected", result
        assert result["error"]["code"] == "VALIDATION_ERROR"
        assert result["error"]["details"]["field"] == field
