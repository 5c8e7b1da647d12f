"""A second log for a day that already has one (made offline, while the health worker
logged that day at the clinic) comes back as a conflict; the patient sees what happened and
fixes it in the page: merge into that day's log, or move it to another day."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Page, expect

from tests.web.client_support import other_facility_worker
from tests.web.conftest import FACILITY, Clinic, js, load_library
from tests.web.portal_steps import (
    add_log,
    server_logs,
    server_records,
    sign_in,
    unlock,
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
        worker_writes(
            clinic,
            "symptom_logs",
            {
                "patient_id": patient.patient_id,
                "facility_id": FACILITY,
                "date": day,
                "symptoms": symptoms,
                "severity": 3,
            },
            f"clinic-log-{patient.patient_id}-{day}",
        )
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
        ["cough", "fever"],
        6,
        "night sweats",
    )
    assert (logs["2025-11-11"]["symptoms"], logs["2025-11-12"]["symptoms"]) == (
        ["rash"],
        ["headache"],
    )
    page.get_by_role("link", name="Symptoms").click()
    expect(page.locator(".log")).to_have_count(3)


def test_a_second_log_whose_day_is_held_outside_the_sign_ins_scopes_can_be_moved_not_merged(
    clinic: Clinic, page: Page
) -> None:
    # The server names the log holding the day only to those who may see it (protocol
    # §14): a health worker of another facility who logs that patient's day is told the
    # day is taken "outside your scopes", without the log. The portal cannot show or
    # merge it then; it offers to move or discard the entry.
    patient = clinic.new_patient()
    day = "2025-11-20"
    worker_writes(
        clinic,
        "symptom_logs",
        {
            "patient_id": patient.patient_id,
            "facility_id": FACILITY,
            "date": day,
            "symptoms": ["cough"],
            "notes": "seen at f-1",
        },
        f"f1-log-{patient.patient_id}",
    )
    visitor = other_facility_worker(clinic)
    load_library(page)
    outcome = js(
        page,
        """
        const rep = await ws.Replica.login({username: arg.username, password: arg.password,
                                            name: 'waystation-portal'});
        await rep.put('symptom_logs', arg.log);
        const result = (await rep.sync()).toJSON();
        rep.close();
        return result;
    """,
        {
            "username": visitor.username,
            "password": visitor.password,
            "log": {
                "patient_id": patient.patient_id,
                "facility_id": "f-2",
                "date": day,
                "symptoms": ["fever"],
                "notes": "seen at f-2",
            },
        },
    )
    assert outcome["conflicts"] == 1

    page.goto("/portal/")
    unlock(page, visitor)
    wait_state(page, "attention")
    page.goto("/portal/#/attention")
    card = page.locator(f'.card.problem[data-date="{day}"]')
    expect(card).to_contain_text("kept where this sign-in cannot see it")
    expect(card).not_to_contain_text("seen at f-1")
    expect(card.get_by_role("button", name="Merge into that day's log")).to_have_count(0)
    card.get_by_label("Change its date").fill("2025-11-21")
    card.get_by_role("button", name="Save with this date").click()
    expect(page.locator(".card.problem")).to_have_count(0)
    wait_synced(page)

    # Read by the admin, who sees both facilities.
    logs = {
        log["date"]: log
        for log in server_records(clinic, "symptom_logs", by=clinic.admin)
        if log["patient_id"] == patient.patient_id
    }
    assert sorted(logs) == [day, "2025-11-21"]
    assert (logs[day]["notes"], logs["2025-11-21"]["notes"]) == ("seen at f-1", "seen at f-2")
