"""The fault proxy (tests/fault_proxy.py) breaks exchanges as promised, and a replica syncing
through it still delivers every write exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fault_proxy import FaultProxy, FaultRates
from tests.support import LiveServer, SyncApi
from waystation.client import Replica, RetryPolicy
from waystation.client.errors import Offline, ServerUnavailable
from waystation.core.ids import uuid7

NO_WAIT = RetryPolicy(max_retries=50, initial_s=0.0, max_wait_s=0.0, jitter_s=0.0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path)
    live.start()
    live.add_user("nurse", "health_worker", ("facility:f-1",))
    yield live
    live.stop()


def _proxy(server: LiveServer, **rates: float) -> FaultProxy:
    proxy = FaultProxy(server.port, FaultRates(**rates), seed=7)
    proxy.start()
    return proxy


@pytest.mark.parametrize(
    ("fault", "raised"),
    [
        ("drop", httpx.RemoteProtocolError),
        ("cut", httpx.RemoteProtocolError),
        ("lost_answer", httpx.RemoteProtocolError),
    ],
)
def test_each_fault_breaks_the_exchange_as_a_bad_link_would(
    server: LiveServer,
    fault: str,
    raised: type[Exception],
) -> None:
    proxy = _proxy(server, **{fault: 1.0})
    try:
        with pytest.raises((raised, httpx.ReadError)):
            httpx.get(f"{proxy.url}/v1/sync/status", timeout=5).raise_for_status()
        assert proxy.counts[fault] == 1
    finally:
        proxy.stop()


def test_a_bad_gateway_is_answered_without_reaching_the_server(server: LiveServer) -> None:
    proxy = _proxy(server, bad_gateway=1.0)
    try:
        assert httpx.get(f"{proxy.url}/healthz", timeout=5).status_code == 502
    finally:
        proxy.stop()


def test_faulty_paths_break_only_the_requests_under_them(server: LiveServer) -> None:
    """A page and its scripts (outside ``/v1/``) load whole; the sync API still breaks."""
    proxy = FaultProxy(server.port, FaultRates(bad_gateway=1.0), seed=7, faulty_paths=["/v1/"])
    proxy.start()
    try:
        with httpx.Client(base_url=proxy.url, timeout=5) as http:
            assert http.get("/web/client/replica.js").status_code == 200
            assert http.get("/healthz").status_code == 200
            assert http.get("/v1/sync/status").status_code == 502
        assert proxy.counts["bad_gateway"] == 1 and proxy.counts["spared"] == 2
    finally:
        proxy.stop()


def test_a_duplicated_push_reaches_the_server_twice_and_applies_once(
    server: LiveServer,
) -> None:
    api = SyncApi(server.url, "nurse")
    proxy = _proxy(server, duplicate=1.0)
    try:
        via = httpx.Client(base_url=proxy.url, headers=dict(api.http.headers), timeout=10)
        change = api.change(
            "symptom_logs",
            uuid7(),
            {"patient_id": "p-1", "facility_id": "f-1", "date": "2025-11-30"},
        )
        resp = via.post("/v1/sync/push", json={"device_id": api.device_id, "changes": [change]})
        assert resp.status_code == 200
        assert resp.json()["results"][0]["status"] in ("applied", "duplicate")
        assert proxy.counts["duplicate"] == 1
        seen, _ = api.pull_all()
        assert change["record_id"] in seen
        assert seen[change["record_id"]]["version"] == 1  # applied once
        via.close()
    finally:
        proxy.stop()
        api.close()


def test_a_replica_syncing_through_a_bad_link_delivers_everything_once(
    server: LiveServer,
    tmp_path: Path,
) -> None:
    proxy = _proxy(
        server,
        drop=0.1,
        bad_gateway=0.1,
        lost_answer=0.1,
        cut=0.1,
        duplicate=0.1,
        delay=0.1,
        max_delay_s=0.05,
    )
    rep = Replica.open(tmp_path / "tablet.db", retry_policy=NO_WAIT)
    try:
        for _ in range(50):  # logging in itself goes through the bad link
            try:
                rep.login(proxy.url, "nurse", "pw")
                break
            except (Offline, ServerUnavailable):  # a broken exchange: try again
                continue
        ids = [
            rep.put("pharmacy_inventory", {"facility_id": "f-1", "medicine_id": f"m-{i}"})
            for i in range(20)
        ]
        for record_id in ids:
            rep.increment("pharmacy_inventory", record_id, "quantity", 5)
        for _ in range(60):
            result = rep.sync(max_items=5)
            if result.ok and rep.status()["pending"] == 0:
                break
        assert rep.status()["pending"] == 0
        assert proxy.counts["requests"] > 20
        assert sum(proxy.counts[f] for f in ("drop", "lost_answer", "cut", "duplicate")) > 3
        direct = SyncApi(server.url, "nurse")
        seen, _ = direct.pull_all()
        direct.close()
        for record_id in ids:  # each increment counted exactly once
            assert seen[record_id]["fields"]["quantity"] == 5
            local = rep.get("pharmacy_inventory", record_id)
            assert local is not None and local["quantity"] == 5
    finally:
        rep.close()
        proxy.stop()
