"""The integrity digest of a caller's records (``GET /v1/sync/digest``), read in SQL.

The records are those a pull would deliver to the caller (``pull.readable_seqs``, the
same rule), live ones only, streamed in (collection, id) order into core/digest.py; the
cursor is the one a pull that is caught up holds. Both are read in the caller's one read
transaction, so they describe the same snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.access import Principal
from waystation.core.digest import CollectionDigest, DigestAnswer, digest_answer, digest_records
from waystation.store.pull import Cursor, feed_state, readable_seqs
from waystation.store.tables import record_scopes, records

# Rows fetched at a time: PostgreSQL streams them through a server-side cursor instead of
# holding every record of a large facility in memory at once.
STREAM_ROWS = 2000


@dataclass(frozen=True, slots=True)
class Digest:
    """The digest of each collection asked for, and the cursor of its snapshot."""

    cursor: Cursor
    collections: dict[str, CollectionDigest]

    def to_wire(self) -> DigestAnswer:
        return digest_answer(str(self.cursor), self.collections)


def read_digest(conn: Connection, principal: Principal, collections: Sequence[str]) -> Digest:
    """The digest of ``collections`` (names the caller checked exist) as ``principal``
    sees them, in the snapshot of ``conn`` (a read transaction)."""
    names = sorted(set(collections))
    cursor = caught_up_cursor(conn, principal)
    query = sa.select(
        records.c.collection, records.c.id, records.c.version, records.c.fields
    ).where(records.c.collection.in_(names), records.c.deleted == sa.false())
    if not principal.is_admin:
        visible = readable_seqs(principal).where(record_scopes.c.collection.in_(names))
        query = query.where(records.c.seq.in_(visible.scalar_subquery()))
    # Code point order on both engines (core/digest.py): PostgreSQL's default collation
    # may sort "a-b" before "aa"; SQLite compares bytes already.
    if conn.dialect.name == "postgresql":
        query = query.order_by(records.c.collection.collate("C"), records.c.id.collate("C"))
    else:
        query = query.order_by(records.c.collection, records.c.id)
    result = conn.execution_options(yield_per=STREAM_ROWS).execute(query)
    rows = (
        (collection, record_id, version, orjson.loads(fields))
        for collection, record_id, version, fields in result
    )
    return Digest(cursor, digest_records(rows, names))


def caught_up_cursor(conn: Connection, principal: Principal) -> Cursor:
    """The cursor a pull by ``principal`` ends at once it has everything (no collections
    filter): the newest seq among the records it may see, tombstones included, and never
    below the tombstone horizon (as ``pull.changes_since`` answers the last page)."""
    if principal.is_admin:
        newest = sa.select(sa.func.max(records.c.seq))
    else:
        seqs = readable_seqs(principal).subquery()
        newest = sa.select(sa.func.max(seqs.c.seq))
    seq = conn.execute(newest).scalar_one()
    return Cursor(max(int(seq or 0), feed_state(conn).horizon))
