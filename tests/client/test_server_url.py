"""Issue 11, hole 10: a device never sends passwords, tokens or patient data in clear text
across a network: ``http://`` is accepted only for this machine (loopback) unless the app
says ``insecure=True`` (the command line: ``--insecure``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import free_port
from waystation.client import Replica
from waystation.client.auth import normalise_server_url


@pytest.mark.parametrize(
    "url",
    [
        "http://clinic.example.org",
        "http://10.0.0.5:8000",
        "http://192.168.1.20:8000/",
        "http://[fe80::1]:8000",
        "http://127.example.org",
        "http://localhost.example.org",
        "http://0.0.0.0:8000",
    ],
)
def test_hole_10_plain_http_to_another_host_is_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"https://.*insecure") as refused:
        normalise_server_url(url)
    assert "clear text" in str(refused.value)
    with Replica.open(tmp_path / "r.db") as rep, pytest.raises(ValueError, match="insecure"):
        rep.login(url, "amina", "pw", http=never_sent())  # refused before anything is sent
    with Replica.open(tmp_path / "r.db") as rep, pytest.raises(ValueError, match="insecure"):
        rep.set_server(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://127.1.2.3",
        "http://localhost:8000",
        "http://[::1]:8000",
        "https://clinic.example.org",
        "https://10.0.0.5:8443",
    ],
)
def test_https_anywhere_and_http_on_loopback_are_accepted(url: str) -> None:
    assert normalise_server_url(url) == url.rstrip("/")


def test_insecure_lets_an_app_use_plain_http_on_purpose(tmp_path: Path) -> None:
    assert normalise_server_url("http://10.0.0.5:8000/", insecure=True) == "http://10.0.0.5:8000"
    with Replica.open(tmp_path / "r.db", insecure=True) as rep:
        rep.set_server("http://10.0.0.5:8000")
        assert rep.server_url == "http://10.0.0.5:8000"


def test_a_stored_plain_http_url_to_another_host_is_not_used_without_insecure(
    tmp_path: Path,
) -> None:
    """A replica that kept such a URL (from before the check, or opened with insecure once)
    does not send its tokens there when opened without ``insecure``: the sync reports why
    and sends nothing (the transport is never built)."""
    with Replica.open(tmp_path / "r.db", insecure=True) as rep:
        rep.set_server("http://10.0.0.5:8000")
        rep.put("patients", {"name": "Stays here", "facility_id": "f-1"})
    with Replica.open(tmp_path / "r.db") as rep:
        result = rep.sync()
        assert result.needs_login and "clear text" in (result.error or "")
        assert rep.pending_count() == 1


def never_sent() -> httpx.Client:
    """A client whose every request fails the test: nothing may leave for those hosts."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a request was sent to {request.url}")

    return httpx.Client(transport=httpx.MockTransport(refuse))


def waystation(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "WAYSTATION_PASSWORD": "pw"}
    return subprocess.run(
        [sys.executable, "-m", "waystation", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_hole_10_cli_refuses_plain_http_to_another_host_unless_insecure(tmp_path: Path) -> None:
    # 0.0.0.0 is not a loopback address, but a connection to it stays on this machine
    # (Linux routes it to the loopback interface): were the check missing, the command
    # would only meet a closed local port, never another host.
    server = f"http://0.0.0.0:{free_port()}"
    path = str(tmp_path / "cli.db")
    refused = waystation("login", "--replica", path, "--server", server, "--username", "amina")
    assert refused.returncode == 2 and "--insecure" in refused.stderr, refused.stderr
    Replica.open(path).close()
    moved = waystation("sync", "--replica", path, "--server", server)
    assert moved.returncode == 2 and "--insecure" in moved.stderr, moved.stderr
    allowed = waystation("sync", "--replica", path, "--server", server, "--insecure")
    assert allowed.returncode == 2 and "not logged in" in allowed.stderr  # URL accepted
    with Replica(path) as rep:
        assert rep.server_url == server
