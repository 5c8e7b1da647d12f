"""The JS client when the server ends its sign-in (protocol §5, "When sessions end"): a
refresh token presented twice, a password or scope change, an expired refresh token. The
replica must then ask for a sign-in again — keeping what waits to be sent — and never
keep knocking with tokens the server will not take again. Also: what the server says
when it will not read a request (408) or a login (429), and a conflict whose other side
the signed-in user may not see."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import httpx
from playwright.sync_api import Page

from tests.support import hash_test_password
from tests.web.client_support import (
    other_facility_worker,
    server_records,
    sign_in,
    symptom_log,
)
from tests.web.conftest import Clinic, Person, js
from waystation.core.schema import health_schema
from waystation.store import open_store


def _update_user(clinic: Clinic, person: Person, **changes: Any) -> None:
    """Change a user as ``waystation users add --update`` does (ends their sessions when
    the password changes, the role changes or a scope is taken away)."""
    store = open_store(clinic.server.db_url, health_schema(), migrate=False)
    try:
        user = store.find_user(user_id=person.user_id)
        assert user is not None
        store.update_user(dataclasses.replace(user, **changes))
    finally:
        store.close()


def _requests_to(page: Page, path: str) -> int:
    return int(js(page, "return faults.requests.filter((r) => r.url.includes(arg)).length;", path))


def test_a_refresh_token_used_by_someone_else_ends_the_sign_in_once_and_keeps_the_outbox(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient, faulty=True)
    stolen = js(lib_page, "await rep.sync(); return (await rep.local.session()).refreshToken;")
    # A copy of the refresh token is traded first (a thief, a replay): the phone's own
    # refresh then presents a used token, and the server ends the whole family.
    with httpx.Client(base_url=clinic.url) as http:
        assert http.post("/v1/auth/refresh", json={"refresh_token": stolen}).status_code == 200
    outcome = js(
        lib_page,
        """
        const id = await rep.put('symptom_logs', arg);
        // The access token has run out (30 days): the sync must refresh it.
        let expired = false;
        faults.before = (url) => {
          if (!expired && url.includes('/v1/sync/')) { expired = true;
            return errorResponse(401, 'UNAUTHORIZED', {reason: 'expired'}); }
          return null;
        };
        const ended = (await rep.sync()).toJSON();
        const sent = faults.requests.length;
        const again = (await rep.sync()).toJSON();   // e.g. "Sync now", the interval
        return {id, ended, again, quiet: faults.requests.length === sent,
                status: await rep.status(), shown: await rep.get('symptom_logs', id)};
    """,
        symptom_log(patient, "2025-10-01"),
    )
    assert outcome["ended"]["errorCode"] == "LOGIN_REQUIRED", outcome["ended"]
    assert "already used" in outcome["ended"]["error"]
    assert _requests_to(lib_page, "/v1/auth/refresh") == 1  # one refresh, no loop
    assert outcome["again"]["errorCode"] == "LOGIN_REQUIRED" and outcome["quiet"]
    assert outcome["status"]["loggedIn"] is False and outcome["status"]["pending"] == 1
    assert outcome["shown"] is not None

    signed_in = js(
        lib_page,
        """
        await rep.register(arg.username, arg.password);
        return {result: (await rep.sync()).toJSON(), status: await rep.status()};
    """,
        {"username": patient.username, "password": patient.password},
    )
    assert signed_in["result"]["ok"] and signed_in["result"]["applied"] == 1
    assert signed_in["status"]["loggedIn"] and signed_in["status"]["pending"] == 0
    assert len(server_records(clinic, "symptom_logs", patient_id=patient.patient_id)) == 1


def test_a_password_change_ends_the_sign_in_without_a_refresh_and_the_new_one_sends_the_rest(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    sign_in(lib_page, patient, faulty=True)
    js(lib_page, "await rep.sync();")
    _update_user(clinic, patient, password_hash=hash_test_password("a-new-secret"))
    outcome = js(
        lib_page,
        """
        await rep.put('symptom_logs', arg);
        const ended = (await rep.sync()).toJSON();
        return {ended, status: await rep.status()};
    """,
        symptom_log(patient, "2025-10-02"),
    )
    assert outcome["ended"]["errorCode"] == "LOGIN_REQUIRED", outcome["ended"]
    assert _requests_to(lib_page, "/v1/auth/refresh") == 0  # the session ended: no refresh
    assert outcome["status"]["loggedIn"] is False and outcome["status"]["pending"] == 1

    old = js(
        lib_page,
        """
        try { await rep.register(arg.username, arg.password); return null; }
        catch (e) { return e.code; }
    """,
        {"username": patient.username, "password": patient.password},
    )
    assert old == "UNAUTHORIZED"
    again = js(
        lib_page,
        """
        await rep.register(arg.username, arg.password);
        return (await rep.sync()).toJSON();
    """,
        {"username": patient.username, "password": "a-new-secret"},
    )
    assert again["ok"] and again["applied"] == 1
    assert len(server_records(clinic, "symptom_logs", patient_id=patient.patient_id)) == 1


def test_a_scope_taken_away_ends_the_sign_in_and_the_next_one_drops_what_it_no_longer_shows(
    lib_page: Page, clinic: Clinic
) -> None:
    # A parent who looked after two patients loses the second (a child come of age).
    parent, child = clinic.new_patient(), clinic.new_patient()
    _update_user(
        clinic, parent, scopes=(f"patient:{parent.patient_id}", f"patient:{child.patient_id}")
    )
    sign_in(lib_page, parent)
    before = js(
        lib_page,
        """
        await rep.put('symptom_logs', arg.own);
        await rep.put('symptom_logs', arg.child);
        const result = (await rep.sync()).toJSON();
        return {result, patients: (await rep.query('patients')).map((p) => p.id).sort()};
    """,
        {"own": symptom_log(parent, "2025-10-03"), "child": symptom_log(child, "2025-10-03")},
    )
    assert before["result"]["ok"] and before["result"]["applied"] == 2
    assert parent.patient_id is not None and child.patient_id is not None
    assert before["patients"] == sorted([parent.patient_id, child.patient_id])

    _update_user(clinic, parent, scopes=(f"patient:{parent.patient_id}",))
    after = js(
        lib_page,
        """
        const ended = (await rep.sync()).toJSON();
        await rep.register(arg.username, arg.password);
        const result = (await rep.sync()).toJSON();
        return {ended, result, patients: (await rep.query('patients')).map((p) => p.id),
                logs: (await rep.query('symptom_logs')).map((l) => l.patient_id)};
    """,
        {"username": parent.username, "password": parent.password},
    )
    assert after["ended"]["errorCode"] == "LOGIN_REQUIRED"
    assert after["result"]["ok"], after["result"]
    assert after["patients"] == [parent.patient_id]
    assert after["logs"] == [parent.patient_id]


def test_a_408_is_sent_again_later_and_counts_once(lib_page: Page, clinic: Clinic) -> None:
    patient = clinic.new_patient()
    sign_in(
        lib_page,
        patient,
        faulty=True,
        retryPolicy={"maxRetries": 5, "initialMs": 1, "maxWaitMs": 2, "jitterMs": 0},
    )
    outcome = js(
        lib_page,
        """
        await rep.put('symptom_logs', arg);
        // What the server answers a body that paused longer than --body-timeout.
        faults.before = (url) => url.includes('/v1/sync/push')
          ? errorResponse(408, 'REQUEST_TIMEOUT', {timeout_s: 30}, {Connection: 'close'}) : null;
        const slow = (await rep.sync()).toJSON();
        const [entry] = await rep.outbox({status: 'PENDING'});
        faults.before = null;
        const again = (await rep.sync()).toJSON();
        return {slow, entry, again, status: await rep.status()};
    """,
        symptom_log(patient, "2025-10-04"),
    )
    assert outcome["slow"]["errorCode"] == "REQUEST_TIMEOUT"
    entry = outcome["entry"]
    assert entry["retryCount"] == 1 and entry["nextAttemptAt"] is not None
    assert entry["inDoubt"] is False  # the server never read it: the pull need not wait
    assert outcome["again"]["ok"] and outcome["again"]["applied"] == 1
    assert outcome["status"]["pending"] == 0
    assert len(server_records(clinic, "symptom_logs", patient_id=patient.patient_id)) == 1


def test_failed_logins_are_answered_429_with_the_wait_the_server_asks(lib_page: Page) -> None:
    name = f"nobody-{uuid.uuid4().hex[:8]}"
    outcome = js(
        lib_page,
        """
        for (let attempt = 1; attempt <= 12; attempt++) {
          try {
            await ws.Replica.login({username: arg, password: 'wrong', name: 'throttled'});
          } catch (e) {
            if (e.code === 'RATE_LIMITED') {
              return {attempt, code: e.code, retryAfterMs: e.retryAfterMs};
            }
            if (e.code !== 'UNAUTHORIZED') return {attempt, code: e.code, message: e.message};
          }
        }
        return null;
    """,
        name,
    )
    assert outcome is not None and outcome["code"] == "RATE_LIMITED", outcome
    assert outcome["retryAfterMs"] >= 1000
    assert js(lib_page, "return await ws.stored({name: 'throttled'});") is None


def test_a_conflict_with_a_record_outside_the_users_scopes_names_neither_its_id_nor_fields(
    lib_page: Page, clinic: Clinic
) -> None:
    patient = clinic.new_patient()
    api = clinic.device(clinic.worker)
    (held,) = api.push(
        [
            api.change(
                "symptom_logs",
                str(uuid.uuid4()),
                symptom_log(patient, "2025-10-05", notes="seen at f-1"),
            )
        ]
    )
    assert held["status"] == "applied"
    visitor = other_facility_worker(clinic)
    sign_in(lib_page, visitor)
    outcome = js(
        lib_page,
        """
        await rep.put('symptom_logs', {...arg, facility_id: 'f-2', notes: 'seen at f-2'});
        const result = (await rep.sync()).toJSON();
        const [entry] = await rep.outbox({status: 'CONFLICT'});
        return {result, entry, logs: await rep.query('symptom_logs')};
    """,
        symptom_log(patient, "2025-10-05"),
    )
    assert outcome["result"]["conflicts"] == 1
    error = outcome["entry"]["lastError"]
    assert error["code"] == "UNIQUE_VIOLATION" and "outside your scopes" in error["message"]
    assert "existing_id" not in error["details"]
    assert outcome["logs"] == []  # nothing of f-1's log reached this replica
