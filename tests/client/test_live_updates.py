"""Continuous mode learns of a change from the server's event stream, not the interval."""

from __future__ import annotations

import time

from tests.client.conftest import MakeReplica, new_user
from tests.support import LiveServer, wait_until
from waystation.client import Continuous


def test_continuous_mode_pulls_a_change_long_before_its_interval(
    live_server: LiveServer, make_replica: MakeReplica
) -> None:
    watcher = make_replica(live_server, new_user(live_server))
    writer = make_replica(live_server, new_user(live_server))
    loop = Continuous(watcher, interval=300)  # a poll would take five minutes
    loop.start()
    try:
        # After the first sync the change can only come by the event stream. Its long poll
        # needs no wait: one asked after the push answers at once (a change past its cursor).
        wait_until(lambda: loop.last_result is not None, 10, what="the first sync")
        pid = writer.put("patients", {"name": "Neema", "facility_id": "f-1"})
        sent = time.monotonic()
        assert writer.sync().ok
        wait_until(
            lambda: watcher.get("patients", pid) is not None,
            10,
            what="the change on the watching replica",
        )
        delay = time.monotonic() - sent
    finally:
        loop.stop()
    assert watcher.get("patients", pid) is not None
    print(f"change reached the other replica {delay * 1000:.0f} ms after its push")
    assert delay < 5
