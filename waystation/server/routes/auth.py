"""Log in, register a device, refresh a device token."""

from __future__ import annotations

import re
import secrets

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from waystation.core.errors import DeviceRevoked, Forbidden, Unauthorized
from waystation.core.protocol import DeviceRequest, RefreshRequest, TokenRequest
from waystation.server.auth import (
    hash_refresh_secret,
    issue_token,
    new_refresh_token,
    verify_password,
)
from waystation.server.body import read_json
from waystation.server.context import Services, caller, services
from waystation.server.responses import OrjsonResponse

router = APIRouter(prefix="/v1")
_SMALL_BODY = 64 * 1024


@router.post("/auth/token")
async def token(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, TokenRequest, _SMALL_BODY)
    return OrjsonResponse(await run_in_threadpool(_login, svc, body))


def _login(svc: Services, body: TokenRequest) -> dict[str, object]:
    user = svc.store.find_user(username=body.username)
    if not verify_password(user.password_hash if user else None, body.password) or user is None:
        raise Unauthorized("wrong username or password")
    ttl = svc.settings.token_ttl_s
    return {
        "access_token": issue_token(svc.store, user.id, None, ttl),
        "token_type": "bearer",
        "expires_in": ttl,
        "user": {"id": user.id, "username": user.username, "role": user.role,
                 "scopes": list(user.scopes)},
    }


@router.post("/devices")
async def register_device(request: Request) -> Response:
    svc = services(request)
    principal = await caller(request)
    body = await read_json(request, DeviceRequest, _SMALL_BODY)
    return OrjsonResponse(await run_in_threadpool(_register, svc, principal.user_id, body))


def _register(svc: Services, user_id: str, body: DeviceRequest) -> dict[str, object]:
    store = svc.store
    device_id = body.device_id or f"d-{secrets.token_hex(8)}"
    refresh, refresh_hash = new_refresh_token(device_id)
    existing = store.find_device(device_id)
    if existing is None and not store.add_device(device_id, user_id, body.name, refresh_hash):
        existing = store.find_device(device_id)  # a concurrent request registered it first
    if existing is not None:
        if existing.user_id != user_id:
            raise Forbidden(f"device id {device_id} belongs to another user; pick a new one",
                            {"field": "device_id"})
        if existing.revoked_at is not None:
            raise DeviceRevoked("this device was revoked by an administrator",
                                {"wipe": existing.wipe})
        store.rotate_refresh(device_id, refresh_hash, expected=None)
    ttl = svc.settings.token_ttl_s
    return {"device_id": device_id, "access_token": issue_token(store, user_id, device_id, ttl),
            "token_type": "bearer", "expires_in": ttl, "refresh_token": refresh}


_REFRESH = re.compile(r"([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{16,})")


@router.post("/auth/refresh")
async def refresh(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, RefreshRequest, _SMALL_BODY)
    return OrjsonResponse(await run_in_threadpool(_refresh, svc, body.refresh_token))


def _refresh(svc: Services, refresh_token: str) -> dict[str, object]:
    """Trade a refresh token for a new access token and a new refresh token (one use)."""
    match = _REFRESH.fullmatch(refresh_token)
    device = svc.store.find_device(match.group(1)) if match else None
    if match is None or device is None:
        raise Unauthorized("unknown refresh token: log in again")
    if device.revoked_at is not None:
        raise DeviceRevoked("this device was revoked by an administrator", {"wipe": device.wipe})
    new_token, new_hash = new_refresh_token(device.id)
    presented = hash_refresh_secret(match.group(2))
    if device.refresh_hash != presented or not svc.store.rotate_refresh(
        device.id, new_hash, expected=presented
    ):
        raise Unauthorized("refresh token already used or replaced: log in again")
    ttl = svc.settings.token_ttl_s
    return {"device_id": device.id,
            "access_token": issue_token(svc.store, device.user_id, device.id, ttl),
            "token_type": "bearer", "expires_in": ttl, "refresh_token": new_token}
