// The symptom log form (new log, or edit one): date, symptoms, severity, temperature,
// notes. It saves to the replica at once, with or without a network; the clinic's server
// checks it again when it arrives.

import { field, h, replace } from "../dom.js";
import { readableDate, today } from "../format.js";
import { go } from "../router.js";

/** Symptoms offered as tick boxes (stored as these words); others go in "Other symptoms". */
export const COMMON_SYMPTOMS = ["fever", "cough", "headache", "sore throat", "tiredness",
  "shortness of breath", "body aches", "diarrhoea", "vomiting", "rash"];

/** The fields a patient edits on a log. */
const EDITABLE = ["date", "symptoms", "severity", "temperature", "notes"];

/**
 * @param {HTMLElement} main
 * @param {import("../session.js").Session} session
 * @param {string} arg "new" or the id of the log to edit
 * @param {(saved: {id: string}) => void} onSaved
 */
export async function render(main, session, arg, onSaved) {
  const existing = arg === "new" ? null : await session.get("symptom_logs", arg);
  if (arg !== "new" && !existing) {
    replace(main, h("h2", {}, "Log not found"),
      h("p", {}, "This log is not on this phone (it may have been removed)."),
      h("a", { href: "#/logs" }, "Back to my logs"));
    return;
  }
  const form = logForm(existing ?? { date: today() }, async (values, error) => {
    const id = await save(session, existing, values, error);
    if (id) { onSaved({ id }); go("logs"); }
  }, existing ? "Save changes" : "Save log");
  replace(main,
    h("h2", {}, existing ? `Edit the log of ${readableDate(existing.date)}` : "New symptom log"),
    form,
    h("p", {}, h("a", { href: "#/logs" }, "Cancel")));
}

/**
 * The form itself, shared with the "needs attention" page (fixing a rejected log).
 * @param {Record<string, unknown>} initial
 * @param {(values: Record<string, unknown>, error: (message: string) => void) => Promise<void>} onSubmit
 * @param {string} submitLabel
 */
export function logForm(initial, onSubmit, submitLabel) {
  const given = Array.isArray(initial.symptoms) ? initial.symptoms.map(String) : [];
  const others = given.filter((s) => !COMMON_SYMPTOMS.includes(s));
  const date = h("input", { type: "date", name: "date", required: true, value: str(initial.date) });
  const severity = h("input", { type: "number", name: "severity", min: 0, max: 10, step: 1,
    inputmode: "numeric", value: str(initial.severity) });
  const temperature = h("input", { type: "number", name: "temperature", min: 25, max: 45,
    step: 0.1, inputmode: "decimal", value: str(initial.temperature) });
  const other = h("input", { type: "text", name: "other", value: others.join(", "),
    autocomplete: "off" });
  const notes = h("textarea", { name: "notes", maxlength: 10000 });
  /** @type {HTMLTextAreaElement} */ (notes).value = str(initial.notes);
  const problem = h("p", { class: "error", role: "alert" });
  const boxes = COMMON_SYMPTOMS.map((name, i) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "symptom", value: name, id: `symptom-${i}`,
      checked: given.includes(name) }),
    capitalise(name)));
  const submit = h("button", { class: "button", type: "submit" }, submitLabel);

  const form = h("form", { class: "card log-form", novalidate: true },
    field("log-date", "Date", date),
    h("fieldset", {}, h("legend", {}, "Symptoms"), h("div", { class: "checks" }, boxes)),
    field("log-other", "Other symptoms", other, "Separate them with commas."),
    field("log-severity", "Severity (0 to 10)", severity, "0 is none, 10 is the worst you can imagine."),
    field("log-temperature", "Temperature (°C)", temperature, "Leave it empty if you did not measure it."),
    field("log-notes", "Notes", notes),
    problem,
    h("div", { class: "actions" }, submit));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    const values = read(/** @type {HTMLFormElement} */ (form));
    const wrong = check(values);
    if (wrong) { problem.textContent = wrong; return; }
    submit.setAttribute("disabled", "");
    try {
      await onSubmit(values, (message) => { problem.textContent = message; });
    } finally {
      submit.removeAttribute("disabled");
    }
  });
  return form;
}

/**
 * The form's values as record fields (empty inputs become null: "not given").
 * @param {HTMLFormElement} form
 */
function read(form) {
  const data = new FormData(form);
  const ticked = data.getAll("symptom").map(String);
  const typed = String(data.get("other") ?? "").split(",").map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const num = (/** @type {string} */ name) => {
    const raw = String(data.get(name) ?? "").trim().replace(",", ".");
    return raw === "" ? null : Number(raw);
  };
  const notes = String(data.get("notes") ?? "").trim();
  return {
    date: String(data.get("date") ?? ""),
    symptoms: [...new Set([...ticked, ...typed])],
    severity: num("severity"),
    temperature: num("temperature"),
    notes: notes === "" ? null : notes,
  };
}

/**
 * What a person must fix before saving, in words (the server checks the same limits).
 * @param {Record<string, unknown>} values
 */
function check(values) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(String(values.date))) return "Enter the date of this log.";
  const sev = values.severity;
  if (sev !== null && (!Number.isInteger(sev) || Number(sev) < 0 || Number(sev) > 10)) {
    return "Severity is a whole number from 0 to 10.";
  }
  const temp = values.temperature;
  if (temp !== null && (!Number.isFinite(temp) || Number(temp) < 25 || Number(temp) > 45)) {
    return "Temperature is in °C, between 25 and 45.";
  }
  return null;
}

/**
 * Save a new log, or the changed fields of an existing one. Returns the record id, or null
 * after telling the person what to do instead.
 * @param {import("../session.js").Session} session
 * @param {import("../session.js").Rec | null} existing
 * @param {Record<string, unknown>} values
 * @param {(message: string) => void} error
 */
async function save(session, existing, values, error) {
  const sameDay = (await session.query("symptom_logs",
    { patient_id: session.patientId, date: values.date })).find((r) => r.id !== existing?.id);
  if (sameDay) {
    error(`You already have a log for ${readableDate(values.date)}: edit that one instead.`);
    return null;
  }
  if (existing) {
    /** @type {Record<string, unknown>} */
    const changed = {};
    for (const name of EDITABLE) {
      if (JSON.stringify(existing[name] ?? null) !== JSON.stringify(values[name])) changed[name] = values[name];
    }
    if (Object.keys(changed).length) await session.put("symptom_logs", changed, existing.id);
    return existing.id;
  }
  const facility = await session.facilityId();
  if (!facility) {
    error("Your clinic's details have not reached this phone yet. Connect once, then try again.");
    return null;
  }
  /** @type {Record<string, unknown>} */
  const fields = { patient_id: session.patientId, facility_id: facility, date: values.date,
    symptoms: values.symptoms };
  for (const name of ["severity", "temperature", "notes"]) {
    if (values[name] !== null) fields[name] = values[name];
  }
  return session.put("symptom_logs", fields);
}

/** @param {unknown} value */
function str(value) {
  return value === null || value === undefined ? "" : String(value);
}

/** @param {string} s */
function capitalise(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
