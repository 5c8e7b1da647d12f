"""The portal and a health worker's Python replica meet through the server: a log made in
the portal reaches the worker's replica, and an alert the worker writes appears in the open
portal at once, without a reload (live changes, /v1/sync/events)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.web.conftest import FACILITY, Clinic
from tests.web.portal_steps import add_log, sign_in, wait_synced
from waystation.client import Replica


def test_portal_log_reaches_worker_replica_and_worker_alert_appears_live(
    clinic: Clinic, page: Page, tmp_path: Path
) -> None:
    patient = clinic.new_patient()
    sign_in(page, patient)
    add_log(page, "2025-12-04", ["vomiting"], severity=5, notes="since lunch")
    wait_synced(page)

    worker = Replica.open(
        tmp_path / "worker.db",
        server=clinic.url,
        username=clinic.worker.username,
        password=clinic.worker.password,
    )
    try:
        assert worker.sync().ok
        (log,) = worker.query("symptom_logs", patient_id=patient.patient_id)
        assert (log["date"], log["symptoms"], log["severity"], log["notes"]) == (
            "2025-12-04",
            ["vomiting"],
            5,
            "since lunch",
        )

        # The patient edits one field; the worker's replica gets that field and keeps the rest.
        page.get_by_role("link", name="Edit the log of").click()
        page.get_by_label("Severity (0 to 10)").fill("7")
        page.get_by_role("button", name="Save changes").click()
        expect(page.locator(".log .severity")).to_contain_text("Severity 7")  # saved here
        wait_synced(page)
        assert worker.sync().ok
        assert worker.get("symptom_logs", log["id"]) == {**log, "severity": 7}

        page.get_by_role("link", name="Alerts").click()
        expect(page.locator(".alert")).to_have_count(0)
        page.evaluate("window.sameDocument = true")
        worker.put(
            "alerts",
            {
                "patient_id": patient.patient_id,
                "facility_id": FACILITY,
                "title": "Drink plenty of water",
                "level": "warning",
            },
        )
        assert worker.sync().ok
    finally:
        worker.close()

    # Live: no reload, no interval (a minute) — the server's notice makes the portal pull.
    expect(page.locator(".alert")).to_contain_text("Drink plenty of water", timeout=10_000)
    expect(page.locator("#unread")).to_have_text("1")
    assert page.evaluate("window.sameDocument") is True
