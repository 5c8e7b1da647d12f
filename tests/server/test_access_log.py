"""``waystation serve --access-log FILE``: one line per request that reached the server, so
request counts can be checked against a proxy's (bench/soak.py does)."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import BACKENDS
from tests.pg import database_url
from tests.support import LiveServer


@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_access_log_has_one_line_per_request(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    cluster = request.getfixturevalue("postgres") if backend == "postgresql" else None
    log_path = tmp_path / "access.log"
    server = LiveServer(
        tmp_path,
        db_url=database_url(backend, tmp_path, cluster),
        extra_args=["--access-log", str(log_path)],
    )
    server.start()
    try:
        before = len(log_path.read_text().splitlines())  # the start-up health checks
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/web/client/replica.js").status_code == 200
            assert http.get("/v1/sync/pull", params={"since": "secret-cursor"}).status_code == 401
            assert (
                http.post(
                    "/v1/auth/token", json={"username": "nobody", "password": "secret-pw"}
                ).status_code
                == 401
            )
            assert http.get("/no/such/path").status_code == 404
    finally:
        server.stop()
    logged = [orjson.loads(line) for line in log_path.read_text().splitlines()]
    assert ("GET", "/healthz", 200) in [(e["method"], e["path"], e["status"]) for e in logged]
    # A start-up health check's line may land after ``before`` was read: the server
    # writes it just after its answer, which the start-up already had.
    lines = [e for e in logged[before:] if e["path"] != "/healthz"]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("GET", "/web/client/replica.js", 200),
        ("GET", "/v1/sync/pull", 401),
        ("POST", "/v1/auth/token", 401),
        ("GET", "/no/such/path", 404),
    ]
    assert all(e["client"] == "127.0.0.1" and e["ms"] >= 0 and e["bytes"] > 0 for e in lines)
    text = log_path.read_text()
    assert "secret-cursor" not in text and "secret-pw" not in text  # no query, no body
    assert log_path.stat().st_mode & 0o077 == 0  # the server's own file


def test_serve_writes_no_access_log_unless_asked(tmp_path: Path) -> None:
    server = LiveServer(tmp_path)
    server.start()
    try:
        httpx.get(f"{server.url}/healthz")
    finally:
        server.stop()
    assert "/healthz" not in server.log()
