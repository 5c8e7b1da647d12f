"""``Store``: the server's only way to its storage, and the values that cross it.

The server (``waystation/server/``) reaches storage through this protocol alone: it
imports from ``waystation.store`` this module and ``open_store``, nothing else, so what
the routes may ask of storage is written down here, each method with what it returns and
what it raises. ``SqlStore`` (store/store.py, over SQLAlchemy Core on SQLite or
PostgreSQL) implements it.

Errors are core/errors.py's (``WaystationError`` subclasses, each with its protocol code):
``ValidationError``, ``Forbidden``, ``NotFound``, ``Unauthorized`` / ``DeviceRevoked``,
``StaleUpdate``, ``AlreadyResolved``, ``UniqueViolation``, ``CursorExpired``. What a
client sent wrong inside a push comes back in its per-op results, never as an exception.
Besides these, any method may raise what the database driver raises when the database
cannot be reached (``sqlalchemy.exc.SQLAlchemyError``); the server answers that with its
generic 500 (the readiness probe reports it instead).

Every method runs its own transaction(s) and is called off the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from waystation.core.access import Principal
from waystation.core.accounts import Device, User
from waystation.core.audit import AuditEvent
from waystation.core.hlc import Clock
from waystation.core.protocol import OpResult
from waystation.core.record import RecordState
from waystation.core.resolution import ResolveRequest
from waystation.core.schema import Schema
from waystation.core.throttle import Attempts, ThrottlePolicy
from waystation.store.audit import AuditFilter, AuditPage, BrokenChain
from waystation.store.conflicts import ConflictPage
from waystation.store.digest import Digest
from waystation.store.notify import ChangeNotice, NoticeSource
from waystation.store.pull import Cursor, FeedState, Page

# The values the port speaks, importable from here by the server.
__all__ = [
    "AuditFilter",
    "AuditPage",
    "BrokenChain",
    "ChangeNotice",
    "ConflictPage",
    "Cursor",
    "Device",
    "Digest",
    "FeedState",
    "NoticeSource",
    "Page",
    "Readiness",
    "Store",
    "StoredRecord",
    "User",
]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as stored: its state, its seq, whether it is a tombstone, when written."""

    state: RecordState
    seq: int
    deleted: bool
    updated_at: int


@dataclass(frozen=True, slots=True)
class Readiness:
    """The database's schema revision and the one this code expects (``head``)."""

    revision: str | None
    head: str | None

    @property
    def ready(self) -> bool:
        return self.revision == self.head


