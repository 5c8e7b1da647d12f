"""ReadAhead on its own: what it keeps, what it refuses to start, what it hands back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial

import pytest

from waystation.server.readahead import ReadAhead


@pytest.fixture
def ahead() -> Iterator[ReadAhead[str]]:
    made: ReadAhead[str] = ReadAhead(workers=1, max_entries=2, max_age_s=60)
    yield made
    made.close()


def test_a_build_is_handed_to_the_request_for_its_key_once(ahead: ReadAhead[str]) -> None:
    assert ahead.offer("page-2", lambda: "built")
    assert ahead.take("page-3") is None
    assert ahead.take("page-2") == "built"
    assert ahead.take("page-2") is None  # taken


def test_a_request_waits_for_a_build_under_way(ahead: ReadAhead[str]) -> None:
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "slow"

    assert ahead.offer("k", slow)
    assert started.wait(10)
    threading.Timer(0.05, release.set).start()
    assert ahead.take("k") == "slow"


def test_nothing_more_is_started_while_the_workers_are_busy(ahead: ReadAhead[str]) -> None:
    release = threading.Event()
    assert ahead.offer("a", lambda: str(release.wait(10)))
    assert not ahead.offer("b", lambda: "b")  # the one worker is busy: not queued
    assert not ahead.offer("a", lambda: "again")  # already under way
    release.set()
    assert ahead.take("a") == "True"
    assert ahead.take("b") is None


def test_a_failed_build_gives_nothing(ahead: ReadAhead[str]) -> None:
    def broken() -> str:
        raise RuntimeError("database gone")

    assert ahead.offer("k", broken)
    ahead.settle(10)
    assert ahead.take("k") is None


def test_only_the_newest_entries_are_kept(ahead: ReadAhead[str]) -> None:
    for key in ("1", "2", "3"):
        assert ahead.offer(key, partial(str, key))  # its value is its key
        ahead.settle(10)
    assert ahead.take("1") is None
    assert [ahead.take("2"), ahead.take("3")] == ["2", "3"]


def test_an_old_entry_is_not_served() -> None:
    stale: ReadAhead[str] = ReadAhead(workers=1, max_age_s=0)
    try:
        assert stale.offer("k", lambda: "old")
        stale.settle(10)
        assert stale.take("k") is None
    finally:
        stale.close()
