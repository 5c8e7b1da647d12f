"""The durable outbox: every local write as an op waiting for (or holding) its server verdict.

Lifecycle of an entry::

    PENDING ──push──▶ SYNCING ──answer──▶ SYNCED | CONFLICT | REJECTED
       ▲                 │
       │                 ├── no answer, retries left ──▶ PENDING (retry_count + 1, backoff)
       │                 └── no answer, retries spent ─▶ FAILED ──retry_failed()──┐
       └──────── crash mid-sync: SYNCING found by the next sync or open ◀─────────┘

An op sent without an answer coming back (a lost ack, a 5xx, a crash mid-sync) is *in
doubt*: the server may have applied it. ``has_ops_in_doubt`` lets the engine hold the pull
back until a resend settles them (the server answers ``duplicate``), because a pulled copy
that already contains an op plus the same op replayed on top would count it twice.

Nothing is dropped silently: CONFLICT, REJECTED and FAILED entries keep the server's (or
the transport's) error until the app discards or retries them. Resending a SYNCING op after
a crash is safe because the server deduplicates op ids.

Push order: higher collection priority first, then age. Ops of one record share a
collection (so a priority) and keep their relative order; an op is held back while an
earlier op of its record is FAILED, in flight, or waiting out its backoff, so a partial
update can never overtake the create it depends on.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from waystation.client.values import dumps, loads


class OpStatus(StrEnum):
    PENDING = "PENDING"
    SYNCING = "SYNCING"
    SYNCED = "SYNCED"
    FAILED = "FAILED"
    CONFLICT = "CONFLICT"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One op and where it stands. ``last_error`` is ``{"code", "message", "details"}``."""

    seq: int
    op_id: str
    collection: str
    record_id: str
    op: str
    fields: dict[str, Any]
    hlc: str
    base_version: int
    priority: int
    status: OpStatus
    retry_count: int
    next_attempt_at: dt.datetime | None
    last_error: dict[str, Any] | None
    created_at: dt.datetime
    acked_at: dt.datetime | None
    result_version: int | None
    superseded: list[str]
    conflict_id: str | None

    def to_change(self) -> dict[str, Any]:
        """The op as protocol v1 pushes it."""
        change: dict[str, Any] = {
            "op_id": self.op_id,
            "collection": self.collection,
            "record_id": self.record_id,
            "op": self.op,
            "fields": self.fields,
            "hlc": self.hlc,
            "base_version": self.base_version,
            "created_at_client": rfc3339(self.created_at),
        }
        return change

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OutboxEntry:
        next_ms = int(row["next_attempt_at"])
        return cls(
            seq=int(row["seq"]),
            op_id=row["op_id"],
            collection=row["collection"],
            record_id=row["record_id"],
            op=row["op"],
            fields=loads(row["fields"]),
            hlc=row["hlc"],
            base_version=int(row["base_version"]),
            priority=int(row["priority"]),
            status=OpStatus(row["status"]),
            retry_count=int(row["retry_count"]),
            next_attempt_at=dt.datetime.fromtimestamp(next_ms / 1000, dt.UTC) if next_ms else None,
            last_error=loads(row["last_error"]),
            created_at=dt.datetime.fromisoformat(row["created_at"]),
            acked_at=dt.datetime.fromisoformat(row["acked_at"]) if row["acked_at"] else None,
            result_version=row["result_version"],
            superseded=loads(row["superseded"]) or [],
            conflict_id=row["conflict_id"],
        )


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def enqueue(
    conn: sqlite3.Connection,
    *,
    op_id: str,
    collection: str,
    record_id: str,
    op: str,
    fields: Mapping[str, Any],
    hlc: str,
    base_version: int,
    priority: int,
) -> None:
    """Add one PENDING op (in the caller's transaction, with the replica write)."""
    conn.execute(
        "INSERT INTO outbox (op_id, collection, record_id, op, fields, hlc, base_version,"
        " priority, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            op_id,
            collection,
            record_id,
            op,
            dumps(dict(fields)),
            hlc,
            base_version,
            priority,
            rfc3339(dt.datetime.now(dt.UTC)),
        ),
    )


