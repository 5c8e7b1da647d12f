"""Fixtures for protocol tests: fresh users on one shared server per module."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support import LiveServer, SyncApi
from waystation.core.ids import uuid7

MakeDevice = Callable[..., SyncApi]


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
