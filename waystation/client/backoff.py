"""How long an op waits after a failed attempt, and when it is given up (FAILED).

Exponential backoff with jitter, computed by tenacity's wait functions (``wait_exponential
+ wait_random``; the engine keeps its own loop, so only the wait strategy is borrowed).
Only attempts the server may have seen count (``ServerUnavailable``, ``RateLimited``, a
request it refused as malformed); being offline spends nothing, because a device may be
offline for days.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import RetryCallState, Retrying
from tenacity.wait import wait_exponential, wait_random


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_retries`` counted attempts per op, then FAILED (kept; ``retry_failed()``)."""

    max_retries: int = 8
    initial_s: float = 2.0
    max_wait_s: float = 3600.0
    jitter_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failed attempt (1-based): ``initial_s``
        doubling up to ``max_wait_s``, plus up to ``jitter_s`` at random (so devices that
        failed together do not all come back at once)."""
        wait = wait_exponential(multiplier=self.initial_s, max=self.max_wait_s) + wait_random(
            0, self.jitter_s
        )
        state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = max(1, attempt)
        return float(wait(state))
