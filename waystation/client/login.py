"""Logging a replica in: the one step of its life that needs the network.

The device id was made with the replica (offline writes are already stamped with it), so
login proposes it to the server. A device id the administrator revoked is replaced by a
fresh one — after wiping the replica when the administrator asked for it — because the
user's password, not the old registration, is the authority.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from waystation.client.auth import Registration, normalise_server_url, register_device
from waystation.client.engine import refresh_collections
from waystation.client.local import LocalReplica
from waystation.client.pull import start_full_repull
from waystation.client.transport import HttpTransport
from waystation.core.errors import DeviceRevoked, WaystationError


def login_replica(
    local: LocalReplica,
    server: str,
    username: str,
    password: str,
    *,
    http: httpx.Client,
    insecure: bool = False,
    device_name: str | None = None,
) -> None:
    """Log in as ``username`` over ``http``, register the device, keep the tokens (never
    the password). The client stays open: it belongs to the caller.

    Raises ``ValueError`` (not an http(s) URL, or plain http to another machine without
    ``insecure``; the replica belongs to another user),
    ``Unauthorized`` (wrong password), ``Offline`` / ``ServerUnavailable``, or the
    server's refusal (``Forbidden``: the device id belongs to another user).
    """
    url = normalise_server_url(server, insecure=insecure)
    user = local.session.user
    if user is not None and user.get("username") not in (None, username):
        raise ValueError(
            f"this replica belongs to {user.get('username')!r}; "
            "use another replica file for another user"
        )

    def register() -> Registration:
        return register_device(
            http,
            url,
            username=username,
            password=password,
            device_id=local.device_id,
            device_name=device_name or f"python-{local.device_id}",
        )

    try:
        registration = register()
    except DeviceRevoked as exc:
        if exc.details.get("wipe"):
            local.wipe()
        else:
            local.session.replace_device_id()
            local.clock_keeper.renode(local.device_id)
        registration = register()
    if registration.tokens.device_id != local.device_id:
        raise WaystationError(
            f"the server registered device {registration.tokens.device_id!r} "
            f"instead of {local.device_id!r}"
        )
    local.session.store_registration(url, registration)
    if user is not None and _may_see_less(user, registration.user):
        # The user lost scopes or changed role since this replica last logged in: what
        # it holds of them must go, and only a fresh snapshot tells what that is.
        start_full_repull(local)
    # Priorities and the clock offset are an optimisation; the next sync retries them.
    with contextlib.suppress(WaystationError):
        refresh_collections(local, HttpTransport(url, local.session, http, owns_http=False))


def _may_see_less(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether the user's grants shrank: a scope gone, or another role (an admin, who sees
    everything, demoted keeps scopes that say nothing of it)."""
    scopes_before = set(before.get("scopes") or [])
    scopes_after = set(after.get("scopes") or [])
    return before.get("role") != after.get("role") or not scopes_before <= scopes_after
