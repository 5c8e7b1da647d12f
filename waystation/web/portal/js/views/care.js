// "My care": prescriptions and appointments from the clinic. Read-only here, and on this
// phone, so they can be shown at a pharmacy counter or a clinic door with no signal.

import { h, replace } from "../dom.js";
import { readableTime } from "../format.js";

const STATUS_WORDS = /** @type {Record<string, string>} */ ({ PENDING: "Requested",
  CONFIRMED: "Confirmed", COMPLETED: "Done", CANCELLED: "Cancelled" });

/**
 * @param {HTMLElement} main
 * @param {import("../session.js").Session} session
 */
export async function render(main, session) {
  const me = { patient_id: session.patientId };
  const prescriptions = await session.query("prescriptions", me);
  const appointments = await session.query("appointments", me);
  const medicines = new Map((await session.query("medicines")).map((m) => [m.id, m]));
  appointments.sort((a, b) => String(b.scheduled_at).localeCompare(String(a.scheduled_at)));
  replace(main,
    h("h2", {}, "My care"),
    h("section", { "aria-labelledby": "rx-title" },
      h("h3", { id: "rx-title" }, "Prescriptions"),
      prescriptions.length === 0 ? h("p", { class: "empty" }, "No prescriptions.")
        : h("ul", { class: "list", "aria-label": "Prescriptions" },
          prescriptions.map((rx) => prescription(rx, medicines.get(String(rx.medicine_id)))))),
    h("section", { "aria-labelledby": "appt-title" },
      h("h3", { id: "appt-title" }, "Appointments"),
      appointments.length === 0 ? h("p", { class: "empty" }, "No appointments.")
        : h("ul", { class: "list", "aria-label": "Appointments" }, appointments.map(appointment))));
}

/**
 * @param {import("../session.js").Rec} rx
 * @param {import("../session.js").Rec | undefined} medicine
 */
function prescription(rx, medicine) {
  const name = medicine ? `${medicine.name}${medicine.strength ? ` ${medicine.strength}` : ""}`
    : String(rx.medicine_id ?? "");
  return h("li", { class: "card prescription", "data-id": rx.id },
    h("h3", {}, name),
    h("p", {}, [rx.dose, rx.frequency].filter(Boolean).join(", ")),
    rx.duration_days ? h("p", { class: "meta" }, `For ${rx.duration_days} days`) : null,
    rx.prescriber ? h("p", { class: "meta" }, `Prescribed by ${rx.prescriber}`) : null,
    rx.conflict ? h("p", { class: "tag warning" }, "Being reviewed by the clinic") : null);
}

/** @param {import("../session.js").Rec} appt */
function appointment(appt) {
  const status = String(appt.status ?? "PENDING");
  return h("li", { class: "card appointment", "data-id": appt.id },
    h("div", { class: "row spread" },
      h("h3", {}, readableTime(appt.scheduled_at)),
      h("span", { class: "tag" }, STATUS_WORDS[status] ?? status)),
    appt.reason ? h("p", {}, String(appt.reason)) : null);
}
