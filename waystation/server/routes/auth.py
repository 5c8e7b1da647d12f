"""Log in, register a device, refresh a device token.

Only a user login (``POST /v1/auth/token``) registers a device, so a device's tokens never
beget others: revoking the device ends all of them. Logins are throttled per account and
per client address (core/throttle.py) before any password is checked, and the checks
themselves pass a gate (server/login_gate.py) that bounds their memory.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from waystation.core.audit import AuditEvent
from waystation.core.errors import DeviceRevoked, Forbidden, RateLimited, Unauthorized
from waystation.core.protocol import DeviceRequest, RefreshRequest, TokenRequest
from waystation.core.throttle import account_key, address_key, retry_after_s
from waystation.server.auditing import audit_event, record
from waystation.server.auth import (
    account_disabled,
    hash_refresh_secret,
    issue_token,
    new_refresh_token,
    verify_password,
)
from waystation.server.body import read_json
from waystation.server.context import Services, caller, services
from waystation.server.login_gate import LoginGate
from waystation.server.responses import OrjsonResponse
from waystation.store.accounts import User
from waystation.store.store import now_ms

router = APIRouter(prefix="/v1")
_SMALL_BODY = 64 * 1024


def client_address(request: Request) -> str:
    """The caller's address (uvicorn takes it from X-Forwarded-For only for the proxies
    ``waystation serve --forwarded-allow-ips`` trusts)."""
    return request.client.host if request.client else "unknown"


@router.post("/auth/token")
async def token(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, TokenRequest, _SMALL_BODY)
    keys = _throttle_keys(body.username, client_address(request))
    await run_in_threadpool(_refuse_if_throttled, svc, keys)
    gate: LoginGate = request.app.state.login_gate
    async with gate.slot():
        # again: a burst queued behind the gate may have locked the account meanwhile
        await run_in_threadpool(_refuse_if_throttled, svc, keys)
        try:
            user = await run_in_threadpool(_check_password, svc, body, keys)
        except Unauthorized as exc:
            await record(request, _login_event(request, svc, body.username, exc))
            raise
    await record(request, audit_event(request, "auth.login", user_id=user.id,
                                      details={"username": user.username}))
    return OrjsonResponse(_login_answer(svc, user))


def _login_event(request: Request, svc: Services, username: str,
                 refused: Unauthorized) -> AuditEvent:
    """A refused login. A name no user has is kept as its hash only (throttle key): people
    type passwords into the username field."""
    user = svc.store.find_user(username=username)
    reason = refused.details.get("reason", "password")
    if user is None:
        return audit_event(request, "auth.login", outcome="denied",
                           details={"reason": "unknown_user",
                                    "account": _throttle_keys(username, "")[0]})
    return audit_event(request, "auth.login", user_id=user.id, outcome="denied",
                       target=f"user:{user.id}",
                       details={"username": user.username, "reason": reason})


def _throttle_keys(username: str, address: str) -> tuple[str, str]:
    return account_key(username), address_key(address)


def _refuse_if_throttled(svc: Services, keys: tuple[str, str]) -> None:
    """429 before any password is hashed, for an account or address that failed too
    often (known and unknown usernames alike)."""
    now = now_ms()
    wait = max((retry_after_s(a, now) for a in svc.store.login_attempts(list(keys)).values()),
               default=0.0)
    if wait > 0:
        raise RateLimited(f"too many failed logins; try again in {wait:.0f} s",
                          {"retry_after": wait})


def _check_password(svc: Services, body: TokenRequest, keys: tuple[str, str]) -> User:
    user = svc.store.find_user(username=body.username)
    if not verify_password(user.password_hash if user else None, body.password) or user is None:
        svc.store.record_login_failure(*keys, svc.settings.login_throttle, now_ms())
        raise Unauthorized("wrong username or password")
    if user.disabled_at is not None:
        raise account_disabled()  # told only to someone who knows the password
    svc.store.clear_login_failures(keys[0])
    return user


def _login_answer(svc: Services, user: User) -> dict[str, object]:
    ttl = svc.settings.user_token_ttl_s
    return {
        "access_token": issue_token(svc.store, user.id, None, ttl, gen=user.token_gen),
        "token_type": "bearer",
        "expires_in": ttl,
        "user": {"id": user.id, "username": user.username, "role": user.role,
                 "scopes": list(user.scopes)},
    }


@router.post("/devices")
async def register_device(request: Request) -> Response:
    svc = services(request)
    principal = await caller(request)
    if principal.device_id is not None:
        raise Forbidden("a device token cannot register devices: log in with "
                        "POST /v1/auth/token and register with that user token")
    body = await read_json(request, DeviceRequest, _SMALL_BODY)
    try:
        answer = await run_in_threadpool(_register, svc, principal.user_id, body)
    except (Forbidden, DeviceRevoked) as exc:
        await record(request, audit_event(
            request, "device.register", principal, outcome="denied",
            target=f"device:{body.device_id}" if body.device_id else None,
            details={"name": body.name, "reason": exc.code}))
        raise
    await record(request, audit_event(request, "device.register", principal,
                                      target=f"device:{answer['device_id']}",
                                      details={"name": body.name}))
    return OrjsonResponse(answer)


def _register(svc: Services, user_id: str, body: DeviceRequest) -> dict[str, Any]:
    store = svc.store
    device_id = body.device_id or f"d-{secrets.token_hex(8)}"
    refresh, refresh_hash = new_refresh_token(device_id)
    expires_at = _refresh_expiry(svc)
    existing = store.find_device(device_id)
    if existing is None and not store.add_device(device_id, user_id, body.name, refresh_hash,
                                                 refresh_expires_at=expires_at):
        existing = store.find_device(device_id)  # a concurrent request registered it first
    gen = 0
    if existing is not None:
        if existing.user_id != user_id:
            raise Forbidden(f"device id {device_id} belongs to another user; pick a new one",
                            {"field": "device_id"})
        if existing.revoked_at is not None:
            raise DeviceRevoked("this device was revoked by an administrator",
                                {"wipe": existing.wipe})
        # A new login of a known device: whatever was issued to it before stops (a copy
        # of an old token must not outlive its owner logging in again).
        store.end_device_sessions(device_id)
        store.rotate_refresh(device_id, refresh_hash, expires_at=expires_at, expected=None)
        current = store.find_device(device_id)
        gen = current.token_gen if current is not None else existing.token_gen + 1
    ttl = svc.settings.token_ttl_s
    return {"device_id": device_id,
            "access_token": issue_token(store, user_id, device_id, ttl, gen=gen),
            "token_type": "bearer", "expires_in": ttl, "refresh_token": refresh}


def _refresh_expiry(svc: Services) -> int:
    return int(time.time() * 1000) + svc.settings.refresh_ttl_s * 1000


_REFRESH = re.compile(r"([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{16,})")


@router.post("/auth/refresh")
async def refresh(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, RefreshRequest, _SMALL_BODY)
    device_id = body.refresh_token.partition(".")[0][:64] or None
    try:
        answer = await run_in_threadpool(_refresh, svc, body.refresh_token)
    except Unauthorized as exc:  # DeviceRevoked too
        await record(request, audit_event(
            request, "auth.refresh", device_id=device_id, outcome="denied",
            target=f"device:{device_id}" if device_id else None,
            details={"reason": exc.details.get("reason", exc.code.lower())}))
        raise
    await record(request, audit_event(request, "auth.refresh", device_id=answer["device_id"],
                                      target=f"device:{answer['device_id']}"))
    return OrjsonResponse(answer)


def _reused() -> Unauthorized:
    return Unauthorized("this refresh token was already used, so it may have been copied: "
                        "every session of this device has ended; log in again",
                        {"reason": "refresh_reused"})


def _refresh(svc: Services, refresh_token: str) -> dict[str, Any]:
    """Trade a refresh token for a new access token and a new refresh token (one use).

    A refresh token that was already traded is a stolen copy or a replay: the whole
    family ends (every token of the device), and the device logs in again."""
    match = _REFRESH.fullmatch(refresh_token)
    device = svc.store.find_device(match.group(1)) if match else None
    if match is None or device is None:
        raise Unauthorized("unknown refresh token: log in again")
    if device.revoked_at is not None:
        raise DeviceRevoked("this device was revoked by an administrator", {"wipe": device.wipe})
    presented = hash_refresh_secret(match.group(2))
    if device.prev_refresh_hash is not None and presented == device.prev_refresh_hash:
        svc.store.end_device_sessions(device.id)
        raise _reused()
    if device.refresh_hash != presented:
        raise Unauthorized("refresh token already used or replaced: log in again")
    if device.refresh_expires_at is not None and device.refresh_expires_at <= now_ms():
        raise Unauthorized("refresh token expired (the device did not sync for too long): "
                           "log in again", {"reason": "expired"})
    user = svc.store.find_user(user_id=device.user_id)
    if user is None or user.disabled_at is not None:
        raise account_disabled()
    new_token, new_hash = new_refresh_token(device.id)
    if not svc.store.rotate_refresh(device.id, new_hash, expires_at=_refresh_expiry(svc),
                                    expected=presented):
        # Another request traded the same token at the same moment: one of the two is a
        # copy, and which one cannot be told. The family ends.
        svc.store.end_device_sessions(device.id)
        raise _reused()
    ttl = svc.settings.token_ttl_s
    return {"device_id": device.id,
            "access_token": issue_token(svc.store, device.user_id, device.id, ttl,
                                        gen=device.token_gen),
            "token_type": "bearer", "expires_in": ttl, "refresh_token": new_token}
