"""Background upkeep while the server runs: tombstone collection, once an hour.

Several server processes may each run it; the work is idempotent and each pass is one
short transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from waystation.server.context import Services

log = logging.getLogger("waystation.maintenance")
COLLECTION_INTERVAL_S = 3600


async def _collect_forever(svc: Services) -> None:
    retention_ms = svc.settings.tombstone_retention_s * 1000
    while True:
        try:
            dropped = await run_in_threadpool(svc.store.collect_tombstones, retention_ms)
            if dropped:
                log.info("collected %d tombstones older than the retention", dropped)
        except Exception:  # upkeep must never take the server down; try again next hour
            log.exception("tombstone collection failed")
        await asyncio.sleep(COLLECTION_INTERVAL_S)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    svc: Services = app.state.services
    task = asyncio.create_task(_collect_forever(svc))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
