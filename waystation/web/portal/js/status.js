// The status indicator, fixed in the top right corner of every page: one of four states,
// always in words as well as colour —
//   online    "Synced" (nothing waiting) or "Online" (entries waiting to be sent)
//   offline   "Offline" (no network, or the clinic's server cannot be reached)
//   syncing   "Syncing…" with a progress bar
//   attention "Needs attention" (an entry was refused or conflicts, or sign-in is needed)
// plus how many entries wait, and, when tapped, the last sync and a "Sync now" button.

import { byId } from "./dom.js";
import { ago, plural } from "./format.js";
import { LOGIN_CODES, Session } from "./session.js";

// The last sync could not reach the server, or reached it without an answer it could use.
const UNREACHABLE = new Set(["OFFLINE", "SERVER_UNAVAILABLE", "REQUEST_TIMEOUT", "OPS_IN_DOUBT",
  "RATE_LIMITED"]);

/**
 * @typedef {import("./session.js").Status} Counts
 */

export class StatusIndicator {
  /** @param {() => void} syncNow */
  constructor(syncNow) {
    this.root = byId("status");
    this.label = byId("status-label");
    this.waiting = byId("status-waiting");
    this.progress = /** @type {HTMLProgressElement} */ (byId("sync-progress"));
    this.panel = byId("status-panel");
    this.detail = byId("status-detail");
    this.lastLine = byId("status-last");
    this.issuesLink = byId("status-issues");
    /** @type {Counts} */
    this.counts = {};
    this.syncing = false;
    /** @type {string | null} */
    this.errorCode = null;
    /** @type {string | null} */
    this.errorMessage = null;

    const toggle = byId("status-toggle");
    toggle.addEventListener("click", () => {
      const open = this.panel.hidden;
      this.panel.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
    });
    byId("sync-now").addEventListener("click", syncNow);
    this.issuesLink.addEventListener("click", () => { this.panel.hidden = true; });
    window.addEventListener("online", () => this.draw());
    window.addEventListener("offline", () => this.draw());
    this.draw();
  }

  /** @param {Counts} counts from the replica's status() */
  setCounts(counts) {
    this.counts = counts;
    this.draw();
  }

  /**
   * A sync event of the library: phase start / push / pull while it runs, done at the end
   * (with errorCode when it could not finish).
   * @param {import("./session.js").ReplicaEvent} event
   */
  onSync(event) {
    this.syncing = event.phase !== "done";
    if (event.phase === "done") {
      this.errorCode = event.errorCode ?? null;
      this.errorMessage = event.error ?? null;
    } else if (event.phase === "push" && event.toPush) {
      this.progress.max = event.toPush;
      this.progress.value = Math.min(event.pushed ?? 0, event.toPush);
    } else {
      this.progress.removeAttribute("value"); // indeterminate: a pull's size is not known
    }
    this.draw();
  }

  /** Whether an entry made now would wait on this phone for a network. */
  get offline() {
    return this.state() === "offline" || !navigator.onLine;
  }

  /** The phone must sign in again before it can sync (see Session.loginNeeded). */
  get loginNeeded() {
    return LOGIN_CODES.has(this.errorCode ?? "")
      || (this.errorCode === null && Session.loginNeeded(this.counts));
  }

  state() {
    const c = this.counts;
    const problems = (c.rejected ?? 0) + (c.conflicts ?? 0) + (c.failed ?? 0);
    if (problems > 0 || this.loginNeeded) return "attention";
    if (this.syncing) return "syncing";
    if (!navigator.onLine || UNREACHABLE.has(this.errorCode ?? "")) return "offline";
    return "online";
  }

  draw() {
    const state = this.state();
    const pending = this.counts.pending ?? 0;
    const problems = (this.counts.rejected ?? 0) + (this.counts.conflicts ?? 0) + (this.counts.failed ?? 0);
    this.root.dataset.state = state;
    this.root.dataset.pending = String(pending);
    this.label.textContent = {
      online: pending ? "Online" : "Synced",
      offline: "Offline",
      syncing: "Syncing…",
      attention: "Needs attention",
    }[state];
    this.waiting.hidden = pending === 0;
    this.waiting.textContent = `· ${pending} waiting`;
    this.progress.hidden = state !== "syncing";
    this.issuesLink.hidden = problems === 0 && !this.loginNeeded;
    this.detail.textContent = this.explain(state, pending, problems);
    this.lastLine.textContent = `Last synced: ${ago(this.counts.lastSyncAt)}`;
  }

  /** @param {string} state @param {number} pending @param {number} problems */
  explain(state, pending, problems) {
    const waiting = pending
      ? `${plural(pending, "entry is", "entries are")} saved on this phone, waiting to be sent.`
      : "Everything you entered has reached the clinic.";
    if (this.loginNeeded) {
      return this.errorCode === "DEVICE_REVOKED"
        ? `This phone was signed out by the clinic: sign in again to keep syncing. ${waiting}`
        : `Please sign in again to keep syncing. ${waiting}`;
    }
    if (problems) return `${plural(problems, "entry needs", "entries need")} your attention. ${pending ? waiting : ""}`;
    if (state === "offline") {
      return `${navigator.onLine ? "The clinic cannot be reached right now." : "No network."} ${waiting}`;
    }
    if (state === "syncing") return "Sending and receiving…";
    return waiting;
  }
}
