"""``GET /docs``: Swagger UI over ``/openapi.json``, with its scripts served by the server.

FastAPI's own page loads Swagger UI from a CDN, which a clinic's server on a closed network
(or a browser without internet) cannot reach: the page stayed blank. The ``fastapi-offline``
package ships Swagger UI 5 (which reads OpenAPI 3.1); its files are served here under
``/docs/assets``, so the page works wherever the server does.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"


def install_docs_page(app: FastAPI, title: str) -> None:
    """Add ``GET /docs`` and its assets to ``app`` (created with ``docs_url=None``)."""
    assets = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS_PATH, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title} — API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={"defaultModelsExpandDepth": 0},
        )
