// "Needs attention": every entry the clinic's server did not take as it was (a second log
// for a day that already has one, a value it refused, or one it kept failing on), what
// happened in plain words, and a way to fix it here.

import { field, h, replace } from "../dom.js";
import { readableDate } from "../format.js";
import { Session } from "../session.js";
import { logForm } from "./log-form.js";
import { explain, retryAfter } from "./signin.js";

/**
 * @typedef {import("../session.js").Entry} Entry
 */

/**
 * @param {HTMLElement} main
 * @param {Session} session
 * @param {(message: string) => void} notify
 */
export async function render(main, session, notify) {
  const entries = await session.outbox({ status: ["CONFLICT", "REJECTED", "FAILED"] });
  const signIn = Session.loginNeeded(await session.status()) ? signInAgain(session, notify) : null;
  const cards = [];
  for (const entry of entries) cards.push(await card(session, entry, notify));
  replace(main,
    h("h2", {}, "Needs attention"),
    signIn,
    entries.length === 0
      ? (signIn ? null : h("p", { class: "empty" }, "Nothing needs your attention: everything you entered was accepted."))
      : h("ul", { class: "list", "aria-label": "Entries that need attention" }, cards));
}

/**
 * The phone's sign-in ended (the clinic revoked it, or it was away too long): the password
 * registers it again, and what waits on the phone is then sent.
 * @param {Session} session
 * @param {(message: string) => void} notify
 */
function signInAgain(session, notify) {
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password" });
  const problem = h("p", { class: "error", role: "alert" });
  const submit = h("button", { class: "button", type: "submit" }, "Sign in again");
  const form = h("form", { class: "card problem sign-in-again" },
    h("h3", {}, "Sign in again"),
    h("p", {}, "This phone is no longer signed in to the clinic (its sign-in ended or "
      + "expired), so nothing can be sent. Everything you entered is kept here; sign in "
      + "again to send it."),
    field("again-password", `Password for ${session.username}`, password),
    problem,
    h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    try {
      await session.signInAgain(/** @type {HTMLInputElement} */ (password).value);
      notify("Signed in again. Sending what was waiting…");
    } catch (err) {
      const code = /** @type {{code?: string}} */ (err)?.code;
      problem.textContent = code === "UNAUTHORIZED" ? "Wrong password." : explain(err);
      const waitMs = retryAfter(err);
      if (waitMs > 0) {
        // Too many attempts: the clinic's Retry-After, honoured by the button too.
        submit.setAttribute("disabled", "");
        setTimeout(() => submit.removeAttribute("disabled"), waitMs);
      }
    }
  });
  return form;
}

/**
 * @param {Session} session
 * @param {Entry} entry
 * @param {(message: string) => void} notify
 */
async function card(session, entry, notify) {
  const error = entry.lastError ?? { code: "", message: "" };
  const body = [];
  if (entry.collection === "symptom_logs" && error.code === "UNIQUE_VIOLATION") {
    body.push(...await secondLogOfDay(session, entry, notify));
  } else if (entry.status === "REJECTED" && entry.collection === "symptom_logs" && entry.op === "upsert") {
    body.push(h("p", {}, "The clinic could not accept this log: ", h("strong", {}, error.message)),
      await fixRejectedLog(session, entry, notify));
  } else if (entry.status === "FAILED") {
    body.push(h("p", {}, "The clinic's server kept failing to take this entry. It is kept here."),
      h("div", { class: "actions" },
        h("button", { class: "button small", type: "button", onclick: async () => {
          await session.retryFailed();
          notify("Sending it again.");
        } }, "Try again"),
        discardButton(session, entry, notify)));
  } else {
    body.push(h("p", {}, entry.status === "CONFLICT" ? "The clinic will review this entry: " : "The clinic could not accept this entry: ",
      h("strong", {}, error.message || error.code)),
    h("div", { class: "actions" }, discardButton(session, entry, notify)));
  }
  return h("li", { class: "card problem", "data-op": entry.opId, "data-status": entry.status,
    "data-date": String(entry.fields?.date ?? "") },
    h("h3", {}, describe(entry)), ...body);
}

/**
 * A second log for a day the clinic already has a log for: merge it into that day's log,
 * or move it to another day (same record, so nothing is ever doubled).
 *
 * The clinic names that day's log (`details.existing_id`) only when this sign-in may see
 * it; otherwise (no id, or `hidden` naming "existing") it cannot be shown or merged here,
 * only moved or discarded — a reviewer at the clinic can still combine the two. A log
 * named but not yet on this phone (its pull has not arrived) is merged once it arrives:
 * merging blind would overwrite its symptoms.
 * @param {Session} session
 * @param {Entry} entry
 * @param {(message: string) => void} notify
 */
