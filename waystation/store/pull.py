"""The change feed: records of the caller's scopes changed since a cursor, in seq order.

The scope filter runs in SQL on the ``record_scopes (scope, seq)`` index before the page is
cut, so a pull reads O(changes in the caller's scopes since the cursor) rows whatever the
size of the database, and a page is full whenever ``has_more`` is true.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.access import Principal
from waystation.core.errors import CursorExpired, ValidationError
from waystation.core.protocol import PulledChange
from waystation.core.timefmt import rfc3339
from waystation.store.tables import counters, record_scopes, records

# In this order: _wire_change unpacks the rows positionally.
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


_SEQ = re.compile(r"[0-9]{1,18}")


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
        # ASCII digits (str.isdigit takes '²' too), within a 64-bit integer
        if not _SEQ.fullmatch(seq_text):
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
    """One page of the change feed, as the rows read (``_COLUMNS``, in seq order).

    The rows are kept as read rather than decoded: the pull route sends them on with
    ``json()``, which splices the stored ``fields``/``clocks`` JSON text into the answer
    without parsing it; ``changes`` decodes them for callers that want dicts.
    """

    rows: Sequence[Any]
    cursor: Cursor
    has_more: bool
    state: FeedState  # of the snapshot the rows were read in
    # Every distinct scope of the page's records, sorted (what the audit trail records of
    # a delivered page: which patients' records a device received).
    scopes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.rows

    @property
    def changes(self) -> list[PulledChange]:
        """The changes as dicts (decoded on every call: the wire path uses ``json()``)."""
        return [_change(row) for row in self.rows]

    def json(self) -> bytes:
        """The pull answer's body: ``{"changes": [...], "cursor": ..., "has_more": ...}``.

        Byte for byte what ``orjson.dumps`` of the decoded changes gives (the stored JSON
        is itself compact orjson output), at a fraction of the cost: an initial pull spent
        most of its server time decoding ``fields``/``clocks`` only to encode them again
        (docs/performance.md). ``orjson.Fragment`` inserts the stored text as it is, so it
        relies on the store writing only valid JSON there (codec.dumps).
        """
        return b"".join(self.json_pieces())

    def json_pieces(self, rows_per_piece: int = 200) -> Iterator[bytes]:
        """``json()`` in consecutive pieces of about ``rows_per_piece`` changes, so that the
        route can compress one piece on another core while it renders the next."""
        rows = self.rows
        yield b'{"changes":['
        for start in range(0, len(rows), rows_per_piece):
            text = orjson.dumps([_wire_change(row) for row in rows[start : start + rows_per_piece]])
            if start:
                yield b","
            yield text[1:-1]  # the changes without the list's brackets
        yield b"".join(
            (
                b'],"cursor":',
                orjson.dumps(str(self.cursor)),
                b',"has_more":',
                b"true}" if self.has_more else b"false}",
            )
        )


@dataclass(frozen=True, slots=True)
class FeedState:
    """Where the change feed stood in one snapshot: ``head``, the newest seq allocated (the
    ``seq`` counter), and ``horizon``, the highest seq whose tombstone was collected.

    Every change to a record allocates a seq and every collection raises the horizon, so
    two snapshots with equal states hold the same records: a page read in one is the page
    any later read would give while the state is unchanged (server/readahead.py).
    """

    head: int
    horizon: int


def feed_state(conn: Connection) -> FeedState:
    """Both counters in one query (a pull reads them before every page)."""
    values = {
        name: value
        for name, value in conn.execute(
            sa.select(counters.c.name, counters.c.value).where(
                counters.c.name.in_(("seq", "purged_seq"))
            )
        )
    }
    return FeedState(int(values["seq"]), int(values["purged_seq"]))


def check_cursor(conn: Connection, cursor: Cursor) -> int:
    """Refuse cursors never issued (400) and cursors below the tombstone horizon (410);
    returns the horizon (the highest seq collected)."""
    return _check_cursor(conn, cursor).horizon


def _check_cursor(conn: Connection, cursor: Cursor) -> FeedState:
    state = feed_state(conn)
    purged = state.horizon
    if cursor.seq > state.head:
        raise ValidationError(
            f"since={cursor} is ahead of every change on this server; it was not issued "
            "here (was the server's database replaced?): re-sync from since=0",
            {"field": "since"},
        )
    if cursor.seq and cursor.seq < purged:
        raise CursorExpired(
            f"cursor {cursor} is older than the tombstone horizon ({purged}): "
            "re-sync from since=0, keeping your pending changes",
            {"horizon": str(purged)},
        )
    return state


def readable_seqs(principal: Principal) -> sa.Select[tuple[int]]:
    """Who sees what, in SQL: the seqs (one per record and scope) of the records a caller
    who is not an admin may read, those with a scope among ``readable_scopes()`` (the
    ``record_scopes (scope, seq)`` index). An admin reads every record: callers check
    ``principal.is_admin`` first. The pull and the integrity digest (store/digest.py) both
    filter with it, so they cannot disagree on what a caller sees."""
    return sa.select(record_scopes.c.seq).where(
        record_scopes.c.scope.in_(sorted(principal.readable_scopes()))
    )


def changes_since(
    conn: Connection,
    principal: Principal,
    cursor: Cursor,
    limit: int,
    collections: Sequence[str] | None = None,
) -> Page:
    """One page of changes visible to ``principal`` after ``cursor``."""
    state = _check_cursor(conn, cursor)
    horizon = state.horizon
    if principal.is_admin:
        query = sa.select(*_COLUMNS).where(records.c.seq > cursor.seq)
        if collections:
            query = query.where(records.c.collection.in_(collections))
    else:
        seqs = (
            readable_seqs(principal)
            .where(record_scopes.c.seq > cursor.seq)
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
    last = rows[-1].seq if rows else cursor.seq
    scopes = page_scopes(conn, principal, cursor.seq, last, collections) if rows else ()
    if not has_more:
        # Up to date: never hand out a cursor below the horizon. A device whose newest
        # visible change is older than the last collected tombstone (of another facility,
        # say) would otherwise be told CURSOR_EXPIRED on every pull after its re-sync.
        # Safe because seqs become visible in commit order.
        last = max(last, horizon)
    return Page(rows, Cursor(last, cursor.filter_tag), has_more, state, scopes)


def page_scopes(
    conn: Connection, principal: Principal, after: int, last: int, collections: Sequence[str] | None
) -> tuple[str, ...]:
    """Every distinct scope of the records a page delivered: those of the caller's view
    (as ``changes_since`` selects them) with ``after < seq <= last``, sorted.

    One query on ``record_scopes`` alone, whose rows carry their record's seq: a range
    scan of its ``(seq, collection, scope)`` index, for a scoped caller restricted to the
    seqs with a readable scope (the ``(scope, seq)`` index, as the page itself was cut).
    No record is decoded, and the scopes come back aggregated in one value rather than a
    row each (a page of 5,000 records has ~9,000 scope rows: a row object per scope cost
    more than the rest of the query).
    """
    query = sa.select(_aggregate(conn, record_scopes.c.scope))
    if principal.is_admin:
        query = query.where(record_scopes.c.seq > after, record_scopes.c.seq <= last)
    else:
        readable = record_scopes.alias("readable")  # the subquery's own, not correlated
        visible = sa.select(readable.c.seq).where(
            readable.c.scope.in_(sorted(principal.readable_scopes())),
            readable.c.seq > after,
            readable.c.seq <= last,
        )
        query = query.where(record_scopes.c.seq.in_(visible.scalar_subquery()))
    if collections:
        query = query.where(record_scopes.c.collection.in_(collections))
    found = conn.execute(query).scalar_one()
    if isinstance(found, str):  # SQLite: a JSON array
        found = orjson.loads(found)
    return tuple(sorted(set(found or ())))


def _aggregate(conn: Connection, column: sa.ColumnElement[str]) -> sa.ColumnElement[Any]:
    """All values of ``column`` in one: a JSON array on SQLite, an array on PostgreSQL."""
    if conn.dialect.name == "sqlite":
        return sa.func.json_group_array(column)
    return sa.func.array_agg(column)


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


_EMPTY_OBJECT = orjson.Fragment(b"{}")


@functools.lru_cache(maxsize=4096)
def rfc3339_ms(ms: int) -> str:
    """Unix milliseconds as ``core.timefmt.rfc3339`` writes them, cached: the changes of a
    page were mostly written by a few pushes, each of which stamps all its records with the
    same ``updated_at``, so a page holds a handful of distinct values; building a
    ``datetime`` per row was ~9% of an initial pull's server time."""
    second, millis = divmod(ms, 1000)
    moment = dt.datetime.fromtimestamp(second, tz=dt.UTC).replace(tzinfo=None)
    return f"{moment.isoformat()}.{millis:03d}Z"


def _wire_change(row: Any) -> dict[str, Any]:
    """A row as its pulled change, with the stored JSON spliced in undecoded (Page.json)."""
    collection, id_, version, seq, deleted, conflict, fields, clocks, deleted_clock, updated_at = (
        row
    )
    change: dict[str, Any] = {
        "collection": collection,
        "id": id_,
        "version": version,
        "seq": str(seq),
        "deleted": bool(deleted),
        "fields": _EMPTY_OBJECT if deleted else orjson.Fragment(fields),
        "clocks": orjson.Fragment(clocks),
        "conflict": bool(conflict),
        "updated_at": rfc3339_ms(updated_at),
    }
    if deleted_clock is not None:
        change["deleted_hlc"] = deleted_clock
    return change
