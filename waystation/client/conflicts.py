"""Conflicts held on the server, as a reviewer lists and resolves them from a replica.

Reviewing needs the network: the conflicts live on the server (``GET /v1/conflicts``,
``POST /v1/conflicts/{id}/resolve``; docs/conflicts.md). Reviewers are admins and health
workers of the record's scopes; anyone else gets ``Forbidden``. A resolution is new
changes on the server: the next ``sync()`` pulls them, on this device as on every other.

The ops this device pushed that were held are in its own outbox (``rep.outbox("CONFLICT")``,
each with its ``conflict_id``), online or not.

``ReviewClient`` speaks through any transport that makes authenticated requests
(``HttpTransport.request``: the device's token, refreshed as needed); ``Replica.conflicts``
and ``Replica.resolve`` hand it the replica's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from waystation.client.errors import ServerUnavailable
from waystation.client.wire import Reply

RESOLUTIONS = ("client_wins", "server_wins", "merge")
PAGE = 500


class AuthedRequests(Protocol):
    """What reviewing needs of a transport: one request with the device's token."""

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply: ...


class ReviewClient:
    """Lists and resolves the conflicts held on the server, as this user may review them.

    Every method may raise ``LoginRequired``, ``Offline`` or ``ServerUnavailable``
    (the network or the login), besides the refusals each names.
    """

    def __init__(self, transport: AuthedRequests) -> None:
        self.transport = transport

    def conflicts(
        self,
        *,
        status: str = "open",
        collection: str | None = None,
        record_id: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The conflicts with ``status`` (``open`` or ``resolved``) this user may review,
        oldest first, every page (at most ``limit``).

        Raises ``Forbidden`` (a role that reviews none) or ``ValidationError``.
        """
        found: list[dict[str, Any]] = []
        after: str | None = None
        while limit is None or len(found) < limit:
            params = {"status": status, "limit": str(PAGE)}
            if collection is not None:
                params["collection"] = collection
            if record_id is not None:
                params["record_id"] = record_id
            if after is not None:
                params["after"] = after
            body = _object(self.transport.request("GET", "/v1/conflicts", params=params).body)
            page = list(body.get("conflicts") or [])
            found.extend(page)
            if not body.get("has_more") or not page:
                break
            after = str(page[-1]["id"])
        return found if limit is None else found[:limit]

    def conflict(self, conflict_id: str) -> dict[str, Any]:
        """One conflict; raises ``NotFound`` when it is not one this user may review."""
        return _object(self.transport.request("GET", f"/v1/conflicts/{conflict_id}").body)

    def resolve(
        self,
        conflict_id: str,
        resolution: str,
        *,
        fields: Mapping[str, Any] | None = None,
        target: str | None = None,
    ) -> dict[str, Any]:
        """Resolve a conflict on the server; returns it resolved, with ``changes`` (what
        the server wrote). Sync afterwards to see the result in a replica.

        Raises ``ValueError`` for a resolution that is not one of ``RESOLUTIONS``, and what
        the server answers: ``ValidationError`` (a decision that does not fit the
        conflict), ``Forbidden``, ``NotFound``, ``AlreadyResolved``, ``UniqueViolation``
        (the new key is taken too).
        """
        if resolution not in RESOLUTIONS:
            raise ValueError(
                f"resolution must be one of {', '.join(RESOLUTIONS)}, not {resolution!r}"
            )
        body: dict[str, Any] = {"resolution": resolution}
        if fields is not None:
            body["fields"] = dict(fields)
        if target is not None:
            body["target"] = target
        reply = self.transport.request("POST", f"/v1/conflicts/{conflict_id}/resolve", body=body)
        return _object(reply.body)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ServerUnavailable("the server answered with something other than a JSON object")
    return body
