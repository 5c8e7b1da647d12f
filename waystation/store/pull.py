"""The change feed: records of the caller's scopes changed since a cursor, in seq order.

The scope filter runs in SQL on the ``record_scopes (scope, seq)`` index before the page is
cut, so a pull reads O(changes in the caller's scopes since the cursor) rows whatever the
size of the database, and a page is full whenever ``has_more`` is true.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.access import Principal
from waystation.core.errors import CursorExpired, ValidationError
from waystation.core.protocol import PulledChange
from waystation.core.timefmt import rfc3339
from waystation.store.sequence import read_counter
from waystation.store.tables import record_scopes, records

_COLUMNS = (
    records.c.collection,
    records.c.id,
    records.c.version,
    records.c.seq,
    records.c.deleted,
    records.c.conflict,
    records.c.fields,
    records.c.clocks,
    records.c.deleted_clock,
    records.c.updated_at,
)


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the change feed, opaque to clients.

    Its string form is the seq of the last change delivered, followed for a filtered pull by
    ``.`` and a tag of the ``collections`` filter: a cursor is only valid with the filter
    it was issued for (elsewhere it would silently skip changes of other collections).
    """

    seq: int
    filter_tag: str = ""

    def __str__(self) -> str:
        return f"{self.seq}.{self.filter_tag}" if self.filter_tag else str(self.seq)

    @classmethod
    def parse(cls, text: str | None, collections: Sequence[str] | None = None) -> Cursor:
        """Parse ``since`` for a pull with this ``collections`` filter."""
        tag = filter_tag(collections)
        if text is None or text in ("", "0"):
            return cls(0, tag)
        seq_text, _, given_tag = text.partition(".")
        if not seq_text.isdigit() or len(seq_text) > 19:
            raise ValidationError(
                f"since={text!r} is not a cursor this server issued; use 0 or the cursor "
                "of the previous pull",
                {"field": "since"},
            )
        if given_tag != tag:
            raise ValidationError(
                f"since={text!r} was issued for another collections filter; use the same "
                "filter as the pull that returned it, or start again from 0",
                {"field": "since"},
            )
        return cls(int(seq_text), tag)


def filter_tag(collections: Sequence[str] | None) -> str:
    """A short tag naming a ``collections`` filter ("" for no filter)."""
    if not collections:
        return ""
    joined = ",".join(sorted(set(collections))).encode()
    return hashlib.blake2b(joined, digest_size=4).hexdigest()


@dataclass(frozen=True, slots=True)
class Page:
    changes: list[PulledChange]
    cursor: Cursor
    has_more: bool


def check_cursor(conn: Connection, cursor: Cursor) -> int:
    """Refuse cursors never issued (400) and cursors below the tombstone horizon (410);
    returns the horizon (the highest seq collected)."""
    purged = read_counter(conn, "purged_seq")
    if cursor.seq == 0:
        return purged
    if cursor.seq > read_counter(conn, "seq"):
        raise ValidationError(
            f"since={cursor} is ahead of every change on this server; it was not issued "
            "here (was the server's database replaced?): re-sync from since=0",
            {"field": "since"},
        )
    if cursor.seq < purged:
        raise CursorExpired(
            f"cursor {cursor} is older than the tombstone horizon ({purged}): "
            "re-sync from since=0, keeping your pending changes",
            {"horizon": str(purged)},
        )
    return purged


def changes_since(
    conn: Connection,
    principal: Principal,
    cursor: Cursor,
    limit: int,
    collections: Sequence[str] | None = None,
) -> Page:
    """One page of changes visible to ``principal`` after ``cursor``."""
    horizon = check_cursor(conn, cursor)
    if principal.is_admin:
        query = sa.select(*_COLUMNS).where(records.c.seq > cursor.seq)
        if collections:
            query = query.where(records.c.collection.in_(collections))
    else:
        seqs = (
            sa.select(record_scopes.c.seq)
            .where(
                record_scopes.c.scope.in_(sorted(principal.readable_scopes())),
                record_scopes.c.seq > cursor.seq,
            )
            .distinct()
            .order_by(record_scopes.c.seq)
            .limit(limit + 1)
        )
        if collections:
            seqs = seqs.where(record_scopes.c.collection.in_(collections))
        query = sa.select(*_COLUMNS).where(records.c.seq.in_(seqs.scalar_subquery()))
    rows = conn.execute(query.order_by(records.c.seq).limit(limit + 1)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    changes = [_change(row) for row in rows]
    last = rows[-1].seq if rows else cursor.seq
    if not has_more:
        # Up to date: never hand out a cursor below the horizon. A device whose newest
        # visible change is older than the last collected tombstone (of another facility,
        # say) would otherwise be told CURSOR_EXPIRED on every pull after its re-sync.
        # Safe because seqs become visible in commit order.
        last = max(last, horizon)
    return Page(changes, Cursor(last, cursor.filter_tag), has_more)


def _change(row: Any) -> PulledChange:
    deleted = bool(row.deleted)
    change: PulledChange = {
        "collection": row.collection,
        "id": row.id,
        "version": row.version,
        "seq": str(row.seq),
        "deleted": deleted,
        "fields": {} if deleted else orjson.loads(row.fields),
        "clocks": orjson.loads(row.clocks),
        "conflict": bool(row.conflict),
        "updated_at": rfc3339(row.updated_at) or "",
    }
    if row.deleted_clock is not None:
        change["deleted_hlc"] = row.deleted_clock
    return change