def next_batch(
    conn: sqlite3.Connection, limit: int, *, due_before_ms: int | None = None
) -> list[OutboxEntry]:
    """The next PENDING ops to push, in push order, at most ``limit``.

    With ``due_before_ms`` ops still waiting out a backoff are skipped (continuous mode);
    without it an explicit sync tries every PENDING op now.
    """
    due = due_before_ms if due_before_ms is not None else 2**62
    rows = conn.execute(
        """
        SELECT * FROM outbox AS o
        WHERE o.status = 'PENDING' AND o.next_attempt_at <= :due
          AND NOT EXISTS (
              SELECT 1 FROM outbox AS p
              WHERE p.collection = o.collection AND p.record_id = o.record_id
                AND p.seq < o.seq
                AND (p.status IN ('FAILED', 'SYNCING')
                     OR (p.status = 'PENDING' AND p.next_attempt_at > :due)))
        ORDER BY o.priority DESC, o.seq
        LIMIT :limit
        """,
        {"due": due, "limit": limit},
    ).fetchall()
    return [OutboxEntry.from_row(r) for r in rows]


def _in(seqs: Sequence[int]) -> str:
    return ",".join(str(int(s)) for s in seqs)


def mark_syncing(conn: sqlite3.Connection, seqs: Sequence[int]) -> None:
    conn.execute(f"UPDATE outbox SET status = 'SYNCING' WHERE seq IN ({_in(seqs)})")


def back_to_pending(conn: sqlite3.Connection, seqs: Sequence[int]) -> None:
    """The batch never reached the server (offline, auth): no retry is spent."""
    conn.execute(
        f"UPDATE outbox SET status = 'PENDING' WHERE seq IN ({_in(seqs)}) AND status = 'SYNCING'"
    )


def record_failure(
    conn: sqlite3.Connection,
    entries: Sequence[OutboxEntry],
    error: Mapping[str, Any],
    *,
    max_retries: int,
    delay_s: Callable[[int], float],
) -> list[OutboxEntry]:
    """Spend one retry of each op (now in doubt): back to PENDING after ``delay_s(retries)``
    seconds, or FAILED once ``max_retries`` are spent. Ops of the same record sent after a
    newly FAILED one share its fate (they could not overtake it anyway). Returns the
    entries that became FAILED."""
    failed: list[OutboxEntry] = []
    error_json = dumps(dict(error))
    for entry in entries:
        retries = entry.retry_count + 1
        next_at = now_ms() + int(delay_s(retries) * 1000)
        status = OpStatus.FAILED if retries >= max_retries else OpStatus.PENDING
        changed = conn.execute(
            "UPDATE outbox SET status = ?, retry_count = ?, next_attempt_at = ?, last_error = ?,"
            " in_doubt = 1 WHERE seq = ? AND status IN ('SYNCING', 'PENDING')",
            (status.value, retries, next_at, error_json, entry.seq),
        ).rowcount
        if changed and status is OpStatus.FAILED:
            failed.append(entry)
            failed.extend(_fail_followers(conn, entry, error_json))
    return failed


def _fail_followers(
    conn: sqlite3.Connection, entry: OutboxEntry, error_json: str
) -> list[OutboxEntry]:
    rows = conn.execute(
        "SELECT * FROM outbox WHERE collection = ? AND record_id = ? AND seq > ?"
        " AND (status = 'SYNCING' OR (status = 'PENDING' AND in_doubt = 1))",
        (entry.collection, entry.record_id, entry.seq),
    ).fetchall()
    for row in rows:
        conn.execute(
            "UPDATE outbox SET status = 'FAILED', last_error = ? WHERE seq = ?",
            (error_json, row["seq"]),
        )
    return [OutboxEntry.from_row(r) for r in rows]


def record_verdict(
    conn: sqlite3.Connection, entry: OutboxEntry, result: Mapping[str, Any]
) -> OpStatus:
    """Store the server's answer for one op; returns the entry's new status."""
    status = str(result.get("status"))
    acked = rfc3339(dt.datetime.now(dt.UTC))
    if status in ("applied", "duplicate"):
        hlc = result.get("hlc") if result.get("restamped") else None
        conn.execute(
            "UPDATE outbox SET status = 'SYNCED', acked_at = ?, result_version = ?,"
            " superseded = ?, hlc = COALESCE(?, hlc), last_error = NULL, next_attempt_at = 0,"
            " in_doubt = 0"
            " WHERE seq = ?",
            (
                acked,
                int(result.get("version") or 0),
                dumps(list(result.get("superseded") or [])),
                hlc,
                entry.seq,
            ),
        )
        return OpStatus.SYNCED
    if status in ("conflict", "rejected"):
        new = OpStatus.CONFLICT if status == "conflict" else OpStatus.REJECTED
        conn.execute(
            "UPDATE outbox SET status = ?, acked_at = ?, last_error = ?, conflict_id = ?,"
            " in_doubt = 0 WHERE seq = ?",
            (
                new.value,
                acked,
                dumps(_error_of(result)),
                result.get("conflict_id"),
                entry.seq,
            ),
        )
        return new
    raise ValueError(f"unknown op status {status!r} from the server")


