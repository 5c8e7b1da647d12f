"""The server's full state of one record, as merge reads and writes it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RecordState:
    """A record with the clock of every field and what merge needs to decide policies.

    ``clocks`` maps each field to the HLC (wire string; string order is clock order) of the
    write that set it. ``field_versions`` / ``field_devices`` remember the record version and
    the device of each field's last change: ``manual`` and ``server_wins`` compare them with
    an op's ``base_version``. Fields are kept through a delete, so a resurrecting upsert
    brings the whole record back (and its scopes stay known for the tombstone).
    """

    collection: str
    id: str
    fields: dict[str, Any] = field(default_factory=dict)
    clocks: dict[str, str] = field(default_factory=dict)
    deleted_clock: str | None = None
    version: int = 0
    field_versions: dict[str, int] = field(default_factory=dict)
    field_devices: dict[str, str] = field(default_factory=dict)
    conflict: bool = False

    @property
    def exists(self) -> bool:
        return self.version > 0

    def is_deleted(self, counters: Iterable[str] = ()) -> bool:
        """Deleted while the tombstone clock is above every non-counter field clock."""
        tombstone = self.deleted_clock
        if tombstone is None:
            return False
        skip = counters if isinstance(counters, frozenset | set) else set(counters)
        return all(c < tombstone for f, c in self.clocks.items() if f not in skip)

    def copy(self) -> RecordState:
        # the constructor, not dataclasses.replace: merge copies a state per op
        return RecordState(
            self.collection,
            self.id,
            dict(self.fields),
            dict(self.clocks),
            self.deleted_clock,
            self.version,
            dict(self.field_versions),
            dict(self.field_devices),
            self.conflict,
        )
