"""One soak client in a browser: the JS client in Debian's chromium (driven by Playwright)
writing to its replica in IndexedDB and syncing through the fault proxy, until bench/soak.py
SIGKILLs the browser and this process together (``kill_browser``), as a phone's OS kills
a browser.

``python -m bench.soak_browser PROFILE LOG CLIENT SEED SERVER [--setup | --final DUMP]``

The browser keeps its data in the profile directory ``PROFILE`` (a persistent context),
so the replica outlives each kill exactly as a phone's browser data does. Writes, logs and
numbering are those of the Python soak client (bench/soak_client.py): one write is a new
patient and an increment of the client's stock counter, stored together by
``rep.atomic``; its log line ``{"n": n}`` is appended only after the page answered that
the write was stored; ``{"start": n}`` on each start.

Modes: the default writes and sometimes syncs for ever, unlocking the replica offline on
start (``Replica.unlock``: no request); ``--setup`` (faults off) signs in, creates the
stock record and syncs; ``--final DUMP`` (faults off) syncs until nothing is left and
writes the replica's copy of the server and its outbox counts to ``DUMP`` for the checker
(the soak runs it twice, as it syncs every Python replica twice: push, then pull all).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from playwright.sync_api import BrowserContext, Error, Page, sync_playwright

from bench.soak_client import (
    FACILITY,
    SOAK_PASSWORD,
    SOAK_USER,
    delta,
    inventory_id,
    patient_id,
    village,
)
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, js

# As the Python clients' SOAK_RETRIES: ops are never given up on.
RETRY_POLICY = {"maxRetries": 1_000_000, "initialMs": 50, "maxWaitMs": 500, "jitterMs": 50}
OPEN_ATTEMPTS = 600  # page loads while a server restarts: bounded
LIBRARY = """async () => {
    window.ws = await import('/web/client/replica.js');
    window.wsDb = await import('/web/client/db.js');
    window.wsRecords = await import('/web/client/records.js');
}"""
OPTIONS = "{retryPolicy: new ws.RetryPolicy(arg.retry), timeoutMs: 5000}"
# The key is derived from the password on every start: fewer rounds than a phone's
# (crypto.js PBKDF2_ITERATIONS) keep restarts quick; the soak is about sync, not the key.
ITERATIONS = 10_000


@contextlib.contextmanager
def browser(profile: Path) -> Iterator[BrowserContext]:
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            yield context
        finally:
            context.close()


def open_page(context: BrowserContext, server: str) -> Page:
    """A page on the server's origin (through the proxy) with the library loaded; retried
    while no server answers (one is being restarted)."""
    page = context.pages[0] if context.pages else context.new_page()
    for attempt in range(OPEN_ATTEMPTS):
        try:
            answer = page.goto(f"{server}/healthz", timeout=10_000)
            if answer is not None and answer.ok:
                page.evaluate(LIBRARY)
                return page
        except Error:
            if attempt == OPEN_ATTEMPTS - 1:
                raise
        time.sleep(0.2)  # a server is starting: poll again
    raise RuntimeError(f"no page from {server} in {OPEN_ATTEMPTS} attempts")


def unlock(page: Page) -> None:
    js(
        page,
        f"window.rep = await ws.Replica.unlock({{password: arg.password, ...{OPTIONS}}});",
        {"password": SOAK_PASSWORD, "retry": RETRY_POLICY},
    )


def sync_clean(page: Page, attempts: int = 50) -> None:
    """Sync until a run finishes without error and nothing is left to push."""
    for _ in range(attempts):
        done = js(
            page,
            """
            await rep.retryFailed();
            const result = await rep.sync();
            return result.errorCode === null && (await rep.pendingCount()) === 0;
            """,
        )
        if done:
            return
        time.sleep(0.2)
    raise RuntimeError(f"no clean sync in {attempts} attempts")


def setup(page: Page, client: int) -> None:
    """Sign in (online), create this client's stock record, sync it."""
    js(
        page,
        f"""
        window.rep = await ws.Replica.login({{username: arg.user, password: arg.password,
                                              iterations: arg.iterations, ...{OPTIONS}}});
        await rep.put('pharmacy_inventory', {{facility_id: arg.facility, medicine_id: 'm-soak'}},
                      arg.stock);
        """,
        {
            "user": SOAK_USER,
            "password": SOAK_PASSWORD,
            "iterations": ITERATIONS,
            "retry": RETRY_POLICY,
            "facility": FACILITY,
            "stock": inventory_id(client),
        },
    )
    sync_clean(page)


def write_and_sync(page: Page, log_path: Path, client: int, seed: int) -> None:
    """Write, log, sometimes sync: until killed (or an hour, if the parent forgets)."""
    rng = random.Random(seed)
    unlock(page)
    held = js(
        page,
        "return (await rep.query('patients', {village: arg})).map((p) => p.id);",
        village(client),
    )
    n = max((int(i.rsplit("-n", 1)[1]) for i in held), default=0) + 1
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(log, f'{{"start": {n}}}\n'.encode())
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        js(
            page,
            """
            await rep.atomic((batch) => {
              batch.put('patients', {name: arg.name, facility_id: arg.facility,
                                     village: arg.village}, arg.patient);
              batch.increment('pharmacy_inventory', arg.stock, 'quantity', arg.delta);
            });
            """,
            {
                "name": f"soak c{client} #{n}",
                "facility": FACILITY,
                "village": village(client),
                "patient": patient_id(client, n),
                "stock": inventory_id(client),
                "delta": delta(n),
            },
        )
        os.write(log, f'{{"n": {n}}}\n'.encode())  # acknowledged locally
        n += 1
        if rng.random() < 0.5:
            js(page, "await rep.sync();")  # never throws: faults show in its result
        time.sleep(rng.random() * 0.05)


def dump(page: Page, path: Path) -> None:
    """The replica's copy of the server (every stored record's server copy, decrypted)
    and its outbox counts, as JSON for bench/soak_check.py."""
    state = js(
        page,
        """
        const db = rep.local.db;
        const rows = await db.transaction(['records'], 'readonly',
          (tx) => wsDb.request(tx.objectStore('records').getAll()));
        const records = [];
        for (const row of rows) {
          const body = await wsRecords.fromRow(db, row);
          if (body.s) records.push([row.c, row.i, body.s.version, body.s.deleted, body.s.fields]);
        }
        const status = await rep.status();
        return {records, pending: status.pending, failed: status.failed,
                rejected: status.rejected, conflicts: status.conflicts};
        """,
    )
    path.write_bytes(orjson.dumps(state))


def kill_browser(pid: int, profile: Path) -> None:
    """SIGKILL a browser client: chromium (every process naming ``profile``; Playwright
    starts it in a session of its own) and then the process group of ``pid``."""
    marker = str(profile).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_browser")
    parser.add_argument("profile", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("client", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("server")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--setup", action="store_true")
    mode.add_argument("--final", type=Path, metavar="DUMP")
    args = parser.parse_args()
    with browser(args.profile) as context:
        page = open_page(context, args.server)
        if args.setup:
            setup(page, args.client)
        elif args.final is not None:
            unlock(page)
            sync_clean(page)
            dump(page, args.final)
        else:
            write_and_sync(page, args.log, args.client, args.seed)


if __name__ == "__main__":
    main()
