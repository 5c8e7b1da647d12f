// Events a UI follows: sync progress, records that changed, live-connection state.
//
// A listener subscribed with `Replica.subscribe` receives plain objects:
//   {type: "sync", phase: "start"|"push"|"pull"|"done", pending, toPush, pushed, pulled,
//    bytesSent, bytesReceived, conflicts, rejected, error, errorCode}
//   {type: "change", source: "local"|"pull"|"verdict"|"other-tab", collections: [...]}
//   {type: "live", connected}          the /v1/sync/events stream opened or closed
//   {type: "network", online}          the browser's online/offline events (auto sync)
//   {type: "wiped"}                    the replica was erased (sign-out, remote wipe)
// Listeners run synchronously where the event happens: keep them quick. One that throws is
// reported on the console and skipped, never allowed to break a sync.

/** @typedef {Record<string, any> & {type: string}} ReplicaEvent */
/** @typedef {(event: ReplicaEvent) => void} Listener */

export class EventHub {
  constructor() {
    /** @type {Set<Listener>} */
    this.listeners = new Set();
  }

  /**
   * Register `listener`; returns a function that unsubscribes it.
   * @param {Listener} listener
   * @returns {() => void}
   */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** @param {ReplicaEvent} event */
  emit(event) {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (error) {
        console.error("waystation: an event listener failed", error);
      }
    }
  }
}

/**
 * A sync event carrying the run's totals so far.
 * @param {"start"|"push"|"pull"|"done"} phase
 * @param {import("./engine.js").SyncResult} result
 * @param {{pending: number, toPush?: number}} counts
 * @returns {ReplicaEvent}
 */
export function syncEvent(phase, result, { pending, toPush = 0 }) {
  return {
    type: "sync",
    phase,
    pending,
    toPush,
    pushed: result.pushed,
    pulled: result.pulled,
    bytesSent: result.bytesSent,
    bytesReceived: result.bytesReceived,
    conflicts: result.conflicts,
    rejected: result.rejected,
    error: phase === "done" ? result.error : null,
    errorCode: phase === "done" ? result.errorCode : null,
  };
}
