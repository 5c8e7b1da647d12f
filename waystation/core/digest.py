"""The integrity digest: one hash per collection over the live records a caller may see.

Server and device compute it the same way, the server over its records
(``GET /v1/sync/digest``, store/digest.py) and the device over its copy of the server's
state (client/verify.py), so equal digests prove the device holds what the server holds::

    digest = sha256( for each live record, in id order:
                     id "\\n" version "\\n" sha256(canonical fields) "\\n" )
    canonical fields = orjson.dumps(fields, option=OPT_SORT_KEYS)

``fields`` are exactly what a pull delivers for the record. Deleted records (tombstones)
are left out: a device may or may not still hold one, depending on when it was collected,
and either way shows nothing. Ids are compared as Python compares ``str`` (code point
order), which is the byte order of their UTF-8 and of SQLite's and PostgreSQL's "C"
collation; a builder refuses ids out of order rather than hash a different sequence.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict  # a TypedDict pydantic can read on Python 3.11

from waystation.core.protocol import described

EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


def fields_hash(fields: Mapping[str, Any]) -> str:
    """The hex sha256 of ``fields`` in canonical form (keys sorted at every level)."""
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class CollectionDigest:
    """How many live records a collection holds for the caller, and their digest."""

    count: int
    digest: str

    def to_wire(self) -> DigestEntry:
        return {"count": self.count, "digest": self.digest}


EMPTY = CollectionDigest(0, EMPTY_DIGEST)


class DigestBuilder:
    """Folds the live records of one collection, given in id order, into its digest.

    ``add`` raises ValueError for an id not above the previous one (a caller that read the
    records in another order, or twice, would otherwise get a digest that never matches).
    """

    __slots__ = ("_count", "_hash", "_last")

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._count = 0
        self._last: str | None = None

    def add(self, record_id: str, version: int, fields: Mapping[str, Any]) -> None:
        if self._last is not None and record_id <= self._last:
            raise ValueError(f"record ids out of order: {record_id!r} after {self._last!r}")
        self._last = record_id
        self._count += 1
        self._hash.update(f"{record_id}\n{int(version)}\n{fields_hash(fields)}\n".encode())

    def result(self) -> CollectionDigest:
        return CollectionDigest(self._count, self._hash.hexdigest()) if self._count else EMPTY


def digest_records(
    rows: Iterable[tuple[str, str, int, Mapping[str, Any]]], collections: Iterable[str]
) -> dict[str, CollectionDigest]:
    """The digest of each of ``collections`` over ``rows`` of live records
    ``(collection, id, version, fields)``, sorted by collection then id. Every collection
    named appears (``EMPTY`` when it has no rows); rows of a collection not named raise
    ValueError, as do rows out of order."""
    wanted = sorted(set(collections))
    builders: dict[str, DigestBuilder] = {}
    for collection, record_id, version, fields in rows:
        builder = builders.get(collection)
        if builder is None:
            if collection not in wanted:
                raise ValueError(f"a record of {collection!r}, which was not asked for")
            if builders and collection < max(builders):
                raise ValueError(
                    f"collections out of order: {collection!r} after {max(builders)!r}"
                )
            builder = builders[collection] = DigestBuilder()
        builder.add(record_id, version, fields)
    return {name: builders[name].result() if name in builders else EMPTY for name in wanted}


# -- the wire shape of GET /v1/sync/digest (docs/protocol.md, "Integrity digest") --------


@with_config(ConfigDict(extra="forbid"))
class DigestEntry(TypedDict):
    """One collection's live records as the caller may see them."""

    count: Annotated[int, described("live (not deleted) records of the collection")]
    digest: Annotated[
        str,
        described(
            "hex sha256 over `id \\n version \\n sha256(fields, keys sorted) \\n` of each live "
            "record in id order (docs/protocol.md)"
        ),
    ]


@with_config(ConfigDict(extra="forbid"))
class DigestAnswer(TypedDict):
    """Per collection, a count and a digest of what the caller may see, and the cursor of
    the snapshot they were read in."""

    cursor: Annotated[
        str,
        described(
            "the cursor a pull that is caught up holds at this snapshot: a device whose own "
            "cursor differs pulls first, then compares"
        ),
    ]
    collections: Annotated[
        dict[str, DigestEntry],
        described("every collection asked for (all by default), even when empty"),
    ]


def digest_answer(cursor: str, digests: Mapping[str, CollectionDigest]) -> DigestAnswer:
    return {
        "cursor": cursor,
        "collections": {name: entry.to_wire() for name, entry in digests.items()},
    }
