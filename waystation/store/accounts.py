"""Users, their devices, and failed-login counts. Passwords and refresh secrets arrive
already hashed.

Sessions end by generation: a token carries the ``token_gen`` of its user (a user token)
or device (a device token) when it was issued, and is refused once the row's generation
moved on. Ending a user's sessions bumps the user's generation and every device's, and
clears the devices' refresh secrets, so nothing issued before still works."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from waystation.core.accounts import Device, User
from waystation.core.throttle import Attempts
from waystation.store.tables import devices, login_throttle, users


def _user(row: Any) -> User:
    return User(
        row.id,
        row.username,
        row.password_hash,
        row.role,
        tuple(orjson.loads(row.scopes)),
        row.token_gen,
        row.disabled_at,
    )


def _device(row: Any) -> Device:
    return Device(
        row.id,
        row.user_id,
        row.name,
        row.refresh_hash,
        row.revoked_at,
        bool(row.wipe),
        row.last_push_at,
        row.last_pull_at,
        row.token_gen,
        row.prev_refresh_hash,
        row.refresh_expires_at,
    )


def find_user(
    conn: Connection, *, username: str | None = None, user_id: str | None = None
) -> User | None:
    column, value = (users.c.username, username) if username is not None else (users.c.id, user_id)
    row = conn.execute(sa.select(users).where(column == value)).first()
    return _user(row) if row else None


def insert_user(conn: Connection, user: User, *, now: int) -> None:
    conn.execute(
        sa.insert(users).values(
            id=user.id,
            username=user.username,
            password_hash=user.password_hash,
            role=user.role,
            scopes=orjson.dumps(list(user.scopes)).decode(),
            created_at=now,
        )
    )


def update_user(conn: Connection, user: User) -> None:
    conn.execute(
        sa.update(users)
        .where(users.c.id == user.id)
        .values(
            password_hash=user.password_hash,
            role=user.role,
            scopes=orjson.dumps(list(user.scopes)).decode(),
        )
    )


def list_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.username))]


def find_device(conn: Connection, device_id: str) -> Device | None:
    row = conn.execute(sa.select(devices).where(devices.c.id == device_id)).first()
    return _device(row) if row else None


def insert_device(
    conn: Connection,
    device_id: str,
    user_id: str,
    name: str,
    refresh_hash: str,
    *,
    refresh_expires_at: int,
    now: int,
) -> None:
    conn.execute(
        sa.insert(devices).values(
            id=device_id,
            user_id=user_id,
            name=name,
            created_at=now,
            refresh_hash=refresh_hash,
            refresh_expires_at=refresh_expires_at,
            wipe=False,
        )
    )


def set_refresh_hash(
    conn: Connection,
    device_id: str,
    refresh_hash: str,
    *,
    expires_at: int,
    expected: str | None = None,
) -> bool:
    """Rotate the refresh secret; with ``expected``, only if it still matches (one use),
    keeping it as the previous secret so that its reuse is recognised. Without, a new
    login: nothing earlier is kept."""
    query = sa.update(devices).where(devices.c.id == device_id)
    if expected is not None:
        query = query.where(devices.c.refresh_hash == expected)
    return (
        conn.execute(
            query.values(
                refresh_hash=refresh_hash, prev_refresh_hash=expected, refresh_expires_at=expires_at
            )
        ).rowcount
        == 1
    )


def end_device_sessions(conn: Connection, device_id: str) -> None:
    """Every token issued to the device stops: its generation moves on and its refresh
    secrets are cleared (it may log in again)."""
    conn.execute(
        sa.update(devices)
        .where(devices.c.id == device_id)
        .values(token_gen=devices.c.token_gen + 1, refresh_hash=None, prev_refresh_hash=None)
    )


def end_user_sessions(conn: Connection, user_id: str) -> None:
    """Every token of the user and of each of their devices stops at once."""
    conn.execute(
        sa.update(users).where(users.c.id == user_id).values(token_gen=users.c.token_gen + 1)
    )
    conn.execute(
        sa.update(devices)
        .where(devices.c.user_id == user_id)
        .values(token_gen=devices.c.token_gen + 1, refresh_hash=None, prev_refresh_hash=None)
    )


def set_disabled(conn: Connection, user_id: str, disabled_at: int | None) -> bool:
    return (
        conn.execute(
            sa.update(users).where(users.c.id == user_id).values(disabled_at=disabled_at)
        ).rowcount
        == 1
    )


def revoke_device(conn: Connection, device_id: str, *, wipe: bool, now: int) -> bool:
    return (
        conn.execute(
            sa.update(devices)
            .where(devices.c.id == device_id)
            .values(revoked_at=now, wipe=wipe, refresh_hash=None)
        ).rowcount
        == 1
    )


def list_devices(conn: Connection, user_id: str | None = None) -> list[Device]:
    query = sa.select(devices).order_by(devices.c.created_at)
    if user_id is not None:
        query = query.where(devices.c.user_id == user_id)
    return [_device(r) for r in conn.execute(query)]


def touch_device(
    conn: Connection, device_id: str, *, pushed_at: int | None = None, pulled_at: int | None = None
) -> None:
    values: dict[str, int] = {}
    if pushed_at is not None:
        values["last_push_at"] = pushed_at
    if pulled_at is not None:
        values["last_pull_at"] = pulled_at
    if values:
        conn.execute(sa.update(devices).where(devices.c.id == device_id).values(**values))


# -- failed logins (core/throttle.py decides what they mean) ------------------------------


def read_attempts(conn: Connection, keys: list[str]) -> dict[str, Attempts]:
    rows = conn.execute(sa.select(login_throttle).where(login_throttle.c.key.in_(keys)))
    return {
        row.key: Attempts(row.failures, row.first_failure_at, row.blocked_until) for row in rows
    }


def write_attempts(conn: Connection, key: str, attempts: Attempts) -> None:
    values = {
        "failures": attempts.failures,
        "first_failure_at": attempts.first_at,
        "blocked_until": attempts.blocked_until,
    }
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        login_throttle
    ).values(key=key, **values)
    conn.execute(insert.on_conflict_do_update(index_elements=["key"], set_=values))


def clear_attempts(conn: Connection, key: str) -> None:
    conn.execute(sa.delete(login_throttle).where(login_throttle.c.key == key))
