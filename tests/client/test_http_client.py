"""Issue 13: one HTTP client per replica.

Each sync used to build its own httpx client (an SSL context and the certificate bundle,
even for http://: most of an idle sync's CPU) and open a new connection. Now a replica keeps
one client for as long as it is open, shared by its syncs, a continuous loop and its event
listener, conflict reviews and login; it is rebuilt when the server URL or the TLS settings
change. Connections are counted by a pass-through proxy in front of the real server.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from tests.client.conftest import FAST_RETRIES, MakeReplica, new_user, symptom_log
from tests.e2e.test_transport_tls import Pki, pki, start_tls  # noqa: F401  (pki: a fixture)
from tests.fault_proxy import FaultProxy, FaultRates
from tests.support import LiveServer
from waystation.client import Continuous, Replica


class ConnectionCounter(FaultProxy):
    """A proxy that breaks nothing and counts the TCP connections clients open
    (``counts["connections"]``) besides the requests (``counts["requests"]``)."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port, FaultRates())

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.counts["connections"] += 1
        await super()._serve(client_r, client_w)

    def stop(self) -> None:
        """Also end exchanges still waiting for the server (a listener's long poll)."""

        async def cancel() -> None:
            serving = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in serving:
                task.cancel()
            await asyncio.gather(*serving, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self._loop).result(5)
        super().stop()


def _open(proxy: FaultProxy, server: LiveServer, path: Path) -> Replica:
    return Replica.open(
        path, server=proxy.url, username=new_user(server), password="pw", retry_policy=FAST_RETRIES
    )


def test_issue_13_a_replica_logs_in_and_syncs_over_one_connection(
    shared_server: LiveServer, tmp_path: Path
) -> None:
    with (
        ConnectionCounter(shared_server.port) as proxy,
        _open(proxy, shared_server, tmp_path / "tablet.db") as rep,
    ):
        for day in range(1, 6):
            rep.put("symptom_logs", symptom_log(f"2025-07-0{day}"))
            result = rep.sync()
            assert result.ok and result.applied == 1, result.summary()
        idle = rep.sync()
        assert idle.ok and (idle.pushed, idle.pulled) == (0, 0)
        assert proxy.counts["requests"] >= 13  # login (2), status, 5 x (push, pull), pull
        assert proxy.counts["connections"] == 1


def test_issue_13_threads_of_one_replica_refresh_its_token_once(
    shared_server: LiveServer, tmp_path: Path
) -> None:
    """A refresh token is single-use and the server ends every session of a device that
    presents one twice: threads of one replica whose access token expired (a review in
    the app's thread, a sync in the loop's) must refresh it once, not once each."""
    with (
        ConnectionCounter(shared_server.port) as proxy,
        _open(proxy, shared_server, tmp_path / "tablet.db") as rep,
    ):
        with rep.db.transaction() as conn:  # as if the tablet had been offline for weeks
            conn.execute("UPDATE meta SET value = '0' WHERE key = 'access_expires_at'")
        start = threading.Barrier(6)
        failures: list[BaseException] = []

        def review() -> None:
            start.wait()
            try:
                rep.conflicts(limit=1)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=review) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert rep.sync().ok  # the device's sessions were not ended


def test_a_continuous_loop_and_its_listener_share_the_replica_client(
    shared_server: LiveServer, tmp_path: Path
) -> None:
    with (
        ConnectionCounter(shared_server.port) as proxy,
        _open(proxy, shared_server, tmp_path / "tablet.db") as rep,
    ):
        rep.put("symptom_logs", symptom_log("2025-07-10"))
        last = Continuous(rep, interval=0.05, live=True).run(max_syncs=3)
        assert last is not None and last.ok
        # The loop closed the transports it was handed; the replica's client stays open.
        assert rep.sync().ok
        # The listener's long poll holds a connection of its own; the syncs share one.
        assert proxy.counts["connections"] <= 2


def test_a_new_server_url_gets_a_new_client(shared_server: LiveServer, tmp_path: Path) -> None:
    with (
        ConnectionCounter(shared_server.port) as first,
        ConnectionCounter(shared_server.port) as moved,
        _open(first, shared_server, tmp_path / "tablet.db") as rep,
    ):
        assert rep.sync().ok
        rep.set_server(moved.url)  # the server moved
        rep.put("symptom_logs", symptom_log("2025-07-11"))
        assert rep.sync().applied == 1
        assert (first.counts["connections"], moved.counts["connections"]) == (1, 1)
        assert moved.counts["requests"] >= 2


def test_new_tls_settings_get_a_new_client(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    make_replica: MakeReplica,
) -> None:
    certs: Pki = request.getfixturevalue("pki")  # a CA and the server's certificate
    server = LiveServer(tmp_path)
    start_tls(server, certs, monkeypatch)
    try:
        user = new_user(server)
        rep = make_replica(server, user, verify=str(certs.ca))
        assert rep.sync().ok
        rep.tls_verify = True  # the system's CAs, which do not include the clinic's
        refused = rep.sync()
        assert refused.offline and "certificate" in (refused.error or "")
        rep.tls_verify = certs.ca
        assert rep.sync().ok
    finally:
        server.stop()
