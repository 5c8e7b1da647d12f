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

from waystation.core.accounts import User, account_disabled
from waystation.core.audit import AuditEvent
from waystation.core.errors import DeviceRevoked, Forbidden, RateLimited, Unauthorized
from waystation.core.hlc import wall_ms
from waystation.core.protocol import DeviceRequest, RefreshRequest, TokenRequest
from waystation.core.throttle import account_key, address_key, retry_after_s
from waystation.server.auditing import audit_event, record
from waystation.server.auth import (
    hash_refresh_secret,
    issue_token,
    new_refresh_token,
    verify_password,
)
from waystation.server.body import read_json
from waystation.server.context import Services, caller, services
from waystation.server.login_gate import LoginGate
from waystation.server.responses import OrjsonResponse

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
    await record(
        request,
        audit_event(request, "auth.login", user_id=user.id, details={"username": user.username}),
    )
    return OrjsonResponse(_login_answer(svc, user))


def _login_event(
    request: Request, svc: Services, username: str, refused: Unauthorized
) -> AuditEvent:
    """A refused login. A name no user has is kept as its hash only (throttle key): people
    type passwords into the username field."""
    user = svc.store.find_user(username=username)
    reason = refused.details.get("reason", "password")
    if user is None:
        return audit_event(
            request,
            "auth.login",
            outcome="denied",
            details={"reason": "unknown_user", "account": _throttle_keys(username, "")[0]},
        )
    return audit_event(
        request,
        "auth.login",
        user_id=user.id,
        outcome="denied",
        target=f"user:{user.id}",
        details={"username": user.username, "reason": reason},
    )


def _throttle_keys(username: str, address: str) -> tuple[str, str]:
    return account_key(username), address_key(address)


def _refuse_if_throttled(svc: Services, keys: tuple[str, str]) -> None:
    """429 before any password is hashed, for an account or address that failed too
    often (known and unknown usernames alike)."""
    now = wall_ms()
    wait = max(
        (retry_after_s(a, now) for a in svc.store.login_attempts(list(keys)).values()), default=0.0
    )
    if wait > 0:
        raise RateLimited(
            f"too many failed logins; try again in {wait:.0f} s", {"retry_after": wait}
        )


def _check_password(svc: Services, body: TokenRequest, keys: tuple[str, str]) -> User:
    user = svc.store.find_user(username=body.username)
    if not verify_password(user.password_hash if user else None, body.password) or user is None:
        svc.store.record_login_failure(*keys, svc.settings.login_throttle, wall_ms())
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
        "user": {
            "id": user.id,
            "username": user.username,
            "role": user.role,
            "scopes": list(user.scopes),
        },
    }


@router.post("/devices")
async def register_device(request: Request) -> Response:
    svc = services(request)
    principal = await caller(request)
    if principal.device_id is not None:
        raise Forbidden(
            "a device token cannot register devices: log in with "
            "POST /v1/auth/token and register with that user token"
        )
    body = await read_json(request, DeviceRequest, _SMALL_BODY)
    try:
        answer = await run_in_threadpool(_register, svc, principal.user_id, body)
    except (Forbidden, DeviceRevoked) as exc:
        await record(
            request,
            audit_event(
                request,
                "device.register",
                principal,
                outcome="denied",
                target=f"device:{body.device_id}" if body.device_id else None,
                details={"name": body.name, "reason": exc.code},
            ),
        )
        raise
    await record(
        request,
        audit_event(
            request,
            "device.register",
            principal,
            target=f"device:{answer['device_id']}",
            details={"name": body.name},
        ),
    )
    return OrjsonResponse(answer)


def _register(svc: Services, user_id: str, body: DeviceRequest) -> dict[str, Any]:
    """Register the device (or log a known one in again: store.register_device raises
    Forbidden for another user's id, DeviceRevoked for a revoked device)."""
    device_id = body.device_id or f"d-{secrets.token_hex(8)}"
    refresh, refresh_hash = new_refresh_token(device_id)
    gen = svc.store.register_device(
        user_id, device_id, body.name, refresh_hash, refresh_expires_at=_refresh_expiry(svc)
    )
    ttl = svc.settings.token_ttl_s
    return {
        "device_id": device_id,
        "access_token": issue_token(svc.store, user_id, device_id, ttl, gen=gen),
        "token_type": "bearer",
        "expires_in": ttl,
        "refresh_token": refresh,
    }


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
        await record(
            request,
            audit_event(
                request,
                "auth.refresh",
                device_id=device_id,
                outcome="denied",
                target=f"device:{device_id}" if device_id else None,
                details={"reason": exc.details.get("reason", exc.code.lower())},
            ),
        )
        raise
    await record(
        request,
        audit_event(
            request,
            "auth.refresh",
            device_id=answer["device_id"],
            target=f"device:{answer['device_id']}",
        ),
    )
    return OrjsonResponse(answer)


def _refresh(svc: Services, refresh_token: str) -> dict[str, Any]:
    """Trade a refresh token for a new access token and a new refresh token (one use).

    A refresh token that was already traded is a stolen copy or a replay: the whole
    family ends (every token of the device), and the device logs in again
    (store.refresh_device, whose rules are core/accounts.py's)."""
    match = _REFRESH.fullmatch(refresh_token)
    if match is None:
        raise Unauthorized("unknown refresh token: log in again")
    new_token, new_hash = new_refresh_token(match.group(1))
    device = svc.store.refresh_device(
        match.group(1),
        hash_refresh_secret(match.group(2)),
        new_hash,
        expires_at=_refresh_expiry(svc),
    )
    ttl = svc.settings.token_ttl_s
    return {
        "device_id": device.id,
        "access_token": issue_token(
            svc.store, device.user_id, device.id, ttl, gen=device.token_gen
        ),
        "token_type": "bearer",
        "expires_in": ttl,
        "refresh_token": new_token,
    }
