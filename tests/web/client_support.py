"""Helpers of the JS client's browser tests: sign a patient in inside the page, read the
server as a health worker, put a fault in front of the real server."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from tests.web.conftest import Clinic, Person, js
from waystation.core.schema import health_schema
from waystation.store import open_store

# A fetch the tests can put a fault in front of (as the Python tests wrap the real server
# in an httpx.MockTransport): `faults.before(url, init)` may answer instead of the server,
# `faults.after(url, init, response)` may lose or replace the server's answer.
FAULTY_FETCH = """() => {
window.faults = {before: null, after: null, requests: []};
window.faultyFetch = async (url, init) => {
  const f = window.faults;
  f.requests.push({url: String(url), method: (init && init.method) || 'GET',
                   headers: Object.assign({}, (init && init.headers) || {})});
  if (f.before) { const early = await f.before(String(url), init); if (early) return early; }
  const response = await fetch(url, init);
  if (f.after) { const late = await f.after(String(url), init, response); if (late) return late; }
  return response;
};
window.errorResponse = (status, code, details = {}, headers = {}) => new Response(
  JSON.stringify({error: {code, message: code.toLowerCase(), details}}),
  {status, headers: {'Content-Type': 'application/json', ...headers}});
}"""


def sign_in(page: Page, person: Person, *, faulty: bool = False, **options: Any) -> None:
    """``window.rep`` = the person's replica in this page (a first sign-in, online)."""
    page.evaluate(FAULTY_FETCH)
    js(
        page,
        """
        const opts = {username: arg.username, password: arg.password, ...arg.options};
        if (arg.faulty) opts.fetch = window.faultyFetch;
        if (opts.retryPolicy) opts.retryPolicy = new ws.RetryPolicy(opts.retryPolicy);
        window.rep = await ws.Replica.login(opts);
    """,
        {
            "username": person.username,
            "password": person.password,
            "faulty": faulty,
            "options": options,
        },
    )


def symptom_log(person: Person, date: str, **fields: Any) -> dict[str, Any]:
    return {"patient_id": person.patient_id, "facility_id": "f-1", "date": date, **fields}


def server_records(clinic: Clinic, collection: str, **equals: Any) -> list[dict[str, Any]]:
    """Live records of ``collection`` as the server holds them, read by the health worker."""
    return [
        record
        for record in clinic.server_records(collection)
        if all(record.get(k) == v for k, v in equals.items())
    ]


def other_facility_worker(clinic: Clinic) -> Person:
    """A health worker of facility ``f-2``, who may not see ``f-1``'s records (made once
    per server)."""
    name, password = "worker-f2", "worker-f2-secret"
    store = open_store(clinic.server.db_url, health_schema(), migrate=False)
    try:
        found = store.find_user(username=name)
    finally:
        store.close()
    user_id = (
        found.id
        if found
        else clinic.server.add_user(name, "health_worker", ["facility:f-2"], password)
    )
    return Person(name, password, user_id)
