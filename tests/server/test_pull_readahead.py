"""Pull read-ahead (server/readahead.py) through the real app, on both engines: a page built
ahead goes out only when it is the page a fresh read gives, byte for byte.

In process (httpx's ASGI transport on one event loop), so that the test can wait for a
read-ahead to finish and read what became of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from tests.store.conftest import ADMIN
from waystation.core.hlc import Clock
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.server.app import create_app
from waystation.server.readahead import ReadAhead
from waystation.server.settings import Settings
from waystation.store import SqlStore, open_store

CLOCK = Clock("d-readahead")
_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # cheap, for tests


@dataclass
class Apps:
    store: SqlStore
    ahead: AppClient  # read-ahead on (the default)
    plain: AppClient  # the same store and device, read-ahead off
    app: FastAPI

    def read_ahead(self) -> ReadAhead[Any]:
        ahead: ReadAhead[Any] = self.app.state.pull_read_ahead
        return ahead


class AppClient:
    """A blocking client of an ASGI app, on an event loop of its own."""

    def __init__(self, app: FastAPI, token: str | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://waystation.test",
            headers=headers,
        )

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.http.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.http.post(url, **kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        self.loop.close()


@pytest.fixture
def apps(db_url: str) -> Iterator[Apps]:
    store = open_store(db_url, health_schema())
    store.add_user("nurse", _HASHER.hash("pw"), "health_worker", ["facility:f-1"])
    app = create_app(store)
    login = AppClient(app)
    user = login.post("/v1/auth/token", json={"username": "nurse", "password": "pw"})
    device = login.post(
        "/v1/devices",
        json={"name": "tablet"},
        headers={"Authorization": f"Bearer {user.json()['access_token']}"},
    )
    token = device.json()["access_token"]
    ahead = AppClient(app, token)
    plain = AppClient(create_app(store, Settings(pull_read_ahead=False)), token)
    yield Apps(store, ahead, plain, app)
    for client in (login, ahead, plain):
        client.close()
    app.state.pull_read_ahead.close()
    store.close()


def _patients(n: int) -> list[dict[str, Any]]:
    return [
        {
            "op_id": uuid7(),
            "collection": "patients",
            "record_id": uuid7(),
            "op": "upsert",
            "fields": {"name": f"patient {i}", "facility_id": "f-1"},
            "hlc": str(CLOCK.send()),
        }
        for i in range(n)
    ]


def _pull(client: AppClient, since: str, limit: int = 5) -> tuple[bytes, str, dict[str, Any]]:
    resp = client.get("/v1/sync/pull", params={"since": since, "limit": limit})
    assert resp.status_code == 200, resp.text
    return resp.content, resp.headers["etag"], resp.json()


def test_pages_read_ahead_are_the_pages_a_fresh_read_gives(apps: Apps) -> None:
    apps.store.push(ADMIN, _patients(23))
    since, pages = "0", 0
    while True:
        body, etag, page = _pull(apps.ahead, since)
        apps.read_ahead().settle(10)  # the next page is built before it is asked for
        assert (body, etag) == _pull(apps.plain, since)[:2]
        pages += 1
        since = page["cursor"]
        if not page["has_more"]:
            break
    assert pages == 5
    assert apps.read_ahead().served == pages - 1
    assert apps.read_ahead().refused == 0


def test_a_change_after_a_page_was_read_ahead_is_not_missed(apps: Apps) -> None:
    ops = _patients(15)
    apps.store.push(ADMIN, ops)
    _, _, first = _pull(apps.ahead, "0")
    apps.read_ahead().settle(10)  # page 2 is built ...
    on_page_two = ops[7]["record_id"]
    apps.store.push(
        ADMIN,
        [
            {  # ... then one of its records changes
                "op_id": uuid7(),
                "collection": "patients",
                "record_id": on_page_two,
                "op": "upsert",
                "fields": {"name": "renamed"},
                "hlc": str(CLOCK.send()),
                "base_version": 1,
            }
        ],
    )
    body, etag, second = _pull(apps.ahead, first["cursor"])
    assert apps.read_ahead().refused == 1
    assert (body, etag) == _pull(apps.plain, first["cursor"])[:2]
    assert on_page_two not in {c["id"] for c in second["changes"]}
    seen: dict[str, str] = {}
    since = second["cursor"]
    for change in first["changes"] + second["changes"]:
        seen[change["id"]] = change["fields"]["name"]
    while True:
        _, _, page = _pull(apps.ahead, since)
        seen.update({c["id"]: c["fields"]["name"] for c in page["changes"]})
        since = page["cursor"]
        if not page["has_more"]:
            break
    assert len(seen) == 15
    assert seen[on_page_two] == "renamed"


def test_a_client_without_gzip_gets_the_same_changes(apps: Apps) -> None:
    apps.store.push(ADMIN, _patients(40))
    plain = apps.ahead.get(
        "/v1/sync/pull", params={"since": "0", "limit": 30}, headers={"Accept-Encoding": "identity"}
    )
    gzipped = apps.ahead.get(
        "/v1/sync/pull", params={"since": "0", "limit": 30}, headers={"Accept-Encoding": "gzip"}
    )
    assert "content-encoding" not in plain.headers
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzipped.headers["vary"] == "Accept-Encoding"
    assert plain.content == gzipped.content  # decoded by the client
    # A strong ETag names one content coding; each answers 304 to its own.
    for resp, coding in ((plain, "identity"), (gzipped, "gzip")):
        again = apps.ahead.get(
            "/v1/sync/pull",
            params={"since": "0", "limit": 30},
            headers={"Accept-Encoding": coding, "If-None-Match": resp.headers["etag"]},
        )
        assert again.status_code == 304
