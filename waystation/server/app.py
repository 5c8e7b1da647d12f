"""Build the ASGI app: routes, error shape, gzip responses, the OpenAPI document and /docs."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import BaseRoute

from waystation import __version__
from waystation.server.access_log import install_access_log
from waystation.server.broadcast import Broadcaster, closing_broadcaster
from waystation.server.context import Services
from waystation.server.docs_page import install_docs_page
from waystation.server.errors import install_error_handlers
from waystation.server.gc_tuning import tune_gc_for_serving
from waystation.server.login_gate import LoginGate
from waystation.server.maintenance import lifespan
from waystation.server.openapi import SUMMARY, TITLE, install_openapi
from waystation.server.responses import GZIP_MIN_SIZE, NoStoreMiddleware
from waystation.server.routes import (
    audit,
    auth,
    conflicts,
    digest,
    events,
    health,
    records,
    stats,
    sync,
)
from waystation.server.settings import Settings
from waystation.server.static import mount_web
from waystation.store.port import Store

ROUTERS = tuple(
    module.router
    for module in (health, auth, sync, events, records, conflicts, stats, audit, digest)
)


def api_routes() -> list[BaseRoute]:
    """Every route of the API, without an app (tests build the OpenAPI document from them)."""
    return [route for router in ROUTERS for route in router.routes]


def create_app(store: Store, settings: Settings | None = None) -> FastAPI:
    """The Waystation server over ``store``; the caller owns the store's lifetime."""
    app = FastAPI(
        title=TITLE,
        version=__version__,
        summary=SUMMARY,
        docs_url=None,  # ours, without a CDN (server/docs_page.py)
        redoc_url=None,
        lifespan=closing_broadcaster(lifespan),
    )
    settings = settings or Settings()
    app.state.services = Services(store, settings)
    app.state.login_gate = LoginGate(settings.max_concurrent_logins, settings.max_waiting_logins)
    # Live change notices for GET /v1/sync/events (LISTEN/NOTIFY on PostgreSQL).
    app.state.broadcaster = Broadcaster(store.change_source)
    install_error_handlers(app)
    # JSON answers compress 5-10x; small answers are not worth the CPU. Level 1: push
    # answers (500 results, ~60 KB) are repetitive enough that level 5 saved a few bytes per
    # op for 6% of a push storm's server time (docs/performance.md). Pull pages, the large
    # answers, are compressed by their route (routes/sync.py) and pass through untouched.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_SIZE, compresslevel=1)
    app.add_middleware(NoStoreMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    # The routes parse raw bytes, so the document is described by hand (server/openapi.py).
    install_openapi(app)
    install_docs_page(app, TITLE)
    mount_web(app)  # the JS client under /web/, the patient portal under /portal/
    return app


def create_served_app(store: Store, settings: Settings, log_level: str) -> FastAPI:
    """The app of a ``waystation serve`` process (the only one, or each ``--workers``
    worker): logging set up, and the collector tuned once the app is built
    (server/gc_tuning.py). Tests build theirs with :func:`create_app` and keep their
    process's own settings."""
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    app = create_app(store, settings)
    install_access_log(app, settings)
    tune_gc_for_serving()
    return app
