"""The replica's login, kept in its meta table: server URL, device id, user and tokens.

The device id is made when the replica file is created, before any login, because offline
writes are stamped with it (it is the node id of the replica's clock). The password is
never stored; the access token and the rotating refresh token are, so the replica reopens
offline and re-authenticates on its own when the access token expires.
"""

from __future__ import annotations

import time
from typing import Any

from waystation.client.auth import Registration, Tokens, new_device_id
from waystation.client.db import LocalDB, get_meta, set_meta


class Session:
    """Implements the transport's ``Credentials`` over the replica's meta table."""

    def __init__(self, db: LocalDB) -> None:
        self._db = db
        with db.transaction() as conn:
            device_id = get_meta(conn, "device_id")
            if device_id is None:
                device_id = new_device_id()
                set_meta(conn, "device_id", device_id)
        self._device_id: str = device_id

    @property
    def device_id(self) -> str:
        return self._device_id

    def replace_device_id(self) -> str:
        """A new device id (the old one was revoked); forgets the old tokens."""
        self._device_id = new_device_id()
        with self._db.transaction() as conn:
            set_meta(conn, "device_id", self._device_id)
            for key in ("access_token", "refresh_token", "access_expires_at"):
                set_meta(conn, key, None)
        return self._device_id

    @property
    def server_url(self) -> str | None:
        value = self._get("server_url")
        return str(value) if value else None

    @property
    def user(self) -> dict[str, Any] | None:
        value = self._get("user")
        return dict(value) if isinstance(value, dict) else None

    @property
    def logged_in(self) -> bool:
        return bool(self.server_url and (self.access_token() or self.refresh_token()))

    def access_token(self) -> str | None:
        expires = self._get("access_expires_at")
        if expires is not None and time.time() >= float(expires):
            return None  # expired: the transport refreshes before sending
        value = self._get("access_token")
        return str(value) if value else None

    def refresh_token(self) -> str | None:
        value = self._get("refresh_token")
        return str(value) if value else None

    def save_tokens(self, tokens: Tokens) -> None:
        with self._db.transaction() as conn:
            self._put_tokens(conn, tokens)

    def store_registration(self, server: str, registration: Registration) -> None:
        with self._db.transaction() as conn:
            set_meta(conn, "server_url", server)
            set_meta(conn, "user", registration.user)
            self._put_tokens(conn, registration.tokens)

    def set_server_url(self, server: str) -> None:
        with self._db.transaction() as conn:
            set_meta(conn, "server_url", server)

    def clear_tokens(self) -> None:
        """Forget the tokens (a revoked device); the next sync asks to log in again."""
        with self._db.transaction() as conn:
            for key in ("access_token", "refresh_token", "access_expires_at"):
                set_meta(conn, key, None)

    def _put_tokens(self, conn: Any, tokens: Tokens) -> None:
        set_meta(conn, "access_token", tokens.access_token)
        if tokens.refresh_token:
            set_meta(conn, "refresh_token", tokens.refresh_token)
        # A little early, so a token never expires in flight.
        expires = time.time() + tokens.expires_in - 30 if tokens.expires_in > 0 else None
        set_meta(conn, "access_expires_at", expires)

    def _get(self, key: str) -> Any:
        # Committed values, without waiting for another thread's write transaction: the
        # pull's prefetch thread reads the token while the syncing thread applies a page.
        with self._db.read_committed() as conn:
            return get_meta(conn, key)
