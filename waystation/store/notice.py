"""A change notice: what a committed write announces, and its ``NOTIFY`` payload.

A notice names the newest seq a transaction allocated and the collections and scopes its
changes touched. It is a hint to pull, never data: ``None`` stands for "unknown", and a
listener that gets an imprecise notice re-checks the database (``store/notify.py``).
Notes of a transaction become its notice (``store/transaction.py``); ``store/publish.py``
sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

CHANNEL = "waystation_changes"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; a larger batch is announced
# without its scopes (every listener re-checks).
MAX_PAYLOAD = 7900


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

    def may_concern(
        self, scopes: frozenset[str] | None, collections: frozenset[str] | None
    ) -> bool:
        """Whether a listener of ``scopes`` (None: all) and ``collections`` (None: all) may
        have something new to pull."""
        if scopes is not None and self.scopes is not None and scopes.isdisjoint(self.scopes):
            return False
        return not (
            collections is not None
            and self.collections is not None
            and collections.isdisjoint(self.collections)
        )

    def payload(self) -> str:
        body = {
            "seq": self.seq,
            "collections": sorted(self.collections) if self.collections is not None else None,
            "scopes": sorted(self.scopes) if self.scopes is not None else None,
        }
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
            return cls(
                seq,
                frozenset(collections) if collections is not None else None,
                frozenset(scopes) if scopes is not None else None,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return ANYTHING


ANYTHING = ChangeNotice(0)

# Where notices go: called from any thread, once per notice.
Deliver = Callable[[ChangeNotice], None]
