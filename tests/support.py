"""Test support: a real ``waystation serve`` process, and a small protocol client.

``LiveServer`` starts the server as a separate process on a free loopback port over a
SQLite file in a temp dir (or any ``db_url``, e.g. a PostgreSQL database), exactly as a user
would run it, and can stop, restart and SIGKILL it. ``SyncApi`` speaks protocol v1 with
httpx, for tests that check the wire. ``wait_until`` is how a test waits for something (a
server up, a file written, a change arrived): on the condition itself, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from argon2 import PasswordHasher

from waystation.core.hlc import HLC, Clock
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.store import open_store

# Test users get argon2 hashes with small parameters: the server verifies whatever
# parameters a hash carries, so the code path is the production one, only cheaper.
_TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def hash_test_password(password: str) -> str:
    """An argon2 hash with the tests' cheap parameters."""
    return _TEST_HASHER.hash(password)


T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 10.0, *, what: str = "", every: float = 0.02
) -> T:
    """Call ``condition`` every ``every`` seconds until it returns something true, and
    return that. Raises AssertionError naming ``what`` when ``timeout`` seconds pass first
    (or when ``condition`` itself raises one: a condition may fail fast, e.g. on a process
    that exited)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout} s for {what or condition}")
        time.sleep(every)  # the polling interval, not a wait for the condition
    return value


def answers_healthz(url: str, timeout: float = 0.5) -> bool:
    """Whether a server answers ``GET {url}/healthz`` with 200 (False while it is not up:
    refused, reset, timed out)."""
    try:
        return httpx.get(f"{url}/healthz", timeout=timeout).status_code == 200
    except httpx.TransportError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started (a ``serve --workers`` parent's workers, and any helper
    such as multiprocessing's resource tracker), from /proc."""
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


class LiveServer:
    """A ``waystation serve`` process over a SQLite file in ``workdir``, or over ``db_url``
    (several servers may share one PostgreSQL database); ``env`` adds environment
    variables."""

    def __init__(
        self,
        workdir: Path,
        *,
        extra_args: Sequence[str] = (),
        db_url: str | None = None,
        env: dict[str, str] | None = None,
        name: str = "server",
    ) -> None:
        self.workdir = workdir
        self.db_path = workdir / "server.db"
        self.db_url = db_url or f"sqlite:///{self.db_path}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.env = env
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "waystation",
                    "serve",
                    "--db",
                    self.db_url,
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, **self.env} if self.env else None,
            )
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            return answers_healthz(self.url)

        try:
            wait_until(up, timeout, what=f"the server on {self.url} to answer /healthz")
        except BaseException:
            if proc.poll() is None:  # not left running (nor warned about in a later test)
                proc.kill()
            proc.wait()
            self.proc = None
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what was acknowledged must survive."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def add_user(
        self, username: str, role: str, scopes: Sequence[str] = (), password: str = "pw"
    ) -> str:
        """Create a user straight in the database (as ``waystation users add`` does)."""
        store = open_store(self.db_url, health_schema(), migrate=True)
        try:
            return store.add_user(username, hash_test_password(password), role, list(scopes)).id
        finally:
            store.close()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


class SyncApi:
    """One logged-in device speaking protocol v1 (for wire-level tests)."""

    def __init__(
        self, base_url: str, username: str, password: str = "pw", device_id: str | None = None
    ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        token = self.http.post("/v1/auth/token", json={"username": username, "password": password})
        token.raise_for_status()
        self.user = token.json()["user"]
        self.device_id = device_id or f"d-{uuid7().replace('-', '')[-16:]}"
        reg = self.http.post(
            "/v1/devices",
            json={"name": "test", "device_id": self.device_id},
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        reg.raise_for_status()
        self.token: str = reg.json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.clock = Clock(self.device_id)

    def change(
        self,
        collection: str,
        record_id: str,
        fields: dict[str, Any] | None = None,
        op: str = "upsert",
        *,
        base_version: int = 0,
        hlc: str | None = None,
    ) -> dict[str, Any]:
        """A change stamped with this device's clock (not sent)."""
        return {
            "op_id": uuid7(),
            "collection": collection,
            "record_id": record_id,
            "op": op,
            "fields": fields or {},
            "hlc": hlc or str(self.clock.send()),
            "base_version": base_version,
        }

    def push(self, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        resp = self.http.post(
            "/v1/sync/push", json={"device_id": self.device_id, "changes": changes}
        )
        assert resp.status_code == 200, resp.text
        self.clock.receive(HLC.parse(resp.json()["server_hlc"]))
        results: list[dict[str, Any]] = resp.json()["results"]
        return results

    def pull_all(self, since: str = "0", **params: Any) -> tuple[dict[str, dict[str, Any]], str]:
        """Every page since ``since``: ({record id: newest change}, final cursor)."""
        seen: dict[str, dict[str, Any]] = {}
        cursor = since
        while True:
            resp = self.http.get("/v1/sync/pull", params={"since": cursor, **params})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            for change in body["changes"]:
                seen[change["id"]] = change
                for clock in change["clocks"].values():  # as a real client folds them in
                    self.clock.receive(HLC.parse(clock))
            cursor = body["cursor"]
            if not body["has_more"]:
                return seen, cursor

    def close(self) -> None:
        self.http.close()


class EventStream:
    """A device's ``GET /v1/sync/events`` stream (server-sent events), read on a thread.

    Each event lands in ``events`` as a dict of its fields plus ``at`` (``time.monotonic()``
    when it arrived). The reader runs on its own asyncio loop, so ``close()`` ends it at once.
    """

    def __init__(
        self,
        api: SyncApi,
        since: str | None = "0",
        *,
        last_event_id: str | None = None,
        **params: str,
    ) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.error: httpx.HTTPError | None = None  # how the stream ended, if not by close()
        self._opened = threading.Event()
        self._url = str(api.http.base_url)
        self._headers = {"Authorization": f"Bearer {api.token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            self._headers["Last-Event-ID"] = last_event_id
        self._params = {**({"since": since} if since is not None else {}), **params}
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._opened.wait(10):
            raise RuntimeError("the event stream did not open in 10 s")

    def _run(self) -> None:
        self._task = self._loop.create_task(self._read())
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _read(self) -> None:
        try:
            async with (
                httpx.AsyncClient(
                    base_url=self._url, timeout=httpx.Timeout(10, read=None)
                ) as client,
                client.stream(
                    "GET", "/v1/sync/events", params=self._params, headers=self._headers
                ) as resp,
            ):
                self.status, self.headers = resp.status_code, resp.headers
                self._opened.set()
                event: dict[str, Any] = {}
                async for line in resp.aiter_lines():
                    if not line:
                        if "event" in event:
                            self.events.put({**event, "at": time.monotonic()})
                        event = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        event[name] = value.removeprefix(" ")
        except httpx.HTTPError as exc:  # e.g. the server went away mid-stream
            self.error = exc
        finally:
            self._opened.set()

    def next(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """The next event, or None when none came within ``timeout`` seconds."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        task = self._task
        if task is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(10)
