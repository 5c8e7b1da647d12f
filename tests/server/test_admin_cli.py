"""``waystation users`` as an administrator runs it against a live server's database:
changing, disabling and enabling users, and what that does to their sessions (hole 2)."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.server.test_sessions import Login, log_in, refused
from tests.support import LiveServer
from waystation.core.schema import health_schema
from waystation.core.throttle import ThrottlePolicy, account_key, address_key
from waystation.store import open_store
from waystation.store.store import now_ms


def waystation(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "waystation", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    """A server of this test alone (users are changed under its feet)."""
    return live_server


def _add(server: LiveServer, *extra: str, password: str = "pw") -> None:
    made = waystation(
        "users",
        "add",
        "nurse",
        "--role",
        "health_worker",
        "--scope",
        "facility:f-1",
        *extra,
        "--password",
        password,
        "--db",
        server.db_url,
    )
    assert made.returncode == 0, made.stderr


def test_adding_a_scope_with_the_same_password_keeps_sessions(server: LiveServer) -> None:
    _add(server)
    nurse = log_in(server, "nurse")
    _add(server, "--scope", "facility:f-2", "--update")
    assert nurse.get("/v1/sync/pull").status_code == 200


def test_hole_2_a_new_password_from_the_command_line_ends_sessions(server: LiveServer) -> None:
    _add(server)
    nurse = log_in(server, "nurse")
    changed = waystation(
        "users",
        "add",
        "nurse",
        "--role",
        "health_worker",
        "--scope",
        "facility:f-1",
        "--password",
        "new-secret",
        "--update",
        "--db",
        server.db_url,
    )
    assert "log in again" in changed.stdout
    refused(nurse.get("/v1/sync/pull"))
    assert log_in(server, "nurse", "new-secret").get("/v1/sync/pull").status_code == 200


def test_hole_2_users_disable_and_enable(server: LiveServer) -> None:
    _add(server)
    nurse: Login = log_in(server, "nurse")
    disabled = waystation("users", "disable", "nurse", "--db", server.db_url)
    assert disabled.returncode == 0, disabled.stderr
    assert refused(nurse.get("/v1/sync/pull"))["details"] == {"reason": "disabled"}
    listed = waystation("users", "list", "--db", server.db_url)
    assert "nurse" in listed.stdout and "disabled" in listed.stdout
    login = httpx.post(f"{server.url}/v1/auth/token", json={"username": "nurse", "password": "pw"})
    assert "disabled" in refused(login)["message"]
    enabled = waystation("users", "enable", "nurse", "--db", server.db_url)
    assert enabled.returncode == 0
    assert log_in(server, "nurse").get("/v1/sync/pull").status_code == 200
    unknown = waystation("users", "disable", "nobody", "--db", server.db_url)
    assert unknown.returncode == 2 and "no user" in unknown.stderr


def test_users_unlock_lets_a_locked_out_user_in_at_once(server: LiveServer) -> None:
    """The lockout of security.md's "left open" list: someone who knows a name keeps its
    owner out; the operator lets them in again without waiting out the lock."""
    _add(server)
    store = open_store(server.db_url, health_schema())
    try:  # ten failures under a policy that locks for ten minutes
        policy = ThrottlePolicy(free_failures=0, base_lockout_s=600)
        for _ in range(10):
            store.record_login_failure(
                account_key("Nurse "), address_key("10.9.9.9"), policy, now_ms()
            )
    finally:
        store.close()
    refused_login = httpx.post(
        f"{server.url}/v1/auth/token", timeout=60, json={"username": "nurse", "password": "pw"}
    )
    assert refused_login.status_code == 429
    unlocked = waystation("users", "unlock", "nurse", "--db", server.db_url)
    assert unlocked.returncode == 0, unlocked.stderr
    assert "unlocked nurse" in unlocked.stdout
    assert (
        httpx.post(
            f"{server.url}/v1/auth/token", timeout=60, json={"username": "nurse", "password": "pw"}
        ).status_code
        == 200
    )
    trail = waystation("audit", "list", "--db", server.db_url, "--action", "user.unlock")
    assert trail.returncode == 0 and "nurse" in trail.stdout, trail.stdout + trail.stderr
