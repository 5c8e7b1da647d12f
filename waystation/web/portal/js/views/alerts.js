// "Alerts": messages from the clinic, unread first. Marking one read is the only change a
// patient may make to an alert (the server refuses any other field), and "read" never
// goes back to unread on any device.

import { h, replace } from "../dom.js";
import { waitingIds } from "./logs.js";

const LEVEL_WORDS = /** @type {Record<string, string>} */ ({ info: "Information", warning: "Warning", urgent: "Urgent" });

/**
 * @param {HTMLElement} main
 * @param {import("../session.js").Session} session
 */
export async function render(main, session) {
  const alerts = await session.query("alerts", { patient_id: session.patientId });
  alerts.sort((a, b) => Number(Boolean(a.read)) - Number(Boolean(b.read))
    || String(a.title).localeCompare(String(b.title)));
  const unread = alerts.filter((a) => !a.read);
  const waiting = await waitingIds(session);
  const markAll = h("button", { class: "button secondary small", type: "button",
    onclick: async () => {
      markAll.setAttribute("disabled", "");
      for (const alert of unread) await session.put("alerts", { read: true }, alert.id);
    } }, "Mark all read");
  replace(main,
    h("div", { class: "row spread" },
      h("h2", {}, "Alerts"),
      unread.length ? markAll : null),
    alerts.length === 0 ? h("p", { class: "empty" }, "No alerts from your clinic.")
      : h("ul", { class: "list", "aria-label": "Alerts" },
        alerts.map((alert) => item(session, alert, waiting.has(alert.id)))));
}

/**
 * @param {import("../session.js").Session} session
 * @param {import("../session.js").Rec} alert
 * @param {boolean} waiting
 */
function item(session, alert, waiting) {
  const level = String(alert.level ?? "info");
  return h("li", { class: `card alert ${alert.read ? "read" : "unread"}`, "data-id": alert.id },
    h("div", { class: "row spread" },
      h("h3", {}, String(alert.title ?? "")),
      h("span", { class: `tag ${alert.read ? "read" : "unread"}` }, alert.read ? "Read" : "Unread")),
    level !== "info" ? h("p", {}, h("span", { class: `tag ${level}` }, LEVEL_WORDS[level] ?? level)) : null,
    alert.body ? h("p", { class: "pre" }, String(alert.body)) : null,
    waiting ? h("p", { class: "meta" }, "Marked read on this phone; not sent yet.") : null,
    alert.read ? null : h("div", { class: "actions" },
      h("button", { class: "button small", type: "button",
        "aria-label": `Mark “${String(alert.title ?? "")}” read`,
        onclick: () => session.put("alerts", { read: true }, alert.id) }, "Mark read")));
}

/**
 * How many alerts are unread (for the tab's badge).
 * @param {import("../session.js").Session} session
 */
export async function unreadCount(session) {
  const alerts = await session.query("alerts", { patient_id: session.patientId });
  return alerts.filter((a) => !a.read).length;
}
