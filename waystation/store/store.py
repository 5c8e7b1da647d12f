"""``SqlStore``: the server's ``Store`` (store/port.py, where each method's contract and
errors are written) over one SQLAlchemy database, SQLite or PostgreSQL.

It composes the modules that own the SQL (push, pull, accounts, conflicts, audit, ...) into
transactions; rules come from core (who may register a device: core/accounts.py; who may
review a conflict: core/access.py).
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.access import Principal, ends_sessions
from waystation.core.accounts import (
    REFRESH_REUSED,
    Device,
    User,
    check_account,
    check_refresh,
    check_registration,
    refresh_reused,
)
from waystation.core.apply import DEFAULT_MAX_CLOCK_SKEW_MS, ApplyContext, visible_version
from waystation.core.audit import AuditEvent
from waystation.core.errors import Unauthorized
from waystation.core.hlc import HLC, Clock
from waystation.core.ids import uuid7
from waystation.core.protocol import OpResult, make_change, parse_changes
from waystation.core.resolution import ResolveRequest
from waystation.core.schema import Schema
from waystation.core.throttle import Attempts, ThrottlePolicy, account_failed, address_failed
from waystation.store import accounts
from waystation.store.audit import (
    AuditFilter,
    AuditPage,
    BrokenChain,
    ChainHead,
    Verification,
    append,
    list_entries,
    read_head,
    stored_scopes,
    verify,
)
from waystation.store.codec import state_from_row
from waystation.store.conflicts import (
    ConflictPage,
    get_conflict,
    list_conflicts,
    resolve_conflict,
)
from waystation.store.database import Database
from waystation.store.digest import Digest, read_digest
from waystation.store.migrate import current_revision, head_revision, upgrade
from waystation.store.notify import NoticeSource, newest_change, source_for
from waystation.store.port import Readiness, Store, StoredRecord
from waystation.store.pull import Cursor, FeedState, Page, changes_since, check_cursor, feed_state
from waystation.store.push import plan_batch
from waystation.store.retention import collect_tombstones
from waystation.store.sequence import get_meta, get_or_create_meta, new_secret, read_counter
from waystation.store.stats import sync_stats
from waystation.store.tables import conflicts, records
from waystation.store.transaction import Transaction
from waystation.store.write_plan import write_plan

PULL_TOUCH_INTERVAL_MS = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqlStore:
    """Server storage over one database (SQLite file or PostgreSQL): ``Store``
    (store/port.py) and the administration the command line needs besides."""

    def __init__(
        self, db: Database, schema: Schema, *, max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS
    ) -> None:
        self.db = db
        self.schema = schema
        self.max_clock_skew_ms = max_clock_skew_ms
        with db.write() as conn:
            self.signing_key = get_or_create_meta(conn, "signing_key", new_secret())
            last = get_meta(conn, "last_hlc")
        # Each process gets its own node id, so two server processes never mint equal clocks.
        node = f"s-{secrets.token_hex(4)}"
        self.clock = Clock(node, last=HLC.parse(last) if last else None)
        self._pull_touched: dict[str, int] = {}

    # -- sync ------------------------------------------------------------------------

    def push(
        self, principal: Principal, changes: Sequence[Any], *, audit: AuditEvent | None = None
    ) -> list[OpResult]:
        """Apply a batch of ops in one transaction; one result per op.

        With ``audit`` (a ``sync.push`` event), the same transaction appends it to the
        audit trail with ``details`` = the number of ops and their counts by status.
        """
        ctx = ApplyContext(self.schema, principal, self.clock, self.max_clock_skew_ms)
        received = now_ms()
        parsed = parse_changes(changes)  # before the write transaction: it needs no lock

        def work(tx: Transaction) -> list[OpResult]:  # run again if it lost a race (PG)
            results = write_plan(tx, plan_batch(tx.conn, ctx, parsed, received_at=received))
            if principal.device_id:
                accounts.touch_device(tx.conn, principal.device_id, pushed_at=received)
            if audit is not None:  # last: the trail's head is the last lock taken
                by_status = Counter(result["status"] for result in results)
                append(
                    tx.conn,
                    replace(
                        audit,
                        details={
                            **audit.details,
                            "ops": len(results),
                            "by_status": dict(by_status),
                        },
                    ),
                    now=received,
                )
            return results

        return self.db.transact(work)

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
        """A server-side upsert stamped with the server's clock (``PUT /v1/records``).

        With ``expected_version`` (If-Match) it raises StaleUpdate when the record moved on;
        without, the write is made as if against the record's current version. With
        ``audit`` (a ``record.put`` event), the same transaction appends it with the op's
        status, outcome and the record's scopes.
        """
        ctx = ApplyContext(self.schema, principal, self.clock, self.max_clock_skew_ms)

        def work(tx: Transaction) -> OpResult:  # run again if it lost a race (PG)
            conn = tx.conn
            if expected_version is None:
                row = conn.execute(
                    sa.select(records).where(
                        records.c.collection == collection, records.c.id == record_id
                    )
                ).first()
                state = state_from_row(row) if row is not None else None
                # as the caller may know it: a hidden record is answered like a missing one
                base = visible_version(principal, self.schema.get(collection), state)
            else:
                base = expected_version
            change = make_change(
                op_id=uuid7(),
                collection=collection,
                record_id=record_id,
                op="upsert",
                fields=fields,
                hlc=str(self.clock.send()),
                base_version=base,
            )
            plan = plan_batch(
                conn, ctx, [change], received_at=now_ms(), expected_version=expected_version
            )
            result = write_plan(tx, plan)[0]
            if audit is not None:
                append(
                    conn,
                    _put_event(audit, result, stored_scopes(conn, collection, [record_id])),
                    now=now_ms(),
                )
            return result

        return self.db.transact(work)

    def pull(
        self,
        principal: Principal,
        cursor: Cursor,
        limit: int,
        collections: Sequence[str] | None = None,
    ) -> Page:
        with self.db.read() as conn:
            page = changes_since(conn, principal, cursor, limit, collections)
        self._touch_pull(principal.device_id)
        return page

    def digest(self, principal: Principal, collections: Sequence[str] | None = None) -> Digest:
        """The integrity digest of ``collections`` (default: every collection of the
        schema) over the live records ``principal`` may see, with the cursor of the same
        read transaction (store/digest.py). The caller checks the names exist."""
        with self.db.read() as conn:
            return read_digest(conn, principal, collections or list(self.schema.collections))

    def _touch_pull(self, device_id: str | None) -> None:
        """Record the device's last pull, at most once a minute (idle syncs stay reads)."""
        if device_id is None:
            return
        now = now_ms()
        if now - self._pull_touched.get(device_id, 0) < PULL_TOUCH_INTERVAL_MS:
            return
        self._pull_touched[device_id] = now
        with self.db.write() as conn:
            accounts.touch_device(conn, device_id, pulled_at=now)

    def feed_state(self) -> FeedState:
        with self.db.read() as conn:
            return feed_state(conn)

    def newest_change(
        self,
        principal: Principal,
        cursor: Cursor,
        collections: Sequence[str] | None,
        *,
        check: bool,
    ) -> int:
        with self.db.read() as conn:
            if check:
                check_cursor(conn, cursor)
            return max(cursor.seq, newest_change(conn, principal, cursor.seq, collections))

    def change_source(self) -> NoticeSource:
        return source_for(self.db)

    def readiness(self) -> Readiness:
        return Readiness(current_revision(self.db), head_revision())

    def get_record(self, collection: str, record_id: str) -> StoredRecord | None:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(records).where(
                    records.c.collection == collection, records.c.id == record_id
                )
            ).first()
        if row is None:
            return None
        return StoredRecord(state_from_row(row), row.seq, bool(row.deleted), row.updated_at)

    def current_cursor(self) -> Cursor:
        with self.db.read() as conn:
            return Cursor(read_counter(conn, "seq"))

    def open_conflicts(self, device_id: str | None = None) -> int:
        query = (
            sa.select(sa.func.count()).select_from(conflicts).where(conflicts.c.status == "open")
        )
        if device_id is not None:
            query = query.where(conflicts.c.device_id == device_id)
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

    # -- accounts --------------------------------------------------------------------

    def find_user(self, *, username: str | None = None, user_id: str | None = None) -> User | None:
        with self.db.read() as conn:
            return accounts.find_user(conn, username=username, user_id=user_id)

    def add_user(self, username: str, password_hash: str, role: str, scopes: Sequence[str]) -> User:
        user = User(uuid7(), username, password_hash, role, tuple(scopes))
        with self.db.write() as conn:
            accounts.insert_user(conn, user, now=now_ms())
        return user

    def update_user(self, user: User) -> bool:
        """Change a user's password hash, role or scopes; a new password, another role or a
        scope taken away also ends every session of the user and their devices (they log
        in again). Returns whether sessions ended."""
        with self.db.write() as conn:
            before = accounts.find_user(conn, user_id=user.id)
            accounts.update_user(conn, user)
            ending = before is not None and ends_sessions(
                before.role,
                before.scopes,
                user.role,
                user.scopes,
                password_changed=before.password_hash != user.password_hash,
            )
            if ending:
                accounts.end_user_sessions(conn, user.id)
        return ending

    def set_user_disabled(self, user_id: str, disabled: bool) -> bool:
        """Disable a user (every session of theirs and of their devices ends, and they can
        no longer log in) or enable them again; False for an unknown user."""
        with self.db.write() as conn:
            if not accounts.set_disabled(conn, user_id, now_ms() if disabled else None):
                return False
            if disabled:
                accounts.end_user_sessions(conn, user_id)
        return True

    def list_users(self) -> list[User]:
        with self.db.read() as conn:
            return accounts.list_users(conn)

    def find_device(self, device_id: str) -> Device | None:
        with self.db.read() as conn:
            return accounts.find_device(conn, device_id)

    def add_device(
        self, device_id: str, user_id: str, name: str, refresh_hash: str, *, refresh_expires_at: int
    ) -> bool:
        """Register ``device_id``; False when it is taken: a concurrent registration of the
        same id committed first (a device retrying a request whose answer it lost)."""
        try:
            with self.db.write() as conn:
                accounts.insert_device(
                    conn,
                    device_id,
                    user_id,
                    name,
                    refresh_hash,
                    refresh_expires_at=refresh_expires_at,
                    now=now_ms(),
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def register_device(
        self, user_id: str, device_id: str, name: str, refresh_hash: str, *, refresh_expires_at: int
    ) -> int:
        existing = self.find_device(device_id)
        if existing is None:
            if self.add_device(
                device_id, user_id, name, refresh_hash, refresh_expires_at=refresh_expires_at
            ):
                return 0
            existing = self.find_device(device_id)  # a concurrent request registered it first
            if existing is None:
                return 0
        check_registration(existing, user_id)
        # A new login of a known device: whatever was issued to it before stops (a copy of
        # an old token must not outlive its owner logging in again).
        self.end_device_sessions(device_id)
        self.rotate_refresh(device_id, refresh_hash, expires_at=refresh_expires_at, expected=None)
        current = self.find_device(device_id)
        return current.token_gen if current is not None else existing.token_gen + 1

    def refresh_device(
        self, device_id: str, presented_hash: str, new_hash: str, *, expires_at: int
    ) -> Device:
        device = self.find_device(device_id)
        if device is None:
            raise Unauthorized("unknown refresh token: log in again")
        try:
            check_refresh(device, presented_hash, now_ms())
        except Unauthorized as refused:
            if refused.details.get("reason") == REFRESH_REUSED:  # a copy: the family ends
                self.end_device_sessions(device.id)
            raise
        check_account(self.find_user(user_id=device.user_id))
        if not self.rotate_refresh(
            device.id, new_hash, expires_at=expires_at, expected=presented_hash
        ):
            # Another request traded the same secret at the same moment: one of the two is
            # a copy, and which one cannot be told. The family ends.
            self.end_device_sessions(device.id)
            raise refresh_reused()
        return device

    def rotate_refresh(
        self, device_id: str, new_hash: str, *, expires_at: int, expected: str | None
    ) -> bool:
        """Give the device a new refresh secret: a refresh (``expected``: the one presented,
        kept to recognise its reuse; False when another request used it first) or a new
        login (``expected=None``)."""
        with self.db.write() as conn:
            return accounts.set_refresh_hash(
                conn, device_id, new_hash, expires_at=expires_at, expected=expected
            )

    def end_device_sessions(self, device_id: str) -> None:
        """Stop every token issued to the device (a reused refresh token: the family is
        revoked); the device is not revoked and may log in again."""
        with self.db.write() as conn:
            accounts.end_device_sessions(conn, device_id)

    # -- failed logins -----------------------------------------------------------------

    def login_attempts(self, keys: list[str]) -> dict[str, Attempts]:
        with self.db.read() as conn:
            return accounts.read_attempts(conn, keys)

    def record_login_failure(
        self, account_key: str, address_key: str, policy: ThrottlePolicy, now: int
    ) -> None:
        """Count a failed login against its account and its address (one transaction)."""
        with self.db.write() as conn:
            found = accounts.read_attempts(conn, [account_key, address_key])
            accounts.write_attempts(
                conn, account_key, account_failed(policy, found.get(account_key), now)
            )
            accounts.write_attempts(
                conn, address_key, address_failed(policy, found.get(address_key), now)
            )

    def clear_login_failures(self, account_key: str) -> None:
        with self.db.write() as conn:
            accounts.clear_attempts(conn, account_key)

    def revoke_device(self, device_id: str, *, wipe: bool) -> bool:
        with self.db.write() as conn:
            return accounts.revoke_device(conn, device_id, wipe=wipe, now=now_ms())

    def list_devices(self, user_id: str | None = None) -> list[Device]:
        with self.db.read() as conn:
            return accounts.list_devices(conn, user_id)

    def collect_tombstones(self, retention_ms: int) -> int:
        """Drop records deleted more than ``retention_ms`` ago; returns how many."""
        with self.db.write() as conn:
            return collect_tombstones(conn, now_ms() - retention_ms)

    def close(self) -> None:
        self.db.dispose()

    # -- conflicts and stats (store/conflicts.py, store/stats.py) ----------------------

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
        """Conflicts the caller may review; raises Forbidden for roles that review none."""
        with self.db.read() as conn:
            return list_conflicts(
                conn,
                self.schema,
                principal,
                status=status,
                collection=collection,
                record_id=record_id,
                limit=limit,
                after=after,
            )

    def get_conflict(self, principal: Principal, conflict_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            return get_conflict(conn, self.schema, principal, conflict_id)

    def resolve_conflict(
        self,
        principal: Principal,
        conflict_id: str,
        request: ResolveRequest,
        *,
        audit: AuditEvent | None = None,
    ) -> dict[str, Any]:
        """Apply a reviewer's decision as new changes (one transaction, run again on
        PostgreSQL if it lost a race); see store/conflicts.py for what it raises. With
        ``audit`` (a ``conflict.resolve`` event), the same transaction appends it with the
        resolution and the scopes of the records concerned (nothing when it raises)."""
        now = now_ms()

        def work(tx: Transaction) -> dict[str, Any]:
            resolved = resolve_conflict(
                tx,
                self.schema,
                self.clock,
                self.max_clock_skew_ms,
                principal,
                conflict_id,
                request,
                now=now,
            )
            if audit is not None:
                append(tx.conn, self._resolve_event(tx.conn, audit, resolved), now=now)
            return resolved

        return self.db.transact(work)

    def sync_stats(
        self,
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        since_ms: int | None = None,
    ) -> dict[str, Any]:
        with self.db.read() as conn:
            return sync_stats(conn, user_id=user_id, device_id=device_id, since_ms=since_ms)

    def _resolve_event(
        self, conn: Connection, audit: AuditEvent, resolved: dict[str, Any]
    ) -> AuditEvent:
        """The scopes a resolution concerned: those of the record and of the record holding
        the key (as stored now), and those the held op's fields name (a discarded new
        record was never stored)."""
        collection = resolved["collection"]
        ids = [
            resolved["record_id"],
            *([resolved["existing_id"]] if resolved.get("existing_id") else []),
        ]
        scopes = stored_scopes(conn, collection, ids)
        spec = self.schema.get(collection)
        if spec is not None:
            scopes |= spec.scopes_of(resolved["record_id"], resolved["client_fields"])
        details = {
            **audit.details,
            "resolution": resolved["resolution"],
            "kind": resolved["kind"],
            "collection": collection,
            "record_id": resolved["record_id"],
        }
        if resolved.get("target"):
            details["target"] = resolved["target"]
        return replace(audit, details=details, scopes=tuple(scopes))

    # -- audit trail (store/audit.py) ----------------------------------------------------

    def audit(self, event: AuditEvent) -> int:
        """Append ``event`` to the audit trail in a transaction of its own; returns its id.
        Raises BrokenChain when the chain's head was tampered with."""
        return self.db.transact(lambda tx: append(tx.conn, event, now=now_ms()))

    def audit_head(self) -> ChainHead:
        """The chain's head as stored (raises BrokenChain when missing)."""
        with self.db.read() as conn:
            head = read_head(conn)
        if head is None:
            raise BrokenChain("the audit chain's head is missing from the database")
        return head

    def list_audit(self, filters: AuditFilter, *, after: int = 0, limit: int = 100) -> AuditPage:
        with self.db.read() as conn:
            return list_entries(conn, filters, after=after, limit=limit)

    def verify_audit(self, anchor: ChainHead | None = None) -> Verification:
        """Walk the whole chain in one snapshot (store/audit.py, ``verify``)."""
        with self.db.read() as conn:
            return verify(conn, anchor)


def _put_event(audit: AuditEvent, result: OpResult, scopes: set[str]) -> AuditEvent:
    status = result["status"]
    error = result.get("error")
    outcome = (
        "ok"
        if status in ("applied", "duplicate")
        else "conflict"
        if status == "conflict"
        else "denied"
        if error and error["code"] == "FORBIDDEN"
        else "rejected"
    )
    details: dict[str, Any] = {**audit.details, "status": status}
    if "version" in result:
        details["version"] = result["version"]
    if error:
        details["error"] = error["code"]
    return replace(audit, outcome=outcome, details=details, scopes=tuple(scopes))


def open_store(
    url: str,
    schema: Schema,
    *,
    migrate: bool = True,
    max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS,
) -> SqlStore:
    """Open (and by default create or upgrade) the database at ``url``."""
    db = Database(url)
    if migrate:
        upgrade(db)
    return SqlStore(db, schema, max_clock_skew_ms=max_clock_skew_ms)


if TYPE_CHECKING:  # mypy checks here that SqlStore implements the server's port
    _IMPLEMENTS_PORT: type[Store] = SqlStore
