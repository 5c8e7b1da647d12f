"""Passwords (argon2), signed expiring bearer tokens (compact HMAC), refresh secrets.

The signing key lives in the database, so tokens survive restarts and work across several
server processes. A token names its user or, once a device is registered, its device: the
device is checked on every request, so revoking it stops its token at once.

An access token travels in every request, and an idle sync is one small 304, so its size
is most of what an idle sync costs on a 2G link (docs/performance.md). Hence not a JWT
(~190 bytes: a JSON header, JSON claims with a 36-character user id, and a 43-character
signature) but ``<kind>.<subject>.<gen>.<expiry>.<mac>``, ~57 bytes for a device token:

- ``kind``: ``d`` (device token, ``subject`` = device id) or ``u`` (user token, ``subject``
  = user id). A device token need not carry its user: a device id belongs to one user for
  good (it is never re-registered to another), and the device row is read on every request
  anyway for revocation, so the user comes from there at no extra cost;
- ``gen``: the session generation of the device (or user) when the token was issued. The
  row's generation moves on to end every session at once (a reused refresh token, a
  password change, a disabled user: store/accounts.py), and an older token is refused.
  Tokens of the earlier four-part form (no ``gen``) count as generation 0;
- ``expiry``: Unix seconds, decimal;
- ``mac``: HMAC-SHA256 of everything before it, truncated to 128 bits (the length RFC 2104
  recommends at least: forging one takes ~2^128 tries), base64url without padding. Checked
  before anything else, without reading the database.

The characters are those of RFC 6750's ``b64token``, so the token goes in an
``Authorization: Bearer`` header as it is. JWTs issued before this format remain accepted
until they expire (at most one token lifetime after an upgrade), so devices that were
offline across the upgrade keep syncing without a refresh.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import time
from typing import NamedTuple

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Request

from waystation.core.access import Principal
from waystation.core.accounts import account_disabled, device_revoked
from waystation.core.errors import Forbidden, Unauthorized
from waystation.store.port import Store

_hasher = PasswordHasher()

# kind, subject (a device id or user id: both [A-Za-z0-9_-]{1,64}), generation (absent in
# tokens issued before generations: 0), expiry, 22-char MAC
_TOKEN = re.compile(
    r"([du])\.([A-Za-z0-9_-]{1,64})\.(?:([0-9]{1,9})\.)?([0-9]{1,12})\.([A-Za-z0-9_-]{22})"
)
_SUBJECT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAC_BYTES = 16


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


@functools.lru_cache(maxsize=8)
def _mac_key(signing_key: str) -> bytes:
    """A key of its own for access tokens, derived from the stored signing key, so these
    MACs can never be confused with the legacy JWT signatures made with the key itself."""
    return hmac.digest(signing_key.encode(), b"waystation access token v2", "sha256")


def _mac(signing_key: str, signed: str) -> str:
    digest = hmac.digest(_mac_key(signing_key), signed.encode(), "sha256")[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_token(store: Store, user_id: str, device_id: str | None, ttl_s: int, *, gen: int) -> str:
    """A device token when ``device_id`` is given (sync needs one), else a user token;
    ``gen`` is the device's (or user's) current session generation."""
    kind, subject = ("d", device_id) if device_id is not None else ("u", user_id)
    if not _SUBJECT.fullmatch(subject):
        raise ValueError(f"cannot put {subject!r} in a token: expected [A-Za-z0-9_-]{{1,64}}")
    signed = f"{kind}.{subject}.{gen}.{int(time.time()) + ttl_s}"
    return f"{signed}.{_mac(store.signing_key, signed)}"


def _expired() -> Unauthorized:
    return Unauthorized(
        "token expired: refresh it (POST /v1/auth/refresh) or log in again", {"reason": "expired"}
    )


class TokenClaims(NamedTuple):
    """Whom a genuine token names: a device (its user is read from the device row), or a
    user. ``user_id`` is set for a device only by legacy JWTs, and must then match.
    ``gen``: the session generation it was issued under."""

    device_id: str | None
    user_id: str | None
    gen: int = 0


def verify_token(signing_key: str, token: str) -> TokenClaims:
    """Who a genuine, unexpired token names; raises Unauthorized (with ``reason:
    expired`` only for a genuine token past its expiry). Reads no database."""
    if token.startswith("eyJ"):
        return _verify_legacy_jwt(signing_key, token)
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise Unauthorized("invalid token: log in again")
    signed, _, mac = token.rpartition(".")
    if not hmac.compare_digest(mac, _mac(signing_key, signed)):
        raise Unauthorized("invalid token: log in again")
    if int(match.group(4)) <= time.time():
        raise _expired()
    gen = int(match.group(3) or 0)
    if match.group(1) == "d":
        return TokenClaims(match.group(2), None, gen)
    return TokenClaims(None, match.group(2), gen)


def _verify_legacy_jwt(signing_key: str, token: str) -> TokenClaims:
    """HS256 JWTs as issued before the compact format (``sub`` = user id, ``dev`` = device
    id). Remove once every JWT has expired (one token lifetime after the upgrade)."""
    try:
        claims = jwt.decode(
            token, signing_key, algorithms=["HS256"], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise _expired() from None
    except jwt.InvalidTokenError:
        raise Unauthorized("invalid token: log in again") from None
    device_id = claims.get("dev")
    return TokenClaims(str(device_id) if device_id is not None else None, str(claims["sub"]))


def session_ended() -> Unauthorized:
    return Unauthorized(
        "this session has ended (password or access changed, or the "
        "account was disabled): log in again",
        {"reason": "session_ended"},
    )


def authenticate(store: Store, request: Request) -> Principal:
    """The caller of ``request``; raises Unauthorized / DeviceRevoked."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token: log in with POST /v1/auth/token")
    device_id, user_id, gen = verify_token(store.signing_key, token)
    current_gen = 0
    if device_id is not None:
        device = store.find_device(device_id)
        if device is None or user_id not in (None, device.user_id):
            raise Unauthorized("the token's device is not registered")
        if device.revoked_at is not None:
            raise device_revoked(device)
        current_gen = device.token_gen
        user_id = device.user_id
    user = store.find_user(user_id=user_id) if user_id is not None else None
    if user is None:
        raise Unauthorized("the token's user no longer exists")
    if user.disabled_at is not None:
        raise account_disabled()
    if gen != (current_gen if device_id is not None else user.token_gen):
        raise session_ended()
    return Principal(user.id, user.username, user.role, frozenset(user.scopes), device_id)


def require_device(principal: Principal) -> str:
    """Sync requests are made by a registered device (so revocation can stop them)."""
    if principal.device_id is None:
        raise Forbidden("sync needs a device token: register with POST /v1/devices first")
    return principal.device_id
