"""Change notices and their fan-out, in-process (no server, no database)."""

from __future__ import annotations

import asyncio

from waystation.server.broadcast import Broadcaster, Heard
from waystation.store.notice import ANYTHING, MAX_PAYLOAD, ChangeNotice, Deliver


class ManualSource:
    """A notice source the test drives by hand."""

    def __init__(self) -> None:
        self.deliver: Deliver | None = None
        self.closed = False

    def start(self, deliver: Deliver) -> None:
        self.deliver = deliver

    def close(self) -> None:
        self.closed = True


def test_a_notice_survives_its_payload_and_drops_its_scopes_when_too_large() -> None:
    notice = ChangeNotice(42, frozenset({"patients"}), frozenset({"facility:f-1", "*"}))
    assert ChangeNotice.parse(notice.payload()) == notice
    assert notice.precise
    huge = ChangeNotice(
        7, frozenset({"patients"}), frozenset(f"patient:p-{i:06d}" for i in range(2000))
    )
    assert len(huge.payload()) <= MAX_PAYLOAD
    assert ChangeNotice.parse(huge.payload()) == ChangeNotice(7, frozenset({"patients"}))
    assert ChangeNotice.parse("not json") == ANYTHING
    assert not ANYTHING.precise


def test_a_notice_concerns_overlapping_scopes_and_collections_only() -> None:
    notice = ChangeNotice(5, frozenset({"alerts"}), frozenset({"patient:p-1", "facility:f-1"}))
    assert notice.may_concern(frozenset({"facility:f-1"}), None)
    assert notice.may_concern(None, None)  # an admin
    assert not notice.may_concern(frozenset({"facility:f-2"}), None)
    assert not notice.may_concern(frozenset({"facility:f-1"}), frozenset({"patients"}))
    assert ANYTHING.may_concern(frozenset({"facility:f-2"}), frozenset({"patients"}))


def test_the_broadcaster_wakes_only_the_subscriptions_a_notice_concerns() -> None:
    async def scenario() -> None:
        source = ManualSource()
        hub = Broadcaster(lambda: source)
        nurse = hub.subscribe(frozenset({"facility:f-1", "*"}), None)
        other = hub.subscribe(frozenset({"facility:f-2", "*"}), None)
        admin = hub.subscribe(None, None)
        assert source.deliver is not None
        source.deliver(ChangeNotice(3, frozenset({"patients"}), frozenset({"facility:f-1"})))
        source.deliver(ChangeNotice(4, frozenset({"patients"}), frozenset({"facility:f-1"})))
        assert await nurse.next(1) == Heard(4, recheck=False)  # coalesced to the newest
        assert await admin.next(1) == Heard(4, recheck=False)
        assert await other.next(0.05) is None
        source.deliver(ANYTHING)  # e.g. a reconnected LISTEN: everyone re-checks
        assert await other.next(1) == Heard(0, recheck=True)
        other.close()
        assert hub.subscribers == 2
        hub.close()
        assert source.closed

    asyncio.run(scenario())
