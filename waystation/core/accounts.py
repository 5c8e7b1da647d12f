"""Users and devices as the server knows them, and the rules of registering a device and
refreshing its token (pure: the store reads the rows, these decide).

A device id belongs to one user for good; a revoked device stays revoked (its owner is
told whether to wipe it). A refresh token is used once: presenting the one it replaced
means it was copied (or replayed), and every session of the device must end.
"""

from __future__ import annotations

from dataclasses import dataclass

from waystation.core.errors import DeviceRevoked, Forbidden, Unauthorized

REFRESH_REUSED = "refresh_reused"  # the ``reason`` of a refresh token used twice


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    password_hash: str
    role: str
    scopes: tuple[str, ...]
    token_gen: int = 0
    disabled_at: int | None = None


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    user_id: str
    name: str
    refresh_hash: str | None
    revoked_at: int | None
    wipe: bool
    last_push_at: int | None
    last_pull_at: int | None
    token_gen: int = 0
    prev_refresh_hash: str | None = None
    refresh_expires_at: int | None = None


def account_disabled() -> Unauthorized:
    return Unauthorized("this account is disabled: ask an administrator", {"reason": "disabled"})


def device_revoked(device: Device) -> DeviceRevoked:
    return DeviceRevoked("this device was revoked by an administrator", {"wipe": device.wipe})


def refresh_reused() -> Unauthorized:
    return Unauthorized(
        "this refresh token was already used, so it may have been copied: "
        "every session of this device has ended; log in again",
        {"reason": REFRESH_REUSED},
    )


def check_registration(device: Device, user_id: str) -> None:
    """May ``user_id`` register (log in again on) the already registered ``device``?
    Raises Forbidden when it is another user's, DeviceRevoked when it was revoked."""
    if device.user_id != user_id:
        raise Forbidden(
            f"device id {device.id} belongs to another user; pick a new one", {"field": "device_id"}
        )
    if device.revoked_at is not None:
        raise device_revoked(device)


def check_refresh(device: Device, presented_hash: str, now_ms: int) -> None:
    """May ``device`` trade the refresh secret whose hash is ``presented_hash`` at
    ``now_ms``? Raises DeviceRevoked for a revoked device; Unauthorized with ``reason``
    REFRESH_REUSED for the secret it replaced (the caller must end the device's sessions
    before answering), plain Unauthorized for any other secret, and Unauthorized with
    ``reason: expired`` for a secret past its expiry."""
    if device.revoked_at is not None:
        raise device_revoked(device)
    if device.prev_refresh_hash is not None and presented_hash == device.prev_refresh_hash:
        raise refresh_reused()
    if device.refresh_hash != presented_hash:
        raise Unauthorized("refresh token already used or replaced: log in again")
    if device.refresh_expires_at is not None and device.refresh_expires_at <= now_ms:
        raise Unauthorized(
            "refresh token expired (the device did not sync for too long): log in again",
            {"reason": "expired"},
        )


def check_account(user: User | None) -> User:
    """The user a token is issued for, unless deleted or disabled (Unauthorized with
    ``reason: disabled``)."""
    if user is None or user.disabled_at is not None:
        raise account_disabled()
    return user
