"""``waystation serve`` hands the JS client library to browsers as it is (no build step):
every module with a JavaScript content type, the security headers, and no third-party
resource anywhere in the library."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.web.conftest import Clinic

CLIENT = Path(__file__).resolve().parents[2] / "waystation" / "web" / "client"
MODULES = sorted(p.name for p in CLIENT.glob("*.js"))


def test_every_library_module_is_served_as_javascript_with_security_headers(clinic: Clinic) -> None:
    assert "replica.js" in MODULES and len(MODULES) >= 15
    with httpx.Client(base_url=clinic.url) as http:
        for name in MODULES:
            resp = http.get(f"/web/client/{name}")
            assert resp.status_code == 200, name
            assert resp.headers["content-type"].startswith("text/javascript"), name
            assert resp.headers["x-content-type-options"] == "nosniff"
            assert "script-src 'self'" in resp.headers["content-security-policy"]
            assert resp.text == (CLIENT / name).read_text()


def test_a_missing_file_is_a_protocol_404_not_a_stack_trace(clinic: Clinic) -> None:
    with httpx.Client(base_url=clinic.url) as http:
        resp = http.get("/web/client/nope.js")
        escapes = [
            http.get(path)
            for path in (
                "/web/client/%2e%2e/%2e%2e/server/app.py",
                "/web/client/..%2f..%2fserver%2fapp.py",
                "/portal/%2e%2e/%2e%2e/server/static.py",
            )
        ]
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "NOT_FOUND"
    for escape in escapes:
        assert escape.status_code == 404, escape.url
        assert "import" not in escape.text


def test_the_library_imports_only_its_own_modules() -> None:
    """No bundler and no CDN: every import is a relative path to a module that exists."""
    for name in MODULES:
        text = (CLIENT / name).read_text()
        for target in re.findall(r"""(?:from|import)\s*\(?\s*["']([^"']+)["']""", text):
            assert target.startswith("./"), f"{name} imports {target}"
            assert (CLIENT / target[2:]).is_file(), f"{name} imports missing {target}"
        assert "eval(" not in text and "new Function" not in text, name
