"""The portal's app shell: served safely, cached whole by its service worker, and replaced
cleanly when a new version is deployed."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
from playwright.sync_api import Page, expect

from tests.web.conftest import Clinic
from tests.web.portal_steps import SLOW_MS

WEB = Path(__file__).resolve().parents[2] / "waystation" / "web"
PORTAL = WEB / "portal"
SW = (PORTAL / "sw.js").read_text()


def shell_list() -> set[str]:
    """The paths sw.js precaches, relative to /portal/."""
    block = re.search(r"const SHELL = \[(.*?)\];", SW, re.S)
    assert block is not None
    return set(re.findall(r'"([^"]+)"', block.group(1)))


def sw_version() -> str:
    found = re.search(r'const VERSION = "([^"]+)";', SW)
    assert found is not None
    return found.group(1)


def test_service_worker_precaches_every_file_the_portal_needs_offline() -> None:
    """A file missing from the list is a portal that breaks on its first offline reload."""
    portal = {
        p.relative_to(PORTAL).as_posix()
        for p in PORTAL.rglob("*")
        if p.is_file() and p.name != "sw.js"
    }
    library = {f"../web/{p.relative_to(WEB).as_posix()}" for p in (WEB / "client").glob("*.js")}
    assert shell_list() == {"./"} | portal | library


def shell_digest() -> str:
    """A digest of every file the worker caches (names and bytes), sw.js excluded."""
    digest = hashlib.sha256()
    for path in sorted(shell_list() - {"./"}):
        file = WEB / path.removeprefix("../web/") if path.startswith("../web/") else PORTAL / path
        digest.update(path.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def test_service_worker_version_changes_with_any_file_of_the_shell() -> None:
    """The shell is served cache-first: a file changed without a new VERSION would never
    reach a phone that has the old one. So VERSION is the digest of the files."""
    assert sw_version() == shell_digest(), (
        f"a file of the portal or the library changed: set `const VERSION = "
        f'"{shell_digest()}";` in waystation/web/portal/sw.js'
    )


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and not named.get("src"):
            self.inline.append("<script> without src")
        if tag == "style" or "style" in named:
            self.inline.append(f"inline style on <{tag}>")
        if any(k.startswith("on") for k in named):
            self.inline.append(f"inline handler on <{tag}>")
        for key in ("src", "href"):
            value = named.get(key) or ""
            if value.startswith(("http:", "https:", "//")):
                self.external.append(value)


def test_portal_is_served_with_a_strict_policy_and_nothing_inline_or_third_party(
    clinic: Clinic,
) -> None:
    with httpx.Client(base_url=clinic.url) as http:
        index = http.get("/portal/")
        assert index.status_code == 200
        policy = index.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "'unsafe-inline'" not in policy and "default-src 'self'" in policy
        assert index.headers["x-content-type-options"] == "nosniff"
        markup = _Markup()
        markup.feed(index.text)
        assert (markup.inline, markup.external) == ([], [])
        for path in [p for p in shell_list() if p.endswith(".js")] + ["sw.js"]:
            script = http.get(urljoin("/portal/", path))
            assert script.status_code == 200, path
            assert script.headers["content-type"].startswith("text/javascript"), path
            if not path.startswith("../"):  # the portal's own code loads nothing from elsewhere
                assert not re.search(r"https?://", script.text), f"{path} names another origin"
        manifest = http.get("/portal/manifest.webmanifest")
        assert manifest.headers["content-type"].startswith("application/manifest+json")
        assert (manifest.json()["start_url"], manifest.json()["scope"]) == ("/portal/", "/portal/")


def test_a_new_version_takes_over_when_the_patient_updates_and_old_caches_go(
    page: Page,
) -> None:
    page.goto("/portal/")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=SLOW_MS)
    current = f"waystation-portal-{sw_version()}"
    assert page.evaluate("caches.keys()") == [current]
    # Left behind by an earlier version of the portal, and a cache that is not the portal's.
    page.evaluate("""async () => {
        await caches.open('waystation-portal-2024-01-01.1');
        await caches.open('another-app');
    }""")

    # A new worker script is deployed (the browser finds it as it would after an upgrade:
    # here by its address, as the served bytes are those of this checkout).
    page.evaluate("navigator.serviceWorker.register('sw.js?next', {scope: './'})")
    expect(page.get_by_text("A new version of the portal is ready.")).to_be_visible(timeout=SLOW_MS)
    assert page.evaluate("navigator.serviceWorker.controller.scriptURL").endswith("/sw.js")

    with page.expect_navigation(timeout=SLOW_MS):  # the page reloads under the new worker
        page.get_by_role("button", name="Update").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("navigator.serviceWorker.controller.scriptURL").endswith("/sw.js?next")
    assert sorted(page.evaluate("caches.keys()")) == ["another-app", current]
