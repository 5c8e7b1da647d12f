"""Fixtures for the client tests: fresh replica files, users on a real server (a
``waystation serve`` process, or the app in this process: ``app_server``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.inprocess import InProcessServer
from tests.support import LiveServer, free_port
from waystation.client import Replica, RetryPolicy
from waystation.client.auth import Tokens
from waystation.core.ids import uuid7

_names = itertools.count(1)

# Tests run sync loops without waiting: retries are still counted, delays stay tiny.
FAST_RETRIES = RetryPolicy(max_retries=3, initial_s=0.01, max_wait_s=0.05, jitter_s=0.01)

MakeReplica = Callable[..., Replica]
Server = LiveServer | InProcessServer


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """The server app in this process, on its own SQLite file, for a whole test module
    (tests use their own users and records): client-against-server tests that need no
    real process (tests/inprocess.py)."""
    server = InProcessServer(tmp_path_factory.mktemp("app"))
    yield server
    server.close()


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[Replica]:
    """A local replica that has never logged in (writes work, sync reports LOGIN_REQUIRED)."""
    rep = Replica.open(tmp_path / "local.db")
    yield rep
    rep.close()


@pytest.fixture
def unreachable_replica(tmp_path: Path) -> Iterator[Replica]:
    """A replica 'logged in' to a server that is not there (nothing listens on the port)."""
    rep = Replica(tmp_path / "offline.db", retry_policy=FAST_RETRIES)
    rep.set_server(f"http://127.0.0.1:{free_port()}")
    rep.session.save_tokens(Tokens(rep.device_id, "access", "refresh", 3600))
    yield rep
    rep.close()


def symptom_log(date: str = "2025-11-30", **fields: object) -> dict[str, object]:
    """A valid symptom log of a fresh patient (one log per patient per day is unique on the
    server, and tests share servers)."""
    return {"patient_id": f"p-{uuid7()}", "facility_id": "f-1", "date": date, **fields}


def new_user(
    server: Server, role: str = "health_worker", scopes: Sequence[str] = ("facility:f-1",)
) -> str:
    """A fresh user on ``server`` (password ``pw``); returns its name."""
    name = f"u{next(_names)}-{role}"
    server.add_user(name, role, list(scopes), password="pw")
    return name


@pytest.fixture
def make_replica(tmp_path: Path) -> Iterator[MakeReplica]:
    """Log a new device in: ``make_replica(server, username)``; closed after the test. On
    an ``app_server`` the replica's HTTP goes to the app in this process."""
    opened: list[Replica] = []

    def make(server: Server, username: str, **kwargs: object) -> Replica:
        path = tmp_path / f"{username}-{len(opened)}.db"
        kind = server.replica_class if isinstance(server, InProcessServer) else Replica
        rep = kind.open(
            path,
            server=server.url,
            username=username,
            password="pw",
            retry_policy=FAST_RETRIES,
            **kwargs,  # type: ignore[arg-type]
        )
        opened.append(rep)
        return rep

    yield make
    for rep in opened:
        rep.close()
