"""Audit events and the hash that chains them (pure: no clock, no I/O).

An audit entry is an event (who did what, from where, to what, with which outcome, and the
scopes of the records it concerned) given its place in the trail: an ``id`` (1, 2, 3, ...
with no gaps) and a time ``at`` (Unix ms). Each entry's hash covers the previous entry's
hash and a canonical encoding of the entry, so editing, deleting or inserting an entry
breaks the chain at that point (``store/audit.py`` keeps the chain, ``verify`` walks it).

The canonical encoding is the JSON array, written by orjson with sorted object keys, of::

    [id, at, action, actor_user_id, actor_device_id, client_address, outcome, target,
     details, sorted(scopes)]

and ``hash = sha256(prev_hash + "\\n" + encoding)`` in lower-case hex. The first entry's
``prev_hash`` is ``GENESIS_HASH``. Changing this encoding invalidates every stored chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

GENESIS_HASH = "0" * 64

# The actions the server and the CLI record (docs/operations.md, "The audit trail").
ACTIONS = (
    "auth.login",  # a login, successful or not (details.username as typed)
    "auth.refresh",  # a device token refreshed
    "device.register",  # a device registered (or re-registered) to a user
    "device.revoke",  # a device revoked by an administrator or the CLI
    "user.add",  # a user created (CLI, or an admin route)
    "user.update",  # a user's role, scopes or password changed
    "user.unlock",  # an operator cleared an account's login lockout
    "sync.pull",  # a page of changes delivered to a device (scopes: of its records)
    "sync.push",  # a batch of ops received (details: counts by status)
    "conflict.resolve",  # a conflict resolved by a reviewer
    "record.get",  # one record read through GET /v1/records
    "record.put",  # one record written through PUT /v1/records
    "stats.read",  # GET /v1/sync/stats
    "audit.read",  # GET /v1/audit
)

# ok: done; denied: authentication or authorisation refused; rejected: refused for its
# content (a write the schema refuses); conflict: a write held for review.
OUTCOMES = ("ok", "denied", "rejected", "conflict")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, by whom, from where: an audit entry before the trail numbers it.

    ``details`` must be JSON-serialisable with string keys (it is stored as JSON and
    hashed in canonical form); ``scopes`` are the scopes of the records the action
    concerned (``patient:p-1``), by which the trail is searched.
    """

    action: str
    actor_user_id: str | None = None
    actor_device_id: str | None = None
    client_address: str | None = None
    outcome: str = "ok"
    target: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    scopes: tuple[str, ...] = ()


def encode_details(details: Mapping[str, Any]) -> str:
    """``details`` as stored: compact JSON with sorted keys."""
    return orjson.dumps(dict(details), option=orjson.OPT_SORT_KEYS).decode()


def entry_hash(prev_hash: str, entry_id: int, at: int, event: AuditEvent) -> str:
    """The hash of entry ``entry_id`` following an entry whose hash is ``prev_hash``.

    Raises TypeError when ``details`` holds something JSON cannot carry.
    """
    encoding = orjson.dumps(
        [
            entry_id,
            at,
            event.action,
            event.actor_user_id,
            event.actor_device_id,
            event.client_address,
            event.outcome,
            event.target,
            dict(event.details),
            sorted(event.scopes),
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(prev_hash.encode() + b"\n" + encoding).hexdigest()
