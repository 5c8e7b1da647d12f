"""Every page of the portal on a 360 px phone, online and offline: nothing wider than the
screen, every field labelled, readable contrast, nothing refused by the Content-Security-
Policy. With WAYSTATION_PORTAL_SCREENSHOTS=DIR set, it also saves each page as a PNG (that
is how docs/img/portal/ is made: see docs/web-client.md)."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from tests.web.conftest import FACILITY, Clinic
from tests.web.portal_steps import (
    add_log,
    page_problems,
    sign_in,
    unlock,
    wait_state,
    wait_synced,
    worker_writes,
)

PAGES = {
    "logs": "#/logs",
    "log-form": "#/logs/new",
    "alerts": "#/alerts",
    "care": "#/care",
    "settings": "#/settings",
}


class Pages:
    """Checks each page as shown, and saves it when screenshots were asked for."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.folder = os.environ.get("WAYSTATION_PORTAL_SCREENSHOTS")
        self.refused: list[str] = []
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.refused.append(message.text)

    def check(self, name: str) -> None:
        self.page.wait_for_load_state()
        assert page_problems(self.page) == [], name
        if self.folder:
            Path(self.folder).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(self.folder) / f"{name}.png"))

    def visit_all(self, suffix: str) -> None:
        for name, hash_ in PAGES.items():
            self.page.goto(f"/portal/{hash_}")
            expect(self.page.locator("main h2").first).to_be_visible()
            self.check(f"{name}-{suffix}")


def test_every_page_fits_a_phone_is_labelled_and_readable_online_and_offline(
    clinic: Clinic, context: BrowserContext, page: Page
) -> None:
    patient = clinic.new_patient()
    me = {"patient_id": patient.patient_id, "facility_id": FACILITY}
    worker_writes(
        clinic,
        "medicines",
        {"name": "Amoxicillin", "strength": "500 mg"},
        "m-amox",
        by=clinic.admin,
    )
    worker_writes(
        clinic,
        "alerts",
        {**me, "title": "Follow-up visit", "level": "info", "body": "Please come back on Monday."},
        f"a-{patient.patient_id}",
    )
    worker_writes(
        clinic,
        "alerts",
        {**me, "title": "Malaria season", "level": "warning", "body": "Sleep under your net."},
        f"b-{patient.patient_id}",
    )
    worker_writes(
        clinic,
        "prescriptions",
        {
            **me,
            "medicine_id": "m-amox",
            "dose": "500 mg",
            "frequency": "3x daily",
            "duration_days": 7,
            "prescriber": "worker",
        },
        f"rx-{patient.patient_id}",
    )
    worker_writes(
        clinic,
        "appointments",
        {
            **me,
            "scheduled_at": "2025-12-08T08:30:00Z",
            "status": "CONFIRMED",
            "reason": "follow-up",
        },
        f"ap-{patient.patient_id}",
    )
    worker_writes(
        clinic,
        "notification_preferences",
        {"patient_id": patient.patient_id, "sms": True, "push": True},
        f"prefs-{patient.patient_id}",
        by=clinic.admin,
    )
    pages = Pages(page)
    page.goto("/portal/")
    pages.check("signin")
    sign_in(page, patient)
    add_log(page, "2025-12-01", ["cough", "fever"], severity=4, temperature=37.9)
    wait_synced(page)
    pages.visit_all("online")

    context.set_offline(True)
    add_log(page, "2025-12-02", ["headache"], severity=2, notes="After a long day in the sun.")
    expect(page.locator("#notice")).to_contain_text("Saved on this phone")
    wait_state(page, "offline")
    pages.check("saved-offline")
    page.locator("#status-toggle").click()
    pages.check("status-offline")
    page.locator("#status-toggle").click()
    pages.visit_all("offline")
    page.reload()
    pages.check("unlock-offline")
    unlock(page, patient)

    # The clinic logged the same day meanwhile: back online, the patient's log conflicts.
    worker_writes(
        clinic,
        "symptom_logs",
        {**me, "date": "2025-12-02", "symptoms": ["cough"], "severity": 3},
        f"clinic-{patient.patient_id}",
    )
    context.set_offline(False)
    wait_state(page, "attention")
    page.goto("/portal/#/attention")
    expect(page.locator(".card.problem")).to_have_count(1)
    pages.check("attention-online")
    context.set_offline(True)  # the fix works offline too: it is a new write on the phone
    page.reload()
    unlock(page, patient)
    page.goto("/portal/#/attention")
    expect(page.locator(".card.problem")).to_have_count(1)
    pages.check("attention-offline")
    context.set_offline(False)

    page.get_by_role("link", name="Alerts").click()
    page.get_by_role("button", name="Mark all read").click()
    expect(page.locator(".alert .tag.read")).to_have_count(2)
    expect(page.locator("#unread")).to_be_hidden()
    assert pages.refused == []
