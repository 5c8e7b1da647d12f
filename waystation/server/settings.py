"""Server settings with their defaults (protocol.md names most of them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from waystation.core.throttle import ThrottlePolicy


@dataclass(frozen=True, slots=True)
class Settings:
    max_body_bytes: int = 16 * 1024 * 1024  # counted after gzip decoding too
    token_ttl_s: int = 30 * 24 * 3600  # a device may stay offline a month without re-login
    # A user token (POST /v1/auth/token) only registers devices and drives admin tools.
    user_token_ttl_s: int = 3600
    # A device that has not refreshed for this long logs in again with its password. Each
    # refresh gives a new refresh token with a new lifetime (one use each).
    refresh_ttl_s: int = 90 * 24 * 3600
    # Failed logins, per account and per address (core/throttle.py).
    login_throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    # Password checks (argon2, 64 MiB each) at once per process, and logins that may wait
    # for one; beyond that a login is answered 429 at once, so a burst cannot exhaust
    # memory.
    max_concurrent_logins: int = 2
    max_waiting_logins: int = 16
    max_clock_skew_ms: int = 5 * 60 * 1000
    # A request body that sends nothing for this long is answered 408 REQUEST_TIMEOUT and
    # its connection closed (a slow link sends something every few seconds; a slowloris
    # attack sends nothing). Request headers have a timeout of their own
    # (server/timeouts.py).
    body_timeout_s: float = 30.0
    pull_limit_default: int = 500
    # A new device pulls its backlog in pages as large as this (the SDK asks for 5,000):
    # fewer round trips and per-request costs (auth, headers, a page's read). A 5,000-change
    # page holds ~10 MiB while it is built and ~0.7 MiB once gzip'd.
    pull_limit_max: int = 5000
    # Build a device's next pull page while it reads this one (server/readahead.py).
    pull_read_ahead: bool = True
    # Deleted records are kept this long so offline devices learn of the delete; a device
    # whose cursor is older re-syncs from zero (410 CURSOR_EXPIRED).
    tombstone_retention_s: int = 90 * 24 * 3600
    # ``waystation serve --access-log FILE``: one JSON line per request (server/access_log.py).
    access_log_path: str | None = None
