"""The web files ``waystation serve`` hands to browsers: the JS client library under
``/web/`` and the patient portal (a PWA) under ``/portal/``.

Static files only, no build step: the library is plain ES modules. Each answer says its
content type explicitly (a ``.js`` module must be ``text/javascript`` for the browser to run
it, a ``.webmanifest`` ``application/manifest+json``; the platform's mime table is not
trusted for either) and carries the portal's security headers: a strict
Content-Security-Policy (no inline script, nothing from another origin), ``nosniff``, no
framing. ``Cache-Control: no-cache`` makes the browser revalidate each file (a cheap 304)
so an upgraded server is picked up at once; offline, the portal's service worker serves
its own cached copy.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
PORTAL_ROOT = WEB_ROOT / "portal"

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class WebFiles(StaticFiles):
    """``StaticFiles`` with explicit content types and the security headers above.

    A missing file raises Starlette's 404, which the server's error handlers answer in the
    protocol's error shape.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        name = PurePosixPath(path).name
        if not PurePosixPath(name).suffix:  # a directory answered with its index.html
            name = "index.html"
        content_type = CONTENT_TYPES.get(PurePosixPath(name).suffix.lower())
        if content_type is not None and response.status_code == 200:
            response.headers["Content-Type"] = content_type
        for header, value in SECURITY_HEADERS.items():
            response.headers[header] = value
        return response


def mount_web(app: FastAPI) -> None:
    """Serve ``/web/`` (the library, and the portal's files) and ``/portal/`` (the portal,
    ``/portal/`` answering its ``index.html``; its service worker ``/portal/sw.js`` then
    controls the scope ``/portal/``). ``/portal`` redirects to ``/portal/``."""
    if WEB_ROOT.is_dir():  # both ship with the package; a trimmed install serves the API only
        app.mount("/web", WebFiles(directory=WEB_ROOT), name="web")
    if PORTAL_ROOT.is_dir():
        app.mount("/portal", WebFiles(directory=PORTAL_ROOT, html=True), name="portal")
