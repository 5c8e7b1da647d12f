"""Audit events as routes build them: the actor from the authenticated principal, the
client address from the request.

The address is ``request.client.host``: the peer of the connection or, behind a proxy the
server trusts (uvicorn's ``forwarded_allow_ips``, 127.0.0.1 by default), the address the
proxy put in ``X-Forwarded-For`` (docs/operations.md, "The audit trail"). Appending to
the trail is a write: routes call ``record`` (off the event loop), or hand the event to
the store method whose transaction appends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from waystation.core.access import Principal
from waystation.core.audit import AuditEvent
from waystation.server.context import services


def audit_event(
    request: Request,
    action: str,
    principal: Principal | None = None,
    *,
    user_id: str | None = None,
    device_id: str | None = None,
    outcome: str = "ok",
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    scopes: Iterable[str] = (),
) -> AuditEvent:
    """An event of ``action`` by ``principal`` from the request's client address. Without a
    principal (a login, a refresh: the caller has no token yet) the actor is ``user_id``
    and ``device_id`` when known, else anonymous (a failed login)."""
    return AuditEvent(
        action,
        actor_user_id=principal.user_id if principal else user_id,
        actor_device_id=principal.device_id if principal else device_id,
        client_address=request.client.host if request.client else None,
        outcome=outcome,
        target=target,
        details=dict(details or {}),
        scopes=tuple(scopes),
    )


async def record(request: Request, event: AuditEvent) -> None:
    """Append ``event`` to the trail in a transaction of its own (off the event loop).
    Raises what ``Store.audit`` raises; the request then fails rather than go unrecorded."""
    await run_in_threadpool(services(request).store.audit, event)


def given(**params: Any) -> dict[str, Any]:
    """The query parameters a caller gave (None: not given), for an entry's details."""
    return {name: value for name, value in params.items() if value is not None}
