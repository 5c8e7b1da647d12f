"""Tombstone collection: deleted records are kept for ``tombstone_retention``, then dropped.

A device offline for longer than the retention could have missed a delete, so the highest
seq collected is remembered (``purged_seq``): a pull from a cursor below it is answered
410 CURSOR_EXPIRED and the device re-syncs from zero, dropping what the fresh snapshot no
longer has.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.store.sequence import read_counter, set_counter
from waystation.store.tables import record_scopes, records, unique_keys

_BATCH = 1000


def collect_tombstones(conn: Connection, horizon_ms: int) -> int:
    """Drop records deleted before ``horizon_ms`` (Unix ms); returns how many."""
    found = conn.execute(
        sa.select(records.c.collection, records.c.id, records.c.seq)
        .where(records.c.deleted == sa.true(), records.c.updated_at < horizon_ms)
        .order_by(records.c.seq)
    ).all()
    if not found:
        return 0
    for start in range(0, len(found), _BATCH):
        chunk = found[start : start + _BATCH]
        keys = [{"collection": r.collection, "id": r.id} for r in chunk]
        for table, id_column in (
            (record_scopes, record_scopes.c.record_id),
            (unique_keys, unique_keys.c.record_id),
            (records, records.c.id),
        ):
            conn.execute(
                sa.delete(table).where(
                    table.c.collection == sa.bindparam("collection"),
                    id_column == sa.bindparam("id"),
                ),
                keys,
            )
    highest = max(r.seq for r in found)
    if highest > read_counter(conn, "purged_seq"):
        set_counter(conn, "purged_seq", highest)
    return len(found)
