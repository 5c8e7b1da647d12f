"""A user's view of durability and of the first five minutes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.support import LiveServer, SyncApi, answers_healthz, free_port, wait_until
from waystation.core.ids import uuid7


def test_an_acknowledged_push_survives_kill_9(live_server: LiveServer) -> None:
    live_server.add_user("nurse", "health_worker", ["facility:f-1"])
    tablet = SyncApi(live_server.url, "nurse")
    records = [uuid7() for _ in range(20)]
    changes = [
        tablet.change("patients", rid, {"name": rid, "facility_id": "f-1"}) for rid in records
    ]
    for change in changes:  # each acknowledged alone, the last one just before the kill
        assert tablet.push([change])[0]["status"] == "applied"
    live_server.kill()
    live_server.start()
    seen, _ = tablet.pull_all()
    assert set(records) <= set(seen)
    # the op log survived too: a re-send after the crash is recognised, not applied again
    assert [r["status"] for r in tablet.push(changes)] == ["duplicate"] * 20
    tablet.close()


def test_the_server_restarts_with_a_larger_clock(live_server: LiveServer) -> None:
    live_server.add_user("nurse", "health_worker", ["facility:f-1"])
    tablet = SyncApi(live_server.url, "nurse")
    before = tablet.http.get("/v1/sync/status").json()["server_hlc"]
    live_server.kill()
    live_server.start()
    after = tablet.http.get("/v1/sync/status").json()["server_hlc"]
    assert after > before  # tokens and clock both survived the restart
    tablet.close()


def _start_demo(workdir: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "waystation", "demo", "--port", str(port)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, "the demo exited"
        return answers_healthz(url)

    try:
        wait_until(up, 30, what="the demo to answer /healthz")
    except AssertionError:
        proc.kill()
        raise AssertionError(f"demo did not come up: {proc.communicate()[0]}") from None
    return proc, url


def _stop_demo(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=15)
    return output


def test_demo_serves_healthz_and_prints_working_logins(tmp_path: Path) -> None:
    proc, url = _start_demo(tmp_path)
    try:
        # the printed logins work and the demo clinic has data in it
        nurse = SyncApi(url, "amina", password="amina-demo")
        seen, _ = nurse.pull_all()
        collections = {c["collection"] for c in seen.values()}
        assert {
            "patients",
            "encounters",
            "prescriptions",
            "pharmacy_inventory",
            "medicines",
        } <= collections
        patient = SyncApi(url, "patient1", password="patient1-demo")
        mine, _ = patient.pull_all()
        assert {
            c["fields"].get("patient_id", "p-1")
            for c in mine.values()
            if c["collection"] not in ("medicines", "patients")
        } == {"p-1"}
        nurse.close()
        patient.close()
    finally:
        output = _stop_demo(proc)
    assert "amina" in output and "amina-demo" in output
    assert f"{url}/healthz" in output
    assert f"Patient portal: {url}/portal/  (sign in as patient1 / patient1-demo)" in output
    assert (tmp_path / "waystation-demo.db").exists()

    proc, _ = _start_demo(tmp_path)  # re-running reuses the data
    assert "Reusing the demo clinic" in _stop_demo(proc)
