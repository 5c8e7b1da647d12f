"""The nginx site of docs/operations.md (section 10), run as written in front of a real
``waystation serve``: so the documented setup keeps working (TLS, HSTS, no-store, gzip
left to Waystation with its 304s, event streams, the body limit in the protocol's shape,
the redirect from plain HTTP). Only ports, the upstream and the certificate paths are
replaced; nginx is Debian's (scripts/test installs it as it installs PostgreSQL)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
import trustme

from tests.support import (
    EventStream,
    LiveServer,
    SyncApi,
    answers_healthz,
    free_port,
    wait_until,
)
from waystation.client import Replica

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def documented_site() -> str:
    """The nginx block of operations.md's reverse-proxy section."""
    blocks: list[str] = re.findall(r"```nginx\n(.*?)```", DOCS.read_text(), flags=re.S)
    [site] = [b for b in blocks if "Strict-Transport-Security" in b]
    return site


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )
    if found is None:
        raise AssertionError(
            "nginx not found: install your distribution's nginx package "
            "(scripts/test does on Debian)"
        )
    return found


@dataclass
class Proxy:
    https: str
    http_port: int


@pytest.fixture
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    server = LiveServer(tmp_path)
    server.start()
    server.add_user("nurse", "health_worker", ["facility:f-1"])
    ca = trustme.CA()
    issued = ca.issue_cert("localhost")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "fullchain.pem"))
    issued.private_key_pem.write_to_path(str(tmp_path / "privkey.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # every client here

    https_port, http_port = free_port(), free_port()
    site = documented_site()
    for documented, here in (
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{server.port};"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("/etc/letsencrypt/live/sync.clinic.example.org/", f"{tmp_path}/"),
    ):
        assert documented in site, documented
        site = site.replace(documented, here)
    site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
    (tmp_path / "nginx").mkdir()
    conf = tmp_path / "nginx" / "nginx.conf"
    temp = tmp_path / "nginx"
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # workers write temp files here
        + f"worker_processes 1;\npid {temp}/nginx.pid;\nerror_log {temp}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\naccess_log off;\ngzip on;\n"  # as Debian's nginx.conf: the site turns it off
        + "".join(
            f"{kind}_temp_path {temp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + site
        + "\n}\n"
    )
    nginx = subprocess.Popen(
        [
            nginx_binary(),
            "-p",
            str(temp),
            "-e",
            str(temp / "error.log"),
            "-c",
            str(conf),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"https://localhost:{https_port}"
    try:

        def up() -> bool:
            if nginx.poll() is not None:
                raise AssertionError(f"nginx exited: {(temp / 'error.log').read_text()}")
            return answers_healthz(url, timeout=1)

        wait_until(up, 10, what="nginx to answer /healthz")
        yield Proxy(url, http_port)
    finally:
        nginx.terminate()
        nginx.wait(10)
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]


def test_hole_10_the_documented_nginx_site_serves_a_device_end_to_end(
    proxy: Proxy, tmp_path: Path
) -> None:
    # The SDK: login, a write, a sync, then an idle sync (a 304 through the proxy).
    with Replica.open(
        tmp_path / "tablet.db",
        server=proxy.https,
        username="nurse",
        password="pw",
        passphrase="proxy test",
    ) as rep:
        rep.put("patients", {"name": "Through nginx", "facility_id": "f-1"})
        first = rep.sync()
        assert first.ok and first.applied == 1 and first.pulled == 1, first
        idle = rep.sync()
        assert idle.ok and idle.pulled == 0 and idle.bytes_received == 0, idle

    api = SyncApi(proxy.https, "nurse")
    try:
        check_raw_answers(api)
    finally:
        api.close()

    redirect = httpx.get(f"http://127.0.0.1:{proxy.http_port}/v1/sync/pull")
    assert redirect.status_code == 301
    assert redirect.headers["location"].startswith("https://")


def check_raw_answers(api: SyncApi) -> None:
    api.push(
        [
            api.change("patients", f"p-{i}", {"name": f"Patient {i}", "facility_id": "f-1"})
            for i in range(20)
        ]
    )  # a page big enough to be compressed
    pull = api.http.get("/v1/sync/pull", params={"since": "0"}, headers={"Accept-Encoding": "gzip"})
    assert pull.status_code == 200 and pull.headers["content-encoding"] == "gzip"
    assert pull.headers["cache-control"] == "no-store"
    assert pull.headers["strict-transport-security"].startswith("max-age=63072000")
    again = api.http.get(
        "/v1/sync/pull",
        params={"since": "0"},
        headers={"Accept-Encoding": "gzip", "If-None-Match": pull.headers["etag"]},
    )
    assert again.status_code == 304

    # An event stream through the proxy hears a push at once (nothing buffered).
    stream = EventStream(api, pull.json()["cursor"])
    try:
        api.push([api.change("patients", "p-live", {"name": "Live", "facility_id": "f-1"})])
        event = stream.next(timeout=5)
        assert event is not None and event["event"] == "changes", stream.error
    finally:
        stream.close()

    # A body over nginx's own limit is refused in the protocol's error shape.
    too_large = api.http.post(
        "/v1/sync/push",
        content=b"x" * (20 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert too_large.status_code == 413
    assert orjson.loads(too_large.content)["error"]["code"] == "PAYLOAD_TOO_LARGE"
