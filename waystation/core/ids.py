"""Ids made on the device, so a record created offline never needs a server round trip.

UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Ids sort by creation
time, which keeps B-tree inserts local on both SQLite and PostgreSQL. Python gains
``uuid.uuid7`` only in 3.14, hence this small function.
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7(now_ms: int | None = None) -> str:
    """A new UUIDv7 in its canonical string form."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return str(uuid.UUID(int=value))
