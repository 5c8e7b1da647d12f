"""Hybrid logical clock: wall milliseconds, a logical counter and a node id, totally ordered.

Wire form ``WWWWWWWWWWWWWWW-CCCCC-NODE`` (15 + 5 zero-padded digits), so comparing the strings
compares the clocks. The clock never runs backwards: ``send`` and ``receive`` follow the
standard HLC rules (Kulkarni et al.), and a counter that would pass 99999 moves the clock to
the next millisecond instead.

Devices keep an ``offset_ms`` to the server's time learned from every push answer, so a
device with a wrong wall clock still stamps sensibly. The server re-stamps a clock that runs
more than ``max_clock_skew`` ahead of its own (see ``is_too_far_ahead``) rather than letting
it win every later write forever.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from waystation.core.errors import ValidationError

MAX_COUNTER = 99_999
MAX_WALL = 10**15 - 1
NODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HLC_PATTERN = re.compile(r"([0-9]{15})-([0-9]{5})-([A-Za-z0-9_-]{1,64})")


@dataclass(frozen=True, order=True, slots=True)
class HLC:
    wall: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.wall:015d}-{self.counter:05d}-{self.node}"

    @classmethod
    def parse(cls, text: str, *, field: str = "hlc") -> HLC:
        """Parse the wire form; raises ValidationError naming ``field`` when malformed."""
        match = _HLC_PATTERN.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValidationError(
                f"malformed HLC {text!r}: expected 15 digits, '-', 5 digits, '-', node id",
                {"field": field},
            )
        return cls(int(match.group(1)), int(match.group(2)), match.group(3))

    def next_tick(self) -> HLC:
        """The smallest clock of this node above ``self`` (counter overflow moves wall)."""
        if self.counter >= MAX_COUNTER:
            return HLC(self.wall + 1, 0, self.node)
        return HLC(self.wall, self.counter + 1, self.node)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Clock:
    """A node's HLC source. Thread-safe; ``now_ms`` is injectable for tests."""

    def __init__(
        self,
        node: str,
        *,
        now_ms: Callable[[], int] = wall_ms,
        last: HLC | None = None,
        offset_ms: int = 0,
    ) -> None:
        if not NODE_PATTERN.fullmatch(node):
            raise ValueError(f"invalid HLC node id {node!r}: use [A-Za-z0-9_-]{{1,64}}")
        self.node = node
        self._now_ms = now_ms
        self.offset_ms = offset_ms
        self._last = HLC(last.wall, last.counter, node) if last else HLC(0, 0, node)
        self._lock = threading.Lock()

    @property
    def last(self) -> HLC:
        return self._last

    def physical_ms(self) -> int:
        """This node's best guess of the shared time: its wall clock plus the learned offset."""
        return self._now_ms() + self.offset_ms

    def send(self) -> HLC:
        """A fresh clock for a local event, above every clock this node has seen."""
        with self._lock:
            pt = self.physical_ms()
            if pt > self._last.wall:
                self._last = HLC(pt, 0, self.node)
            else:
                self._last = HLC(self._last.wall, self._last.counter, self.node).next_tick()
            return self._last

    def receive(self, remote: HLC) -> HLC:
        """Fold a clock seen from elsewhere into ours; returns our new clock."""
        with self._lock:
            pt = self.physical_ms()
            wall = max(pt, self._last.wall, remote.wall)
            if wall == self._last.wall == remote.wall:
                counter = max(self._last.counter, remote.counter) + 1
            elif wall == self._last.wall:
                counter = self._last.counter + 1
            elif wall == remote.wall:
                counter = remote.counter + 1
            else:
                counter = 0
            if counter > MAX_COUNTER:
                wall, counter = wall + 1, 0
            self._last = HLC(wall, counter, self.node)
            return self._last

    def observe_server_time(self, server: HLC, *, sent_at_ms: int, received_at_ms: int) -> None:
        """Learn the offset to the server's time from one round trip, then fold its clock in.

        The server stamped ``server`` somewhere between sending and receiving; the midpoint
        is the best estimate of our wall clock at that moment.
        """
        midpoint = (sent_at_ms + received_at_ms) // 2
        self.offset_ms = server.wall - midpoint
        self.receive(server)


def is_too_far_ahead(candidate: HLC, server_now_ms: int, max_skew_ms: int) -> bool:
    """True when ``candidate`` runs more than the allowed skew ahead of the server's time."""
    return candidate.wall > server_now_ms + max_skew_ms
