"""Passwords (argon2), signed expiring bearer tokens (HS256 JWT), refresh secrets.

The signing key lives in the database, so tokens survive restarts and work across several
server processes. A token names its user and, once a device is registered, its device: the
device is checked on every request, so revoking it stops its token at once.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Request

from waystation.core.access import Principal
from waystation.core.errors import DeviceRevoked, Forbidden, Unauthorized
from waystation.store import Store

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a wrong name costs as long as a
    wrong password (no user enumeration by timing). Made on first use, not at import."""
    return _hasher.hash("waystation-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def hash_refresh_secret(secret: str) -> str:
    """Refresh secrets are 256-bit random: a plain SHA-256 is enough to store them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_refresh_token(device_id: str) -> tuple[str, str]:
    """A refresh token ``<device>.<secret>`` and the hash to store."""
    secret = secrets.token_urlsafe(32)
    return f"{device_id}.{secret}", hash_refresh_secret(secret)


def issue_token(store: Store, user_id: str, device_id: str | None, ttl_s: int) -> str:
    claims: dict[str, Any] = {"sub": user_id, "exp": int(time.time()) + ttl_s}
    if device_id is not None:
        claims["dev"] = device_id
    return jwt.encode(claims, store.signing_key, algorithm="HS256")


def authenticate(store: Store, request: Request) -> Principal:
    """The caller of ``request``; raises Unauthorized / DeviceRevoked."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token: log in with POST /v1/auth/token")
    try:
        claims = jwt.decode(token, store.signing_key, algorithms=["HS256"],
                            options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired: refresh it (POST /v1/auth/refresh) or log in "
                           "again", {"reason": "expired"}) from None
    except jwt.InvalidTokenError:
        raise Unauthorized("invalid token: log in again") from None
    user = store.find_user(user_id=str(claims["sub"]))
    if user is None:
        raise Unauthorized("the token's user no longer exists")
    device_id = claims.get("dev")
    if device_id is not None:
        device = store.find_device(str(device_id))
        if device is None or device.user_id != user.id:
            raise Unauthorized("the token's device is not registered")
        if device.revoked_at is not None:
            raise DeviceRevoked("this device was revoked by an administrator",
                                {"wipe": device.wipe})
    return Principal(user.id, user.username, user.role, frozenset(user.scopes),
                     str(device_id) if device_id is not None else None)


def require_device(principal: Principal) -> str:
    """Sync requests are made by a registered device (so revocation can stop them)."""
    if principal.device_id is None:
        raise Forbidden("sync needs a device token: register with POST /v1/devices first")
    return principal.device_id
