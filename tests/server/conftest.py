"""Fixtures for protocol tests: fresh users on one shared server per module and engine.

Every protocol test runs twice: against a server on SQLite and against one on PostgreSQL
(a fresh database in the test cluster, tests/pg.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import BACKENDS
from tests.pg import database_url
from tests.support import LiveServer, SyncApi
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.store import SqlStore, open_store

MakeDevice = Callable[..., SyncApi]


@pytest.fixture(scope="module", params=BACKENDS)
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server per module and engine (tests use their own users and records)."""
    workdir = tmp_path_factory.mktemp(f"server-{request.param}")
    cluster = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    server = LiveServer(workdir, db_url=database_url(request.param, workdir, cluster))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def facility() -> str:
    """A facility of this test alone, so tests sharing a server never see each other."""
    return f"f-{uuid7()[-12:]}"


@pytest.fixture
def make_device(shared_server: LiveServer) -> Iterator[MakeDevice]:
    """``make_device(role, scopes)``: a new user logged in on a new device."""
    made: list[SyncApi] = []

    def make(role: str = "health_worker", scopes: tuple[str, ...] = ()) -> SyncApi:
        name = f"{role}-{uuid7()[-12:]}"
        shared_server.add_user(name, role, scopes)
        api = SyncApi(shared_server.url, name)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture
def server_store(shared_server: LiveServer) -> Iterator[SqlStore]:
    """The server's own database, opened as `waystation users` and `devices` open it (and
    with its signing key, to mint tokens as the server does)."""
    store = open_store(shared_server.db_url, health_schema())
    yield store
    store.close()
