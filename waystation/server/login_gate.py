"""At most a few password checks at once per process, and a short queue for the rest.

A password check is argon2 with 64 MiB of memory: 32 logins at once took a server to
1.8 GB (hole 4 of the security review). The gate lets ``concurrent`` checks run, lets
``waiting`` more wait their turn, and answers any login beyond that at once with
``429 RATE_LIMITED`` (``Retry-After: 1``), so memory stays bounded whatever arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from waystation.core.errors import RateLimited


class LoginGate:
    def __init__(self, concurrent: int, waiting: int) -> None:
        self._slots = asyncio.Semaphore(concurrent)
        self._capacity = concurrent + waiting
        self._inside = 0  # running or waiting

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the check slots; raises RateLimited when the queue is full."""
        if self._inside >= self._capacity:
            raise RateLimited("too many logins at once; try again in a second", {"retry_after": 1})
        self._inside += 1
        try:
            async with self._slots:
                yield
        finally:
            self._inside -= 1
