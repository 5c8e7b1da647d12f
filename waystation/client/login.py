"""Logging a replica in: the one step of its life that needs the network.

The device id was made with the replica (offline writes are already stamped with it), so
login proposes it to the server. A device id the administrator revoked is replaced by a
fresh one — after wiping the replica when the administrator asked for it — because the
user's password, not the old registration, is the authority.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import httpx

from waystation.client.auth import Registration, normalise_server_url, register_device
from waystation.client.engine import refresh_collections
from waystation.client.pull import start_full_repull
from waystation.client.transport import HttpTransport
from waystation.core.errors import DeviceRevoked, WaystationError

if TYPE_CHECKING:
    from waystation.client.replica import Replica


def login_replica(
    replica: Replica,
    server: str,
    username: str,
    password: str,
    *,
    device_name: str | None = None,
    http: httpx.Client | None = None,
) -> None:
    """Log in as ``username``, register the device, keep the tokens (never the password).

    Raises ``ValueError`` (not an http(s) URL; the replica belongs to another user),
    ``Unauthorized`` (wrong password), ``Offline`` / ``ServerUnavailable``, or the
    server's refusal (``Forbidden``: the device id belongs to another user).
    """
    url = normalise_server_url(server)
    user = replica.session.user
    if user is not None and user.get("username") not in (None, username):
        raise ValueError(
            f"this replica belongs to {user.get('username')!r}; "
            "use another replica file for another user"
        )
    client = http or httpx.Client(timeout=replica.http_timeout)

    def register() -> Registration:
        return register_device(
            client,
            url,
            username=username,
            password=password,
            device_id=replica.device_id,
            device_name=device_name or f"python-{replica.device_id}",
        )

    try:
        try:
            registration = register()
        except DeviceRevoked as exc:
            if exc.details.get("wipe"):
                replica.wipe()
            else:
                replica.session.replace_device_id()
                replica.clock_keeper.renode(replica.device_id)
            registration = register()
        if registration.tokens.device_id != replica.device_id:
            raise WaystationError(
                f"the server registered device {registration.tokens.device_id!r} "
                f"instead of {replica.device_id!r}"
            )
        replica.session.store_registration(url, registration)
        if user is not None and _may_see_less(user, registration.user):
            # The user lost scopes or changed role since this replica last logged in: what
            # it holds of them must go, and only a fresh snapshot tells what that is.
            start_full_repull(replica)
        # Priorities and the clock offset are an optimisation; the next sync retries them.
        with contextlib.suppress(WaystationError):
            refresh_collections(replica, HttpTransport(url, replica.session, client))
    finally:
        if http is None:
            client.close()


def _may_see_less(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether the user's grants shrank: a scope gone, or another role (an admin, who sees
    everything, demoted keeps scopes that say nothing of it)."""
    scopes_before = set(before.get("scopes") or [])
    scopes_after = set(after.get("scopes") or [])
    return before.get("role") != after.get("role") or not scopes_before <= scopes_after
