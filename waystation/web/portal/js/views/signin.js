// Sign in (the first time on this phone, online), or unlock the phone's copy after a
// reload (offline too: the password unwraps the key of the encrypted replica; it is never
// stored).

import { field, h, replace } from "../dom.js";

/**
 * @param {HTMLElement} main
 * @param {(username: string, password: string) => Promise<void>} signIn rejects with an
 *   Error whose message is for the person
 */
export function renderSignIn(main, signIn) {
  const username = h("input", { type: "text", name: "username", autocomplete: "username",
    autocapitalize: "none", spellcheck: "false", required: true });
  const password = h("input", { type: "password", name: "password",
    autocomplete: "current-password", required: true });
  const form = credentialsForm("Sign in", [
    field("signin-username", "Username", username),
    field("signin-password", "Password", password),
  ], () => signIn(value(username).trim(), value(password)));
  replace(main, h("section", { class: "signin" },
    h("h2", {}, "Sign in"),
    h("p", { class: "lead" }, "Use the username and password your clinic gave you. "
      + "The first sign-in needs a network; after that the portal works offline."),
    form));
  username.focus();
}

/**
 * @param {HTMLElement} main
 * @param {(password: string) => Promise<void>} unlock
 * @param {() => Promise<void>} forget erases the copy ("not you?")
 */
export function renderUnlock(main, unlock, forget) {
  const password = h("input", { type: "password", name: "password",
    autocomplete: "current-password", required: true });
  const form = credentialsForm("Unlock", [
    field("unlock-password", "Password", password),
  ], () => unlock(value(password)));
  const other = h("button", { class: "button secondary small", type: "button", onclick: async () => {
    if (other.dataset.confirm !== "yes") {
      other.dataset.confirm = "yes";
      other.textContent = "Erase this phone's copy and sign in as someone else";
      return;
    }
    await forget();
  } }, "Not you?");
  replace(main, h("section", { class: "signin" },
    h("h2", {}, "Welcome back"),
    h("p", { class: "lead" }, "Your data on this phone is locked. Enter your password to open "
      + "it — no network is needed."),
    form,
    h("div", { class: "actions" }, other)));
  password.focus();
}

/**
 * @param {string} label
 * @param {HTMLElement[]} fields
 * @param {() => Promise<void>} submit
 */
function credentialsForm(label, fields, submit) {
  const problem = h("p", { class: "error", role: "alert" });
  const button = h("button", { class: "button", type: "submit" }, label);
  const form = h("form", { class: "card" }, ...fields, problem, h("div", { class: "actions" }, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    button.setAttribute("disabled", "");
    button.textContent = "Please wait…";
    let waitMs = 0;
    try {
      await submit();
    } catch (err) {
      problem.textContent = explain(err);
      waitMs = retryAfter(err);
    } finally {
      button.textContent = label;
      // The clinic asked to wait (too many attempts): the button waits as long.
      if (waitMs > 0) setTimeout(() => button.removeAttribute("disabled"), waitMs);
      else button.removeAttribute("disabled");
    }
  });
  return form;
}

/**
 * How long the server asked to wait before trying again (429 Retry-After), in ms.
 * @param {unknown} err
 */
export function retryAfter(err) {
  const e = /** @type {{code?: string, retryAfterMs?: number}} */ (err);
  return e?.code === "RATE_LIMITED" ? Math.max(1000, Number(e.retryAfterMs) || 0) : 0;
}

const MESSAGES = /** @type {Record<string, string>} */ ({
  UNAUTHORIZED: "Wrong username or password.",
  WRONG_PASSWORD: "That password does not open the data on this phone.",
  OFFLINE: "No network. The first sign-in needs one: try again when you are online.",
  SERVER_UNAVAILABLE: "The clinic's server cannot be reached. Try again in a moment.",
  REQUEST_TIMEOUT: "The network is too slow right now. Try again in a moment.",
  DEVICE_REVOKED: "This phone was signed out by the clinic. Sign in again.",
});

/**
 * What went wrong, for the person: the library's errors carry a `code`.
 * @param {unknown} err
 */
export function explain(err) {
  const code = /** @type {{code?: string}} */ (err)?.code;
  if (code === "RATE_LIMITED") {
    const seconds = Math.ceil(retryAfter(err) / 1000);
    return `Too many attempts. Try again in ${seconds} ${seconds === 1 ? "second" : "seconds"}.`;
  }
  if (code && MESSAGES[code]) return MESSAGES[code];
  return err instanceof Error ? err.message : String(err);
}

/** @param {HTMLElement} input */
function value(input) {
  return /** @type {HTMLInputElement} */ (input).value;
}
