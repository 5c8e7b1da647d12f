"""Build the ASGI app: routes, error shape, gzip responses."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from waystation import __version__
from waystation.server.context import Services
from waystation.server.errors import install_error_handlers
from waystation.server.maintenance import lifespan
from waystation.server.routes import auth, health, records, sync
from waystation.server.settings import Settings
from waystation.store import Store


def create_app(store: Store, settings: Settings | None = None) -> FastAPI:
    """The Waystation server over ``store``; the caller owns the store's lifetime."""
    app = FastAPI(
        title="Waystation",
        version=__version__,
        summary="Offline-first sync for health services (protocol v1)",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = Services(store, settings or Settings())
    install_error_handlers(app)
    # Pull pages are JSON that compresses 5-10x; small answers are not worth the CPU.
    app.add_middleware(GZipMiddleware, minimum_size=500)
    for module in (health, auth, sync, records):
        app.include_router(module.router)
    return app
