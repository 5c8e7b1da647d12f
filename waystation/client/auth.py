"""Logging a device in: a user login, then a device registration, then refreshes.

The password is used once, to get a user token that registers the device; only the
device-bound access token and its refresh token are kept (never the password). Sync
requests must carry the device token: the server refuses a plain user token on push and
pull, and revoking the device stops its token at once.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from waystation.client.errors import LoginRequired
from waystation.client.wire import exchange
from waystation.core.errors import DeviceRevoked, Unauthorized


def new_device_id() -> str:
    """A device id made on the device (it stamps offline writes before registering)."""
    return "d-" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a registration or a refresh hands back."""

    device_id: str
    access_token: str
    refresh_token: str | None
    expires_in: int


@dataclass(frozen=True, slots=True)
class Registration:
    tokens: Tokens
    user: dict[str, Any]


def normalise_server_url(server: str, *, insecure: bool = False) -> str:
    """``server`` without a trailing slash.

    Raises ValueError unless it is http(s), and for ``http://`` to a host that is not this
    machine (127.0.0.0/8, ::1, localhost) unless ``insecure``: the password, the tokens
    and the patient data would cross the network in clear text.
    """
    url = httpx.URL(server.strip())
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"server must be an http:// or https:// URL, got {server!r}")
    if url.scheme == "http" and not insecure and not is_loopback(url.host):
        raise ValueError(
            f"refusing {server!r}: plain http:// to another machine would send the password, "
            "tokens and patient data in clear text; use the server's https:// URL (or, on a "
            "network you trust for that, pass insecure=True / --insecure)"
        )
    return str(url).rstrip("/")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register_device(
    http: httpx.Client,
    server: str,
    *,
    username: str,
    password: str,
    device_id: str,
    device_name: str,
) -> Registration:
    """Log in as ``username`` and register this device under ``device_id``.

    Raises ``Unauthorized`` (wrong username or password), ``ValidationError`` /
    ``Forbidden`` (device id held by another user), ``Offline``, ``ServerUnavailable``.
    """
    login = exchange(
        http, "POST", f"{server}/v1/auth/token", body={"username": username, "password": password}
    ).body
    user = dict(login.get("user") or {})
    user.setdefault("username", username)
    device = exchange(
        http,
        "POST",
        f"{server}/v1/devices",
        body={"name": device_name, "device_id": device_id},
        token=str(login["access_token"]),
    ).body
    return Registration(_tokens(device, device_id), user)


def refresh_tokens(http: httpx.Client, server: str, refresh_token: str, device_id: str) -> Tokens:
    """Trade the refresh token for a new access token (and a new refresh token: they rotate).

    Raises ``LoginRequired`` when the server refuses it, ``DeviceRevoked`` when the device
    was revoked, ``Offline`` / ``ServerUnavailable`` when it cannot answer.
    """
    try:
        body = exchange(
            http, "POST", f"{server}/v1/auth/refresh", body={"refresh_token": refresh_token}
        ).body
    except DeviceRevoked:
        raise
    except Unauthorized as exc:
        raise LoginRequired(
            f"the device's login has expired ({exc.message}); log in again with "
            "`waystation login --replica FILE --server URL --username NAME`"
        ) from exc
    return _tokens(body, device_id)


def _tokens(body: dict[str, Any], device_id: str) -> Tokens:
    return Tokens(
        device_id=str(body.get("device_id") or device_id),
        access_token=str(body["access_token"]),
        refresh_token=body.get("refresh_token"),
        expires_in=int(body.get("expires_in") or 0),
    )
