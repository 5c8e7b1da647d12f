"""What the app sees: the server's copy of a record with the device's unsynced ops replayed.

Pure and boring, like merge on the server. The server's copy is never edited locally, so a
pull can never overwrite a pending local edit, and a counter reads as the server's value
plus the deltas still on their way (two offline dispenses of 5 from 100 show 90 locally and
90 on the server once both arrive).

Which ops still overlay (chosen by the caller): PENDING, SYNCING and FAILED ops, and SYNCED
ops whose acknowledged version the pulled copy has not reached yet (so an edit does not
flicker back between the push answer and the next pull). CONFLICT and REJECTED ops are the
server's verdict that the op did not take effect, so they no longer show; they stay in the
outbox with their reason.

Local replay rules, mirroring the server's merge for a single writer: an upsert sets its
fields (resurrecting a deleted record, whose fields are kept through the delete), a delete
hides the record, an increment adds to its counter whether or not the record is deleted
(counters neither reset on delete nor resurrect).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LocalOp:
    """One outbox op as the overlay needs it."""

    op: str
    fields: Mapping[str, Any]
    superseded: frozenset[str] = field(default_factory=frozenset)


def visible(
    server_fields: Mapping[str, Any] | None,
    server_deleted: bool,
    ops: Iterable[LocalOp],
) -> dict[str, Any] | None:
    """The visible fields of a record, or None when it does not exist or is deleted.

    ``server_fields`` is None when the server's copy is unknown (never pulled).
    """
    fields = dict(server_fields or {})
    exists = server_fields is not None and not server_deleted
    for op in ops:
        if op.op == "upsert":
            for name, value in op.fields.items():
                if name not in op.superseded:
                    fields[name] = value
            exists = True
        elif op.op == "delete":
            exists = False
        elif op.op == "increment":
            for name, delta in op.fields.items():
                current = fields.get(name)
                base = current if isinstance(current, int | float) else 0
                fields[name] = base + delta
    return fields if exists else None
