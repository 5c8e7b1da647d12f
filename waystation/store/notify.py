"""Change notices: a committed change is announced, and every server process hears of it.

A write transaction that allocates seqs leaves a notice on its connection (the newest seq,
the collections and scopes it touched); ``Database.write()`` publishes it:

- PostgreSQL: one ``pg_notify(CHANNEL, payload)`` just before COMMIT. PostgreSQL delivers
  it only if the transaction commits, after it is visible, in commit order, to every session
  LISTENing on the channel — every server process on the database.
- SQLite: to the in-process listeners right after COMMIT (one process owns the file).

``NoticeSource`` is the listening side (``start(deliver)``, ``close()``): ``LocalSource``
for SQLite, ``PostgresSource`` (a thread with its own LISTEN connection, reconnecting) for
PostgreSQL. A notice is a hint to pull, never data: a listener that may have missed notices
(a dropped LISTEN connection) is given a notice that says "anything may have changed", and
re-checks with ``newest_change``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from waystation.core.access import Principal
from waystation.store.tables import record_scopes, records

if TYPE_CHECKING:
    from waystation.store.database import Database

log = logging.getLogger("waystation.notify")

CHANNEL = "waystation_changes"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; a larger batch is announced
# without its scopes (every listener re-checks).
MAX_PAYLOAD = 7900

_SEQ = "waystation.notice.seq"
_COLLECTIONS = "waystation.notice.collections"
_SCOPES = "waystation.notice.scopes"
_UNDESCRIBED = "waystation.notice.undescribed"
_KEYS = (_SEQ, _COLLECTIONS, _SCOPES, _UNDESCRIBED)


@dataclass(frozen=True, slots=True)
class ChangeNotice:
    """Changes up to ``seq`` committed in ``collections`` and ``scopes``.

    ``None`` means "unknown": any collection, any scope (``seq`` 0: any seq). A listener
    that gets an imprecise notice re-checks the database instead of trusting it.
    """

    seq: int
    collections: frozenset[str] | None = None
    scopes: frozenset[str] | None = None

    @property
    def precise(self) -> bool:
        return self.seq > 0 and self.collections is not None and self.scopes is not None

    def may_concern(self, scopes: frozenset[str] | None,
                    collections: frozenset[str] | None) -> bool:
        """Whether a listener of ``scopes`` (None: all) and ``collections`` (None: all) may
        have something new to pull."""
        if scopes is not None and self.scopes is not None and scopes.isdisjoint(self.scopes):
            return False
        return not (collections is not None and self.collections is not None
                    and collections.isdisjoint(self.collections))

    def payload(self) -> str:
        body = {"seq": self.seq,
                "collections": sorted(self.collections) if self.collections is not None
                else None,
                "scopes": sorted(self.scopes) if self.scopes is not None else None}
        text = orjson.dumps(body).decode()
        if len(text.encode()) <= MAX_PAYLOAD:
            return text
        body["scopes"] = None
        text = orjson.dumps(body).decode()
        if len(text.encode()) <= MAX_PAYLOAD:
            return text
        return orjson.dumps({"seq": self.seq, "collections": None, "scopes": None}).decode()

    @classmethod
    def parse(cls, payload: str) -> ChangeNotice:
        """A notice from its payload; an unreadable payload is an imprecise notice."""
        try:
            body = orjson.loads(payload)
            seq = int(body["seq"])
            collections, scopes = body.get("collections"), body.get("scopes")
            return cls(seq, frozenset(collections) if collections is not None else None,
                       frozenset(scopes) if scopes is not None else None)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return ANYTHING


ANYTHING = ChangeNotice(0)


# -- the announcing side: called inside a write transaction ---------------------------


def note_seq(conn: Connection, top: int) -> None:
    """Seqs up to ``top`` were allocated in this transaction (``allocate_seqs`` calls it).

    Until ``note_changes`` describes them, the notice names no collection or scope."""
    conn.info[_SEQ] = max(int(conn.info.get(_SEQ, 0)), top)
    conn.info[_UNDESCRIBED] = True


def note_changes(conn: Connection, collections: Iterable[str], scopes: Iterable[str]) -> None:
    """Describe the changes whose seqs were just allocated."""
    conn.info.setdefault(_COLLECTIONS, set()).update(collections)
    conn.info.setdefault(_SCOPES, set()).update(scopes)
    conn.info[_UNDESCRIBED] = False


def save(conn: Connection) -> dict[str, object]:
    """The notes so far (a savepoint about to be rolled back must not leave its notes)."""
    return {key: _copied(conn.info[key]) for key in _KEYS if key in conn.info}


def restore(conn: Connection, saved: dict[str, object]) -> None:
    reset(conn)
    conn.info.update(saved)


def _copied(value: object) -> object:
    return set(value) if isinstance(value, set) else value


def reset(conn: Connection) -> None:
    """Forget notes of an earlier transaction (``info`` lives as long as the connection)."""
    for key in _KEYS:
        conn.info.pop(key, None)


def take(conn: Connection) -> ChangeNotice | None:
    """The transaction's notice (None when it allocated no seq); clears the notes."""
    seq = int(conn.info.get(_SEQ, 0))
    undescribed = bool(conn.info.get(_UNDESCRIBED, True))
    collections = conn.info.get(_COLLECTIONS)
    scopes = conn.info.get(_SCOPES)
    reset(conn)
    if seq == 0:
        return None
    if undescribed or collections is None or scopes is None:
        return ChangeNotice(seq)
    return ChangeNotice(seq, frozenset(collections), frozenset(scopes))


