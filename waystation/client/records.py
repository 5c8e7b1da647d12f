"""The replica's two record tables: the server's copy (``server_records``) and what the app
sees (``records`` = server copy + unsynced ops, see overlay.py).

Every function takes the connection of the caller's transaction: a pulled page, a push
answer or a local write updates both tables in the same commit as the rest of its work.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from waystation.client.overlay import LocalOp, visible
from waystation.client.values import dumps, loads

# Ops (outbox rows ``{o}``) whose effect the server's copy of version ``{version}`` does not
# show yet: one predicate for the per-record replay and the per-page check below.
_OVERLAYS = """
    ({o}status IN ('PENDING', 'SYNCING', 'FAILED')
     OR ({o}status = 'SYNCED' AND {o}result_version > {version}))
"""
_OVERLAY_SQL = f"""
    SELECT op, fields, superseded FROM outbox
    WHERE collection = ? AND record_id = ? AND {_OVERLAYS.format(o="", version="?")}
    ORDER BY seq
"""
# Whether any op at all might overlay a record: on a fresh or settled replica none does, and
# a pulled page needs no per-record outbox lookup (the outbox_push index answers this).
_ANY_OVERLAY_SQL = (
    "SELECT 1 FROM outbox WHERE status IN ('PENDING', 'SYNCING', 'FAILED', 'SYNCED') LIMIT 1"
)
# The records of a page (a JSON array of [collection, id, pulled version]) that some op
# overlays: one statement per page, probing outbox_record once per record.
_OVERLAID_SQL = f"""
    SELECT DISTINCT o.collection, o.record_id
    FROM json_each(?) AS k
    JOIN outbox AS o
      ON o.collection = json_extract(k.value, '$[0]')
     AND o.record_id = json_extract(k.value, '$[1]')
    WHERE {_OVERLAYS.format(o="o.", version="json_extract(k.value, '$[2]')")}
"""
_UPSERT_SERVER_SQL = """
    INSERT INTO server_records (collection, id, version, seq, deleted, fields, clocks,
                                conflict, updated_at, deleted_hlc, generation)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (collection, id) DO UPDATE SET
        version = excluded.version, seq = excluded.seq, deleted = excluded.deleted,
        fields = excluded.fields, clocks = excluded.clocks, conflict = excluded.conflict,
        updated_at = excluded.updated_at, deleted_hlc = excluded.deleted_hlc,
        generation = excluded.generation
