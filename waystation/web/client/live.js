// Keep a replica in sync while a page is open: the loop around `syncOnce`.
//
// It syncs
//   - when the browser comes back online (the `online` event),
//   - every `intervalMs` while online,
//   - shortly after a local write (debounced, so a form that writes three records syncs once),
//   - when an op's retry delay ends, and when the server's Retry-After (429) has passed,
//   - live: it follows GET /v1/sync/events with fetch streaming (EventSource cannot send an
//     Authorization header) and syncs as soon as the server says changes exist,
//   - when the app asks (`soon()`: a "Sync now" button, a service worker's Background Sync
//     message).
// While the browser is offline it does nothing (no request can leave) and waits for the
// `online` event. It stops by itself when the replica needs a new sign-in or was wiped.

import { DeviceRevoked, LoginRequired, Unauthorized } from "./errors.js";
import { LOGIN_ERRORS } from "./engine.js";
import { readPullState } from "./pull.js";

const MAX_TIMER_MS = 2 ** 31 - 1;
/** Failures worth another try within seconds, not at the next interval. */
const SOON_AGAIN = new Set(["OPS_IN_DOUBT", "SERVER_UNAVAILABLE", "REQUEST_TIMEOUT"]);

/** @param {number} ms @param {AbortSignal} signal */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve(undefined);
    }, { once: true });
  });
}

export class AutoSync {
  /**
   * @param {import("./replica.js").Replica} replica
   * @param {{intervalMs?: number, live?: boolean, debounceMs?: number}} [options]
   */
  constructor(replica, { intervalMs = 60_000, live = true, debounceMs = 1000 } = {}) {
    this.replica = replica;
    this.intervalMs = intervalMs;
    this.live = live;
    this.debounceMs = debounceMs;
    this.running = false;
    this.syncing = false;
    this.again = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.dueAt = Infinity;
    /** @type {AbortController | null} */
    this.stopper = null;
    /** @type {(() => void)[]} */
    this.cleanup = [];
  }

  /** Start the loop (idempotent); syncs at once. */
  start() {
    if (this.running) return;
    this.running = true;
    this.stopper = new AbortController();
    const online = () => {
      this.replica.local.events.emit({ type: "network", online: true });
      this.soon(0);
    };
    const offline = () => this.replica.local.events.emit({ type: "network", online: false });
    if (typeof addEventListener === "function") {
      addEventListener("online", online);
      addEventListener("offline", offline);
      this.cleanup.push(() => {
        removeEventListener("online", online);
        removeEventListener("offline", offline);
      });
    }
    this.cleanup.push(this.replica.subscribe((event) => {
      if (event.type === "change" && event.source === "local") this.soon(this.debounceMs);
      if (event.type === "wiped") this.stop();
    }));
    if (this.live) this.listen(this.stopper.signal);
    this.soon(0);
  }

  /** Stop the loop and the live stream. */
  stop() {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.timer);
    this.dueAt = Infinity;
    if (this.stopper) this.stopper.abort();
    for (const undo of this.cleanup.splice(0)) undo();
  }

  /**
   * Sync within `delayMs` (an earlier request wins; a sync running now is followed by
   * another).
   * @param {number} [delayMs]
   */
  soon(delayMs = 0) {
    if (!this.running) return;
    const at = Date.now() + Math.max(0, delayMs);
    if (at >= this.dueAt) return;
    clearTimeout(this.timer);
    this.dueAt = at;
    this.timer = setTimeout(() => {
      this.dueAt = Infinity;
      this.tick();
    }, Math.min(Math.max(0, delayMs), MAX_TIMER_MS));
  }

  async tick() {
    if (!this.running) return;
    if (this.syncing) {
      this.again = true;
      return;
    }
    if (globalThis.navigator && navigator.onLine === false) return; // the online event wakes us
    this.syncing = true;
    let result = null;
    try {
      result = await this.replica.sync({ respectBackoff: true });
    } catch (error) {
      console.error("waystation: auto sync failed", error);
    } finally {
      this.syncing = false;
    }
    if (!this.running) return;
    if (result && result.errorCode && LOGIN_ERRORS.has(result.errorCode)) {
      this.stop();
      return;
    }
    if (this.again) {
      this.again = false;
      this.soon(0);
      return;
    }
    this.soon(await this.nextDelay(result));
  }

  /**
   * When to sync next: the interval, or sooner when an op's retry delay or the server's
   * Retry-After ends first.
   * @param {import("./engine.js").SyncResult | null} result
   */
  async nextDelay(result) {
    let delay = this.intervalMs;
    const local = this.replica.local;
    if (result && result.errorCode === "RATE_LIMITED") delay = Math.max(1000, local.notBefore - Date.now());
    if (result && result.errorCode && SOON_AGAIN.has(result.errorCode)) {
      delay = Math.min(delay, 5000);
    }
    try {
      for (const entry of await local.entries({ status: "PENDING" })) {
        if (entry.nextAttemptAt) delay = Math.min(delay, Math.max(250, entry.nextAttemptAt - Date.now()));
      }
    } catch {
      // closed meanwhile
    }
    return delay;
  }

  /**
   * Follow the server's live change notices until stopped; reconnect with backoff.
   * @param {AbortSignal} signal
   */
  async listen(signal) {
    const events = this.replica.local.events;
    let failures = 0;
    while (!signal.aborted) {
      if (globalThis.navigator && navigator.onLine === false) {
        await new Promise((resolve) => {
          addEventListener("online", resolve, { once: true });
          signal.addEventListener("abort", resolve, { once: true });
        });
        continue;
      }
      let opened = false;
      const startedAt = Date.now();
      try {
        const { cursor } = await readPullState(this.replica.local);
        await this.replica.transport.events(cursor, {
          signal,
          onOpen: () => {
            opened = true;
            failures = 0;
            events.emit({ type: "live", connected: true });
          },
          onChanges: () => this.soon(0),
        });
      } catch (error) {
        if (error instanceof DeviceRevoked) {
          this.soon(0); // the sync reports it (and wipes when asked)
          return;
        }
        if (error instanceof LoginRequired || error instanceof Unauthorized) this.soon(0); // the sync refreshes the token
        failures += 1;
      } finally {
        if (opened) events.emit({ type: "live", connected: false });
      }
      if (!failures && Date.now() - startedAt < 1000) failures = 1; // ended at once: do not spin
      if (signal.aborted || this.replica.local.db.closed) return;
      // The server ends a stream after ~5 minutes: reconnect at once; after a failure, back off.
      if (failures) await sleep(Math.min(60_000, 1000 * 2 ** Math.min(failures - 1, 6)), signal);
    }
  }
}
