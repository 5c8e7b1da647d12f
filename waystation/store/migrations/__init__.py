"""Alembic migrations: named revisions that upgrade an existing database in place."""
