"""The JS client library in Debian's chromium against a real ``waystation serve``: sign in,
work offline, reopen offline, sync, and what is kept in IndexedDB (encrypted)."""

from __future__ import annotations

import json

from playwright.sync_api import BrowserContext, Page

from tests.web.client_support import server_records, sign_in, symptom_log
from tests.web.conftest import Clinic, js, load_library


def test_entries_made_offline_survive_a_reopen_and_reach_the_server_exactly_once(
    lib_page: Page, context: BrowserContext, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    api = clinic.device(clinic.worker)
    alert_id = "alert-" + str(patient.patient_id)
    api.push(
        [
            api.change(
                "alerts",
                alert_id,
                {
                    "patient_id": patient.patient_id,
                    "facility_id": "f-1",
                    "title": "Take your pills",
                },
            )
        ]
    )
    sign_in(lib_page, patient)
    first = js(lib_page, "return (await rep.sync()).toJSON();")
    assert first["ok"] and first["pulled"] >= 2  # their patients record and the alert

    context.set_offline(True)
    ids = js(
        lib_page,
        """
        const ids = [];
        for (const [date, severity] of arg.logs) {
          const log = {...arg.base, date, severity, symptoms: ['cough']};
          ids.push(await rep.put('symptom_logs', log));
        }
        await rep.put('alerts', {read: true}, arg.alert);
        return ids;
    """,
        {
            "logs": [["2025-11-01", 2], ["2025-11-02", 5], ["2025-11-03", 7]],
            "base": symptom_log(patient, "x"),
            "alert": alert_id,
        },
    )
    offline = js(lib_page, "return (await rep.sync()).toJSON();")
    assert offline["errorCode"] == "OFFLINE" and offline["pushed"] == 0

    # The page closes; a new one opens with no network, unlocks and sees everything.
    js(lib_page, "rep.close();")
    reopened = context.new_page()
    context.set_offline(False)
    load_library(reopened)
    context.set_offline(True)
    seen = js(
        reopened,
        """
        window.rep = await ws.Replica.unlock({password: arg});
        return {logs: await rep.query('symptom_logs'), alert: await rep.get('alerts', arg2),
                status: await rep.status()};
    """.replace("arg2", json.dumps(alert_id)),
        patient.password,
    )
    assert sorted(r["id"] for r in seen["logs"]) == sorted(ids)
    assert seen["alert"]["read"] is True
    assert seen["status"]["pending"] == 4 and seen["status"]["user"] == patient.username

    context.set_offline(False)
    result = js(reopened, "return (await rep.sync()).toJSON();")
    assert result["ok"] and result["applied"] == 4, result
    status = js(reopened, "return await rep.status();")
    assert status["pending"] == 0 and status["lastSyncAt"] is not None

    on_server = server_records(clinic, "symptom_logs", patient_id=patient.patient_id)
    assert sorted(r["id"] for r in on_server) == sorted(ids)  # each once, none lost
    assert sorted(r["severity"] for r in on_server) == [2, 5, 7]
    assert server_records(clinic, "alerts", patient_id=patient.patient_id)[0]["read"] is True


def test_unlocking_needs_the_password_and_works_offline(
    lib_page: Page, context: BrowserContext, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient)
    js(
        lib_page,
        "await rep.put('symptom_logs', arg); rep.close();",
        symptom_log(patient, "2025-10-01", notes="dizzy"),
    )
    context.set_offline(True)
    stored = js(lib_page, "return await ws.stored();")
    assert stored["deviceId"].startswith("d-") and "username" not in stored
    wrong = js(
        lib_page,
        """
        try { await ws.Replica.unlock({password: 'not-it'}); return null; }
        catch (e) { return e.code; }
    """,
    )
    assert wrong == "WRONG_PASSWORD"
    notes = js(
        lib_page,
        """
        const rep = await ws.Replica.unlock({password: arg});
        return (await rep.query('symptom_logs'))[0].notes;
    """,
        patient.password,
    )
    assert notes == "dizzy"


def test_nothing_a_patient_wrote_is_readable_in_indexeddb_without_the_password(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient)
    secret = "chest pain since Tuesday"
    js(
        lib_page,
        "await rep.put('symptom_logs', arg); await rep.sync();",
        symptom_log(patient, "2025-10-02", notes=secret),
    )
    # Everything IndexedDB holds, every byte of every stored value, as text.
    dump = js(
        lib_page,
        """
        const idb = await new Promise((ok, ko) => { const r = indexedDB.open('waystation');
          r.onsuccess = () => ok(r.result); r.onerror = () => ko(r.error); });
        const text = [];
        const decode = (v) => {
          if (v instanceof ArrayBuffer || ArrayBuffer.isView(v))
            return new TextDecoder('latin1').decode(v instanceof ArrayBuffer ? v : v.buffer);
          if (v && typeof v === 'object') return Object.values(v).map(decode).join(' ');
          return String(v);
        };
        for (const name of idb.objectStoreNames) {
          const rows = await new Promise((ok) => {
            const r = idb.transaction(name).objectStore(name).getAll();
            r.onsuccess = () => ok(r.result); });
          text.push(name + ': ' + rows.map(decode).join('\\n'));
        }
        idb.close();
        return text.join('\\n');
    """,
    )
    assert "symptom_logs" in dump  # collection names are in clear (they are looked up)
    for clear_text in (
        secret,
        patient.username,
        str(patient.password),
        "2025-10-02",
        "access_token",
        "Patient ",
    ):
        assert clear_text not in dump, clear_text
    assert "refresh" not in dump.lower()


def test_sign_out_erases_the_replica(lib_page: Page, clinic: Clinic) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient)
    js(
        lib_page,
        "await rep.put('symptom_logs', arg); await rep.signOut();",
        symptom_log(patient, "2025-10-03"),
    )
    gone = js(
        lib_page,
        """
        const names = (await indexedDB.databases()).map((d) => d.name);
        let code = null;
        try { await ws.Replica.unlock({password: arg}); } catch (e) { code = e.code; }
        return {names, stored: await ws.stored(), code};
    """,
        patient.password,
    )
    assert gone == {"names": [], "stored": None, "code": "NO_REPLICA"}


def test_a_second_user_cannot_sign_in_over_anothers_data(lib_page: Page, clinic: Clinic) -> None:
    first, second = clinic.new_patient(), clinic.new_patient()
    sign_in(lib_page, first)
    js(lib_page, "rep.close();")
    code = js(
        lib_page,
        """
        try { await ws.Replica.login({username: arg.username, password: arg.password}); }
        catch (e) { return e.code; }
    """,
        {"username": second.username, "password": second.password},
    )
    assert code == "REPLICA_EXISTS"
