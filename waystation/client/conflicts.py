"""Conflicts held on the server, as a reviewer lists and resolves them from a replica.

Reviewing needs the network: the conflicts live on the server (``GET /v1/conflicts``,
``POST /v1/conflicts/{id}/resolve``; docs/conflicts.md). Reviewers are admins and health
workers of the record's scopes; anyone else gets ``Forbidden``. A resolution is new
changes on the server: the next ``sync()`` pulls them, on this device as on every other.

The ops this device pushed that were held are in its own outbox (``rep.outbox("CONFLICT")``,
each with its ``conflict_id``), online or not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from waystation.client.errors import ServerUnavailable
from waystation.client.transport import HttpTransport

if TYPE_CHECKING:
    from waystation.client.replica import Replica

RESOLUTIONS = ("client_wins", "server_wins", "merge")
PAGE = 500


def list_conflicts(
    replica: Replica,
    *,
    status: str = "open",
    collection: str | None = None,
    record_id: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The conflicts with ``status`` (``open`` or ``resolved``) this user may review,
    oldest first, every page (at most ``limit``).

    Raises ``LoginRequired``, ``Offline``, ``ServerUnavailable``, ``Forbidden`` (a role
    that reviews none) or ``ValidationError``.
    """
    found: list[dict[str, Any]] = []
    after: str | None = None
    with _transport(replica) as transport:
        while limit is None or len(found) < limit:
            params = {"status": status, "limit": str(PAGE)}
            if collection is not None:
                params["collection"] = collection
            if record_id is not None:
                params["record_id"] = record_id
            if after is not None:
                params["after"] = after
            body = _object(transport._authed("GET", "/v1/conflicts", params=params).body)
            page = list(body.get("conflicts") or [])
            found.extend(page)
            if not body.get("has_more") or not page:
                break
            after = str(page[-1]["id"])
    return found if limit is None else found[:limit]


def get_conflict(replica: Replica, conflict_id: str) -> dict[str, Any]:
    """One conflict; raises ``NotFound`` when it is not one this user may review."""
    with _transport(replica) as transport:
        return _object(transport._authed("GET", f"/v1/conflicts/{conflict_id}").body)


def resolve_conflict(
    replica: Replica,
    conflict_id: str,
    resolution: str,
    *,
    fields: Mapping[str, Any] | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """Resolve a conflict on the server; returns it resolved, with ``changes`` (what the
    server wrote). ``sync()`` afterwards to see the result in this replica.

    Raises ``ValueError`` for a resolution that is not one of ``RESOLUTIONS``, and what the
    server answers: ``ValidationError`` (a decision that does not fit the conflict),
    ``Forbidden``, ``NotFound``, ``AlreadyResolved``, ``UniqueViolation`` (the new key is
    taken too); ``Offline`` / ``ServerUnavailable`` without the network.
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}, not {resolution!r}")
    body: dict[str, Any] = {"resolution": resolution}
    if fields is not None:
        body["fields"] = dict(fields)
    if target is not None:
        body["target"] = target
    with _transport(replica) as transport:
        reply = transport._authed("POST", f"/v1/conflicts/{conflict_id}/resolve", body=body)
    return _object(reply.body)


@contextlib.contextmanager
def _transport(replica: Replica) -> Iterator[HttpTransport]:
    """The replica's HTTP transport (its login, refreshed as needed) for one call.

    Uses the transport's authenticated request (``_authed``): reviewing is not part of the
    sync ``Transport`` port, but it needs the same token handling."""
    transport = replica.transport()
    try:
        yield transport
    finally:
        transport.close()


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ServerUnavailable("the server answered with something other than a JSON object")
    return body
