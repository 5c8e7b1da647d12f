"""Fixtures of the web tests: a real ``waystation serve`` seeded with a clinic, and Debian's
chromium driven by Playwright.

- ``clinic`` (one server per test process): facility ``f-1`` with a health worker
  (``clinic.worker``) and an admin; ``clinic.new_patient()`` adds a patient user with their
  own ``patients`` record, so each test works on data no other test touches;
  ``clinic.device(person)`` is one registered device of a person kept for the session, and
  ``clinic.server_records(...)`` reads the server through it, pulling only what changed
  since its last read.
- ``browser`` (one chromium per test process's run of the web tests, see below),
  ``context`` / ``page`` (fresh per test: an empty IndexedDB, no service worker), at a
  phone's size, with ``base_url`` = the server.
- ``lib_page``: a page on the server's origin with the JS client library loaded as
  ``window.ws`` (``replica.js``'s exports) and ``window.wsErrors`` (``errors.js``).

The browser is Debian's ``/usr/bin/chromium`` (Playwright's own download does not work
offline); without it the tests fail saying how to install it (scripts/test does, as root).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.support import LiveServer, SyncApi

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 360, "height": 740}
FACILITY = "f-1"


@dataclass(frozen=True)
class Person:
    username: str
    password: str
    user_id: str
    patient_id: str | None = None


@dataclass
class Clinic:
    """A running server with facility ``f-1``'s staff; patients are added per test."""

    server: LiveServer
    worker: Person
    admin: Person
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _devices: dict[str, SyncApi] = field(default_factory=dict)
    _seen: dict[str, tuple[dict[tuple[str, str], dict[str, Any]], str]] = field(
        default_factory=dict
    )

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, person: Person) -> SyncApi:
        """A new registered device of ``person`` speaking protocol v1 (close it after use)."""
        return SyncApi(self.url, person.username, person.password)

    def device(self, person: Person) -> SyncApi:
        """One registered device of ``person`` for the whole session (do not close it): a
        login and a registration per read or write would cost more than the read."""
        if person.username not in self._devices:
            api = self.api(person)
            # A fresh connection per request: the server closes idle ones after 5 s, and a
            # request racing that close would fail for no fault of the code under test.
            old = api.http
            api.http = httpx.Client(
                base_url=old.base_url,
                headers=old.headers,
                timeout=30,
                limits=httpx.Limits(max_keepalive_connections=0),
            )
            old.close()
            self._devices[person.username] = api
        return self._devices[person.username]

    def server_records(
        self,
        collection: str,
        *,
        by: Person | None = None,
    ) -> list[dict[str, Any]]:
        """The live records of ``collection`` as the server holds them, read through the
        API by the health worker (or ``by``): each record once, in its newest state. Each
        reader pulls only the changes after its previous read (the pull carries each
        record's newest state, so the two together are the server's state)."""
        api = self.device(by or self.worker)
        seen, cursor = self._seen.get(api.device_id, ({}, "0"))
        changes, cursor = api.pull_all(since=cursor)
        seen.update({(c["collection"], c["id"]): c for c in changes.values()})
        self._seen[api.device_id] = (seen, cursor)
        return [
            {"id": c["id"], **c["fields"]}
            for c in seen.values()
            if c["collection"] == collection and not c["deleted"]
        ]

    def new_patient(self, *, password: str | None = None) -> Person:
        """A patient user with their own ``patients`` record in facility ``f-1``."""
        n = next(self._numbers)
        patient_id = f"p-{n}"
        username = f"patient{n}"
        secret = password or f"{username}-secret"
        user_id = self.server.add_user(username, "patient", [f"patient:{patient_id}"], secret)
        api = self.device(self.worker)
        (result,) = api.push(
            [
                api.change(
                    "patients",
                    patient_id,
                    {"name": f"Patient {n}", "facility_id": FACILITY, "village": "Ahero"},
                )
            ]
        )
        assert result["status"] == "applied", result
        return Person(username, secret, user_id, patient_id)

    def close(self) -> None:
        for api in self._devices.values():
            api.close()


@pytest.fixture(scope="session")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    server = LiveServer(tmp_path_factory.mktemp("web-server"))
    server.start()
    worker_pw, admin_pw = "worker-secret", "admin-secret"
    worker = Person(
        "worker",
        worker_pw,
        server.add_user("worker", "health_worker", [f"facility:{FACILITY}"], worker_pw),
    )
    admin = Person("admin", admin_pw, server.add_user("admin", "admin", [], admin_pw))
    clinic = Clinic(server, worker, admin)
    yield clinic
    clinic.close()
    server.stop()


# Playwright's sync API keeps an asyncio loop running in the main thread while it is open:
# it must be closed before the process runs tests of another package (pytest-xdist hands a
# worker web and server modules alike, and server tests call asyncio.run). So the driver
# and the browser live for the package: pytest ends them when the next test is not a web
# test. The web tests are collected last (tests/web), so each test process starts them
# once, instead of once per module (~1 s each: the driver, chromium, its shutdown).
@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install "
            "chromium), as scripts/test does when run as root"
        )
    found = CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))
    browser = playwright_driver.chromium.launch(executable_path=found, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser, clinic: Clinic) -> Iterator[BrowserContext]:
    """A fresh browser profile (empty IndexedDB and caches) at a phone's size."""
    ctx = browser.new_context(base_url=clinic.url, viewport=PHONE)  # type: ignore[arg-type]
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def load_library(page: Page) -> None:
    """Open a page on the server's origin (a secure context: IndexedDB, WebCrypto) and
    import the library into ``window.ws`` / ``window.wsErrors``."""
    page.goto("/healthz")
    page.evaluate("""async () => {
        window.ws = await import('/web/client/replica.js');
        window.wsErrors = await import('/web/client/errors.js');
    }""")


@pytest.fixture
def lib_page(page: Page) -> Page:
    load_library(page)
    return page


def js(page: Page, body: str, arg: Any = None) -> Any:
    """Run ``body`` (the inside of an async function of ``arg``) in the page."""
    return page.evaluate(f"async (arg) => {{ {body} }}", arg)
