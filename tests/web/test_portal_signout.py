"""What the portal leaves on a phone: nothing readable while it holds the patient's data
(IndexedDB holds ciphertext), and nothing at all after sign-out or after the clinic
revokes the phone with a wipe."""

from __future__ import annotations

import dataclasses
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from tests.support import hash_test_password
from tests.web.conftest import Clinic, Person
from tests.web.portal_steps import (
    SLOW_MS,
    add_log,
    server_logs,
    sign_in,
    wait_state,
    wait_synced,
)
from waystation.core.schema import health_schema
from waystation.store import open_store

DB_NAME = "waystation-portal"

# Every value of every object store of the portal's database, as text (binary values as
# their bytes decoded as Latin-1, so a value stored in clear would show up in it).
_DUMP_JS = """async (name) => {
  const db = await new Promise((ok, fail) => {
    const req = indexedDB.open(name);
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  });
  const text = (value) => {
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
      const bytes = new Uint8Array(value.buffer ?? value, value.byteOffset ?? 0, value.byteLength);
      return Array.from(bytes, (b) => String.fromCharCode(b)).join('');
    }
    if (value && typeof value === 'object') {
      return Object.entries(value).map(([k, v]) => `${k}=${text(v)}`).join(' ');
    }
    return String(value);
  };
  const out = [];
  for (const store of db.objectStoreNames) {
    const all = await new Promise((ok, fail) => {
      const req = db.transaction(store).objectStore(store).getAll();
      req.onsuccess = () => ok(req.result);
      req.onerror = () => fail(req.error);
    });
    for (const value of all) out.push(`${store}: ${text(value)}`);
  }
  db.close();
  return out.join('\\n');
}"""


def databases(page: Page) -> list[str]:
    names: list[str] = page.evaluate("async () => (await indexedDB.databases()).map(d => d.name)")
    return names


def stored_device(page: Page) -> Any:
    return page.evaluate(
        "async (name) => (await import('/web/client/replica.js')).stored({name})", DB_NAME
    )


def test_the_phone_holds_no_readable_patient_data_and_sign_out_erases_it(
    clinic: Clinic, context: BrowserContext, page: Page
) -> None:
    patient = clinic.new_patient()
    sign_in(page, patient)
    context.set_offline(True)
    add_log(
        page,
        "2025-12-06",
        ["diarrhoea"],
        severity=7,
        temperature=38.8,
        notes="Ate at the wedding of Wanjiru",
    )
    dump = page.evaluate(_DUMP_JS, DB_NAME)
    assert "records:" in dump and "outbox:" in dump  # the log is in there, sealed
    assert "2025-12-06" not in dump and "Wanjiru" not in dump and "diarrhoea" not in dump
    assert patient.patient_id is not None
    assert f"Patient {patient.patient_id[2:]}" not in dump  # the pulled patient record
    assert patient.password not in dump and patient.username not in dump

    page.get_by_role("link", name="Settings").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("1 entry has not reached the clinic yet")).to_be_visible()
    page.get_by_role("button", name="Sign out anyway").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert DB_NAME not in databases(page)
    page.reload()  # offline still: the shell opens, with nothing to unlock
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def revoke(clinic: Clinic, device_id: str, *, wipe: bool) -> None:
    """What ``waystation devices revoke DEVICE_ID [--wipe]`` does."""
    store = open_store(clinic.server.db_url, health_schema())
    try:
        assert store.revoke_device(device_id, wipe=wipe)
    finally:
        store.close()


def test_a_phone_revoked_with_wipe_is_erased_and_back_at_sign_in(
    clinic: Clinic, page: Page
) -> None:
    patient = clinic.new_patient()
    sign_in(page, patient)
    revoke(clinic, stored_device(page)["deviceId"], wipe=True)

    page.locator("#status-toggle").click()
    page.get_by_role("button", name="Sync now").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=SLOW_MS)
    expect(page.locator("#notice")).to_contain_text("erased")
    assert DB_NAME not in databases(page)