async function secondLogOfDay(session, entry, notify) {
  const held = entry.fields;
  const details = entry.lastError?.details ?? {};
  const hiddenSides = Array.isArray(details.hidden) ? details.hidden : [];
  const existingId = hiddenSides.includes("existing") ? "" : String(details.existing_id ?? "");
  const existing = existingId ? await session.get("symptom_logs", existingId) : null;
  const date = h("input", { type: "date", id: `move-${entry.opId}`, required: true,
    value: String(held.date ?? "") });
  const problem = h("p", { class: "error", role: "alert" });
  const merge = h("button", { class: "button small", type: "button", disabled: !existing,
    onclick: async () => {
      if (!existing) return;
      await session.put("symptom_logs", merged(existing, held), existingId);
      await session.discard(entry.opId);
      notify(`Merged into your log of ${readableDate(held.date)}.`);
    } }, "Merge into that day's log");
  const move = h("button", { class: "button secondary small", type: "button", onclick: async () => {
    const day = /** @type {HTMLInputElement} */ (date).value;
    if (!day || day === held.date) { problem.textContent = "Pick another date."; return; }
    const taken = await session.query("symptom_logs", { patient_id: session.patientId, date: day });
    if (taken.some((r) => r.id !== entry.recordId)) {
      problem.textContent = `You already have a log for ${readableDate(day)}.`;
      return;
    }
    await session.put("symptom_logs", { ...held, date: day }, entry.recordId);
    await session.discard(entry.opId);
    notify(`Moved to ${readableDate(day)}.`);
  } }, "Save with this date");
  const mergeOffer = existingId
    ? [
      existing
        ? h("p", { class: "meta" }, `That log: ${summary(existing)}`)
        : h("p", { class: "meta waiting-for-log" }, "That log has not reached this phone yet: "
          + "it can be merged once it has (tap “Sync now”)."),
      h("p", { class: "meta" }, `This one: ${summary(held)}`),
      h("p", { class: "hint" }, "Merging keeps every symptom, the higher severity and temperature, and both notes."),
      h("div", { class: "actions" }, merge),
    ]
    : [
      h("p", { class: "meta hidden-log" }, "That log is kept where this sign-in cannot see it, "
        + "so it cannot be shown or merged here. Change the date of this one, or discard it; "
        + "the clinic can also combine the two."),
      h("p", { class: "meta" }, `This one: ${summary(held)}`),
    ];
  return [
    h("p", {}, `The clinic already has a log for ${readableDate(held.date)} (perhaps entered by `
      + "your health worker), and a day has one log."),
    ...mergeOffer,
    h("div", { class: "field" }, h("label", { for: `move-${entry.opId}` },
      existingId ? "Or change its date" : "Change its date"), date),
    problem,
    h("div", { class: "actions" }, move, discardButton(session, entry, notify)),
  ];
}

/**
 * The held log folded into the existing one (fields only the held log has are added).
 * @param {import("../session.js").Rec | null} existing
 * @param {Record<string, unknown>} held
 */
export function merged(existing, held) {
  const list = (/** @type {unknown} */ v) => (Array.isArray(v) ? v.map(String) : []);
  const num = (/** @type {unknown} */ v) => (typeof v === "number" ? v : null);
  /** @type {Record<string, unknown>} */
  const fields = {
    symptoms: [...new Set([...list(existing?.symptoms), ...list(held.symptoms)])],
  };
  for (const name of ["severity", "temperature"]) {
    const values = [num(existing?.[name]), num(held[name])].filter((v) => v !== null);
    if (values.length) fields[name] = Math.max(.../** @type {number[]} */ (values));
  }
  const notes = [existing?.notes, held.notes].filter((n) => typeof n === "string" && n.trim());
  if (notes.length) fields.notes = [...new Set(notes)].join("\n");
  return fields;
}

/**
 * A rejected log, in the form again with its values, to correct and send.
 * @param {Session} session
 * @param {Entry} entry
 * @param {(message: string) => void} notify
 */
async function fixRejectedLog(session, entry, notify) {
  const current = await session.get("symptom_logs", entry.recordId);
  const initial = { ...(current ?? {}), ...entry.fields };
  return logForm(initial, async (values) => {
    /** @type {Record<string, unknown>} */
    const fields = current ? { ...entry.fields, ...values } : { ...entry.fields };
    if (!current) {
      for (const [name, value] of Object.entries(values)) if (value !== null) fields[name] = value;
    }
    await session.put("symptom_logs", fields, entry.recordId);
    await session.discard(entry.opId);
    notify("Corrected. It will be sent to the clinic.");
  }, "Send again");
}

/**
 * @param {Session} session
 * @param {Entry} entry
 * @param {(message: string) => void} notify
 */
function discardButton(session, entry, notify) {
  return h("button", { class: "button danger small", type: "button", onclick: async () => {
    await session.discard(entry.opId);
    notify("Removed from this phone.");
  } }, "Discard");
}

/** @param {Entry} entry */
function describe(entry) {
  const f = entry.fields ?? {};
  switch (entry.collection) {
    case "symptom_logs": return f.date ? `Symptom log for ${readableDate(f.date)}` : "A change to a symptom log";
    case "alerts": return "An alert marked read";
    case "notification_preferences": return "Your contact settings";
    case "appointments": return "An appointment";
    default: return `An entry in ${entry.collection}`;
  }
}

/** @param {Record<string, unknown>} log */
function summary(log) {
  const parts = [];
  if (Array.isArray(log.symptoms) && log.symptoms.length) parts.push(log.symptoms.join(", "));
  if (typeof log.severity === "number") parts.push(`severity ${log.severity}`);
  if (typeof log.temperature === "number") parts.push(`${log.temperature} °C`);
  if (typeof log.notes === "string" && log.notes) parts.push(`“${log.notes}”`);
  return parts.join(" · ") || "no details";
}
