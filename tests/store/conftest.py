"""In-process store fixtures: a real SQLite file per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from waystation.core.access import Principal
from waystation.core.schema import health_schema
from waystation.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = open_store(str(tmp_path / "store.db"), health_schema())
    yield st
    st.close()


ADMIN = Principal("u-admin", "admin", "admin", frozenset(), "d-admin")
NURSE = Principal("u-nurse", "nurse", "health_worker", frozenset({"facility:f-1"}), "d-nurse")
