"""How failed logins slow an attacker down: per account and per client address, pure.

The store keeps one ``Attempts`` per key and calls these functions with the time; nothing
here reads a clock. Two keys, two shapes:

- an **account** (the username as typed, known or not, so an unknown name is throttled
  exactly like a known one): ``free_failures`` failures cost nothing, then every further
  failure locks the account out for twice as long as the one before, from
  ``base_lockout_s`` up to ``max_lockout_s``. A success clears it; failures older than
  ``forget_after_s`` are forgotten. Guessing one password at the cap's pace takes years
  per million tries, while a nurse who mistypes a few times waits seconds.
- an **address**: at most ``address_failures`` failures in a window of
  ``address_window_s``, then blocked until the window ends: one machine spraying many
  accounts is slowed without locking any of them.

A lockout of an account also slows its owner down: that is the price of the defence, kept
small by the doubling (docs/security.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free_failures: int = 5
    base_lockout_s: float = 1.0
    max_lockout_s: float = 15 * 60.0
    forget_after_s: float = 24 * 3600.0
    address_failures: int = 50
    address_window_s: float = 10 * 60.0


@dataclass(frozen=True, slots=True)
class Attempts:
    """Failures of one key since ``first_at`` (ms), and until when it is blocked (ms)."""

    failures: int
    first_at: int
    blocked_until: int = 0


def retry_after_s(attempts: Attempts | None, now: int) -> float:
    """Seconds until the key may try again (0: it may now)."""
    if attempts is None or attempts.blocked_until <= now:
        return 0.0
    return (attempts.blocked_until - now) / 1000


def account_failed(policy: ThrottlePolicy, before: Attempts | None, now: int) -> Attempts:
    """The account's attempts after one more failure at ``now``."""
    if before is None or now - before.first_at > policy.forget_after_s * 1000:
        before = Attempts(0, now)
    failures = before.failures + 1
    over = failures - policy.free_failures
    if over <= 0:
        return Attempts(failures, before.first_at)
    lockout = min(policy.base_lockout_s * 2 ** min(over - 1, 30), policy.max_lockout_s)
    return Attempts(failures, before.first_at, now + int(lockout * 1000))


def address_failed(policy: ThrottlePolicy, before: Attempts | None, now: int) -> Attempts:
    """The address's attempts after one more failure at ``now``."""
    window = int(policy.address_window_s * 1000)
    if before is None or now - before.first_at >= window:
        before = Attempts(0, now)
    failures = before.failures + 1
    blocked = before.first_at + window if failures >= policy.address_failures else 0
    return Attempts(failures, before.first_at, blocked)


def account_key(username: str) -> str:
    """The throttle key of an account: a hash of the name as typed (trimmed, any case).
    People type passwords into the username field, and those must not be kept."""
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return f"account:{name}"


def address_key(address: str) -> str:
    """The throttle key of a client address."""
    return f"address:{address}"
