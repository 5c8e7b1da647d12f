"""The replica's hybrid logical clock: stamped on every write, persisted, kept near the
server's time.

Node id = device id. The last clock issued is saved in the same transaction as the write it
stamped, so a restart (or a wall clock set back) never issues a smaller one. Every server
answer teaches the offset to the server's time (``observe_server``), so a tablet whose date
is wrong still stamps sensibly and re-stamping by the server stays a last resort.
"""

from __future__ import annotations

import sqlite3

from waystation.client.db import LocalDB, get_meta, set_meta
from waystation.core.apply import DEFAULT_MAX_CLOCK_SKEW_MS
from waystation.core.errors import WaystationError
from waystation.core.hlc import HLC, Clock


class ClockKeeper:
    """Owns the replica's ``Clock`` and its persistence in the meta table."""

    def __init__(self, db: LocalDB, node: str) -> None:
        with db.read() as conn:
            last = get_meta(conn, "hlc_last")
            offset = int(get_meta(conn, "clock_offset_ms", 0))
        self.clock = Clock(node, last=HLC.parse(last) if last else None, offset_ms=offset)

    def stamp(self, conn: sqlite3.Connection) -> HLC:
        """A fresh clock for a local write, persisted in the caller's transaction."""
        hlc = self.clock.send()
        self.persist(conn)
        return hlc

    def persist(self, conn: sqlite3.Connection) -> None:
        set_meta(conn, "hlc_last", str(self.clock.last))
        set_meta(conn, "clock_offset_ms", self.clock.offset_ms)

    def renode(self, node: str) -> None:
        """Carry on under a new device id (never below the last clock issued)."""
        self.clock = Clock(node, last=self.clock.last, offset_ms=self.clock.offset_ms)

    def observe_server(
        self, conn: sqlite3.Connection, server_hlc: str, *, sent_at_ms: int, received_at_ms: int
    ) -> None:
        """Fold the server's clock from one round trip into ours (and learn the offset to
        its time), in the caller's transaction.

        A clock that ran far ahead (a tablet whose date was wrong) would otherwise stamp
        every later write far ahead and have the server re-stamp them all. Once no op that
        may still travel carries such a stamp (the server re-stamped them and the outbox
        adopted its clocks), the clock restarts from the highest stamp that counts.
        """
        try:
            server = HLC.parse(server_hlc)
        except WaystationError:
            return
        limit = server.wall + DEFAULT_MAX_CLOCK_SKEW_MS
        if self.clock.last.wall > limit:
            top = conn.execute(
                "SELECT max(hlc) FROM outbox WHERE status NOT IN ('REJECTED', 'CONFLICT')"
            ).fetchone()[0]
            highest = HLC.parse(top) if top else None
            if highest is None or highest.wall <= limit:
                last = max(server, highest) if highest is not None else server
                self.clock = Clock(self.clock.node, last=last, offset_ms=self.clock.offset_ms)
        self.clock.observe_server_time(server, sent_at_ms=sent_at_ms, received_at_ms=received_at_ms)
        self.persist(conn)
