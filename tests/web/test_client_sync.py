"""What a sync of the JS client does against a real server: verdicts kept in the outbox
with their reason, an idle sync that is one 304, gzip both ways, and changes made by the
Python client arriving live."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Page

from tests.web.client_support import server_records, sign_in, symptom_log
from tests.web.conftest import Clinic, js
from waystation.client import Replica as PyReplica
from waystation.core.hlc import HLC


def test_a_second_log_for_a_day_comes_back_as_a_conflict_that_can_be_merged_into_that_day(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient)
    first = js(
        lib_page,
        """
        const id = await rep.put('symptom_logs', arg);
        await rep.sync();
        return id;
    """,
        symptom_log(patient, "2025-09-01", severity=2),
    )
    outcome = js(
        lib_page,
        """
        // Another log for the same day, made before this device knew of the first.
        const second = await rep.put('symptom_logs', {...arg, severity: 6, notes: 'worse'});
        const result = (await rep.sync()).toJSON();
        const [entry] = await rep.outbox({status: 'CONFLICT'});
        return {second, result, entry, shown: await rep.get('symptom_logs', second)};
    """,
        symptom_log(patient, "2025-09-01"),
    )
    result, entry = outcome["result"], outcome["entry"]
    assert not result["ok"] and result["conflicts"] == 1
    assert result["issues"][0]["code"] == "UNIQUE_VIOLATION"
    assert entry["lastError"]["details"]["existing_id"] == first
    assert entry["conflictId"] and entry["fields"]["notes"] == "worse"
    assert outcome["shown"] is None  # the held op no longer shows as a record

    # The patient merges it into that day's log: write the values there, drop the entry.
    fixed = js(
        lib_page,
        """
        await rep.put('symptom_logs', {severity: arg.entry.fields.severity,
                                       notes: arg.entry.fields.notes}, arg.first);
        await rep.discard(arg.entry.opId);
        const result = (await rep.sync()).toJSON();
        return {result, status: await rep.status(), day: await rep.query('symptom_logs')};
    """,
        {"entry": entry, "first": first},
    )
    assert fixed["result"]["ok"] and fixed["status"]["conflicts"] == 0
    assert [(r["id"], r["severity"], r["notes"]) for r in fixed["day"]] == [(first, 6, "worse")]
    assert [
        (r["id"], r["severity"])
        for r in server_records(clinic, "symptom_logs", patient_id=patient.patient_id)
    ] == [(first, 6)]


def test_a_rejected_write_is_kept_with_the_servers_reason_and_leaves_the_record(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient)
    outcome = js(
        lib_page,
        """
        const id = await rep.put('symptom_logs', arg);
        const result = (await rep.sync()).toJSON();
        return {id, result, rejected: await rep.outbox({status: 'REJECTED'}),
                shown: await rep.get('symptom_logs', id), status: await rep.status()};
    """,
        symptom_log(patient, "2025-09-02", severity=42),
    )
    assert outcome["result"]["rejected"] == 1
    (entry,) = outcome["rejected"]
    assert entry["lastError"]["code"] == "VALIDATION_ERROR"
    assert entry["lastError"]["details"]["field"] == "fields.severity"
    assert "42" in entry["lastError"]["message"]
    assert outcome["shown"] is None and outcome["status"]["rejected"] == 1


def test_an_idle_sync_is_one_pull_answered_304(lib_page: Page, clinic: Clinic) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient)
    js(
        lib_page,
        "await rep.put('symptom_logs', arg); await rep.sync();",
        symptom_log(patient, "2025-09-03"),
    )
    seen: list[tuple[str, str, int]] = []
    lib_page.on("response", lambda r: seen.append((r.request.method, r.url, r.status)))
    idle = js(lib_page, "return (await rep.sync()).toJSON();")
    assert idle["ok"] and idle["pulled"] == 0 and idle["pushed"] == 0
    assert [(m, s) for m, url, s in seen if "/v1/" in url] == [("GET", 304)], seen
    assert "/v1/sync/pull" in seen[0][1]


def test_large_pushes_travel_gzip_and_large_pulls_arrive_gzip(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient)
    requests: list[dict[str, str]] = []
    lib_page.on(
        "request",
        lambda r: requests.append(
            {"url": r.url, **r.headers} if "/v1/sync/push" in r.url else {"url": ""}
        ),
    )
    responses: list[dict[str, str]] = []
    lib_page.on(
        "response",
        lambda r: responses.append(
            r.headers if "/v1/sync/pull" in r.url and r.status == 200 else {}
        ),
    )
    result = js(
        lib_page,
        """
        for (let day = 1; day <= 60; day++) {
          const date = `2025-07-${String(day % 31 + 1).padStart(2, '0')}`;
          const when = day <= 31 ? date : date.replace('-07-', '-08-');
          await rep.put('symptom_logs', {...arg, date: when, notes: 'n'.repeat(400)});
        }
        return (await rep.sync()).toJSON();
    """,
        symptom_log(patient, "x"),
    )
    assert result["applied"] == 60 and result["pulled"] >= 60
    pushes = [r for r in requests if r["url"]]
    assert pushes and pushes[0].get("content-encoding") == "gzip"
    assert any(h.get("content-encoding") == "gzip" for h in responses)
    assert result["bytesSent"] < 60 * 400  # the notes compressed


def test_a_log_from_the_portal_reaches_a_python_replica_and_an_alert_from_it_arrives_live(
    lib_page: Page, clinic: Clinic, tmp_path: Path
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient)
    js(
        lib_page,
        """
        window.changes = [];
        rep.subscribe((e) => { if (e.type === 'change' && e.source === 'pull') changes.push(e); });
        rep.startAuto({intervalMs: 600000, debounceMs: 50});
    """,
    )
    lib_page.wait_for_function("""async () => (await rep.status()).lastSyncAt !== null""")
    log_id = js(
        lib_page,
        "return await rep.put('symptom_logs', arg);",
        symptom_log(patient, "2025-09-04", severity=4),
    )
    lib_page.wait_for_function("async () => (await rep.status()).pending === 0")

    worker = PyReplica.open(
        tmp_path / "worker.db",
        server=clinic.url,
        username=clinic.worker.username,
        password=clinic.worker.password,
    )
    try:
        assert worker.sync().ok
        log = worker.get("symptom_logs", log_id)
        assert log is not None and log["severity"] == 4
        alert = worker.put(
            "alerts",
            {
                "patient_id": patient.patient_id,
                "facility_id": "f-1",
                "title": "Come in tomorrow",
                "level": "warning",
            },
        )
        started = time.monotonic()
        assert worker.sync().ok
    finally:
        worker.close()
    # No reload and no interval: the live stream tells the page, which pulls (and says so
    # once the pulled page is stored).
    lib_page.wait_for_function(
        "() => changes.some((e) => e.collections.includes('alerts'))", timeout=10_000
    )
    assert time.monotonic() - started < 10
    assert js(lib_page, "return await rep.get('alerts', arg);", alert) is not None
    js(lib_page, "rep.stopAuto();")


def test_a_pull_never_overwrites_a_pending_edit_and_the_server_decides_when_it_arrives(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient)
    log_id, pending_hlc = js(
        lib_page,
        """
        const id = await rep.put('symptom_logs', arg);
        await rep.sync();
        await rep.put('symptom_logs', {severity: 8}, id);   // pending here
        const [pending] = await rep.outbox({status: 'PENDING'});
        return [id, pending.hlc];
    """,
        symptom_log(patient, "2025-09-05", severity=1, notes="first"),
    )
    # Later (a higher clock), a nurse changes the same log on the server.
    api = clinic.device(clinic.worker)
    api.clock.receive(HLC.parse(pending_hlc))  # the nurse's clock is past the pending edit's
    api.push(
        [
            api.change(
                "symptom_logs",
                log_id,
                {"notes": "seen by the nurse", "severity": 2},
                base_version=1,
            )
        ]
    )
    outcome = js(
        lib_page,
        """
        const pulled = (await rep.sync({maxItems: 0})).toJSON();   // pull only
        const during = await rep.get('symptom_logs', arg);
        const pushed = (await rep.sync()).toJSON();
        const synced = await rep.outbox({status: 'SYNCED', recordId: arg,
                                         collection: 'symptom_logs'});
        const entry = synced.find((e) => e.fields.severity === 8);
        return {pulled, during, pushed, entry, after: await rep.get('symptom_logs', arg)};
    """,
        log_id,
    )
    assert outcome["pulled"]["pulled"] >= 1 and outcome["pulled"]["pushed"] == 0
    # The pulled copy brought the nurse's notes; the pending severity still shows over it.
    assert (outcome["during"]["severity"], outcome["during"]["notes"]) == (8, "seen by the nurse")
    # Sent, the older edit loses the field to the nurse's newer one (last writer wins) and
    # the outbox says so; the replica then shows the server's value.
    assert outcome["pushed"]["applied"] == 1
    assert outcome["entry"]["superseded"] == ["severity"]
    assert (outcome["after"]["severity"], outcome["after"]["notes"]) == (2, "seen by the nurse")
    (on_server,) = server_records(clinic, "symptom_logs", patient_id=patient.patient_id)
    assert (on_server["severity"], on_server["notes"]) == (2, "seen by the nurse")
