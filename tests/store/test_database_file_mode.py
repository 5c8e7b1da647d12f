"""Issue 11, hole 8: the server's SQLite database holds every patient record and the token
signing key, so a new one is readable by its owner only (and its WAL/SHM side files too)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from waystation.core.schema import health_schema
from waystation.store import open_store


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask of most shells (files readable by everyone unless the program says no)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_hole_8_server_database_is_created_readable_by_its_owner_only(
    tmp_path: Path, usual_umask: None
) -> None:
    path = tmp_path / "clinic.db"
    store = open_store(f"sqlite:///{path}", health_schema())
    try:
        store.add_user("admin", "not-a-real-hash", "admin", [])
        files = [path, tmp_path / "clinic.db-wal", tmp_path / "clinic.db-shm"]
        assert {f.name: oct(mode(f)) for f in files} == {f.name: "0o600" for f in files}
    finally:
        store.close()


def test_an_existing_database_readable_by_others_is_left_alone_with_a_warning(
    tmp_path: Path, usual_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o644)
    with caplog.at_level(logging.WARNING, logger="waystation.store"):
        open_store(str(path), health_schema()).close()
    assert mode(path) == 0o644
    assert any(
        "readable by other users" in r.getMessage() and "chmod 600" in r.getMessage()
        for r in caplog.records
    )

    private = tmp_path / "private.db"
    private.touch(mode=0o600)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="waystation.store"):
        open_store(str(private), health_schema()).close()
    assert not [r for r in caplog.records if "readable by other users" in r.getMessage()]
