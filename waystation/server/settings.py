"""Server settings with their defaults (protocol.md names most of them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Settings:
    max_body_bytes: int = 16 * 1024 * 1024  # counted after gzip decoding too
    token_ttl_s: int = 30 * 24 * 3600  # a device may stay offline a month without re-login
    max_clock_skew_ms: int = 5 * 60 * 1000
    pull_limit_default: int = 500
    pull_limit_max: int = 1000
    # Deleted records are kept this long so offline devices learn of the delete; a device
    # whose cursor is older re-syncs from zero (410 CURSOR_EXPIRED).
    tombstone_retention_s: int = 90 * 24 * 3600