def send_before_commit(conn: Connection, notice: ChangeNotice) -> None:
    """PostgreSQL: queue the notice; the server delivers it when (if) the transaction commits."""
    conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"),
                 {"channel": CHANNEL, "payload": notice.payload()})


# -- the listening side -----------------------------------------------------------------

Deliver = Callable[[ChangeNotice], None]


class NoticeSource(Protocol):
    """Where a server process hears of committed changes."""

    def start(self, deliver: Deliver) -> None:
        """Call ``deliver`` (from any thread) for every notice from now on."""
        ...

    def close(self) -> None:
        """Stop delivering; idempotent."""
        ...


class LocalSource:
    """SQLite: the notices of this process's own commits."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._deliver: Deliver | None = None

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self.db.add_notice_listener(deliver)

    def close(self) -> None:
        if self._deliver is not None:
            self.db.remove_notice_listener(self._deliver)
            self._deliver = None


class PostgresSource:
    """PostgreSQL: a thread holding one ``LISTEN`` connection (outside the pool).

    Each time LISTEN takes effect (at start, and after reconnecting with backoff when the
    connection dropped) it delivers ``ANYTHING``: notices sent before were not heard, so
    every listener re-checks the database once.
    """

    POLL_S = 0.5

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self, deliver: Deliver) -> None:
        self._thread = threading.Thread(target=self._run, args=(deliver,),
                                        name="waystation-listen", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self, deliver: Deliver) -> None:
        import psycopg  # only a PostgreSQL deployment needs the driver

        backoff = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True,
                                     application_name="waystation-listen") as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    deliver(ANYTHING)
                    backoff = 0.2
                    while not self._stop.is_set():
                        for item in conn.notifies(timeout=self.POLL_S):
                            deliver(ChangeNotice.parse(item.payload))
            except psycopg.Error as exc:
                self.connected.clear()
                if self._stop.is_set():
                    return
                log.warning("change notifications: LISTEN connection lost (%s); "
                            "reconnecting in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)


def source_for(db: Database) -> NoticeSource:
    """The notice source that fits the database's engine."""
    if db.is_sqlite:
        return LocalSource(db)
    url = db.engine.url.set(drivername="postgresql")
    return PostgresSource(url.render_as_string(hide_password=False))


# -- what a listener re-checks -----------------------------------------------------------


def newest_change(conn: Connection, principal: Principal, after: int,
                  collections: Sequence[str] | None = None) -> int:
    """The highest seq above ``after`` that a pull by ``principal`` would return (0: none).

    Reads the same indexes as a pull: ``records (seq)`` for an admin, ``record_scopes
    (scope, seq)`` for everyone else.
    """
    if principal.is_admin:
        query = sa.select(sa.func.max(records.c.seq)).where(records.c.seq > after)
        if collections:
            query = query.where(records.c.collection.in_(collections))
    else:
        query = sa.select(sa.func.max(record_scopes.c.seq)).where(
            record_scopes.c.scope.in_(sorted(principal.readable_scopes())),
            record_scopes.c.seq > after,
        )
        if collections:
            query = query.where(record_scopes.c.collection.in_(collections))
    return int(conn.execute(query).scalar_one_or_none() or 0)
