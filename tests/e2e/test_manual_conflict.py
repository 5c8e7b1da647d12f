"""A prescription edited on two offline tablets reaches a clinician, not a coin toss: the
clinician sees both sides through the API and the command line, resolves it, and every
device ends up with the clinician's decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import LiveServer
from waystation.client import OpStatus, Replica
from waystation.core.errors import AlreadyResolved

PRESCRIPTION = {
    "patient_id": "p-1",
    "facility_id": "f-1",
    "medicine_id": "m-amox",
    "dose": "500 mg",
    "frequency": "twice daily",
}


def waystation(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waystation", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    )


def device(server: LiveServer, path: Path, username: str) -> Replica:
    server.add_user(username, "health_worker", ["facility:f-1"])
    return Replica.open(path, server=server.url, username=username, password="pw")


def test_a_clinician_resolves_two_offline_edits_and_every_device_converges(
    live_server: LiveServer, tmp_path: Path
) -> None:
    tablet_a = device(live_server, tmp_path / "a.db", "amina")
    tablet_b = device(live_server, tmp_path / "b.db", "baraka")
    laptop = device(live_server, tmp_path / "clinician.db", "dr-chebet")
    rx = tablet_a.put("prescriptions", PRESCRIPTION)
    for rep in (tablet_a, tablet_b, laptop):
        assert rep.sync().ok

    # both tablets go offline and change the dose
    tablet_a.put("prescriptions", {"dose": "250 mg", "frequency": "once daily"}, id=rx)
    tablet_b.put("prescriptions", {"dose": "1 g"}, id=rx)
    assert tablet_b.sync().ok
    result = tablet_a.sync()
    assert result.conflicts == 1
    [held] = tablet_a.outbox(OpStatus.CONFLICT)
    assert held.last_error is not None and held.last_error["code"] == "MANUAL_REVIEW"
    assert held.conflict_id is not None
    shown_a = tablet_a.get("prescriptions", rx)
    assert shown_a is not None and shown_a["dose"] == "1 g"  # the held edit shows nowhere
    assert tablet_a.status()["flagged_records"] == 1

    # the clinician sees both sides, through the SDK (the API) ...
    assert laptop.sync().ok
    [conflict] = laptop.conflicts()
    assert conflict["id"] == held.conflict_id
    assert conflict["record_id"] == rx
    assert conflict["client_fields"] == {"dose": "250 mg", "frequency": "once daily"}
    assert conflict["server_fields"] == {"dose": "1 g", "frequency": "twice daily"}
    laptop.close()

    # ... and the command line
    shown = waystation("conflicts", "list", "--replica", str(tmp_path / "clinician.db"))
    assert shown.returncode == 0, shown.stderr
    assert held.conflict_id in shown.stdout
    for value in ("250 mg", "1 g", "once daily", "twice daily"):
        assert value in shown.stdout
    as_json = waystation("conflicts", "list", "--replica", str(tmp_path / "clinician.db"), "--json")
    assert [c["id"] for c in json.loads(as_json.stdout)] == [held.conflict_id]

    # the clinician keeps the original dose, once daily
    resolved = waystation(
        "conflicts",
        "resolve",
        held.conflict_id,
        "--replica",
        str(tmp_path / "clinician.db"),
        "--resolution",
        "merge",
        "--field",
        "dose=500 mg",
        "--field",
        "frequency=once daily",
    )
    assert resolved.returncode == 0, resolved.stderr
    assert "resolved" in resolved.stdout
    again = waystation(
        "conflicts",
        "resolve",
        held.conflict_id,
        "--replica",
        str(tmp_path / "clinician.db"),
        "--resolution",
        "client_wins",
    )
    assert again.returncode == 1
    assert "ALREADY_RESOLVED" in again.stderr

    laptop = Replica(tmp_path / "clinician.db")
    with pytest.raises(AlreadyResolved):
        laptop.resolve(held.conflict_id, "server_wins")
    assert laptop.conflicts() == []
    assert [c["resolution"] for c in laptop.conflicts("resolved")] == ["merge"]

    decided = {**PRESCRIPTION, "dose": "500 mg", "frequency": "once daily"}
    for rep in (tablet_a, tablet_b, laptop):
        assert rep.sync().error is None
        assert rep.get("prescriptions", rx) == {"id": rx, **decided}
        assert rep.status()["flagged_records"] == 0
    for rep in (tablet_a, tablet_b, laptop):
        rep.close()


def test_reviewing_needs_a_reviewer_and_a_login(live_server: LiveServer, tmp_path: Path) -> None:
    live_server.add_user("pat", "pharmacist", ["facility:f-1"])
    counter = Replica.open(
        tmp_path / "counter.db", server=live_server.url, username="pat", password="pw"
    )
    counter.close()
    refused = waystation("conflicts", "list", "--replica", str(tmp_path / "counter.db"))
    assert refused.returncode == 1
    assert "FORBIDDEN" in refused.stderr

    Replica(tmp_path / "offline.db").close()  # never logged in
    no_login = waystation("conflicts", "list", "--replica", str(tmp_path / "offline.db"))
    assert no_login.returncode == 2
    assert "waystation login" in no_login.stderr
    missing = waystation(
        "conflicts", "resolve", "x", "--replica", str(tmp_path / "nope.db"), "--resolution", "merge"
    )
    assert missing.returncode == 2
    bad = waystation(
        "conflicts",
        "resolve",
        "x",
        "--replica",
        str(tmp_path / "counter.db"),
        "--resolution",
        "coin_toss",
    )
    assert bad.returncode == 2
