"""Alembic environment: always run on a connection the store hands over (no alembic.ini).

On PostgreSQL several server processes may start at once on a new database: a
transaction-scoped advisory lock makes the second wait for the first to commit the
migrations, after which Alembic finds the database at head and does nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from waystation.store.tables import metadata

MIGRATION_LOCK = 0x5741595354  # "WAYST": any fixed key, the same in every process

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
