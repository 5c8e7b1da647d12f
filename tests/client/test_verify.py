"""``Replica.verify`` and ``waystation verify`` against a real server: a replica proves it
holds what the server holds, catches a server copy altered or lost on the device (or one
it should no longer hold), and repairs itself without losing a local edit."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.client.conftest import MakeReplica, new_user, symptom_log
from tests.client.faults import Forwarder, is_push
from tests.support import LiveServer, SyncApi
from waystation.cli import app
from waystation.client import Replica, VerifyResult, VerifyStatus
from waystation.core.ids import uuid7


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    made = Forwarder()
    yield made
    made.close()


def _facility_user(server: LiveServer) -> tuple[str, str]:
    facility = f"f-{uuid7()[-12:]}"
    return facility, new_user(server, scopes=[f"facility:{facility}"])


def _statuses(result: VerifyResult) -> dict[str, VerifyStatus]:
    return {check.collection: check.status for check in result.checks}


def _server_copy(rep: Replica, record_id: str) -> sqlite3.Row | None:
    with rep.db.read() as conn:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM server_records WHERE id = ?", (record_id,)
        ).fetchone()
    return row


def test_a_synced_replica_is_equal_everywhere(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    facility, user = _facility_user(shared_server)
    rep = make_replica(shared_server, user)
    for day in ("2025-03-01", "2025-03-02"):
        rep.put("symptom_logs", symptom_log(day, facility_id=facility))
    result = rep.verify()
    assert result.ok and not result.repulled, result
    assert set(_statuses(result).values()) == {VerifyStatus.EQUAL}
    logs = next(c for c in result.checks if c.collection == "symptom_logs")
    assert logs.server_count == logs.local_count == 2


def test_a_corrupt_and_a_missing_server_copy_differ_then_are_repaired_keeping_local_edits(
    shared_server: LiveServer, make_replica: MakeReplica, forwarder: Forwarder
) -> None:
    facility, user = _facility_user(shared_server)
    rep = make_replica(shared_server, user)
    ids = [
        rep.put("symptom_logs", symptom_log(f"2025-04-0{n}", facility_id=facility))
        for n in (1, 2, 3)
    ]
    assert rep.sync().ok
    # Local edits that stay in the outbox through the verify's own sync: one FAILED (the
    # server failed its pushes; it still shows) and one REJECTED.
    rep.put("symptom_logs", {"severity": 9}, id=ids[0])
    forwarder.before = lambda req, _: httpx.Response(500) if is_push(req) else None
    for _ in range(3):
        rep.sync(transport=forwarder.transport_for(rep))
    rejected = rep.put("symptom_logs", symptom_log("2025-04-09", facility_id=facility, severity=42))
    assert rep.sync().rejected == 1
    outbox_before = {(e.op_id, e.status) for e in rep.outbox()}
    assert {status for _, status in outbox_before} >= {"FAILED", "REJECTED"}

    # The device's copy of the server's state goes wrong behind the SDK's back.
    with sqlite3.connect(rep.path) as raw:
        raw.execute(
            "UPDATE server_records SET fields = json_set(fields, '$.notes', "
            "'tampered') WHERE id = ?",
            (ids[1],),
        )
        raw.execute("DELETE FROM server_records WHERE id = ?", (ids[2],))
    raw.close()

    found = rep.verify(repair=False)
    assert not found.ok and found.error is None
    assert _statuses(found)["symptom_logs"] is VerifyStatus.DIFFERS
    assert {c.collection for c in found.differs} == {"symptom_logs"}
    [logs] = found.differs
    assert (logs.server_count, logs.local_count) == (3, 2)
    assert _server_copy(rep, ids[2]) is None  # only compared

    repaired = rep.verify()
    assert repaired.ok and repaired.repulled, repaired
    assert _statuses(repaired)["symptom_logs"] is VerifyStatus.REPAIRED
    assert {s for name, s in _statuses(repaired).items() if name != "symptom_logs"} == {
        VerifyStatus.EQUAL
    }
    copy = _server_copy(rep, ids[1])
    assert copy is not None and "tampered" not in copy["fields"]
    assert _server_copy(rep, ids[2]) is not None
    # The outbox and the local edits it overlays survived the re-pull.
    assert {(e.op_id, e.status) for e in rep.outbox()} == outbox_before
    assert rep.get("symptom_logs", ids[0])["severity"] == 9  # type: ignore[index]
    assert [e.record_id for e in rep.outbox(status="REJECTED")] == [rejected]
    assert rep.verify().ok


def test_an_encrypted_replica_drops_a_copy_the_server_does_not_hold(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    facility, user = _facility_user(shared_server)
    rep = make_replica(shared_server, user, passphrase="correct horse")
    kept = rep.put("symptom_logs", symptom_log("2025-05-01", facility_id=facility))
    assert rep.sync().ok
    with rep.db.transaction() as conn:  # the SQLCipher file, through the replica's key
        conn.execute(
            "INSERT INTO server_records SELECT collection, 'ghost', version, seq, "
            "deleted, fields, clocks, conflict, updated_at, deleted_hlc, generation "
            "FROM server_records WHERE id = ?",
            (kept,),
        )
    found = rep.verify(repair=False)
    assert _statuses(found)["symptom_logs"] is VerifyStatus.DIFFERS
    repaired = rep.verify()
    assert repaired.ok and _statuses(repaired)["symptom_logs"] is VerifyStatus.REPAIRED
    assert _server_copy(rep, "ghost") is None and _server_copy(rep, kept) is not None


def test_a_replica_the_server_moved_past_pulls_before_it_compares(
    shared_server: LiveServer, make_replica: MakeReplica, forwarder: Forwarder
) -> None:
    facility, user = _facility_user(shared_server)
    rep = make_replica(shared_server, user)
    colleague = make_replica(
        shared_server, new_user(shared_server, scopes=[f"facility:{facility}"])
    )
    rep.put("symptom_logs", symptom_log("2025-06-01", facility_id=facility))

    def colleague_writes_first(request: httpx.Request, _: object) -> None:
        if request.url.path == "/v1/sync/digest" and not colleague.outbox():
            colleague.put("symptom_logs", symptom_log("2025-06-02", facility_id=facility))
            assert colleague.sync().ok

    forwarder.before = colleague_writes_first
    result = rep.verify(transport=forwarder.transport_for(rep))
    assert result.ok and not result.repulled, result
    assert result.server_cursor == result.local_cursor
    logs = next(c for c in result.checks if c.collection == "symptom_logs")
    assert logs.server_count == logs.local_count == 2


def test_a_record_moved_out_of_the_users_facility_is_dropped_by_the_repair(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    facility, user = _facility_user(shared_server)
    rep = make_replica(shared_server, user)
    moved = rep.put("patients", {"name": "Baraka", "facility_id": facility})
    stays = rep.put("patients", {"name": "Neema", "facility_id": facility})
    assert rep.sync().ok
    admin_name = new_user(shared_server, role="admin", scopes=[])
    admin = SyncApi(shared_server.url, admin_name)
    try:
        [pushed] = admin.push(
            [admin.change("patients", moved, {"facility_id": "f-elsewhere"}, base_version=1)]
        )
        assert pushed["status"] == "applied", pushed
    finally:
        admin.close()
    assert rep.sync().pulled == 0  # the feed never tells this device
    assert rep.get("patients", moved) is not None

    result = rep.verify()
    assert result.ok and _statuses(result)["patients"] is VerifyStatus.REPAIRED, result
    assert rep.get("patients", moved) is None and rep.get("patients", stays) is not None


def test_verify_offline_reports_it_and_raises_nothing(unreachable_replica: Replica) -> None:
    result = unreachable_replica.verify()
    assert not result.ok and result.error_code == "OFFLINE" and result.checks == []


def test_the_verify_command_prints_a_table_and_exits_by_the_outcome(
    shared_server: LiveServer, make_replica: MakeReplica
) -> None:
    facility, user = _facility_user(shared_server)
    rep = make_replica(shared_server, user)
    lost = rep.put("symptom_logs", symptom_log("2025-07-01", facility_id=facility))
    assert rep.sync().ok
    path = str(rep.path)
    rep.close()
    runner = CliRunner()

    equal = runner.invoke(app, ["verify", "--replica", path], env={"COLUMNS": "200"})
    assert equal.exit_code == 0, equal.output
    assert "symptom_logs" in equal.output and "equal" in equal.output

    with sqlite3.connect(path) as raw:
        raw.execute("DELETE FROM server_records WHERE id = ?", (lost,))
    raw.close()
    differs = runner.invoke(
        app,
        ["verify", "--replica", path, "--no-repair", "--collection", "symptom_logs"],
        env={"COLUMNS": "200"},
    )
    assert differs.exit_code == 1, differs.output
    assert "differs" in differs.output and "patients" not in differs.output

    repaired = runner.invoke(app, ["verify", "--replica", path], env={"COLUMNS": "200"})
    assert repaired.exit_code == 0, repaired.output
    assert "repaired" in repaired.output

    missing = runner.invoke(app, ["verify", "--replica", str(Path(path).with_name("no.db"))])
    assert missing.exit_code == 2
