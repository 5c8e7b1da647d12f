"""A second log for a day that already has one (made offline, while the health worker
logged that day at the clinic) comes back as a conflict; the patient sees what happened and
fixes it in the page: merge into that day's log, or move it to another day."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Page, expect

from tests.web.conftest import FACILITY, Clinic
from tests.web.portal_steps import (
    add_log,
    server_logs,
    sign_in,
    wait_state,
    wait_synced,
    worker_writes,
)


def test_second_log_of_a_day_made_offline_is_resolved_in_the_page(
    clinic: Clinic, context: BrowserContext, page: Page
) -> None:
    patient = clinic.new_patient()
    sign_in(page, patient)

    context.set_offline(True)
    # Meanwhile, at the clinic, the health worker logs two days for this patient.
    for day, symptoms in (("2025-11-10", ["cough"]), ("2025-11-11", ["rash"])):
        worker_writes(clinic, "symptom_logs", {
            "patient_id": patient.patient_id, "facility_id": FACILITY, "date": day,
            "symptoms": symptoms, "severity": 3}, f"clinic-log-{patient.patient_id}-{day}")
    add_log(page, "2025-11-10", ["fever"], severity=6, notes="night sweats")
    add_log(page, "2025-11-11", ["headache"], severity=2)
    context.set_offline(False)

    wait_state(page, "attention")
    expect(page.locator("#status-label")).to_have_text("Needs attention")
    page.locator("#status-toggle").click()
    page.get_by_role("link", name="See what needs attention").click()
    cards = page.locator(".card.problem")
    expect(cards).to_have_count(2)
    first = page.locator('.card.problem[data-date="2025-11-10"]')
    expect(first).to_contain_text("The clinic already has a log for")

    # Merge the first into that day's log.
    first.get_by_role("button", name="Merge into that day's log").click()
    expect(cards).to_have_count(1)
    # Move the second to another day.
    second = page.locator('.card.problem[data-date="2025-11-11"]')
    second.get_by_label("Or change its date").fill("2025-11-12")
    second.get_by_role("button", name="Save with this date").click()
    expect(page.locator(".card.problem")).to_have_count(0)
    wait_synced(page, timeout=10_000)

    logs = {log["date"]: log for log in server_logs(clinic, patient)}
    assert sorted(logs) == ["2025-11-10", "2025-11-11", "2025-11-12"]
    merged = logs["2025-11-10"]
    assert (sorted(merged["symptoms"]), merged["severity"], merged["notes"]) == (
        ["cough", "fever"], 6, "night sweats")
    assert (logs["2025-11-11"]["symptoms"], logs["2025-11-12"]["symptoms"]) == (
        ["rash"], ["headache"])
    page.get_by_role("link", name="Symptoms").click()
    expect(page.locator(".log")).to_have_count(3)
