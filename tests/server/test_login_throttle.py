"""Hole 4 of the security review, through a real server: wrong passwords are throttled per
account and per address with 429 RATE_LIMITED and Retry-After, and a burst of logins cannot
exhaust the server's memory (argon2 takes 64 MiB per check)."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from tests.support import LiveServer
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.core.throttle import (
    Attempts,
    ThrottlePolicy,
    account_failed,
    address_failed,
    retry_after_s,
)
from waystation.server.auth import _dummy_hash, hash_password
from waystation.store import open_store

_addresses = itertools.count(1)


def _address() -> str:
    """A client address of this test alone (the server trusts X-Forwarded-For from
    loopback, as it would from a reverse proxy there)."""
    n = next(_addresses)
    return f"10.77.{n // 250}.{n % 250 + 1}"


def _login(server: LiveServer, username: str, password: str, address: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/auth/token",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
        timeout=60,
    )


def _throttled(resp: httpx.Response) -> float:
    assert resp.status_code == 429, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == "RATE_LIMITED"
    retry_after = int(resp.headers["Retry-After"])
    assert retry_after >= 1
    assert error["details"]["retry_after"] > 0
    return float(retry_after)


@pytest.mark.parametrize("known", [True, False], ids=["known-user", "unknown-user"])
def test_hole_4_wrong_passwords_for_one_account_get_429_with_retry_after(
    shared_server: LiveServer,
    known: bool,
) -> None:
    name = f"nurse-{uuid7()[-12:]}"
    if known:
        shared_server.add_user(name, "health_worker", ("facility:f-1",))
    address = _address()
    for _ in range(ThrottlePolicy().free_failures):
        assert _login(shared_server, name, "guess", address).status_code == 401
    assert _login(shared_server, name, "guess", address).status_code == 401  # locks 1 s
    _throttled(_login(shared_server, name, "pw", address))  # even the right password waits
    # from another address too: the account is what is being guessed
    _throttled(_login(shared_server, name, "guess", _address()))


def test_hole_4_a_success_clears_the_accounts_failures(shared_server: LiveServer) -> None:
    name = f"nurse-{uuid7()[-12:]}"
    shared_server.add_user(name, "health_worker", ("facility:f-1",))
    address = _address()
    for _ in range(ThrottlePolicy().free_failures - 1):
        assert _login(shared_server, name, "guess", address).status_code == 401
    assert _login(shared_server, name, "pw", address).status_code == 200
    for _ in range(ThrottlePolicy().free_failures - 1):
        assert _login(shared_server, name, "guess", address).status_code == 401
    assert _login(shared_server, name, "pw", address).status_code == 200


def test_hole_4_one_address_spraying_many_accounts_is_throttled(
    shared_server: LiveServer,
) -> None:
    address = _address()
    limit = ThrottlePolicy().address_failures
    for i in range(limit):
        assert (
            _login(shared_server, f"sprayed-{i}-{uuid7()[-6:]}", "guess", address).status_code
            == 401
        )
    _throttled(_login(shared_server, f"sprayed-x-{uuid7()[-6:]}", "guess", address))
    # another address is not affected
    assert (
        _login(shared_server, f"sprayed-y-{uuid7()[-6:]}", "guess", _address()).status_code == 401
    )


def test_hole_4_unknown_users_are_checked_against_a_hash_like_the_real_ones() -> None:
    """A wrong name costs one full argon2 check, as a wrong password does."""
    hasher = PasswordHasher()
    real = hasher.check_needs_rehash  # parameters of the production hasher
    assert not real(_dummy_hash())
    assert not real(hash_password("x"))


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_hole_4_thirty_two_parallel_bad_logins_keep_memory_bounded(tmp_path: Path) -> None:
    server = LiveServer(tmp_path)
    server.start()
    try:
        assert server.proc is not None
        store = open_store(server.db_url, health_schema())
        try:  # the production hasher's parameters: 64 MiB per check
            store.add_user("clerk", hash_password("right"), "health_worker", ["facility:f-1"])
        finally:
            store.close()
        assert _login(server, "clerk", "right", "10.9.9.9").status_code == 200
        before = _peak_rss_mb(server.proc.pid)
        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(
                pool.map(
                    lambda i: _login(
                        server, "clerk" if i % 2 else f"nobody-{i}", "wrong", f"10.8.0.{i + 1}"
                    ),
                    range(32),
                )
            )
        peak = _peak_rss_mb(server.proc.pid)
        statuses = {resp.status_code for resp in answers}
        assert statuses <= {401, 429}, statuses
        assert 401 in statuses
        # 2 checks at once (64 MiB each) on top of what the server held: not 32 x 64 MiB
        assert peak - before < 200, (before, peak)
        assert "Traceback" not in server.log()
    finally:
        server.stop()


# -- the policy itself (core/throttle.py), on a fake clock ---------------------------------


def test_an_accounts_lockout_doubles_up_to_its_cap_and_is_forgotten() -> None:
    policy = ThrottlePolicy(free_failures=2, base_lockout_s=1, max_lockout_s=8, forget_after_s=100)
    attempts: Attempts | None = None
    lockouts = []
    for _ in range(7):
        attempts = account_failed(policy, attempts, 1000)
        lockouts.append(retry_after_s(attempts, 1000))
    assert lockouts == [0, 0, 1, 2, 4, 8, 8]
    assert retry_after_s(attempts, 1000 + 8000) == 0
    fresh = account_failed(policy, attempts, 1000 + 101_000)
    assert fresh.failures == 1 and retry_after_s(fresh, 1000 + 101_000) == 0


def test_an_address_is_blocked_until_its_window_ends() -> None:
    policy = ThrottlePolicy(address_failures=3, address_window_s=60)
    attempts: Attempts | None = None
    for _ in range(3):
        attempts = address_failed(policy, attempts, 5000)
    assert retry_after_s(attempts, 5000) == 60
    assert retry_after_s(attempts, 5000 + 60_000) == 0
    later = address_failed(policy, attempts, 5000 + 60_000)
    assert later.failures == 1 and later.blocked_until == 0
