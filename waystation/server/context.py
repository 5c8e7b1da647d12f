"""What every route needs: the store, the settings, and the caller."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from waystation.core.access import Principal
from waystation.server.auth import authenticate
from waystation.server.settings import Settings
from waystation.store.port import Store


@dataclass(frozen=True, slots=True)
class Services:
    store: Store
    settings: Settings


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def caller(request: Request) -> Principal:
    """Authenticate off the event loop (it reads the database)."""
    return await run_in_threadpool(authenticate, services(request).store, request)
