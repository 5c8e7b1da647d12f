"""Users and their devices. Passwords and refresh secrets arrive already hashed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.store.tables import devices, users


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    password_hash: str
    role: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    user_id: str
    name: str
    refresh_hash: str | None
    revoked_at: int | None
    wipe: bool
    last_push_at: int | None
    last_pull_at: int | None


def _user(row: Any) -> User:
    return User(row.id, row.username, row.password_hash, row.role,
                tuple(orjson.loads(row.scopes)))


def _device(row: Any) -> Device:
    return Device(row.id, row.user_id, row.name, row.refresh_hash, row.revoked_at,
                  bool(row.wipe), row.last_push_at, row.last_pull_at)


def find_user(conn: Connection, *, username: str | None = None, user_id: str | None = None
              ) -> User | None:
    column, value = (users.c.username, username) if username is not None else (users.c.id, user_id)
    row = conn.execute(sa.select(users).where(column == value)).first()
    return _user(row) if row else None


def insert_user(conn: Connection, user: User, *, now: int) -> None:
    conn.execute(sa.insert(users).values(
        id=user.id, username=user.username, password_hash=user.password_hash, role=user.role,
        scopes=orjson.dumps(list(user.scopes)).decode(), created_at=now))


def update_user(conn: Connection, user: User) -> None:
    conn.execute(sa.update(users).where(users.c.id == user.id).values(
        password_hash=user.password_hash, role=user.role,
        scopes=orjson.dumps(list(user.scopes)).decode()))


def list_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.username))]


def find_device(conn: Connection, device_id: str) -> Device | None:
    row = conn.execute(sa.select(devices).where(devices.c.id == device_id)).first()
    return _device(row) if row else None


def insert_device(conn: Connection, device_id: str, user_id: str, name: str,
                  refresh_hash: str, *, now: int) -> None:
    conn.execute(sa.insert(devices).values(
        id=device_id, user_id=user_id, name=name, created_at=now, refresh_hash=refresh_hash,
        wipe=False))


def set_refresh_hash(conn: Connection, device_id: str, refresh_hash: str, *,
                     expected: str | None = None) -> bool:
    """Rotate the refresh secret; with ``expected``, only if it still matches (one use)."""
    query = sa.update(devices).where(devices.c.id == device_id)
    if expected is not None:
        query = query.where(devices.c.refresh_hash == expected)
    return conn.execute(query.values(refresh_hash=refresh_hash)).rowcount == 1


def revoke_device(conn: Connection, device_id: str, *, wipe: bool, now: int) -> bool:
    return conn.execute(sa.update(devices).where(devices.c.id == device_id).values(
        revoked_at=now, wipe=wipe, refresh_hash=None)).rowcount == 1


def list_devices(conn: Connection, user_id: str | None = None) -> list[Device]:
    query = sa.select(devices).order_by(devices.c.created_at)
    if user_id is not None:
        query = query.where(devices.c.user_id == user_id)
    return [_device(r) for r in conn.execute(query)]


def touch_device(conn: Connection, device_id: str, *, pushed_at: int | None = None,
                 pulled_at: int | None = None) -> None:
    values: dict[str, int] = {}
    if pushed_at is not None:
        values["last_push_at"] = pushed_at
    if pulled_at is not None:
        values["last_pull_at"] = pulled_at
    if values:
        conn.execute(sa.update(devices).where(devices.c.id == device_id).values(**values))
