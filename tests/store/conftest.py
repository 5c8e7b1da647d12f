"""In-process store fixtures: a fresh database per test, on SQLite (a real file) and on
PostgreSQL (a new database in the test cluster, tests/pg.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from waystation.core.access import Principal
from waystation.core.schema import health_schema
from waystation.store import SqlStore, open_store


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    """A migrated store on each engine (``db_url`` is parametrised over both)."""
    st = open_store(db_url, health_schema())
    yield st
    st.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    """For what only SQLite has (pragmas, VM instruction counts)."""
    st = open_store(str(tmp_path / "store.db"), health_schema())
    yield st
    st.close()


ADMIN = Principal("u-admin", "admin", "admin", frozenset(), "d-admin")
NURSE = Principal("u-nurse", "nurse", "health_worker", frozenset({"facility:f-1"}), "d-nurse")
