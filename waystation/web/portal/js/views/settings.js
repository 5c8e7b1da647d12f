// "Settings": how the clinic may contact the patient, a copy of their data, and sign-out.

import { h, replace } from "../dom.js";
import { plural } from "../format.js";

const CHANNELS = [
  ["sms", "Text messages (SMS)"],
  ["email", "Email"],
  ["push", "Notifications on this phone"],
];

/**
 * @param {HTMLElement} main
 * @param {import("../session.js").Session} session
 * @param {() => Promise<void>} signOutNow erases this phone's copy and leaves
 */
export async function render(main, session, signOutNow) {
  const prefs = (await session.query("notification_preferences",
    { patient_id: session.patientId }))[0] ?? null;
  replace(main,
    h("h2", {}, "Settings"),
    preferences(session, prefs),
    exporter(session),
    await signOut(session, signOutNow));
}

/**
 * Each tick box saves as soon as it changes.
 * @param {import("../session.js").Session} session
 * @param {import("../session.js").Rec | null} prefs
 */
function preferences(session, prefs) {
  const boxes = CHANNELS.map(([name, label]) => h("label", { class: "check" },
    h("input", { type: "checkbox", name, id: `pref-${name}`, checked: Boolean(prefs?.[name]),
      onchange: async (event) => {
        const on = /** @type {HTMLInputElement} */ (event.target).checked;
        // Looked up again: the first change may have just created the record.
        const now = (await session.query("notification_preferences",
          { patient_id: session.patientId }))[0];
        if (now) await session.put("notification_preferences", { [name]: on }, now.id);
        else await session.put("notification_preferences", { patient_id: session.patientId, [name]: on });
      } }),
    label));
  return h("section", { class: "card", "aria-labelledby": "prefs-title" },
    h("fieldset", {},
      h("legend", { id: "prefs-title" }, "How the clinic may contact me"),
      boxes),
    h("p", { class: "hint" }, "Changes are saved at once, and sent to the clinic when you are online."));
}

/**
 * A JSON file of everything this phone holds for the patient, made on the phone (works
 * offline).
 * @param {import("../session.js").Session} session
 */
function exporter(session) {
  const button = h("button", { class: "button secondary", type: "button", onclick: async () => {
    const data = await session.exportData();
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const link = h("a", { href: URL.createObjectURL(blob),
      download: `my-health-${data.exported_at.slice(0, 10)}.json` });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(/** @type {HTMLAnchorElement} */ (link).href), 10_000);
  } }, "Download my data");
  return h("section", { class: "card", "aria-labelledby": "export-title" },
    h("h3", { id: "export-title" }, "Export my data"),
    h("p", {}, "A file (JSON) with your logs, alerts, care and anything not yet sent."),
    button);
}

/**
 * Sign-out erases this phone's copy; it warns first when entries have not been sent.
 * @param {import("../session.js").Session} session
 * @param {() => Promise<void>} signOutNow
 */
async function signOut(session, signOutNow) {
  const unsent = (await session.status()).pending ?? 0;
  const warning = h("p", { class: "error", role: "alert", hidden: true },
    `${plural(unsent, "entry has", "entries have")} not reached the clinic yet. Signing out `
    + "erases them from this phone. Download your data first, or sign out anyway.");
  const button = h("button", { class: "button danger", type: "button", onclick: async () => {
    if (unsent > 0 && warning.hidden) {
      warning.hidden = false;
      button.textContent = "Sign out anyway";
      return;
    }
    button.setAttribute("disabled", "");
    await signOutNow();
  } }, "Sign out");
  return h("section", { class: "card", "aria-labelledby": "signout-title" },
    h("h3", { id: "signout-title" }, `Signed in as ${session.username}`),
    h("p", {}, "Signing out erases your data from this phone. It stays safe at the clinic."),
    warning,
    button);
}
