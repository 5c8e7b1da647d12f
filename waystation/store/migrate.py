"""Bring a database to the newest schema revision (creating it when empty)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from waystation.store.database import Database


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "waystation.store:migrations")
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database) -> None:
    """Apply every pending migration in one transaction (a no-op when up to date)."""
    if current_revision(db) == head_revision():
        return
    cfg = _config()
    with db.write() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
