"""``Replica``: the local copy an app reads and writes, offline or not.

Every write lands in the replica and the outbox in one local SQLite transaction and returns
at once; the UI never waits for the network. ``sync()`` exchanges the outbox and the change
feed with the server (engine.py). The network is needed only to log in the first time;
after that the replica opens offline from the server URL, device id and tokens it keeps.
With a key (``passphrase=`` or ``key=``) the file is encrypted at rest (cipher.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from waystation.client import outbox as ob
from waystation.client.auth import normalise_server_url
from waystation.client.backoff import RetryPolicy
from waystation.client.clock import ClockKeeper
from waystation.client.conflicts import ReviewClient
from waystation.client.db import LocalDB, get_meta
from waystation.client.engine import BATCH_SIZE, PAGE_SIZE, run_sync, sync_without_transport
from waystation.client.errors import LoginRequired
from waystation.client.events import EventHub, Listener
from waystation.client.keys import ReplicaKey
from waystation.client.link import ServerLink
from waystation.client.local import LocalReplica
from waystation.client.lock import SyncLock
from waystation.client.login import login_replica
from waystation.client.outbox import OpStatus, OutboxEntry
from waystation.client.records import get_visible, query_visible, refresh_visible
from waystation.client.result import SyncResult
from waystation.client.session import Session
from waystation.client.transport import HttpTransport, TlsVerify, Transport, http_client
from waystation.client.values import normalise_fields
from waystation.client.verify import VerifyResult, verify_replica
from waystation.core.hlc import Clock
from waystation.core.ids import uuid7


class Replica:
    """A local replica (one SQLite file) of the records this device may see.

    The public face over ``LocalReplica`` (``local``: the file, outbox, clock, login,
    events, sync lock) and ``ServerLink`` (one HTTP client, kept while the replica is
    open). Thread-safe: the app's threads and a continuous sync share it. Use
    ``Replica.open``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        key: ReplicaKey | None = None,
        passphrase: str | None = None,
        verify: TlsVerify = True,
        insecure: bool = False,
        retry_policy: RetryPolicy | None = None,
        http_timeout: float = 30.0,
    ) -> None:
        """Open (creating when needed) the replica file, offline. Crash recovery: ops left
        SYNCING by a sync that died go back to PENDING (the server dedupes resends).

        ``key`` or ``passphrase`` (shorthand for ``ReplicaKey.from_passphrase``): the file
        is encrypted (a new one is created so). ``verify``: how to check the server's TLS
        certificate (True: the system's CAs or ``SSL_CERT_FILE``; a CA file path; an
        ``ssl.SSLContext``). ``insecure``: allow ``http://`` to a host that is not this
        machine. Raises ``ReplicaLocked``, ``ReplicaNotEncrypted``, ValueError (both
        ``key`` and ``passphrase``).
        """
        if key is not None and passphrase is not None:
            raise ValueError("give key= or passphrase=, not both")
        if passphrase is not None:
            key = ReplicaKey.from_passphrase(passphrase)
        self.local = LocalReplica(Path(path), key=key, retry_policy=retry_policy)
        self.insecure = insecure
        self._link = ServerLink(verify=verify, timeout=http_timeout)
        # A replica dropped without close() still lets its connections go.
        weakref.finalize(self, self._link.close)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        server: str | None = None,
        username: str | None = None,
        password: str | None = None,
        device_name: str | None = None,
        key: ReplicaKey | None = None,
        passphrase: str | None = None,
        verify: TlsVerify = True,
        insecure: bool = False,
        retry_policy: RetryPolicy | None = None,
        http: httpx.Client | None = None,
    ) -> Replica:
        """Open a replica; the first time, log in and register this device.

        With ``server``, ``username`` and ``password`` and no login stored yet, this logs in
        (network needed; raises ``Unauthorized`` for a wrong password, ``Offline`` when the
        server cannot be reached). Once logged in, it opens offline and ignores the password
        (which is never stored). Without credentials it opens a local-only replica that
        accepts writes and can ``login`` later. ``key``/``passphrase``, ``verify`` and
        ``insecure``: see ``Replica()``; a field app should always give a key.
        """
        replica = cls(
            path,
            key=key,
            passphrase=passphrase,
            verify=verify,
            insecure=insecure,
            retry_policy=retry_policy,
        )
        try:
            if server is not None and username is not None and password is not None:
                if not replica.session.logged_in:
                    replica.login(server, username, password, device_name=device_name, http=http)
                else:
                    replica._check_same_login(
                        normalise_server_url(server, insecure=insecure), username
                    )
        except BaseException:
            replica.close()
            raise
        return replica

    # -- login -------------------------------------------------------------------------

    def login(
        self,
        server: str,
        username: str,
        password: str,
        *,
        device_name: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        """Log in as ``username`` and register this device (its id was made offline).

        Keeps the server URL and the device tokens, never the password. A replica holds one
        user's data: logging in as someone else raises ``ValueError``. See login.py.
        """
        url = normalise_server_url(server, insecure=self.insecure)
        http = http or self._link.client(url, self.http_client)
        login_replica(
            self.local,
            url,
            username,
            password,
            device_name=device_name,
            http=http,
            insecure=self.insecure,
        )

    def set_server(self, server: str) -> None:
        """Point the replica at another URL of the same server (it moved). Raises
        ValueError for a URL ``normalise_server_url`` refuses."""
        self.session.set_server_url(normalise_server_url(server, insecure=self.insecure))

    def _check_same_login(self, server: str, username: str) -> None:
        user = self.session.user or {}
        if self.session.server_url != server or user.get("username") not in (None, username):
            raise ValueError(
                f"this replica is logged in to {self.session.server_url} as "
                f"{user.get('username')!r}; use another replica file"
            )

    @property
    def device_id(self) -> str:
        return self.local.device_id

    @property
    def server_url(self) -> str | None:
        return self.local.session.server_url

    # The parts of ``local``, as the replica has always offered them.

    @property
    def path(self) -> Path:
        return self.local.path

    @property
    def db(self) -> LocalDB:
        return self.local.db

    @property
    def session(self) -> Session:
        return self.local.session

    @property
    def events(self) -> EventHub:
        return self.local.events

    @property
    def sync_lock(self) -> SyncLock:
        return self.local.sync_lock

    @property
    def clock_keeper(self) -> ClockKeeper:
        return self.local.clock_keeper

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.local.retry_policy

    @retry_policy.setter
    def retry_policy(self, policy: RetryPolicy) -> None:
        self.local.retry_policy = policy

    @property
    def tls_verify(self) -> TlsVerify:
        """How the server's TLS certificate is checked (``Replica(verify=...)``; not
        ``verify``, which is the integrity check); setting it makes the next request use a
        new HTTP client."""
        return self._link.verify

    @tls_verify.setter
    def tls_verify(self, verify: TlsVerify) -> None:
        self._link.verify = verify

    @property
    def http_timeout(self) -> float:
        return self._link.timeout

    @http_timeout.setter
    def http_timeout(self, seconds: float) -> None:
        self._link.timeout = seconds

    # -- writes ------------------------------------------------------------------------

    def put(self, collection: str, fields: Mapping[str, Any], id: str | None = None) -> str:
        """Create a record (new UUIDv7 id) or update some of its fields; returns its id.

        Queues one upsert op with the record. Only fields given change (partial update).
        The server validates: a rejection comes back in the outbox, never as an exception
        here. Raises TypeError/ValueError for values that cannot travel as JSON.
        """
        values = normalise_fields(fields)
        embedded = values.pop("id", None)
        if embedded is not None and id is not None and embedded != id:
            raise ValueError(f"fields carry id {embedded!r} but id={id!r} was given")
        record_id = id if id is not None else embedded if embedded is not None else uuid7()
        self._write(collection, record_id, "upsert", values)
        return record_id

    def delete(self, collection: str, id: str) -> None:
        """Delete a record (a tombstone: a later upsert by anyone may bring it back)."""
        self._write(collection, id, "delete", {})

    def increment(self, collection: str, id: str, field: str, delta: int) -> None:
        """Add ``delta`` to a counter field; deltas from every device add up exactly once."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an integer, got {type(delta).__name__}")
        if not isinstance(field, str) or not field:
            raise TypeError("field must be a non-empty string")
        self._write(collection, id, "increment", {field: delta})

    def _write(self, collection: str, record_id: str, op: str, fields: dict[str, Any]) -> None:
        self.local.write(collection, record_id, op, fields)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Group writes: all of them land (with their outbox rows) in one commit, or none.

        For a form that writes several records together, or a bulk import (one disk sync
        instead of one per write). Sync sees the writes only once the block ends.
        """
        with self.db.transaction():
            yield

    # -- reads -------------------------------------------------------------------------

    def get(self, collection: str, id: str) -> dict[str, Any] | None:
        """The record as this device sees it (server copy + unsynced ops), or None."""
        with self.db.read() as conn:
            return get_visible(conn, collection, id)

    def query(self, collection: str, /, **equals: Any) -> list[dict[str, Any]]:
        """Visible records of ``collection`` whose fields equal the given values, by id."""
        with self.db.read() as conn:
            return list(query_visible(conn, collection, equals))

    def outbox(
        self,
        status: str | OpStatus | Iterable[str | OpStatus] | None = None,
        *,
        collection: str | None = None,
        record_id: str | None = None,
        limit: int | None = None,
    ) -> list[OutboxEntry]:
        """Outbox entries, oldest first, optionally by status (e.g. ``"REJECTED"``)."""
        statuses = None
        if status is not None:
            many = [status] if isinstance(status, str) else list(status)
            statuses = [OpStatus(str(s).upper()) for s in many]
        with self.db.read() as conn:
            return ob.entries(
                conn, statuses=statuses, collection=collection, record_id=record_id, limit=limit
            )

    def pending_count(self) -> int:
        """Ops waiting to reach the server (PENDING or SYNCING)."""
        return self.local.pending_count()

    def status(self) -> dict[str, Any]:
        """What a person wants at a glance: what waits, what failed, when it last synced."""
        with self.db.snapshot() as conn:
            found = ob.counts(conn)
            records = conn.execute("SELECT count(*) FROM records").fetchone()[0]
            flagged = conn.execute(
                "SELECT count(*) FROM server_records WHERE conflict = 1 AND deleted = 0"
            ).fetchone()[0]
            last_sync_at = get_meta(conn, "last_sync_at")
            last_sync = get_meta(conn, "last_sync")
            cursor = get_meta(conn, "cursor", "0")
        user = self.session.user or {}
        return {
            "device_id": self.device_id,
            "server": self.server_url,
            "user": user.get("username"),
            "logged_in": self.session.logged_in,
            "pending": found[OpStatus.PENDING] + found[OpStatus.SYNCING],
            "failed": found[OpStatus.FAILED],
            "conflicts": found[OpStatus.CONFLICT],
            "rejected": found[OpStatus.REJECTED],
            "synced": found[OpStatus.SYNCED],
            "records": int(records),
            "flagged_records": int(flagged),
            "last_sync_at": last_sync_at,
            "last_sync": last_sync,
            "cursor": cursor,
        }

    def collections(self) -> dict[str, dict[str, Any]]:
        """The server's collections as last fetched: ``{name: {priority, policy, counters}}``."""
        with self.db.read() as conn:
            return dict(get_meta(conn, "collections") or {})

    # -- outbox housekeeping -----------------------------------------------------------

    def retry_failed(self) -> int:
        """Put FAILED ops back to PENDING with a fresh retry budget; returns how many."""
        with self.db.transaction() as conn:
            keys = ob.retry_failed(conn)
        return len(keys)

    def discard(self, op_id: str) -> bool:
        """Drop a FAILED, CONFLICT or REJECTED op the app or a person has dealt with (its
        effect leaves the visible record). Returns False when there is no such op."""
        with self.db.transaction() as conn:
            key = ob.discard(conn, op_id)
            if key is not None:
                refresh_visible(conn, *key)
        return key is not None

    # -- sync --------------------------------------------------------------------------

    def transport(self) -> HttpTransport:
        """An HTTP transport to the replica's server, over the replica's one HTTP client
        (closing the transport leaves that client open; ``close()`` closes it). Raises
        LoginRequired without a server, or when it is plain http:// to another machine and
        the replica was not opened with ``insecure=True`` (a URL stored before such URLs
        were refused, or with insecure)."""
        server = self.server_url
        if server is None:
            raise LoginRequired(
                "this replica has never logged in; run "
                "`waystation login --replica FILE --server URL --username NAME`"
            )
        try:
            normalise_server_url(server, insecure=self.insecure)
        except ValueError as exc:
            raise LoginRequired(
                f"this replica's server {server} is plain http:// to another machine, so its "
                "tokens and data would cross the network in clear text; point it at the "
                "server's https:// URL (set_server, `waystation sync --server URL`) or open "
                "it with insecure=True (--insecure)"
            ) from exc
        return self._link.transport(server, self.local.session, self.http_client)

    def http_client(self) -> httpx.Client:
        """A new HTTP client with the replica's timeout and TLS verification. The replica
        builds its one shared client with it (and the caller of a direct call closes what
        it gets); override it to send the replica's requests elsewhere (the tests'
        in-process tier does)."""
        return http_client(self.http_timeout, self.tls_verify)

    def sync(
        self,
        *,
        max_items: int | None = None,
        retry_failed: bool = False,
        transport: Transport | None = None,
    ) -> SyncResult:
        """Push the outbox, pull what changed. Never raises for network, server or login
        trouble: the result says what happened and the ops wait in the outbox."""
        if retry_failed:
            self.retry_failed()
        return sync_once(self, transport, max_items=max_items)

    def verify(
        self,
        *,
        repair: bool = True,
        collections: Sequence[str] | None = None,
        transport: Transport | None = None,
    ) -> VerifyResult:
        """Prove this replica holds what the server holds: sync, then compare the server's
        integrity digest of each collection with the replica's; with ``repair``, re-pull
        whatever differs and compare again (verify.py). Local edits and the outbox are kept.
        Never raises for network, server or login trouble: the result says what happened."""
        return verify_replica(
            self.local, self.transport, transport, repair=repair, collections=collections
        )

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Follow sync progress (``SyncEvent``); returns a function that unsubscribes."""
        return self.events.subscribe(listener)

    # -- reviewing conflicts (online; client/conflicts.py) ----------------------------

    def conflicts(
        self,
        status: str = "open",
        *,
        collection: str | None = None,
        record_id: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Conflicts held on the server that this user may review (admins, health workers
        of the record's scopes), oldest first. Needs the network; raises ``Forbidden`` for
        roles that review none. This device's own held ops: ``outbox("CONFLICT")``."""
        return ReviewClient(self.transport()).conflicts(
            status=status, collection=collection, record_id=record_id, limit=limit
        )

    def resolve(
        self,
        conflict_id: str,
        resolution: str,
        *,
        fields: Mapping[str, Any] | None = None,
        target: str | None = None,
    ) -> dict[str, Any]:
        """Resolve a conflict on the server: ``client_wins``, ``server_wins`` or ``merge``
        (with ``fields``; ``target="existing"`` merges a UNIQUE_VIOLATION into the record
        holding the key). Returns the resolved conflict; ``sync()`` to pull the result."""
        return ReviewClient(self.transport()).resolve(
            conflict_id, resolution, fields=fields, target=target
        )

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The replica's hybrid logical clock (node = device id)."""
        return self.local.clock_keeper.clock

    def observe_server(
        self, conn: sqlite3.Connection, server_hlc: str, *, sent_at_ms: int, received_at_ms: int
    ) -> None:
        """Fold a server answer's clock into ours, in the caller's transaction (clock.py)."""
        self.local.observe_server(
            conn, server_hlc, sent_at_ms=sent_at_ms, received_at_ms=received_at_ms
        )

    def wipe(self) -> None:
        """Erase every record, op, token and setting (a revoked device asked to wipe).

        Overwrites freed pages and compacts the file so the data is gone from disk too. The
        replica keeps working as a fresh, logged-out one with a new device id.
        """
        self.local.wipe()

    def close(self) -> None:
        """Close the HTTP client (its connections) and the replica file."""
        self._link.close()
        self.local.close()

    def __enter__(self) -> Replica:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def sync_once(
    replica: Replica,
    transport: Transport | None = None,
    *,
    max_items: int | None = None,
    respect_backoff: bool = False,
    batch_size: int = BATCH_SIZE,
    page_size: int = PAGE_SIZE,
) -> SyncResult:
    """One sync of ``replica`` (engine.py ``run_sync``): push, then pull. Never raises for
    network, server or login trouble.

    ``transport`` defaults to the replica's own (``replica.transport()``: its one HTTP
    client); a given one stays open. With ``respect_backoff`` ops waiting out a retry
    delay are left for later (continuous mode). A second sync of the same replica returns
    at once with ``error_code == "SYNC_IN_PROGRESS"``.
    """
    if transport is None:
        try:
            transport = replica.transport()
        except LoginRequired as exc:
            return sync_without_transport(replica.local, exc)
    return run_sync(
        replica.local,
        transport,
        max_items=max_items,
        respect_backoff=respect_backoff,
        batch_size=batch_size,
        page_size=page_size,
    )
