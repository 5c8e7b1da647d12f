"""Several server processes on one PostgreSQL database: ``waystation serve --workers N``.

One Python process pushes through one core (the GIL): a push storm on PostgreSQL keeps a
single process busy while the database and the other cores wait. uvicorn's supervisor
starts N worker processes that share the listening socket, restarts one that dies, and
stops them all on SIGTERM. Each worker is a fresh interpreter (spawned, not forked) that
builds its app by importing :func:`app_from_environ`, so the command line's choices reach
it through one environment variable.

PostgreSQL only: its seq allocator, row locks and LISTEN/NOTIFY already serve several
processes (docs/operations.md). SQLite's group commit and change events live inside one
process, so the command refuses ``--workers`` above 1 there.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI

from waystation.core.schema import Schema, health_schema, load_schema
from waystation.core.throttle import ThrottlePolicy
from waystation.server.app import create_served_app
from waystation.server.settings import Settings
from waystation.store import open_store

CONFIG_ENV = "WAYSTATION_WORKER_CONFIG"
FACTORY = f"{__name__}:app_from_environ"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What every worker needs to open the database and build the same app."""

    db: str
    schema_path: str | None
    settings: Settings
    log_level: str = "info"

    def to_env(self) -> str:
        data: dict[str, Any] = dataclasses.asdict(self)
        return orjson.dumps(data).decode()

    @classmethod
    def from_env(cls, text: str) -> WorkerConfig:
        data = orjson.loads(text)
        settings = dict(data["settings"])
        settings["login_throttle"] = ThrottlePolicy(**settings["login_throttle"])
        return cls(
            db=data["db"],
            schema_path=data["schema_path"],
            settings=Settings(**settings),
            log_level=data["log_level"],
        )

    def schema(self) -> Schema:
        return health_schema() if self.schema_path is None else load_schema(self.schema_path)


def app_from_environ() -> FastAPI:
    """The app of one worker process (uvicorn calls this in each worker)."""
    config = WorkerConfig.from_env(os.environ[CONFIG_ENV])
    # The parent process created or upgraded the database before starting the workers.
    store = open_store(
        config.db,
        config.schema(),
        migrate=False,
        max_clock_skew_ms=config.settings.max_clock_skew_ms,
    )
    atexit.register(store.close)
    return create_served_app(store, config.settings, config.log_level)
