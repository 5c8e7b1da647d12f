"""``/docs`` is usable where the server is: Swagger UI's files come from the server itself
(a clinic's network often has no internet, and FastAPI's page loaded them from a CDN)."""

from __future__ import annotations

import re

import httpx

from tests.support import LiveServer


def test_hole_11_docs_page_loads_swagger_ui_from_the_server_not_a_cdn(
    shared_server: LiveServer,
) -> None:
    page = httpx.get(f"{shared_server.url}/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/docs/assets/swagger-ui-bundle.js" in sources
    assert "/docs/assets/swagger-ui.css" in sources
    assert all(source.startswith("/") for source in sources), sources
    assert "url: '/openapi.json'" in page.text
    for source in sources:
        asset = httpx.get(f"{shared_server.url}{source}")
        assert asset.status_code == 200, source
    script = httpx.get(f"{shared_server.url}/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in script.headers["content-type"]
    assert "SwaggerUIBundle" in script.text
