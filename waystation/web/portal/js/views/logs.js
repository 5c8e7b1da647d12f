// "Symptoms": the patient's symptom logs, newest day first, each marked when it has not
// reached the clinic yet.

import { h, replace } from "../dom.js";
import { readableDate, severityWord } from "../format.js";

/**
 * @param {HTMLElement} main
 * @param {import("../session.js").Session} session
 */
export async function render(main, session) {
  const logs = await session.query("symptom_logs", { patient_id: session.patientId });
  logs.sort((a, b) => String(b.date).localeCompare(String(a.date)));
  const waiting = await waitingIds(session);
  const status = await session.status();
  const problems = (status.rejected ?? 0) + (status.conflicts ?? 0) + (status.failed ?? 0);
  replace(main,
    problems ? h("p", { class: "card problem" }, h("a", { href: "#/attention" },
      `${problems === 1 ? "1 entry needs" : `${problems} entries need`} your attention`)) : null,
    h("div", { class: "row spread" },
      h("h2", {}, "My symptom logs"),
      h("a", { class: "button", href: "#/logs/new", role: "button" }, "New log")),
    logs.length === 0
      ? h("p", { class: "empty" }, "No symptom logs yet. Tap “New log” to record how you feel today.")
      : h("ul", { class: "list", "aria-label": "Symptom logs" },
        logs.map((log) => item(log, waiting.has(log.id)))));
}

/** @param {import("../session.js").Rec} log @param {boolean} waiting */
function item(log, waiting) {
  const symptoms = Array.isArray(log.symptoms) ? log.symptoms.join(", ") : "";
  return h("li", { class: "card log", "data-id": log.id, "data-date": String(log.date ?? "") },
    h("div", { class: "row spread" },
      h("h3", {}, readableDate(log.date)),
      waiting ? h("span", { class: "tag pending" }, "Not sent yet") : null),
    symptoms ? h("p", {}, symptoms) : h("p", { class: "meta" }, "No symptoms listed"),
    h("p", { class: "meta" },
      typeof log.severity === "number"
        ? h("span", { class: "severity" }, `Severity ${log.severity}/10 (${severityWord(log.severity)})`)
        : null,
      typeof log.temperature === "number" ? ` · ${log.temperature} °C` : null),
    typeof log.notes === "string" && log.notes ? h("p", { class: "pre" }, log.notes) : null,
    h("div", { class: "actions" },
      h("a", { class: "button secondary small", href: `#/logs/${encodeURIComponent(log.id)}`,
        "aria-label": `Edit the log of ${readableDate(log.date)}` }, "Edit")));
}

/**
 * Ids of the records with ops still on their way to the server.
 * @param {import("../session.js").Session} session
 */
export async function waitingIds(session) {
  const entries = await session.outbox({ status: ["PENDING", "SYNCING", "FAILED"] });
  return new Set(entries.map((e) => e.recordId));
}
