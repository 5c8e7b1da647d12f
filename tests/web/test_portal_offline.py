"""The portal works with no network: after the first visit it opens, reloads and saves
offline, says so, and delivers everything exactly once when the network returns."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect

from tests.web.conftest import FACILITY, Clinic
from tests.web.portal_steps import (
    add_log,
    server_logs,
    server_record,
    server_records,
    sign_in,
    unlock,
    wait_state,
    wait_synced,
    waiting,
    worker_writes,
)

LOGS = [
    ("2025-12-01", ["fever", "cough"], 6, 38.4, "woke up at night"),
    ("2025-12-02", ["cough"], 4, 37.6, ""),
    ("2025-12-03", ["headache"], 2, None, "better today"),
]


def test_offline_logs_and_read_alert_survive_a_reload_and_reach_the_server_once(
    clinic: Clinic, context: BrowserContext, page: Page
) -> None:
    patient = clinic.new_patient()
    alert_id = f"alert-{patient.patient_id}"
    worker_writes(
        clinic,
        "alerts",
        {
            "patient_id": patient.patient_id,
            "facility_id": FACILITY,
            "title": "Follow-up visit",
            "read": False,
        },
        alert_id,
    )
    sign_in(page, patient)

    context.set_offline(True)
    for date, symptoms, severity, temperature, notes in LOGS:
        add_log(page, date, symptoms, severity, temperature, notes)
    expect(page.locator("#notice")).to_contain_text("Saved on this phone")
    page.get_by_role("link", name="Alerts").click()
    page.get_by_role("button", name="Mark “Follow-up visit” read").click()
    expect(page.locator(f'.alert[data-id="{alert_id}"] .tag')).to_have_text("Read")
    wait_state(page, "offline")
    assert waiting(page) == 4
    expect(page.locator("#status-waiting")).to_have_text("· 4 waiting")

    page.reload()  # still offline: the service worker serves the shell, IndexedDB the data;
    # the page comes back where it was (the alerts)
    unlock(page, patient)
    expect(page.locator(f'.alert[data-id="{alert_id}"] .tag')).to_have_text("Read")
    page.get_by_role("link", name="Symptoms").click()
    expect(page.locator(".log")).to_have_count(3)
    for date, *_ in LOGS:
        expect(page.locator(f'.log[data-date="{date}"] .tag')).to_have_text("Not sent yet")
    wait_state(page, "offline")
    assert waiting(page) == 4

    # Offline still: change a contact preference, and take a copy of everything.
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Email").check()
    expect(page.locator("#status-waiting")).to_have_text("· 5 waiting")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert sorted(log["date"] for log in exported["records"]["symptom_logs"]) == [
        date for date, *_ in LOGS
    ]
    assert len(exported["not_yet_sent"]) == 5 and exported["needs_attention"] == []

    context.set_offline(False)
    wait_synced(page, timeout=10_000)
    page.get_by_role("link", name="Symptoms").click()
    expect(page.locator(".log .tag.pending")).to_have_count(0)

    held = sorted(server_logs(clinic, patient), key=lambda log: log["date"])
    assert [
        (log["date"], log["symptoms"], log["severity"], log.get("temperature"), log.get("notes"))
        for log in held
    ] == [
        (date, symptoms, severity, temperature, notes or None)
        for date, symptoms, severity, temperature, notes in LOGS
    ]
    assert server_record(clinic, "alerts", alert_id)["fields"]["read"] is True
    # Contact preferences are the patient's alone: the admin reads them.
    (prefs,) = [
        p
        for p in server_records(clinic, "notification_preferences", by=clinic.admin)
        if p["patient_id"] == patient.patient_id
    ]
    assert prefs["email"] is True


def test_background_sync_registered_offline_makes_the_page_sync(
    clinic: Clinic, context: BrowserContext, page: Page
) -> None:
    """The service worker cannot read the replica; on a Background Sync it asks the open
    page to sync, and the page does."""
    patient = clinic.new_patient()
    sign_in(page, patient)
    context.set_offline(True)
    add_log(page, "2025-12-07", ["rash"], severity=1)
    tags = "navigator.serviceWorker.getRegistration().then((r) => r.sync.getTags())"
    page.wait_for_function(f"async () => (await {tags}).includes('waystation-outbox')")
    context.set_offline(False)
    wait_synced(page)

    cdp = context.new_cdp_session(page)
    registrations: list[dict[str, str]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    for _ in range(100):  # the registration event arrives while the driver waits
        if registrations:
            break
        page.wait_for_timeout(50)
    (registration,) = [r for r in registrations if r["scopeURL"].endswith("/portal/")]
    with page.expect_request(lambda r: "/v1/sync/pull" in r.url, timeout=5_000):
        cdp.send(
            "ServiceWorker.dispatchSyncEvent",
            {
                "origin": clinic.url,
                "registrationId": registration["registrationId"],
                "tag": "waystation-outbox",
                "lastChance": False,
            },
        )
