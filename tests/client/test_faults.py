"""Sync through broken networks and a failing server (faults injected in front of a real
server): ops are retried safely, never doubled, never silently dropped."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.client.conftest import MakeReplica, new_user, symptom_log
from tests.client.faults import Forwarder, is_pull, is_push
from tests.support import LiveServer
from waystation.client import Continuous, OpStatus, Replica, SyncEvent
from waystation.client.records import store_pulled
from waystation.core.schema import health_schema
from waystation.store import open_store


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    fwd = Forwarder()
    yield fwd
    fwd.close()


def _stock(rep: Replica, item: str) -> int:
    record = rep.get("pharmacy_inventory", item)
    assert record is not None
    return int(record["quantity"])


def _error(status: int, code: str, **details: object) -> httpx.Response:
    body = {"error": {"code": code, "message": code.lower(), "details": details}}
    return httpx.Response(status, content=orjson.dumps(body))


def test_a_lost_ack_is_resent_and_counted_once(
    shared_server: LiveServer, make_replica: MakeReplica, forwarder: Forwarder
) -> None:
    counter = make_replica(shared_server, new_user(shared_server, "pharmacist"))
    other = make_replica(shared_server, new_user(shared_server, "pharmacist"))
    item = counter.put("pharmacy_inventory", {"facility_id": "f-1", "medicine_id": "para"})
    counter.increment("pharmacy_inventory", item, "quantity", 100)
    assert counter.sync().ok
    for _ in range(3):
        counter.increment("pharmacy_inventory", item, "quantity", -5)

    def lose_the_answer(request: httpx.Request, response: httpx.Response | None) -> None:
        if is_push(request):
            raise httpx.ReadError("connection reset after the server applied the push")

    forwarder.after = lose_the_answer
    lost = counter.sync(transport=forwarder.transport_for(counter))
    assert lost.error_code == "SERVER_UNAVAILABLE" and not lost.ok
    pending = counter.outbox(status="PENDING")
    assert len(pending) == 3 and all(e.retry_count == 1 for e in pending)
    assert _stock(counter, item) == 85  # still shown, still waiting

    resent = counter.sync()
    assert resent.ok and (resent.duplicates, resent.applied) == (3, 0)
    assert other.sync().ok
    assert _stock(other, item) == _stock(counter, item) == 85


def test_server_errors_spend_retries_then_fail_and_retry_failed_requeues(
    shared_server: LiveServer, make_replica: MakeReplica, forwarder: Forwarder
) -> None:
    rep = make_replica(shared_server, new_user(shared_server))  # three retries
    rid = rep.put("symptom_logs", symptom_log("2025-05-01"))
    forwarder.before = lambda req, _: httpx.Response(500) if is_push(req) else None
    transport = forwarder.transport_for(rep)

    results = [rep.sync(transport=transport) for _ in range(3)]
    assert [r.failed for r in results] == [0, 0, 1]
    assert all(r.error_code == "SERVER_UNAVAILABLE" for r in results)
    [issue] = results[-1].issues
    assert (issue.status, issue.record_id) == ("FAILED", rid)
    [entry] = rep.outbox(status="FAILED")
    assert entry.retry_count == 3 and entry.last_error["code"] == "SERVER_UNAVAILABLE"  # type: ignore[index]
    assert rep.status()["failed"] == 1
    assert rep.get("symptom_logs", rid) is not None  # kept, still visible

    assert rep.sync(transport=transport).failed == 0  # FAILED waits for a person
    forwarder.before = None
    retried = rep.sync(retry_failed=True)
    assert retried.ok and retried.applied == 1
    assert rep.status()["failed"] == 0


def test_a_batch_too_large_for_the_server_is_split(
    shared_server: LiveServer, make_replica: MakeReplica, forwarder: Forwarder
) -> None:
    rep = make_replica(shared_server, new_user(shared_server))
    for day in range(1, 8):
        rep.put("symptom_logs", symptom_log(f"2025-04-{day:02d}"))

    def small_bodies_only(request: httpx.Request, _: object) -> httpx.Response | None:
        if is_push(request) and len(orjson.loads(request.content)["changes"]) > 2:
            return _error(413, "PAYLOAD_TOO_LARGE", limit=2)
        return None

    forwarder.before = small_bodies_only
    result = rep.sync(transport=forwarder.transport_for(rep))
    assert result.ok and result.applied == 7
    pushed = [len(orjson.loads(r.content)["changes"]) for r in forwarder.requests if is_push(r)]
    assert max(pushed[-4:]) <= 2


def test_an_expired_cursor_repulls_everything_and_drops_what_the_server_forgot(
    shared_server: LiveServer, make_replica: MakeReplica, forwarder: Forwarder
) -> None:
    rep = make_replica(shared_server, new_user(shared_server))
    kept = rep.put("symptom_logs", symptom_log("2025-03-01"))
    assert rep.sync().ok
    with rep.db.transaction() as conn:  # a record whose delete the replica never saw
        store_pulled(
            conn,
            {
                "collection": "symptom_logs",
                "id": "ghost",
                "version": 1,
                "seq": "1",
                "deleted": False,
                "fields": symptom_log(),
                "clocks": {},
            },
            generation=0,
        )
    assert rep.get("symptom_logs", "ghost") is not None
    pending = rep.put("symptom_logs", symptom_log("2025-03-02"))

    def expired(request: httpx.Request, _: object) -> httpx.Response | None:
        if is_pull(request) and request.url.params.get("since") not in (None, "0"):
            return _error(410, "CURSOR_EXPIRED")
        return None

    forwarder.before = expired
    result = rep.sync(transport=forwarder.transport_for(rep))
    assert result.ok, result
    assert rep.get("symptom_logs", "ghost") is None
    assert rep.get("symptom_logs", kept) is not None
    assert rep.get("symptom_logs", pending) is not None
    assert rep.status()["pending"] == 0


@pytest.mark.parametrize("wipe", [True, False])
def test_a_revoked_device_stops_and_wipes_when_asked(
    shared_server: LiveServer, make_replica: MakeReplica, wipe: bool
) -> None:
    user = new_user(shared_server)
    rep = make_replica(shared_server, user)
    log = symptom_log("2025-02-01")
    rid = rep.put("symptom_logs", log)
    assert rep.sync().ok
    old_device = rep.device_id
    store = open_store(shared_server.db_url, health_schema(), migrate=False)
    try:
        assert store.revoke_device(old_device, wipe=wipe)
    finally:
        store.close()
    rep.put("symptom_logs", {"severity": 1}, id=rid)

    result = rep.sync()
    assert result.error_code == "DEVICE_REVOKED" and result.needs_login
    assert not rep.status()["logged_in"]
    if wipe:
        assert rep.get("symptom_logs", rid) is None
        assert rep.outbox() == []
        assert rep.device_id != old_device
    else:
        assert rep.get("symptom_logs", rid) == {"id": rid, **log, "severity": 1}
        assert rep.outbox(status="PENDING")

    # The user logs in again: a new device registration; kept ops are delivered.
    rep.login(shared_server.url, user, "pw")
    assert rep.device_id != old_device
    assert rep.sync().ok
    # Wiped: the unsynced edit is gone and the server's copy comes back; kept: it arrived.
    expected = {"id": rid, **log} if wipe else {"id": rid, **log, "severity": 1}
    assert rep.get("symptom_logs", rid) == expected
    assert rep.status()["pending"] == 0


def test_continuous_mode_probes_while_offline_and_syncs_when_back(
    shared_server: LiveServer, make_replica: MakeReplica, forwarder: Forwarder
) -> None:
    rep = make_replica(shared_server, new_user(shared_server))
    down = threading.Event()
    down.set()

    def network(request: httpx.Request, _: object) -> None:
        if down.is_set():
            raise httpx.ConnectError("network unreachable")

    forwarder.before = network
    events: list[SyncEvent] = []
    delivered = threading.Event()

    def follow(event: SyncEvent) -> None:
        events.append(event)
        if event.phase == "done" and event.pushed:
            delivered.set()

    rep.subscribe(follow)
    rid = rep.put("symptom_logs", symptom_log("2025-01-15"))
    loop = Continuous(rep, interval=60, probe_interval=0.05, transport=forwarder.transport_for(rep))
    loop.start()
    try:
        while sum(r.url.path == "/healthz" for r in forwarder.requests) < 3:
            threading.Event().wait(0.01)  # offline: only cheap probes go out
        syncs_while_down = sum(is_push(r) or is_pull(r) for r in forwarder.requests)
        down.clear()
        assert delivered.wait(10)
    finally:
        loop.stop()
    phases = [e.phase for e in events]
    assert phases.index("offline") < phases.index("online")
    assert syncs_while_down == 1  # the first attempt found the network down; then probes
    assert [e.status for e in rep.outbox(record_id=rid)] == [OpStatus.SYNCED]
