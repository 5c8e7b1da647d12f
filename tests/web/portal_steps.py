"""What a patient does in the portal, as steps the portal tests share.

Each step drives the page the way a person does (labels, buttons, links), so a test reads
as the scenario it checks; fixtures (``clinic``, ``context``, ``page``) are in conftest.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from playwright.sync_api import Page, expect

from tests.web.conftest import Clinic, Person

# Sign-in derives the replica's key (PBKDF2, 600,000 iterations) and pulls: seconds, not ms.
SLOW_MS = 20_000


def sign_in(page: Page, person: Person) -> None:
    """Open the portal, sign in, and wait until it is ready offline: the first sync done
    and the service worker controlling the page (the shell cached)."""
    page.goto("/portal/")
    page.get_by_label("Username").fill(person.username)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#nav")).to_be_visible(timeout=SLOW_MS)
    wait_synced(page)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=SLOW_MS)


def unlock(page: Page, person: Person) -> None:
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Unlock").click()
    expect(page.locator("#nav")).to_be_visible(timeout=SLOW_MS)


def wait_state(page: Page, state: str, timeout: float = SLOW_MS) -> None:
    """The indicator shows ``state``: online, offline, syncing or attention."""
    expect(page.locator("#status")).to_have_attribute("data-state", state, timeout=timeout)


# How many ops of the portal's replica wait to be sent (PENDING or SYNCING), read from
# IndexedDB: the outbox's status index is kept in clear (docs/web-client.md).
_UNSENT_JS = """async () => {
  if (!(await indexedDB.databases()).some((d) => d.name === 'waystation-portal')) return -1;
  const db = await new Promise((ok, fail) => {
    const req = indexedDB.open('waystation-portal');
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  });
  try {
    const index = db.transaction('outbox').objectStore('outbox').index('status');
    const count = (s) => new Promise((ok, fail) => {
      const req = index.count(IDBKeyRange.only(s));
      req.onsuccess = () => ok(req.result);
      req.onerror = () => fail(req.error);
    });
    return (await count('PENDING')) + (await count('SYNCING'));
  } finally {
    db.close();
  }
}"""


def wait_synced(page: Page, timeout: float = SLOW_MS) -> None:
    """Everything saved so far has reached the server and the indicator says "Synced":
    online, nothing waiting, nothing wrong. (The indicator alone could still show the
    state from before an entry just saved: its sync starts a moment later.)"""
    page.wait_for_function(
        f"async () => ({_UNSENT_JS})().then((n) => n === 0)", timeout=timeout, polling=100
    )
    wait_state(page, "online", timeout)
    expect(page.locator("#status-label")).to_have_text("Synced", timeout=timeout)
    expect(page.locator("#status-waiting")).to_be_hidden()


def waiting(page: Page) -> int:
    """How many entries the indicator says wait to be sent."""
    return int(page.locator("#status").get_attribute("data-pending") or 0)


def add_log(
    page: Page,
    date: str,
    symptoms: Sequence[str] = (),
    severity: int | None = None,
    temperature: float | None = None,
    notes: str = "",
) -> None:
    """Fill in and save the "New log" form; back on the list afterwards."""
    page.goto("/portal/#/logs")
    page.get_by_role("button", name="New log").click()
    page.get_by_label("Date").fill(date)
    for symptom in symptoms:
        page.get_by_label(symptom.capitalize(), exact=True).check()
    if severity is not None:
        page.get_by_label("Severity (0 to 10)").fill(str(severity))
    if temperature is not None:
        page.get_by_label("Temperature (°C)").fill(str(temperature))
    if notes:
        page.get_by_label("Notes").fill(notes)
    page.get_by_role("button", name="Save log").click()
    expect(page.locator(f'.log[data-date="{date}"]')).to_be_visible()


def server_records(
    clinic: Clinic, collection: str, *, by: Person | None = None
) -> list[dict[str, Any]]:
    """The live records of ``collection`` as the server holds them, read through the API by
    the health worker (or ``by``): each record once, in its newest state."""
    return clinic.server_records(collection, by=by)


def server_logs(clinic: Clinic, patient: Person) -> list[dict[str, Any]]:
    """The patient's symptom logs on the server, as their health worker reads them."""
    return [
        log
        for log in server_records(clinic, "symptom_logs")
        if log.get("patient_id") == patient.patient_id
    ]


def server_record(clinic: Clinic, collection: str, record_id: str) -> dict[str, Any]:
    resp = clinic.device(clinic.worker).http.get(f"/v1/records/{collection}/{record_id}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def worker_writes(
    clinic: Clinic,
    collection: str,
    fields: dict[str, Any],
    record_id: str,
    *,
    by: Person | None = None,
) -> None:
    """The health worker (or ``by``) writes a record straight to the server from their own
    device."""
    api = clinic.device(by or clinic.worker)
    (result,) = api.push([api.change(collection, record_id, fields)])
    assert result["status"] == "applied", result


# What a person on a 360 px phone would notice, measured in the page: a page wider than the
# screen, a form control without a label, text whose contrast with its background is below
# WCAG AA (4.5:1, or 3:1 for large text). Returns a list of problems, empty when none.
_PAGE_PROBLEMS_JS = """() => {
  const problems = [];
  const width = window.innerWidth;
  if (document.documentElement.scrollWidth > width) {
    problems.push(`page is ${document.documentElement.scrollWidth}px wide on a ${width}px screen`);
  }
  const shown = (el) => el.getClientRects().length > 0
    && getComputedStyle(el).visibility !== 'hidden';
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (!shown(el) || el.type === 'hidden') continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')
        && !el.getAttribute('aria-labelledby')) {
      problems.push(`unlabelled ${el.tagName.toLowerCase()} ${el.name || el.id}`);
    }
  }
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const [r, g, b, a = 1] = rgb(getComputedStyle(node).backgroundColor);
      if (a > 0.5) return [r, g, b];
    }
    return [255, 255, 255];
  };
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !shown(el)) continue;
    const style = getComputedStyle(el);
    const fg = rgb(style.color);
    const [l1, l2] = [lum(fg), lum(background(el))].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5) && Number(style.opacity) === 1) {
      problems.push(`contrast ${ratio.toFixed(2)}:1 for "${el.textContent.trim().slice(0, 40)}"`);
    }
  }
  return problems;
}"""


def page_problems(page: Page) -> list[str]:
    """Overflow, unlabelled fields and low-contrast text on the page as it is shown."""
    problems: list[str] = page.evaluate(_PAGE_PROBLEMS_JS)
    return problems