class Store(Protocol):
    """What the server asks of its storage. A method that names no error raises none of
    core's; see the module docstring for what any method may raise besides."""

    @property
    def schema(self) -> Schema:
        """The collections this server serves."""

    @property
    def clock(self) -> Clock:
        """The server's hybrid logical clock (``server_hlc`` of answers)."""

    @property
    def signing_key(self) -> str:
        """The secret that signs access tokens (kept in the database)."""

    # -- sync ----------------------------------------------------------------------------

    def push(
        self, principal: Principal, changes: Sequence[Any], *, audit: AuditEvent | None = None
    ) -> list[OpResult]:
        """Apply a batch of ops in one transaction; one result per op, in order (a bad op
        is rejected alone, in its result). With ``audit`` (a ``sync.push`` event), the
        same transaction appends it with the op counts. Raises BrokenChain when the audit
        trail's head was tampered with (nothing is written)."""

    def put_record(
        self,
        principal: Principal,
        collection: str,
        record_id: str,
        fields: dict[str, Any],
        expected_version: int | None,
        *,
        audit: AuditEvent | None = None,
    ) -> OpResult:
        """A server-side upsert stamped with the server's clock (``PUT /v1/records``); the
        op's result (refusals are results). Raises StaleUpdate when ``expected_version``
        (If-Match) is given and the record moved on; BrokenChain as ``push`` does."""

    def pull(
        self,
        principal: Principal,
        cursor: Cursor,
        limit: int,
        collections: Sequence[str] | None = None,
    ) -> Page:
        """The next page of changes after ``cursor`` that ``principal`` may read, read in
        one snapshot (and the device's last pull noted, at most once a minute). Raises
        ValidationError for a cursor this server never issued, CursorExpired for one below
        the tombstone horizon."""

    def digest(self, principal: Principal, collections: Sequence[str] | None = None) -> Digest:
        """The integrity digest of ``collections`` (default: every collection of the
        schema) over the live records ``principal`` may see (the pull's rule), with the
        cursor of the same read transaction. The caller checks that the names exist;
        raises nothing of its own (the driver's errors when the database is down)."""

    def feed_state(self) -> FeedState:
        """Where the change feed stands now (a read-ahead page is served only while it is
        unchanged)."""

    def newest_change(
        self,
        principal: Principal,
        cursor: Cursor,
        collections: Sequence[str] | None,
        *,
        check: bool,
    ) -> int:
        """The newest seq after ``cursor`` that ``principal`` may pull (``cursor.seq``
        when none), read in one snapshot. With ``check``, first refuses the cursor as a
        pull would: ValidationError (never issued here), CursorExpired (below the
        tombstone horizon)."""

    def current_cursor(self) -> Cursor:
        """The cursor of the newest change (unfiltered)."""

    def get_record(self, collection: str, record_id: str) -> StoredRecord | None:
        """The record as stored (tombstones too), None when there is none. The caller
        decides whether the principal may see it."""

    def open_conflicts(self, device_id: str | None = None) -> int:
        """How many conflicts are held open (those of ``device_id`` when given)."""

    def change_source(self) -> NoticeSource:
        """A source of notices of committed changes, for the live events (the process's
        own commits on SQLite, LISTEN on PostgreSQL); the caller starts and closes it."""

    def readiness(self) -> Readiness:
        """The database's migration revision against the code's. Raises the driver's
        error when the database cannot be reached."""

    # -- accounts and sessions -------------------------------------------------------------

    def find_user(self, *, username: str | None = None, user_id: str | None = None) -> User | None:
        """The user by name or id, None when there is none."""

    def find_device(self, device_id: str) -> Device | None:
        """The registered device, None when there is none."""

    def register_device(
        self, user_id: str, device_id: str, name: str, refresh_hash: str, *, refresh_expires_at: int
    ) -> int:
        """Register ``device_id`` for ``user_id`` with a new refresh secret, or, for a
        device the user already registered, log it in again (every token issued to it
        before stops). Returns the device's session generation, for its access token.
        Raises Forbidden when the id is another user's, DeviceRevoked when the device was
        revoked (core/accounts.py, ``check_registration``)."""

    def refresh_device(
        self, device_id: str, presented_hash: str, new_hash: str, *, expires_at: int
    ) -> Device:
        """Trade the device's refresh secret (its hash ``presented_hash``) for a new one
        (``new_hash``, valid until ``expires_at``); returns the device. Raises
        Unauthorized for an unknown device, or a secret that is not the current one or has
        expired; DeviceRevoked for a revoked device; Unauthorized with ``reason:
        refresh_reused`` when the secret was already traded (now or concurrently), after
        ending every session of the device; Unauthorized with ``reason: disabled`` when
        its user is disabled or gone (core/accounts.py, ``check_refresh``)."""

    def login_attempts(self, keys: list[str]) -> dict[str, Attempts]:
        """The failed-login counts of these throttle keys (absent: none)."""

    def record_login_failure(
        self, account_key: str, address_key: str, policy: ThrottlePolicy, now: int
    ) -> None:
        """Count a failed login against its account and its address (one transaction)."""

    def clear_login_failures(self, account_key: str) -> None:
        """Forget the account's failed logins (after a successful one)."""

    # -- conflicts and stats ---------------------------------------------------------------

    def list_conflicts(
        self,
        principal: Principal,
        *,
        status: str = "open",
        collection: str | None = None,
        record_id: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> ConflictPage:
        """Conflicts with ``status`` the caller may review, oldest first, each showing only
        the sides the caller may see. Raises Forbidden for roles that review none."""

    def get_conflict(self, principal: Principal, conflict_id: str) -> dict[str, Any]:
        """One conflict as the caller may see it. Raises Forbidden for roles that review
        none, NotFound for a conflict that does not exist or that they may not review."""

    def resolve_conflict(
        self,
        principal: Principal,
        conflict_id: str,
        request: ResolveRequest,
        *,
        audit: AuditEvent | None = None,
    ) -> dict[str, Any]:
        """Apply a reviewer's decision as new changes in one transaction; returns the
        resolved conflict with the changes made. Raises Forbidden (role, or a side outside
        the reviewer's scopes), NotFound, AlreadyResolved, ValidationError (a decision
        that does not fit, or fields the schema refuses), UniqueViolation (a key another
        live record holds), BrokenChain as ``push`` does; nothing is written when it
        raises."""

    def sync_stats(
        self,
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        since_ms: int | None = None,
    ) -> dict[str, Any]:
        """Counts of ops by status and of conflicts, for one user, device or everyone."""

    # -- audit trail -----------------------------------------------------------------------

    def audit(self, event: AuditEvent) -> int:
        """Append ``event`` to the audit trail in a transaction of its own; returns its id.
        Raises BrokenChain when the chain's head was tampered with."""

    def list_audit(self, filters: AuditFilter, *, after: int = 0, limit: int = 100) -> AuditPage:
        """Audit entries matching ``filters`` after entry id ``after``, oldest first."""

    # -- upkeep ----------------------------------------------------------------------------

    def collect_tombstones(self, retention_ms: int) -> int:
        """Drop records deleted more than ``retention_ms`` ago; returns how many."""

    def close(self) -> None:
        """Release the database connections."""
