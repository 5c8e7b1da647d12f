"""A patient's first sync in the browser: the JS client pulling N records into IndexedDB.

    python -m bench.portal_pull                    # 1,000 and 10,000 records, 3 runs each
    python -m bench.portal_pull --sizes 1000 --runs 5

Starts a real ``waystation serve`` (SQLite), gives one patient N symptom logs (pushed by a
health worker, not timed), then in Debian's chromium (headless, as the web tests run it)
signs the patient in with the JS client (``Replica.login``: key derivation and device
registration, not timed) and times ``rep.sync()``: every page pulled, sealed with AES-GCM
and written to IndexedDB. Each run uses a fresh browser profile. Reports, per size, the
median over the runs of:

- ``sync_s``: the whole first sync (network, server, decoding, encryption, IndexedDB);
- ``apply_s`` and ``apply_rate``: the time spent storing pages (``LocalReplica.applyPage``:
  encrypting each record and one durable IndexedDB transaction per page) and records per
  second of it — the client's own cost, without the wait for the server;
- ``idle_sync_ms``: the next sync, which is one request answered 304.

Prints a markdown table (median, min-max) and writes every run's figures to
``bench/results/portal-<UTC timestamp>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.support import LiveServer, SyncApi
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent

PATIENT_PW = "bench-patient"
WORKER_PW = "bench-worker"


def _seed(server: LiveServer, patient: str, patient_id: str, records: int) -> None:
    """``records`` symptom logs of ``patient_id`` (one per day), pushed by a health worker."""
    server.add_user(patient, "patient", [f"patient:{patient_id}"], PATIENT_PW)
    api = SyncApi(server.url, "worker", WORKER_PW)
    try:
        api.push(
            [api.change("patients", patient_id, {"name": "Bench Patient", "facility_id": "f-1"})]
        )
        start = dt.date(1960, 1, 1)
        changes = [
            api.change(
                "symptom_logs",
                f"{patient_id}-log-{n}",
                {
                    "patient_id": patient_id,
                    "facility_id": "f-1",
                    "date": (start + dt.timedelta(days=n)).isoformat(),
                    "symptoms": ["cough", "fever"][: 1 + n % 2],
                    "severity": n % 11,
                    "temperature": 36.5 + (n % 30) / 10,
                    "notes": f"entry {n}: slept badly, drank water, took paracetamol",
                },
            )
            for n in range(records)
        ]
        for first in range(0, len(changes), 5000):
            results = api.push(changes[first : first + 5000])
            assert all(r["status"] == "applied" for r in results), results[:3]
    finally:
        api.close()


_RUN = """async (arg) => {
  const ws = await import('/web/client/replica.js');
  const rep = await ws.Replica.login({username: arg.username, password: arg.password});
  let applyMs = 0, pages = 0;
  const apply = rep.local.applyPage.bind(rep.local);
  rep.local.applyPage = async (...a) => {
    const t = performance.now();
    try { return await apply(...a); } finally { applyMs += performance.now() - t; pages += 1; }
  };
  const t0 = performance.now();
  const result = await rep.sync();
  const syncMs = performance.now() - t0;
  const t1 = performance.now();
  const idle = await rep.sync();
  const idleMs = performance.now() - t1;
  const count = (await rep.query('symptom_logs')).length;
  await rep.signOut();
  return {pulled: result.pulled, ok: result.ok, error: result.error, bytes: result.bytesReceived,
          syncMs, applyMs, pages, idleMs, idlePulled: idle.pulled, count};
}"""


def _run_once(browser: Any, url: str, username: str) -> dict[str, Any]:
    context = browser.new_context(base_url=url)
    try:
        page = context.new_page()
        page.goto("/healthz")
        out: dict[str, Any] = page.evaluate(_RUN, {"username": username, "password": PATIENT_PW})
    finally:
        context.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.portal_pull", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp))
        server.start()
        try:
            server.add_user("worker", "health_worker", ["facility:f-1"], WORKER_PW)
            for size in sizes:
                _seed(server, f"patient{size}", f"p-{size}", size)
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for size in sizes:
                    runs = []
                    for _ in range(args.runs):
                        run = _run_once(browser, server.url, f"patient{size}")
                        assert run["ok"] and run["count"] == size and run["idlePulled"] == 0, run
                        runs.append(run)
                        time.sleep(0.5)
                    apply_s = statistics.median(r["applyMs"] for r in runs) / 1000
                    rates = [r["pulled"] / (r["applyMs"] / 1000) for r in runs]
                    times = [r["syncMs"] / 1000 for r in runs]
                    rows.append(
                        {
                            "apply_rate_range": [round(min(rates)), round(max(rates))],
                            "sync_s_range": [round(min(times), 3), round(max(times), 3)],
                            "raw": runs,
                            "records": size,
                            "pulled": runs[0]["pulled"],
                            "pages": runs[0]["pages"],
                            "sync_s": round(statistics.median(r["syncMs"] for r in runs) / 1000, 3),
                            "apply_s": round(apply_s, 3),
                            "apply_rate": round(
                                statistics.median(r["pulled"] / (r["applyMs"] / 1000) for r in runs)
                            ),
                            "sync_rate": round(
                                statistics.median(r["pulled"] / (r["syncMs"] / 1000) for r in runs)
                            ),
                            "idle_sync_ms": round(statistics.median(r["idleMs"] for r in runs), 1),
                            "wire_kb": round(runs[0]["bytes"] / 1024, 1),
                            "runs": args.runs,
                        }
                    )
                browser.close()
        finally:
            server.stop()
    print(
        "| records | first sync (s) | records/s | IndexedDB apply (s) | apply records/s "
        "| idle sync (ms) | wire (KB) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        lo, hi = r["sync_s_range"]
        rlo, rhi = r["apply_rate_range"]
        print(
            f"| {r['records']:,} | {r['sync_s']} ({lo}-{hi}) | {r['sync_rate']:,} "
            f"| {r['apply_s']} | {r['apply_rate']:,} ({rlo:,}-{rhi:,}) "
            f"| {r['idle_sync_ms']} | {r['wire_kb']} |"
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"portal-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": stamp, "load": os.getloadavg(), "sizes": rows}, indent=1))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
