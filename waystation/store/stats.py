"""Sync statistics for administrators, read from the op log (``GET /v1/sync/stats``).

Every op the server receives is one op-log row, re-sends included, so the counts are plain
aggregates over it: ``total`` = rows; ``applied``, ``duplicate`` (re-sends of applied ops),
``conflicts`` and ``rejected`` by status (a re-sent op that conflicted or was rejected counts
again under its status), so ``total`` is their sum and ``sync_rate`` = (applied +
duplicate) / total. Conflict resolutions are ops too (no device, the reviewer's user).

``delay_ms`` is receive time minus the client's creation time, over first receipts that
carry ``created_at_client`` (a re-send would count the same op again, later); a device
clock running ahead is clamped to 0. Percentiles are nearest-rank, computed in the database
with one ``ORDER BY ... OFFSET`` each, so they cost no Python memory on a large log.
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.timefmt import rfc3339
from waystation.store.conflicts import open_conflict_count
from waystation.store.tables import devices, op_log

_STATUSES = ("applied", "duplicate", "conflict", "rejected")


def sync_stats(
    conn: Connection,
    *,
    user_id: str | None = None,
    device_id: str | None = None,
    since_ms: int | None = None,
) -> dict[str, Any]:
    """The stats body of protocol v1, filtered by user, device and receive time."""
    filters = _filters(user_id, device_id, since_ms)
    totals = dict.fromkeys(_STATUSES, 0)
    for status, count in conn.execute(
        sa.select(op_log.c.status, sa.func.count()).where(*filters).group_by(op_log.c.status)
    ):
        totals[status] = totals.get(status, 0) + int(count)
    total = sum(totals.values())
    return {
        "total": total,
        "applied": totals["applied"],
        "duplicate": totals["duplicate"],
        "conflicts": totals["conflict"],
        "rejected": totals["rejected"],
        "open_conflicts": open_conflict_count(conn, user_id=user_id, device_id=device_id),
        "sync_rate": (totals["applied"] + totals["duplicate"]) / total if total else None,
        "by_device": _by_device(conn, filters, user_id, device_id),
        "delay_ms": _delays(conn, filters),
    }


def _filters(
    user_id: str | None, device_id: str | None, since_ms: int | None
) -> list[sa.ColumnElement[bool]]:
    filters: list[sa.ColumnElement[bool]] = []
    if user_id is not None:
        filters.append(op_log.c.user_id == user_id)
    if device_id is not None:
        filters.append(op_log.c.device_id == device_id)
    if since_ms is not None:
        filters.append(op_log.c.received_at >= since_ms)
    return filters


def _by_device(
    conn: Connection,
    filters: list[sa.ColumnElement[bool]],
    user_id: str | None,
    device_id: str | None,
) -> list[dict[str, Any]]:
    """One entry per registered device matching the user/device filters (a device that
    sent nothing in the window is listed with zeros: it may be the one that is behind)."""
    counts: dict[str, dict[str, int]] = {}
    query = (
        sa.select(op_log.c.device_id, op_log.c.status, sa.func.count())
        .where(op_log.c.device_id.is_not(None), *filters)
        .group_by(op_log.c.device_id, op_log.c.status)
    )
    for dev, status, count in conn.execute(query):
        counts.setdefault(dev, dict.fromkeys(_STATUSES, 0))[status] = int(count)
    device_query = sa.select(devices).order_by(devices.c.id)
    if user_id is not None:
        device_query = device_query.where(devices.c.user_id == user_id)
    if device_id is not None:
        device_query = device_query.where(devices.c.id == device_id)
    out: list[dict[str, Any]] = []
    for row in conn.execute(device_query):
        mine = counts.get(row.id, dict.fromkeys(_STATUSES, 0))
        out.append(
            {
                "device_id": row.id,
                "user_id": row.user_id,
                "total": sum(mine.values()),
                "applied": mine["applied"],
                "duplicate": mine["duplicate"],
                "conflicts": mine["conflict"],
                "rejected": mine["rejected"],
                "last_push_at": rfc3339(row.last_push_at),
                "last_pull_at": rfc3339(row.last_pull_at),
                "revoked": row.revoked_at is not None,
            }
        )
    return out


def _delays(conn: Connection, filters: list[sa.ColumnElement[bool]]) -> dict[str, int | None]:
    raw = op_log.c.received_at - op_log.c.created_at_client
    delay = sa.case((raw < 0, 0), else_=raw)
    where = [op_log.c.created_at_client.is_not(None), op_log.c.duplicate == sa.false(), *filters]
    count = int(
        conn.execute(sa.select(sa.func.count()).select_from(op_log).where(*where)).scalar_one()
    )
    out: dict[str, int | None] = {}
    for name, fraction in (("p50", 0.50), ("p95", 0.95)):
        if count == 0:
            out[name] = None
            continue
        rank = max(1, math.ceil(fraction * count))  # nearest-rank percentile
        value = conn.execute(
            sa.select(delay).where(*where).order_by(delay).offset(rank - 1).limit(1)
        ).scalar_one()
        out[name] = int(value)
    return out
