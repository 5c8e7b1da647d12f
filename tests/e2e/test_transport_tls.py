"""Issue 11, hole 10: ``waystation serve --tls-cert --tls-key`` serves HTTPS itself, and the
client SDK and command line sync through it, trusting the server's CA (``verify=`` /
``--ca-cert``, or the standard ``SSL_CERT_FILE``). Certificates come from a throwaway CA
(``trustme``); everything runs on loopback."""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from tests.pg import PostgresCluster
from tests.support import LiveServer, free_port
from waystation.client import Offline, Replica, ServerUnavailable
from waystation.core.ids import uuid7


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""
    where = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    paths = Pki(where / "ca.pem", where / "server.pem", where / "server.key")
    ca.cert_pem.write_to_path(str(paths.ca))
    issued.cert_chain_pems[0].write_to_path(str(paths.cert))
    issued.private_key_pem.write_to_path(str(paths.key))
    return paths


def start_tls(
    server: LiveServer, pki: Pki, monkeypatch: pytest.MonkeyPatch, timeout: float = 20.0
) -> None:
    """Start ``server`` over HTTPS; its start-up probe trusts the CA through SSL_CERT_FILE,
    which is removed again so that each test says how it trusts the CA."""
    server.extra_args += ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key)]
    server.url = f"https://127.0.0.1:{server.port}"
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    server.start(timeout)
    monkeypatch.delenv("SSL_CERT_FILE")


@pytest.fixture
def tls_server(tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path)
    start_tls(server, pki, monkeypatch)
    yield server
    server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]


def waystation(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "200", "WAYSTATION_PASSWORD": "pw", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "waystation", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
    )


def test_hole_10_serve_over_tls_and_sync_through_it(
    tls_server: LiveServer, pki: Pki, tmp_path: Path
) -> None:
    tls_server.add_user("nurse", "health_worker", ["facility:f-1"])
    with Replica.open(
        tmp_path / "tablet.db",
        server=tls_server.url,
        username="nurse",
        password="pw",
        verify=str(pki.ca),
    ) as rep:
        assert rep.server_url == tls_server.url
        rep.put("patients", {"name": "Over TLS", "facility_id": "f-1"})
        result = rep.sync()
        assert result.ok and result.applied == 1 and result.pulled == 1, result
    with Replica.open(tmp_path / "tablet.db", verify=str(pki.ca)) as rep:
        assert rep.sync().ok  # reopened offline, the same trust

    # A client that does not trust the CA sends nothing and says why.
    with pytest.raises(Offline, match="certificate") as untrusted:
        Replica.open(tmp_path / "other.db", server=tls_server.url, username="nurse", password="pw")
    assert "verify=" in untrusted.value.message
    # Plain HTTP to the TLS port gets no answer, and the error says to use https://.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/healthz", timeout=5)
    with pytest.raises(ServerUnavailable, match="https://"):
        Replica.open(
            tmp_path / "plain.db",
            server=f"http://127.0.0.1:{tls_server.port}",
            username="nurse",
            password="pw",
        )


def test_plain_http_reset_by_a_tls_port_still_says_to_use_https(tmp_path: Path) -> None:
    """A TLS server that closes before it has read all of a plain-HTTP request resets the
    connection instead of closing it cleanly (which one happens depends on timing). This
    listener always resets, so the hint is checked on that path too."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def reset_every_connection() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(1)  # the first byte of the request; the rest stays unread
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    resetter = threading.Thread(target=reset_every_connection, daemon=True)
    resetter.start()
    try:
        port = listener.getsockname()[1]
        with pytest.raises(ServerUnavailable, match="https://"):
            Replica.open(
                tmp_path / "plain.db",
                server=f"http://127.0.0.1:{port}",
                username="nurse",
                password="pw",
            )
    finally:
        stop.set()
        resetter.join(5)
        listener.close()


def test_cli_login_and_sync_over_tls_with_ca_cert(
    tls_server: LiveServer, pki: Pki, tmp_path: Path
) -> None:
    tls_server.add_user("clerk", "health_worker", ["facility:f-1"])
    path = str(tmp_path / "cli.db")
    untrusted = waystation(
        "login", "--replica", path, "--server", tls_server.url, "--username", "clerk"
    )
    assert untrusted.returncode == 1, untrusted.stderr
    assert "certificate" in untrusted.stderr and "--ca-cert" in untrusted.stderr
    login = waystation(
        "login",
        "--replica",
        path,
        "--server",
        tls_server.url,
        "--username",
        "clerk",
        "--ca-cert",
        str(pki.ca),
    )
    assert login.returncode == 0, login.stderr
    with Replica(path) as rep:
        rep.put("patients", {"name": "CLI over TLS", "facility_id": "f-1"})
    synced = waystation("sync", "--replica", path, "--ca-cert", str(pki.ca))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    listed = waystation("conflicts", "list", "--replica", path, "--ca-cert", str(pki.ca))
    assert listed.returncode == 0, listed.stderr
    # The standard variable works as well as the option.
    by_env = waystation("sync", "--replica", path, env={"SSL_CERT_FILE": str(pki.ca)})
    assert by_env.returncode == 0, by_env.stdout + by_env.stderr
    missing = waystation("sync", "--replica", path, "--ca-cert", str(tmp_path / "nope.pem"))
    assert missing.returncode == 2 and "nope.pem" in missing.stderr


def test_serve_refuses_half_or_broken_tls_options(pki: Pki, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    port = str(free_port())
    half = waystation("serve", "--db", db, "--port", port, "--tls-cert", str(pki.cert))
    assert half.returncode == 2 and "--tls-key" in half.stderr
    broken = waystation(
        "serve", "--db", db, "--port", port, "--tls-cert", str(pki.key), "--tls-key", str(pki.key)
    )
    assert broken.returncode == 2 and "certificate" in broken.stderr
    assert "Traceback" not in half.stderr + broken.stderr


def test_tls_connections_still_get_the_header_timeout(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS wraps the server's own HTTP protocol (server/timeouts.py): a client that
    completes the handshake and then trickles its request head is closed as over HTTP."""
    server = LiveServer(tmp_path, extra_args=["--header-timeout", "1"])
    start_tls(server, pki, monkeypatch)
    try:
        context = ssl.create_default_context(cafile=str(pki.ca))
        with (
            socket.create_connection(("127.0.0.1", server.port)) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as held,
        ):
            held.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ")  # never finished
            held.settimeout(10)
            try:
                rest = held.recv(4096)
            except (ConnectionResetError, ssl.SSLError):
                rest = b""
            assert rest == b""  # closed by the server, no answer
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]


def test_serve_workers_over_tls(
    tmp_path: Path, pki: Pki, postgres: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = LiveServer(tmp_path, db_url=postgres.new_database(), extra_args=["--workers", "2"])
    start_tls(server, pki, monkeypatch, timeout=40)
    try:
        server.add_user("w", "health_worker", ["facility:f-1"])
        with Replica.open(
            tmp_path / "w.db", server=server.url, username="w", password="pw", verify=str(pki.ca)
        ) as rep:
            for _ in range(3):
                rep.put("patients", {"name": f"p-{uuid7()}", "facility_id": "f-1"})
            assert rep.sync().applied == 3
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]
