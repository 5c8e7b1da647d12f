"""The JS client when the network or the server misbehaves: a fault is put in front of a
real server (the page's fetch is wrapped, as the Python tests wrap httpx), and nothing may
be lost or counted twice."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.web.client_support import server_records, sign_in, symptom_log
from tests.web.conftest import Clinic, js
from waystation.core.schema import health_schema
from waystation.store import open_store


def test_a_lost_push_answer_leaves_the_ops_in_doubt_and_the_resend_counts_once(
    lib_page: Page, clinic: Clinic
) -> None:
    api = clinic.api(clinic.worker)
    item, medicine = f"item-{api.device_id}", f"m-{api.device_id}"
    api.push(
        [api.change("pharmacy_inventory", item, {"facility_id": "f-1", "medicine_id": medicine})]
    )
    api.push([api.change("pharmacy_inventory", item, {"quantity": 100}, op="increment")])
    api.close()
    sign_in(lib_page, clinic.worker, faulty=True)
    js(lib_page, "await rep.sync();")
    lost = js(
        lib_page,
        """
        await rep.increment('pharmacy_inventory', arg, 'quantity', -5);
        faults.after = async (url) => {
          if (!url.includes('/v1/sync/push')) return null;
          faults.after = null;
          throw new TypeError('connection reset');
        };
        const result = (await rep.sync()).toJSON();
        const [entry] = await rep.outbox({status: 'PENDING'});
        return {result, entry, shown: await rep.get('pharmacy_inventory', arg)};
    """,
        item,
    )
    assert lost["result"]["errorCode"] == "SERVER_UNAVAILABLE"
    assert lost["entry"]["inDoubt"] is True and lost["entry"]["retryCount"] == 1
    assert lost["shown"]["quantity"] == 95
    settled = js(
        lib_page,
        """
        const result = (await rep.sync()).toJSON();
        const shown = await rep.get('pharmacy_inventory', arg);
        return {result, shown, status: await rep.status()};
    """,
        item,
    )
    assert settled["result"]["duplicates"] == 1 and settled["result"]["ok"], settled["result"]
    assert settled["shown"]["quantity"] == 95  # not 90: the pulled copy already holds the -5
    (on_server,) = server_records(clinic, "pharmacy_inventory", medicine_id=medicine)
    assert on_server["quantity"] == 95


def test_server_failures_spend_retries_until_failed_and_retry_failed_sends_again(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(
        lib_page,
        patient,
        faulty=True,
        retryPolicy={"maxRetries": 2, "initialMs": 1, "maxWaitMs": 2, "jitterMs": 0},
    )
    outcome = js(
        lib_page,
        """
        const id = await rep.put('symptom_logs', arg);
        faults.before = (url) =>
          url.includes('/v1/sync/push') ? errorResponse(503, 'INTERNAL') : null;
        const first = (await rep.sync()).toJSON();
        const second = (await rep.sync()).toJSON();
        const [failed] = await rep.outbox({status: 'FAILED'});
        faults.before = null;
        const idle = (await rep.sync()).toJSON();
        const again = (await rep.sync({retryFailed: true})).toJSON();
        return {first, second, failed, idle, again, shown: await rep.get('symptom_logs', id)};
    """,
        symptom_log(patient, "2025-08-01"),
    )
    assert outcome["first"]["errorCode"] == "SERVER_UNAVAILABLE" and outcome["first"]["failed"] == 0
    assert outcome["second"]["failed"] == 1
    assert outcome["failed"]["lastError"]["code"] == "SERVER_UNAVAILABLE"
    assert outcome["idle"]["pushed"] == 0  # FAILED waits for a person
    assert outcome["again"]["applied"] == 1 and outcome["again"]["ok"]
    assert outcome["shown"] is not None
    assert len(server_records(clinic, "symptom_logs", patient_id=patient.patient_id)) == 1


def test_an_expired_cursor_repulls_everything_keeps_pending_ops_and_drops_missed_deletes(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient, faulty=True)
    outcome = js(
        lib_page,
        """
        const kept = await rep.put('symptom_logs', {...arg, date: '2025-08-02'});
        await rep.sync();
        // A record whose delete this replica never saw (collected on the server since).
        await rep.local.applyPage([{collection: 'symptom_logs', id: 'ghost', version: 1, seq: '1',
          deleted: false, fields: {...arg, date: '2025-08-09'}, clocks: {}}], async () => {}, 0);
        const ghostBefore = await rep.get('symptom_logs', 'ghost');
        const pending = await rep.put('symptom_logs', {...arg, date: '2025-08-03'});
        faults.before = (url) => url.includes('/v1/sync/pull') && !/since=0(&|$)/.test(url)
          ? errorResponse(410, 'CURSOR_EXPIRED', {horizon: '99'}) : null;
        const result = (await rep.sync()).toJSON();
        return {result, ghostBefore, ghost: await rep.get('symptom_logs', 'ghost'),
                kept: await rep.get('symptom_logs', kept),
                pending: await rep.get('symptom_logs', pending),
                status: await rep.status()};
    """,
        symptom_log(patient, "x"),
    )
    assert outcome["result"]["ok"], outcome["result"]
    assert outcome["ghostBefore"] is not None and outcome["ghost"] is None
    assert outcome["kept"] is not None and outcome["pending"] is not None
    assert outcome["status"]["pending"] == 0


def test_a_429_is_honoured_no_request_before_retry_after(lib_page: Page, clinic: Clinic) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient, faulty=True)
    outcome = js(
        lib_page,
        """
        await rep.put('symptom_logs', arg);
        faults.before = (url) => url.includes('/v1/sync/push')
          ? errorResponse(429, 'RATE_LIMITED', {}, {'Retry-After': '120'}) : null;
        const limited = (await rep.sync()).toJSON();
        const sent = faults.requests.length;
        const soon = (await rep.sync()).toJSON();
        const [entry] = await rep.outbox({status: 'PENDING'});
        return {limited, soon, quiet: faults.requests.length === sent, entry};
    """,
        symptom_log(patient, "2025-08-04"),
    )
    assert outcome["limited"]["errorCode"] == "RATE_LIMITED"
    assert outcome["soon"]["errorCode"] == "RATE_LIMITED" and outcome["quiet"]
    assert outcome["entry"]["nextAttemptAt"] is not None


def test_an_expired_access_token_is_refreshed_once_and_the_sync_goes_on(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient, faulty=True)
    outcome = js(
        lib_page,
        """
        await rep.put('symptom_logs', arg);
        let refused = false;
        faults.before = (url) => {
          if (!refused && url.includes('/v1/sync/')) { refused = true;
            return errorResponse(401, 'UNAUTHORIZED', {reason: 'expired'}); }
          return null;
        };
        const before = (await rep.local.session()).refreshToken;
        const result = (await rep.sync()).toJSON();
        const after = (await rep.local.session()).refreshToken;
        return {result, rotated: before !== after,
                refreshes: faults.requests.filter((r) => r.url.includes('/auth/refresh')).length};
    """,
        symptom_log(patient, "2025-08-05"),
    )
    assert outcome["result"]["ok"] and outcome["result"]["applied"] == 1
    assert outcome["rotated"] and outcome["refreshes"] == 1


def test_a_revoked_device_asked_to_wipe_erases_the_replica(lib_page: Page, clinic: Clinic) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient)
    device = js(
        lib_page,
        """
        await rep.put('symptom_logs', arg); await rep.sync();
        window.events = []; rep.subscribe((e) => events.push(e.type));
        return rep.deviceId;
    """,
        symptom_log(patient, "2025-08-06"),
    )
    store = open_store(clinic.server.db_url, health_schema(), migrate=False)
    try:
        assert store.revoke_device(device, wipe=True)
    finally:
        store.close()
    outcome = js(
        lib_page,
        """
        const result = (await rep.sync()).toJSON();
        const names = (await indexedDB.databases()).map((d) => d.name);
        return {result, names, events, stored: await ws.stored()};
    """,
    )
    assert outcome["result"]["errorCode"] == "DEVICE_REVOKED"
    assert outcome["names"] == [] and outcome["stored"] is None
    assert "wiped" in outcome["events"]


def test_a_revoked_device_without_wipe_keeps_its_data_and_signs_in_as_a_new_device(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient)
    device = js(lib_page, "await rep.sync(); return rep.deviceId;")
    store = open_store(clinic.server.db_url, health_schema(), migrate=False)
    try:
        assert store.revoke_device(device, wipe=False)
    finally:
        store.close()
    outcome = js(
        lib_page,
        """
        const id = await rep.put('symptom_logs', arg.log);
        const revoked = (await rep.sync()).toJSON();
        const loggedIn = (await rep.status()).loggedIn;
        await rep.register(arg.username, arg.password);   // sign in again, same page
        const again = (await rep.sync()).toJSON();
        return {revoked, loggedIn, again, device: rep.deviceId,
                shown: await rep.get('symptom_logs', id), stored: await ws.stored()};
    """,
        {
            "log": symptom_log(patient, "2025-08-07"),
            "username": patient.username,
            "password": patient.password,
        },
    )
    assert outcome["revoked"]["errorCode"] == "DEVICE_REVOKED" and not outcome["loggedIn"]
    assert outcome["device"] != device and outcome["stored"]["deviceId"] == outcome["device"]
    assert outcome["again"]["ok"] and outcome["again"]["applied"] == 1, outcome["again"]["error"]
    assert outcome["shown"] is not None
    assert len(server_records(clinic, "symptom_logs", patient_id=patient.patient_id)) == 1


def test_a_batch_too_large_for_the_server_is_split_until_it_fits(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient, faulty=True)
    outcome = js(
        lib_page,
        """
        for (let d = 10; d < 17; d++) await rep.put('symptom_logs', {...arg, date: `2025-08-${d}`});
        faults.before = async (url, init) => {
          if (!url.includes('/v1/sync/push')) return null;
          if (init.headers['Content-Encoding']) return null;
          const body = JSON.parse(new TextDecoder().decode(init.body));
          if (body.changes.length <= 2) return null;
          return errorResponse(413, 'PAYLOAD_TOO_LARGE', {limit: 2});
        };
        return (await rep.sync()).toJSON();
    """,
        symptom_log(patient, "x"),
    )
    assert outcome["ok"] and outcome["applied"] == 7
