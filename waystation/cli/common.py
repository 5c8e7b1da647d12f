"""Helpers shared by the command modules: opening a store, failing with exit code 2.

Server-side libraries (SQLAlchemy, FastAPI, uvicorn) are imported inside the commands that
use them, so device-side commands such as ``waystation sync`` start quickly on a field
laptop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

from waystation.core.schema import Schema, SchemaError, health_schema, load_schema

if TYPE_CHECKING:
    from waystation.store import SqlStore

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def fail_usage(message: str) -> NoReturn:
    """A usage or configuration error: say what to do, exit 2."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def schema_from(path: str | None) -> Schema:
    if path is None:
        return health_schema()
    try:
        return load_schema(path)
    except SchemaError as exc:
        fail_usage(str(exc))


def store_from(db: str, schema: Schema) -> SqlStore:
    """Open (creating and migrating when needed) the database named by ``--db``."""
    from waystation.store import open_store  # SQLAlchemy + Alembic: only commands that need it

    try:
        return open_store(db, schema)
    except Exception as exc:  # any driver error becomes a plain message and exit 2
        fail_usage(f"cannot open database {db!r}: {type(exc).__name__}: {exc}")