"""
_UPSERT_VISIBLE_SQL = (
    "INSERT INTO records (collection, id, fields) VALUES (?, ?, ?) "
    "ON CONFLICT (collection, id) DO UPDATE SET fields = excluded.fields"
)
_DELETE_VISIBLE_SQL = "DELETE FROM records WHERE collection = ? AND id = ?"


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
        conn.execute(_DELETE_VISIBLE_SQL, (collection, record_id))
    else:
        conn.execute(_UPSERT_VISIBLE_SQL, (collection, record_id, dumps(fields)))


def refresh_many(conn: sqlite3.Connection, keys: Iterable[tuple[str, str]]) -> None:
    for collection, record_id in set(keys):
        refresh_visible(conn, collection, record_id)


def store_pulled(conn: sqlite3.Connection, change: Mapping[str, Any], generation: int) -> None:
    """Replace the server's copy of one record with the pulled state and refresh what the
    app sees (``store_pulled_page`` of one change)."""
    store_pulled_page(conn, (change,), generation)


# A server copy as ``server_records`` stores it, in the column order of _UPSERT_SERVER_SQL.
ServerRow = tuple[str, str, int, str, int, str, str, int, Any, Any, int]


def store_pulled_page(
    conn: sqlite3.Connection, changes: Iterable[Mapping[str, Any]], generation: int
) -> int:
    """Replace the server's copies of a page of records with the pulled states (always the
    full newest state, never a diff) and refresh what the app sees; returns how many."""
    return store_server_rows(conn, server_rows(changes, generation))


def server_rows(changes: Iterable[Mapping[str, Any]], generation: int) -> list[ServerRow]:
    """Pulled changes as rows ready to store. Separate from the write so the pull can let
    go of the parsed page (several times the size of its rows) before writing it."""
    encode = orjson.dumps
    rows: list[ServerRow] = []
    for change in changes:
        get = change.get
        rows.append(
            (
                change["collection"],
                change["id"],
                int(change["version"]),
                str(change["seq"]),
                1 if get("deleted") else 0,
                encode(get("fields") or {}).decode(),
                encode(get("clocks") or {}).decode(),
                1 if get("conflict") else 0,
                get("updated_at"),
                get("deleted_hlc"),
                generation,
            )
        )
    return rows


def store_server_rows(conn: sqlite3.Connection, rows: Sequence[ServerRow]) -> int:
    """Write a page of pulled server copies and refresh what the app sees; returns how many.

    A pull brings thousands of records per page, so the page is written with a few bulk
    statements instead of several statements per record: every server copy in one
    ``executemany``; then, for the records no unsynced op overlays (all of them on a new
    device), the visible row is the server copy itself — the same JSON text, written with
    one more ``executemany`` and never decoded again. Only records with pending ops are
    replayed one by one (``refresh_visible``), so a pull never hides a local edit.
    """
    if not rows:
        return 0
    conn.executemany(_UPSERT_SERVER_SQL, rows)
    # A record delivered twice in one page ends as its later state, as the upserts above.
    newest = {(row[0], row[1]): row for row in rows}
    overlaid = _overlaid(conn, newest.values())
    shown: list[tuple[str, str, str]] = []
    hidden: list[tuple[str, str]] = []
    for key, row in newest.items():
        if key in overlaid:
            continue
        if row[4]:
            hidden.append(key)
        else:
            shown.append((row[0], row[1], row[5]))
    conn.executemany(_UPSERT_VISIBLE_SQL, shown)
    if hidden:
        conn.executemany(_DELETE_VISIBLE_SQL, hidden)
    for collection, record_id in overlaid:
        refresh_visible(conn, collection, record_id)
    return len(rows)


def _overlaid(conn: sqlite3.Connection, rows: Iterable[ServerRow]) -> set[tuple[str, str]]:
    """The records among ``rows`` (server copies about to be shown) that an op overlays."""
    if conn.execute(_ANY_OVERLAY_SQL).fetchone() is None:
        return set()
    keys = orjson.dumps([(r[0], r[1], r[2]) for r in rows]).decode()
    return {(c, i) for c, i in conn.execute(_OVERLAID_SQL, (keys,))}


def drop_older_generations(conn: sqlite3.Connection, generation: int, chunk: int = 500) -> int:
    """Forget server copies a full re-pull did not deliver again (deletes the replica missed
    while its cursor was expired); returns how many were dropped.

    One pass in primary-key order, ``chunk`` rows at a time (memory stays flat), resuming
    after the last key seen: no index on ``generation`` is kept, since it would cost every
    pulled record an index write for a scan needed only at the end of a rare re-pull.
    """
    dropped = 0
    after: tuple[str, str] = ("", "")
    while True:
        rows = conn.execute(
            "SELECT collection, id FROM server_records"
            " WHERE (collection, id) > (?, ?) AND generation < ?"
            " ORDER BY collection, id LIMIT ?",
            (*after, generation, chunk),
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
        after = (rows[-1][0], rows[-1][1])


def forget_synced_without_copy(conn: sqlite3.Connection) -> int:
    """After a full re-pull: SYNCED ops of records the fresh snapshot did not deliver stop
    showing (they overlay only until the pulled copy catches up, and none will come: the
    record was deleted and collected, or is outside the user's scopes now). Every SYNCED op
    was acknowledged before the re-pull began (a sync pushes first), so the snapshot holds
    whatever of them the device may still see. Returns how many records this hid."""
    keys = conn.execute(
        "SELECT DISTINCT collection, record_id FROM outbox AS o WHERE status = 'SYNCED'"
        " AND NOT EXISTS (SELECT 1 FROM server_records AS s"
        "                 WHERE s.collection = o.collection AND s.id = o.record_id)"
    ).fetchall()
    for collection, record_id in keys:
        conn.execute(
            "DELETE FROM outbox WHERE status = 'SYNCED' AND collection = ? AND record_id = ?",
            (collection, record_id),
        )
        refresh_visible(conn, collection, record_id)
    return len(keys)


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
