"""The pull position: a value type, never a bare int or str passed around."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cursor:
    """An opaque server-issued position in the change feed (protocol: ``since``/``cursor``).

    Its string form is what travels on the wire, in logs and in the CLI. ``Cursor.start()``
    means "from the beginning".
    """

    value: str

    @classmethod
    def start(cls) -> Cursor:
        return cls("0")

    @property
    def is_start(self) -> bool:
        return self.value in ("", "0")

    def __str__(self) -> str:
        return self.value
