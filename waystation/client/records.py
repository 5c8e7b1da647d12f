"""The replica's two record tables: the server's copy (``server_records``) and what the app
sees (``records`` = server copy + unsynced ops, see overlay.py).

Every function takes the connection of the caller's transaction: a pulled page, a push
answer or a local write updates both tables in the same commit as the rest of its work.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from waystation.client.overlay import LocalOp, visible
from waystation.client.values import dumps, loads

# Ops whose effect the server's copy does not show yet.
_OVERLAY_SQL = """
    SELECT op, fields, superseded FROM outbox
    WHERE collection = ? AND record_id = ?
      AND (status IN ('PENDING', 'SYNCING', 'FAILED')
           OR (status = 'SYNCED' AND result_version > ?))
    ORDER BY seq
"""


def server_version(conn: sqlite3.Connection, collection: str, record_id: str) -> int:
    """The version of the server's copy this replica holds (0 when it holds none)."""
    row = conn.execute(
        "SELECT version FROM server_records WHERE collection = ? AND id = ?",
        (collection, record_id),
    ).fetchone()
    return int(row[0]) if row else 0


def refresh_visible(conn: sqlite3.Connection, collection: str, record_id: str) -> None:
    """Recompute the visible row of one record from its server copy and unsynced ops."""
    row = conn.execute(
        "SELECT version, deleted, fields FROM server_records WHERE collection = ? AND id = ?",
        (collection, record_id),
    ).fetchone()
    version = int(row["version"]) if row else 0
    ops = [
        LocalOp(
            op=r["op"],
            fields=loads(r["fields"]),
            superseded=frozenset(loads(r["superseded"]) or ()),
        )
        for r in conn.execute(_OVERLAY_SQL, (collection, record_id, version))
    ]
    fields = visible(loads(row["fields"]) if row else None, bool(row and row["deleted"]), ops)
    if fields is None:
        conn.execute("DELETE FROM records WHERE collection = ? AND id = ?", (collection, record_id))
    else:
        conn.execute(
            "INSERT INTO records (collection, id, fields) VALUES (?, ?, ?) "
            "ON CONFLICT (collection, id) DO UPDATE SET fields = excluded.fields",
            (collection, record_id, dumps(fields)),
        )


def refresh_many(conn: sqlite3.Connection, keys: Iterable[tuple[str, str]]) -> None:
    for collection, record_id in set(keys):
        refresh_visible(conn, collection, record_id)


def store_pulled(conn: sqlite3.Connection, change: Mapping[str, Any], generation: int) -> None:
    """Replace the server's copy of one record with the pulled state (always the full newest
    state, never a diff) and refresh what the app sees."""
    conn.execute(
        """
        INSERT INTO server_records (collection, id, version, seq, deleted, fields, clocks,
                                    conflict, updated_at, deleted_hlc, generation)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (collection, id) DO UPDATE SET
            version = excluded.version, seq = excluded.seq, deleted = excluded.deleted,
            fields = excluded.fields, clocks = excluded.clocks, conflict = excluded.conflict,
            updated_at = excluded.updated_at, deleted_hlc = excluded.deleted_hlc,
            generation = excluded.generation
        """,
        (
            change["collection"],
            change["id"],
            int(change["version"]),
            str(change["seq"]),
            1 if change.get("deleted") else 0,
            dumps(change.get("fields") or {}),
            dumps(change.get("clocks") or {}),
            1 if change.get("conflict") else 0,
            change.get("updated_at"),
            change.get("deleted_hlc"),
            generation,
        ),
    )
    refresh_visible(conn, change["collection"], change["id"])


def drop_older_generations(conn: sqlite3.Connection, generation: int, chunk: int = 500) -> int:
    """Forget server copies a full re-pull did not deliver again (deletes the replica missed
    while its cursor was expired); returns how many were dropped."""
    dropped = 0
    while True:
        rows = conn.execute(
            "SELECT collection, id FROM server_records WHERE generation < ? LIMIT ?",
            (generation, chunk),
        ).fetchall()
        if not rows:
            return dropped
        for collection, record_id in rows:
            conn.execute(
                "DELETE FROM server_records WHERE collection = ? AND id = ?",
                (collection, record_id),
            )
            refresh_visible(conn, collection, record_id)
        dropped += len(rows)


def get_visible(conn: sqlite3.Connection, collection: str, record_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT fields FROM records WHERE collection = ? AND id = ?", (collection, record_id)
    ).fetchone()
    return None if row is None else {"id": record_id, **loads(row[0])}


def query_visible(
    conn: sqlite3.Connection, collection: str, equals: Mapping[str, Any]
) -> Iterator[dict[str, Any]]:
    """Visible records of ``collection`` whose fields equal every value in ``equals``, by id.

    Strings and numbers are filtered in SQL; every match is checked again in Python so that
    ``1``, ``1.0`` and ``True`` stay distinct as in JSON.
    """
    sql = ["SELECT id, fields FROM records WHERE collection = ?"]
    params: list[Any] = [collection]
    for name, value in equals.items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            sql.append("AND json_extract(fields, ?) = ?")
            params += [_json_path(name), value]
    sql.append("ORDER BY id")
    for record_id, text in conn.execute(" ".join(sql), params):
        fields = loads(text)
        if all(_same(fields.get(k, _MISSING), v) for k, v in equals.items()):
            yield {"id": record_id, **fields}


_MISSING = object()


def _json_path(name: str) -> str:
    return '$."' + name.replace('"', '""') + '"'


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING:
        return b is None
    return (type(a) is type(b) and a == b) or (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )
