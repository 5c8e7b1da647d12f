// When the portal syncs. The library's auto loop (Replica.startAuto) syncs when the
// network comes back (`online`), every minute, shortly after each local change, and at
// once when the server tells of new changes (live, /v1/sync/events). This module adds what
// only a page can: the service worker's Background Sync relayed by postMessage (the worker
// cannot decrypt the replica, so it asks an open page), the page coming back to the front,
// and the "Sync now" button.

const SYNC_TAG = "waystation-outbox";

export class Syncer {
  /** @param {import("./session.js").Session} session */
  constructor(session) {
    this.session = session;
    /** @type {Array<() => void>} */
    this.stops = [];
  }

  start() {
    const session = this.session;
    const onMessage = (/** @type {MessageEvent} */ event) => {
      if (event.data && event.data.type === "sync") session.syncSoon();
    };
    const onVisible = () => { if (document.visibilityState === "visible") session.syncSoon(); };
    document.addEventListener("visibilitychange", onVisible);
    navigator.serviceWorker?.addEventListener("message", onMessage);
    const unsubscribe = session.subscribe((event) => {
      // Saved while offline: ask the browser to wake the service worker when the network
      // returns, even if this page is closed by then and reopened later.
      if (event.type === "change" && event.source === "local" && !navigator.onLine) {
        void registerBackgroundSync();
      }
    });
    this.stops.push(() => document.removeEventListener("visibilitychange", onVisible),
      () => navigator.serviceWorker?.removeEventListener("message", onMessage), unsubscribe,
      () => session.stopAuto());
    session.startAuto();
  }

  /** "Sync now". */
  now() {
    this.session.syncSoon();
  }

  stop() {
    for (const stop of this.stops.splice(0)) stop();
  }
}

/** Chromium has Background Sync; elsewhere the `online` event and the interval do the job. */
async function registerBackgroundSync() {
  try {
    const registration = await navigator.serviceWorker?.getRegistration();
    const sync = /** @type {any} */ (registration)?.sync;
    if (sync) await sync.register(SYNC_TAG);
  } catch {
    // Not allowed here (permission, or no worker yet): the other triggers still sync.
  }
}