def _error_of(result: Mapping[str, Any]) -> dict[str, Any]:
    error = result.get("error")
    if not isinstance(error, Mapping):
        return {"code": "UNKNOWN", "message": "the server gave no reason", "details": {}}
    return {
        "code": str(error.get("code", "UNKNOWN")),
        "message": str(error.get("message", "")),
        "details": dict(error.get("details") or {}),
    }


def recover_syncing(conn: sqlite3.Connection) -> int:
    """SYNCING ops left by a crash mid-sync go back to PENDING, in doubt (no retry spent)."""
    return conn.execute(
        "UPDATE outbox SET status = 'PENDING', in_doubt = 1 WHERE status = 'SYNCING'"
    ).rowcount


def has_ops_in_doubt(conn: sqlite3.Connection) -> bool:
    """True while a PENDING or SYNCING op may have been applied without our knowing."""
    row = conn.execute(
        "SELECT 1 FROM outbox WHERE status = 'SYNCING'"
        " OR (status = 'PENDING' AND in_doubt = 1) LIMIT 1"
    ).fetchone()
    return row is not None


def retry_failed(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Requeue FAILED ops with a fresh retry budget; returns the records they touch."""
    keys = [
        (r[0], r[1])
        for r in conn.execute("SELECT collection, record_id FROM outbox WHERE status = 'FAILED'")
    ]
    conn.execute(
        "UPDATE outbox SET status = 'PENDING', retry_count = 0, next_attempt_at = 0"
        " WHERE status = 'FAILED'"
    )
    return keys


def discard(conn: sqlite3.Connection, op_id: str) -> tuple[str, str] | None:
    """Remove a FAILED, CONFLICT or REJECTED op the app has dealt with; returns its record,
    or None when no such op is in one of those states."""
    row = conn.execute(
        "SELECT collection, record_id FROM outbox"
        " WHERE op_id = ? AND status IN ('FAILED', 'CONFLICT', 'REJECTED')",
        (op_id,),
    ).fetchone()
    if row is None:
        return None
    conn.execute("DELETE FROM outbox WHERE op_id = ?", (op_id,))
    return (row[0], row[1])


def set_priorities(conn: sqlite3.Connection, priorities: Mapping[str, int]) -> None:
    """Adopt the server's collection priorities for ops not yet acknowledged (all ops of a
    collection then share one priority, which keeps each record's ops in order)."""
    for collection, priority in priorities.items():
        conn.execute(
            "UPDATE outbox SET priority = ? WHERE collection = ?"
            " AND status IN ('PENDING', 'SYNCING', 'FAILED')",
            (priority, collection),
        )


def prune_synced(conn: sqlite3.Connection, acked_before: dt.datetime) -> int:
    """Forget SYNCED ops acknowledged before ``acked_before`` (the server keeps the op log)."""
    return conn.execute(
        "DELETE FROM outbox WHERE status = 'SYNCED' AND acked_at < ?", (rfc3339(acked_before),)
    ).rowcount


def entries(
    conn: sqlite3.Connection,
    *,
    statuses: Iterable[OpStatus] | None = None,
    collection: str | None = None,
    record_id: str | None = None,
    limit: int | None = None,
) -> list[OutboxEntry]:
    sql = ["SELECT * FROM outbox WHERE 1 = 1"]
    params: list[Any] = []
    if statuses is not None:
        wanted = [OpStatus(s).value for s in statuses]
        sql.append(f"AND status IN ({','.join('?' * len(wanted))})")
        params += wanted
    if collection is not None:
        sql.append("AND collection = ?")
        params.append(collection)
    if record_id is not None:
        sql.append("AND record_id = ?")
        params.append(record_id)
    sql.append("ORDER BY seq")
    if limit is not None:
        sql.append("LIMIT ?")
        params.append(limit)
    return [OutboxEntry.from_row(r) for r in conn.execute(" ".join(sql), params)]


def counts(conn: sqlite3.Connection) -> dict[OpStatus, int]:
    found = dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
    return {s: int(found.get(s.value, 0)) for s in OpStatus}