def test_a_phone_revoked_without_wipe_keeps_what_waits_and_sends_it_after_signing_in_again(
    clinic: Clinic, context: BrowserContext, page: Page
) -> None:
    patient = clinic.new_patient()
    sign_in(page, patient)
    context.set_offline(True)
    add_log(page, "2025-12-08", ["cough"], severity=3, notes="made before the revocation")
    old_device = stored_device(page)["deviceId"]
    revoke(clinic, old_device, wipe=False)

    context.set_offline(False)
    wait_state(page, "attention")
    page.locator("#status-toggle").click()
    expect(page.locator("#status-detail")).to_contain_text("signed out by the clinic")
    page.get_by_role("link", name="See what needs attention").click()
    expect(page.locator(".log")).to_have_count(0)  # the attention page, not the logs
    page.get_by_label(f"Password for {patient.username}").fill(patient.password)
    page.get_by_role("button", name="Sign in again").click()

    wait_synced(page)
    assert stored_device(page)["deviceId"] != old_device  # a revoked id is never reused
    (log,) = server_logs(clinic, patient)
    assert (log["date"], log["notes"]) == ("2025-12-08", "made before the revocation")


def change_password(clinic: Clinic, person: Person, password: str) -> None:
    """What ``waystation users add NAME --update`` with a new password does: every session
    of the user ends."""
    store = open_store(clinic.server.db_url, health_schema())
    try:
        user = store.find_user(user_id=person.user_id)
        assert user is not None
        assert store.update_user(
            dataclasses.replace(user, password_hash=hash_test_password(password))
        )
    finally:
        store.close()


def test_a_password_changed_elsewhere_asks_for_the_new_one_and_then_sends_what_waits(
    clinic: Clinic, context: BrowserContext, page: Page
) -> None:
    patient = clinic.new_patient()
    sign_in(page, patient)
    refreshes: list[str] = []
    page.on("request", lambda r: refreshes.append(r.url) if "/v1/auth/" in r.url else None)
    context.set_offline(True)
    add_log(page, "2025-12-09", ["cough"], notes="before the password changed")
    change_password(clinic, patient, "a-new-secret")

    context.set_offline(False)
    wait_state(page, "attention")
    page.locator("#status-toggle").click()
    expect(page.locator("#status-detail")).to_contain_text("Please sign in again")
    page.get_by_role("link", name="See what needs attention").click()
    password = page.get_by_label(f"Password for {patient.username}")
    password.fill(patient.password)
    page.get_by_role("button", name="Sign in again").click()
    expect(page.locator(".sign-in-again [role=alert]")).to_have_text("Wrong password.")
    assert [url for url in refreshes if "/refresh" in url] == []  # an ended session: no refresh
    password.fill("a-new-secret")
    page.get_by_role("button", name="Sign in again").click()

    wait_synced(page)
    (log,) = server_logs(clinic, patient)
    assert (log["date"], log["notes"]) == ("2025-12-09", "before the password changed")


def test_too_many_wrong_passwords_make_the_sign_in_wait_as_long_as_the_server_asks(
    clinic: Clinic, page: Page
) -> None:
    patient = clinic.new_patient()
    page.goto("/portal/")
    page.get_by_label("Username").fill(patient.username)
    page.get_by_label("Password").fill("not-the-password")
    button = page.locator("form button[type=submit]")
    problem = page.locator("form [role=alert]")
    for _attempt in range(12):
        button.click()
        expect(button).to_have_text("Sign in")  # answered
        if "Too many attempts" in (problem.text_content() or ""):
            break
        expect(problem).to_have_text("Wrong username or password.")
    expect(problem).to_contain_text("Too many attempts. Try again in")
    expect(button).to_be_disabled()  # as long as Retry-After says (1 s, doubling)
    expect(button).to_be_enabled(timeout=SLOW_MS)
