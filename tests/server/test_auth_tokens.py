"""Access tokens in their compact form ``<kind>.<subject>.<gen>.<expiry>.<mac>``: short (they ride
on every request, and an idle sync is one small 304), yet bound to one device, expiring and
tamper-proof; JWTs issued before the compact form keep working until they expire."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.server.conftest import MakeDevice
from tests.support import LiveServer, SyncApi
from waystation.core.errors import Unauthorized
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.server.auth import TokenClaims, _mac, issue_token, verify_token
from waystation.store import SqlStore, open_store

TTL = 30 * 24 * 3600


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    if status == 401:
        assert resp.headers["www-authenticate"] == "Bearer"
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == code
    return error


def _pull(server: LiveServer, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/sync/pull", headers={"Authorization": f"Bearer {token}"})


def _refused(server: LiveServer, token: str) -> None:
    """401 UNAUTHORIZED as a bad token, never mistaken for an expired one."""
    error = _error(_pull(server, token), 401, "UNAUTHORIZED")
    assert error["details"] == {}, token


@pytest.fixture
def nurse(make_device: MakeDevice, facility: str) -> SyncApi:
    return make_device("health_worker", (f"facility:{facility}",))


def test_a_device_token_is_compact_and_syncs(shared_server: LiveServer, nurse: SyncApi) -> None:
    match = re.fullmatch(
        r"d\.([A-Za-z0-9_-]+)\.([0-9]+)\.([0-9]+)\.([A-Za-z0-9_-]{22})", nurse.token
    )
    assert match is not None, nurse.token
    assert match.group(1) == nurse.device_id
    assert match.group(2) == "0"  # the device's session generation
    assert abs(int(match.group(3)) - (time.time() + TTL)) < 60
    # 2 + 18 (a device id as the SDK makes them) + 2 + 1 + 10 + 1 + 22: a JWT was ~190
    assert len(nurse.token) == 56
    assert _pull(shared_server, nurse.token).status_code == 200


def test_a_user_token_names_the_user_and_cannot_sync(
    shared_server: LiveServer, nurse: SyncApi
) -> None:
    login = httpx.post(
        f"{shared_server.url}/v1/auth/token",
        json={"username": nurse.user["username"], "password": "pw"},
    ).json()
    token = login["access_token"]
    assert token.startswith(f"u.{nurse.user['id']}.0.")
    assert login["expires_in"] == 3600  # a user token only registers devices
    _error(_pull(shared_server, token), 403, "FORBIDDEN")
    status = httpx.get(
        f"{shared_server.url}/v1/sync/status", headers={"Authorization": f"Bearer {token}"}
    )
    assert status.status_code == 200
    assert status.json()["device"] is None


def test_tampered_tokens_are_refused(
    shared_server: LiveServer, nurse: SyncApi, make_device: MakeDevice, facility: str
) -> None:
    other = make_device("health_worker", (f"facility:{facility}",))
    kind, device, gen, expiry, mac = nurse.token.split(".")
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    for token in (
        f"{kind}.{other.device_id}.{gen}.{expiry}.{mac}",  # another device, same MAC
        f"{kind}.{device}.{gen}.{int(expiry) + 86400}.{mac}",  # a longer life
        f"{kind}.{device}.{int(gen) + 1}.{expiry}.{mac}",  # a later generation
        f"{kind}.{device}.{expiry}.{mac}",  # the generation dropped
        f"u.{nurse.user['id']}.{gen}.{expiry}.{mac}",  # a user token made of a device token
        f"{kind}.{device}.{gen}.{expiry}.{flipped}",
        f"{kind}.{device}.{gen}.{expiry}.{mac[:-1]}",
        f"{kind}.{device}.{gen}.{expiry}",
        f"{nurse.token}.",
        f"x.{device}.{gen}.{expiry}.{mac}",
        f"{kind}.{device}.{gen}.-{expiry}.{mac}",
        nurse.token.upper(),
    ):
        _refused(shared_server, token)
    assert _pull(shared_server, nurse.token).status_code == 200


def test_a_token_of_another_server_is_refused(
    shared_server: LiveServer, nurse: SyncApi, tmp_path: Path
) -> None:
    stranger = open_store(f"sqlite:///{tmp_path / 'elsewhere.db'}", health_schema(), migrate=True)
    try:  # same device and user, signed with another server's key
        forged = issue_token(stranger, nurse.user["id"], nurse.device_id, TTL, gen=0)
        forged_expired = issue_token(stranger, nurse.user["id"], nurse.device_id, -60, gen=0)
    finally:
        stranger.close()
    _refused(shared_server, forged)
    _refused(shared_server, forged_expired)  # forged first: not told "expired"


def test_an_expired_token_says_how_to_recover(
    shared_server: LiveServer, server_store: SqlStore, nurse: SyncApi
) -> None:
    for ttl in (-3600, 0):
        expired = issue_token(server_store, nurse.user["id"], nurse.device_id, ttl, gen=0)
        error = _error(_pull(shared_server, expired), 401, "UNAUTHORIZED")
        assert error["details"] == {"reason": "expired"}
        assert "POST /v1/auth/refresh" in error["message"]


def test_a_genuine_token_of_an_unregistered_device_is_refused(
    shared_server: LiveServer, server_store: SqlStore, nurse: SyncApi
) -> None:
    token = issue_token(server_store, nurse.user["id"], "d-never-registered", TTL, gen=0)
    _refused(shared_server, token)


def test_another_devices_id_in_a_push_is_forbidden(
    nurse: SyncApi, make_device: MakeDevice, facility: str
) -> None:
    other = make_device("health_worker", (f"facility:{facility}",))
    resp = nurse.http.post("/v1/sync/push", json={"device_id": other.device_id, "changes": []})
    assert _error(resp, 403, "FORBIDDEN")["details"] == {"field": "device_id"}


def _user_token(server: LiveServer, api: SyncApi) -> str:
    resp = httpx.post(
        f"{server.url}/v1/auth/token", json={"username": api.user["username"], "password": "pw"}
    )
    return str(resp.json()["access_token"])


def test_registering_one_device_id_from_many_requests_at_once_never_fails(
    shared_server: LiveServer,
    server_store: SqlStore,
    nurse: SyncApi,
    make_device: MakeDevice,
) -> None:
    """A tablet retrying a registration whose answer it lost races its first attempt, and
    another user races both with the same id. Whichever user registers first owns the id:
    every request by that user is answered 200 (one registers, the others re-register), every
    request by the other 403; never a 500 from the unique index."""
    other = make_device("health_worker")
    device_id = f"d-race{uuid7()[-12:]}"
    users = {
        _user_token(shared_server, nurse): nurse.user["id"],
        _user_token(shared_server, other): other.user["id"],
    }
    first, second = users
    tokens = [first] * 30 + [second] * 10
    barrier = threading.Barrier(len(tokens))

    def register(token: str) -> httpx.Response:
        with httpx.Client(base_url=shared_server.url) as http:
            barrier.wait()
            return http.post(
                "/v1/devices",
                json={"name": "tablet", "device_id": device_id},
                headers={"Authorization": f"Bearer {token}"},
            )

    with ThreadPoolExecutor(len(tokens)) as pool:
        answers = list(pool.map(register, tokens))
    registered = server_store.find_device(device_id)
    assert registered is not None and registered.user_id in users.values()
    for token, resp in zip(tokens, answers, strict=True):
        if users[token] == registered.user_id:
            assert resp.status_code == 200, resp.text
            assert resp.json()["device_id"] == device_id
        else:
            assert _error(resp, 403, "FORBIDDEN")["details"] == {"field": "device_id"}
    # the last registration's refresh token is the one that works
    assert any(
        httpx.post(
            f"{shared_server.url}/v1/auth/refresh",
            json={"refresh_token": r.json()["refresh_token"]},
        ).status_code
        == 200
        for r in answers
        if r.status_code == 200
    )
    assert "Traceback" not in shared_server.log()


@pytest.mark.parametrize("wipe", [True, False])
def test_a_revoked_devices_token_is_refused_at_once(
    shared_server: LiveServer, server_store: SqlStore, nurse: SyncApi, wipe: bool
) -> None:
    assert _pull(shared_server, nurse.token).status_code == 200
    assert server_store.revoke_device(nurse.device_id, wipe=wipe)
    error = _error(_pull(shared_server, nurse.token), 401, "DEVICE_REVOKED")
    assert error["details"] == {"wipe": wipe}


def test_jwts_issued_before_the_compact_form_work_until_they_expire(
    shared_server: LiveServer,
    server_store: SqlStore,
    nurse: SyncApi,
    make_device: MakeDevice,
    facility: str,
) -> None:
    key = server_store.signing_key
    user_id = nurse.user["id"]
    now = int(time.time())
    legacy = jwt.encode(
        {"sub": user_id, "exp": now + 60, "dev": nurse.device_id}, key, algorithm="HS256"
    )
    assert _pull(shared_server, legacy).status_code == 200
    expired = jwt.encode(
        {"sub": user_id, "exp": now - 10, "dev": nurse.device_id}, key, algorithm="HS256"
    )
    assert _error(_pull(shared_server, expired), 401, "UNAUTHORIZED")["details"] == {
        "reason": "expired"
    }
    other = make_device("health_worker", (f"facility:{facility}",))
    wrong_user = jwt.encode(
        {"sub": other.user["id"], "exp": now + 60, "dev": nurse.device_id}, key, algorithm="HS256"
    )
    _refused(shared_server, wrong_user)
    unsigned = jwt.encode(
        {"sub": user_id, "exp": now + 60, "dev": nurse.device_id}, "", algorithm="none"
    )
    _refused(shared_server, unsigned)
    user_only = jwt.encode({"sub": user_id, "exp": now + 60}, key, algorithm="HS256")
    _error(_pull(shared_server, user_only), 403, "FORBIDDEN")


def test_tokens_of_the_earlier_four_part_form_count_as_generation_zero(
    shared_server: LiveServer,
    server_store: SqlStore,
    nurse: SyncApi,
) -> None:
    """Devices offline across the upgrade keep syncing with the token they hold."""
    expiry = int(time.time()) + 3600
    signed = f"d.{nurse.device_id}.{expiry}"
    old_form = f"{signed}.{_mac(server_store.signing_key, signed)}"
    assert verify_token(server_store.signing_key, old_form) == TokenClaims(nurse.device_id, None, 0)
    assert _pull(shared_server, old_form).status_code == 200


def test_verifying_a_token_reads_no_database(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'keys.db'}", health_schema(), migrate=True)
    key = store.signing_key
    device_token = issue_token(store, "u-1", "d-7f3a", TTL, gen=0)
    user_token = issue_token(store, "01a201a7-6188-7ed0-b3b5-180ea467fa0c", None, TTL, gen=0)
    store.close()  # verification needs the key only
    assert verify_token(key, device_token) == TokenClaims("d-7f3a", None, 0)
    assert verify_token(key, user_token) == TokenClaims(
        None, "01a201a7-6188-7ed0-b3b5-180ea467fa0c", 0
    )
    with pytest.raises(Unauthorized):
        verify_token(key + "x", device_token)


def test_ids_that_cannot_travel_in_a_token_are_not_signed(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'keys.db'}", health_schema(), migrate=True)
    try:
        for device_id in ("d.7f3a", "", "d" * 65):
            with pytest.raises(ValueError):
                issue_token(store, "u-1", device_id, TTL, gen=0)
    finally:
        store.close()
