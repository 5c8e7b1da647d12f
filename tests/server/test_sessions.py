"""Hole 2 of the security review, through a real server on both engines: only a user login
registers a device, and revoking a device or changing a user ends every token derived from
them at once — access tokens, refresh tokens, and the devices' tokens."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.support import LiveServer, hash_test_password
from waystation.core.accounts import User
from waystation.core.ids import uuid7
from waystation.store import SqlStore
from waystation.store.tables import devices, login_throttle


@dataclass
class Login:
    """A user logged in on one device, holding every token the server handed out."""

    server: LiveServer
    username: str
    user_token: str
    device_id: str
    access_token: str
    refresh_token: str

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        return httpx.get(
            f"{self.server.url}{path}",
            headers={"Authorization": f"Bearer {token or self.access_token}"},
        )

    def refresh(self, refresh_token: str | None = None) -> httpx.Response:
        return httpx.post(
            f"{self.server.url}/v1/auth/refresh",
            json={"refresh_token": refresh_token or self.refresh_token},
        )


def log_in(
    server: LiveServer, username: str, password: str = "pw", device_id: str | None = None
) -> Login:
    token = httpx.post(
        f"{server.url}/v1/auth/token", json={"username": username, "password": password}
    )
    assert token.status_code == 200, token.text
    user_token = token.json()["access_token"]
    device_id = device_id or f"d-{uuid7()[-16:].replace('-', '')}"
    reg = httpx.post(
        f"{server.url}/v1/devices",
        json={"name": "tablet", "device_id": device_id},
        headers={"Authorization": f"Bearer {user_token}"},
    )
    assert reg.status_code == 200, reg.text
    body = reg.json()
    return Login(
        server, username, user_token, device_id, body["access_token"], body["refresh_token"]
    )


def refused(resp: httpx.Response, code: str = "UNAUTHORIZED") -> dict[str, Any]:
    assert resp.status_code == 401, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == code, error
    return error


@pytest.fixture
def nurse(shared_server: LiveServer, facility: str) -> Login:
    name = f"nurse-{uuid7()[-12:]}"
    shared_server.add_user(name, "health_worker", (f"facility:{facility}",))
    return log_in(shared_server, name)


def test_hole_2_a_device_token_cannot_register_a_child_device(nurse: Login) -> None:
    child = httpx.post(
        f"{nurse.server.url}/v1/devices",
        json={"name": "child", "device_id": "d-child-of-a-device"},
        headers={"Authorization": f"Bearer {nurse.access_token}"},
    )
    assert child.status_code == 403, child.text
    assert "log in with POST /v1/auth/token" in child.json()["error"]["message"]


def test_hole_2_revoking_a_device_with_wipe_ends_its_access_and_refresh(
    nurse: Login,
    server_store: SqlStore,
) -> None:
    assert nurse.get("/v1/sync/pull").status_code == 200
    server_store.revoke_device(nurse.device_id, wipe=True)
    assert refused(nurse.get("/v1/sync/pull"), "DEVICE_REVOKED")["details"] == {"wipe": True}
    refused(nurse.refresh(), "DEVICE_REVOKED")


def test_hole_2_a_reused_refresh_token_ends_the_whole_family(nurse: Login) -> None:
    first = nurse.refresh()
    assert first.status_code == 200
    rotated = first.json()
    assert nurse.get("/v1/sync/pull", rotated["access_token"]).status_code == 200
    # the old refresh token, presented again: a copy is in someone else's hands
    error = refused(nurse.refresh())
    assert error["details"] == {"reason": "refresh_reused"}
    # every token of the family stops: the newest access and refresh tokens too
    assert refused(nurse.get("/v1/sync/pull", rotated["access_token"]))["details"] == {
        "reason": "session_ended"
    }
    refused(nurse.refresh(rotated["refresh_token"]))
    refused(nurse.get("/v1/sync/pull"))
    # the device is not revoked: its owner logs in again with the password
    again = log_in(nurse.server, nurse.username, device_id=nurse.device_id)
    assert again.get("/v1/sync/pull").status_code == 200
    assert again.refresh().status_code == 200


def test_hole_2_refresh_tokens_expire(nurse: Login, server_store: SqlStore) -> None:
    with server_store.db.write() as conn:
        conn.execute(
            sa.update(devices).where(devices.c.id == nurse.device_id).values(refresh_expires_at=1)
        )
    assert refused(nurse.refresh())["details"] == {"reason": "expired"}


def test_hole_2_a_refresh_gives_a_token_with_a_new_lifetime(
    nurse: Login, server_store: SqlStore
) -> None:
    before = server_store.find_device(nurse.device_id)
    assert before is not None and before.refresh_expires_at is not None
    assert nurse.refresh().status_code == 200
    after = server_store.find_device(nurse.device_id)
    assert after is not None and after.refresh_expires_at is not None
    assert after.refresh_expires_at >= before.refresh_expires_at
    days = (after.refresh_expires_at - before.refresh_expires_at) / 86_400_000
    assert days < 1  # 90 days from now, as before


Change = Callable[[SqlStore, User], None]


def _new_password(server_store: SqlStore, user: User) -> None:
    server_store.update_user(
        User(user.id, user.username, hash_test_password("new-pw"), user.role, user.scopes)
    )


def _demote(server_store: SqlStore, user: User) -> None:
    server_store.update_user(
        User(user.id, user.username, user.password_hash, "pharmacist", user.scopes)
    )


def _take_a_scope(server_store: SqlStore, user: User) -> None:
    server_store.update_user(User(user.id, user.username, user.password_hash, user.role, ()))


def _disable(server_store: SqlStore, user: User) -> None:
    server_store.set_user_disabled(user.id, True)


@pytest.mark.parametrize(
    "change",
    [_new_password, _demote, _take_a_scope, _disable],
    ids=["password", "role", "scope", "disable"],
)
def test_hole_2_a_user_change_ends_their_sessions_and_devices_at_once(
    shared_server: LiveServer,
    nurse: Login,
    server_store: SqlStore,
    change: Change,
) -> None:
    laptop = log_in(shared_server, nurse.username)
    user = server_store.find_user(username=nurse.username)
    assert user is not None
    change(server_store, user)
    for login in (nurse, laptop):
        refused(login.get("/v1/sync/pull"))
        refused(login.refresh())
    refused(nurse.get("/v1/sync/status", nurse.user_token))


def test_hole_2_adding_a_scope_keeps_sessions(nurse: Login, server_store: SqlStore) -> None:
    user = server_store.find_user(username=nurse.username)
    assert user is not None
    assert (
        server_store.update_user(
            User(
                user.id,
                user.username,
                user.password_hash,
                user.role,
                (*user.scopes, "facility:f-extra"),
            )
        )
        is False
    )
    assert nurse.get("/v1/sync/pull").status_code == 200


def test_hole_2_a_disabled_user_cannot_log_in_until_enabled(
    nurse: Login, server_store: SqlStore
) -> None:
    user = server_store.find_user(username=nurse.username)
    assert user is not None
    server_store.set_user_disabled(user.id, True)
    url = f"{nurse.server.url}/v1/auth/token"
    wrong = httpx.post(url, json={"username": nurse.username, "password": "nope"})
    assert refused(wrong)["message"] == "wrong username or password"
    right = httpx.post(url, json={"username": nurse.username, "password": "pw"})
    assert "disabled" in refused(right)["message"]
    server_store.set_user_disabled(user.id, False)
    again = log_in(nurse.server, nurse.username, device_id=nurse.device_id)
    assert again.get("/v1/sync/pull").status_code == 200


def test_hole_2_logging_in_again_ends_what_the_device_was_issued_before(nurse: Login) -> None:
    """A copy of an old token must not outlive its owner logging in again."""
    again = log_in(nurse.server, nurse.username, device_id=nurse.device_id)
    assert refused(nurse.get("/v1/sync/pull"))["details"] == {"reason": "session_ended"}
    refused(nurse.refresh())
    assert again.get("/v1/sync/pull").status_code == 200


def test_hole_2_two_refreshes_with_one_token_at_once_end_the_family(nurse: Login) -> None:
    """One of the two is a copy, and which cannot be told: neither keeps a session."""
    barrier = threading.Barrier(8)

    def race() -> httpx.Response:
        barrier.wait()
        return nurse.refresh()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: race(), range(8)))
    assert sorted(a.status_code for a in answers).count(401) >= 7
    for answer in answers:
        if answer.status_code == 200:  # the winner's tokens end with the family
            refused(nurse.get("/v1/sync/pull", answer.json()["access_token"]))
            refused(nurse.refresh(answer.json()["refresh_token"]))


def test_hole_4_failed_login_names_are_not_kept_in_clear(
    shared_server: LiveServer,
    server_store: SqlStore,
) -> None:
    typed = f"my-password-typed-as-name-{uuid7()[-8:]}"
    # an unknown name is checked against a full-cost hash: give a loaded machine time
    httpx.post(
        f"{shared_server.url}/v1/auth/token", json={"username": typed, "password": "x"}, timeout=60
    )
    with server_store.db.read() as conn:
        keys = [row[0] for row in conn.execute(sa.select(login_throttle.c.key))]
    assert keys and not any(typed in key for key in keys)
