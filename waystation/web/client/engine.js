// One sync step as a plain function: `syncOnce(local, transport) -> SyncResult`.
//
// Push the outbox, then pull the change feed. It never throws for a network, server or
// login failure: the result says what happened (`error`, `errorCode`) and the ops wait in
// the outbox. The auto-sync loop (live.js) and `Replica.sync` wrap it; tests call it with
// a transport of their own.

import {
  DeviceRevoked, Forbidden, LoginRequired, Offline, RateLimited, ReplicaClosed, WaystationError,
} from "./errors.js";
import { syncEvent } from "./events.js";
import { pullChanges, readPullState } from "./pull.js";
import { pushOutbox } from "./push.js";

export const BATCH_SIZE = 500;
// Pull pages as large as the server allows (it clamps `limit` to its maximum): each page
// costs a round trip and a transaction on the device.
export const PAGE_SIZE = 5000;
export const COLLECTIONS_MAX_AGE_MS = 24 * 3600 * 1000;
export const KEEP_SYNCED_MS = 7 * 24 * 3600 * 1000;
const DEFAULT_RATE_LIMIT_MS = 30_000;

/** Errors a person fixes by signing in again, not by waiting for the network. */
export const LOGIN_ERRORS = new Set(["LOGIN_REQUIRED", "DEVICE_REVOKED"]);

/**
 * Totals of one `syncOnce` run (entries left from earlier runs never count). `pushed` ops
 * were answered: applied + duplicates + conflicts + rejected. `failed` ops spent their last
 * retry in this run.
 */
export class SyncResult {
  constructor() {
    this.pushed = 0;
    this.applied = 0;
    this.duplicates = 0;
    this.conflicts = 0;
    this.rejected = 0;
    this.failed = 0;
    this.pulled = 0;
    this.bytesSent = 0;
    this.bytesReceived = 0;
    /** @type {string | null} */
    this.cursor = null;
    /** @type {string | null} */
    this.error = null;
    /** @type {string | null} */
    this.errorCode = null;
    /** @type {{opId: string, collection: string, recordId: string, status: string, code: string, message: string, details: Record<string, any>}[]} */
    this.issues = [];
    this.startedAt = new Date().toISOString();
    /** @type {string | null} */
    this.finishedAt = null;
  }

  /** Finished, and every op of this run went through. */
  get ok() {
    return this.error === null && !(this.conflicts || this.rejected || this.failed);
  }

  get offline() {
    return this.errorCode === "OFFLINE";
  }

  get needsLogin() {
    return this.errorCode !== null && LOGIN_ERRORS.has(this.errorCode);
  }

  /**
   * Record why the run could not finish (the first reason wins).
   * @param {string} code
   * @param {string} message
   */
  fail(code, message) {
    if (this.error === null) {
      this.error = message;
      this.errorCode = code;
    }
  }

  /** A JSON-ready copy of the totals (kept as the replica's last sync). */
  summary() {
    const { pushed, applied, duplicates, conflicts, rejected, failed, pulled, bytesSent,
      bytesReceived, cursor, error, errorCode, startedAt, finishedAt } = this;
    return { pushed, applied, duplicates, conflicts, rejected, failed, pulled, bytesSent,
      bytesReceived, cursor, error, errorCode, startedAt, finishedAt };
  }

  toJSON() {
    return { ...this.summary(), ok: this.ok, issues: this.issues };
  }
}

/**
 * @typedef {object} SyncOptions
 * @property {number | null} [maxItems] push at most this many ops, then pull
 * @property {boolean} [respectBackoff] leave ops waiting out a retry delay (auto sync)
 * @property {number} [batchSize]
 * @property {number} [pageSize]
 */

/**
 * Push pending ops (priority, then age), then pull every page. Only one sync of a replica
 * runs at a time in the whole browser; another returns at once with SYNC_IN_PROGRESS.
 * @param {import("./local.js").LocalReplica} local
 * @param {any} transport
 * @param {SyncOptions} [options]
 * @returns {Promise<SyncResult>}
 */
export async function syncOnce(local, transport, { maxItems = null, respectBackoff = false,
  batchSize = BATCH_SIZE, pageSize = PAGE_SIZE } = {}) {
  const result = new SyncResult();
  if (Date.now() < local.notBefore) {
    const seconds = Math.ceil((local.notBefore - Date.now()) / 1000);
    result.fail("RATE_LIMITED", `the server asked to wait ${seconds} s before syncing again`);
    return finish(local, result);
  }
  const ran = await local.exclusiveSync(async () => {
    await run(local, transport, result, { maxItems, respectBackoff, batchSize, pageSize });
    return true;
  }, false);
  if (!ran) result.fail("SYNC_IN_PROGRESS", "another sync of this replica is running");
  return finish(local, result);
}

/**
 * @param {import("./local.js").LocalReplica} local
 * @param {any} transport
 * @param {SyncResult} result
 * @param {Required<SyncOptions>} options
 */
async function run(local, transport, result, { maxItems, respectBackoff, batchSize, pageSize }) {
  await local.recoverSyncing();
  const counts = await local.counts();
  const toPush = maxItems === null ? counts.PENDING : Math.min(counts.PENDING, maxItems);
  local.events.emit(syncEvent("start", result, { pending: counts.PENDING + counts.SYNCING, toPush }));
  result.cursor = (await readPullState(local)).cursor;
  const phases = [
    () => refreshCollectionsQuietly(local, transport),
    () => pushOutbox(local, transport, result, { maxItems, respectBackoff, batchSize, toPush }),
    () => pullWhenSettled(local, transport, result, pageSize),
  ];
  for (const phase of phases) {
    try {
      await phase();
    } catch (error) {
      if (error instanceof DeviceRevoked) {
        result.fail(error.code, error.message);
        await revoked(local, error);
        return;
      }
      if (error instanceof RateLimited) {
        local.notBefore = Date.now() + (error.retryAfterMs || DEFAULT_RATE_LIMIT_MS);
        result.fail(error.code, error.message);
        return;
      }
      if (error instanceof Offline || error instanceof LoginRequired || error instanceof Forbidden
          || error instanceof ReplicaClosed) {
        result.fail(error.code, error.message);
        return;
      }
      if (error instanceof WaystationError) {
        // The server is up but failed this phase: record it and still try the next one.
        result.fail(error.code, error.message);
        continue;
      }
      // Not the network: the browser's storage failed (quota, a closed database).
      console.error("waystation: sync failed locally", error);
      result.fail("LOCAL_ERROR", `this browser could not store the sync: ${/** @type {any} */ (error)?.message || error}`);
      return;
    }
  }
  await local.pruneSynced(Date.now() - KEEP_SYNCED_MS);
}

/**
 * Pull, unless an op whose answer was lost is still unsettled: the pulled copy may
 * already contain it, and the overlay would then count it twice. The next sync resends it
 * first (the server answers `duplicate`) and pulls then.
 * @param {import("./local.js").LocalReplica} local
 * @param {any} transport
 * @param {SyncResult} result
 * @param {number} pageSize
 */
async function pullWhenSettled(local, transport, result, pageSize) {
  if (await local.hasOpsInDoubt()) {
    result.fail("OPS_IN_DOUBT", "some ops reached the server without their answer coming back; "
      + "the pull waits until the next sync settles them");
    return;
  }
  await pullChanges(local, transport, result, { pageSize });
}

/**
 * Cache the server's collections (priority, counters, policy) from /v1/sync/status, give
 * unsynced ops their collection's priority, and learn the offset to the server's time.
 * Skipped while the cache is younger than `maxAgeMs`.
 * @param {import("./local.js").LocalReplica} local
 * @param {any} transport
 * @param {{maxAgeMs?: number}} [options]
 */
export async function refreshCollections(local, transport, { maxAgeMs = 0 } = {}) {
  const cached = await local.readMeta("collections", null);
  if (maxAgeMs && cached && Date.now() - cached.fetchedAt < maxAgeMs) return;
  const { body, sentAtMs, receivedAtMs } = await transport.status();
  /** @type {Record<string, {priority: number, policy: string | null, counters: string[]}>} */
  const byName = {};
  for (const c of Array.isArray(body.collections) ? body.collections : []) {
    if (c && typeof c === "object" && typeof c.name === "string") {
      byName[c.name] = { priority: Number(c.priority || 0), policy: c.policy ?? null, counters: c.counters || [] };
    }
  }
  await local.mutate(async (m) => {
    m.setMeta("collections", { fetchedAt: Date.now(), byName });
    await local.setPriorities(m, Object.fromEntries(Object.entries(byName).map(([k, v]) => [k, v.priority])));
    await local.observeServer(m, body.server_hlc, sentAtMs, receivedAtMs);
  });
}

/**
 * Priorities are an optimisation: a server failing /status must not fail the sync (but
 * being offline or signed out still ends it early and cheaply).
 * @param {import("./local.js").LocalReplica} local
 * @param {any} transport
 */
async function refreshCollectionsQuietly(local, transport) {
  try {
    await refreshCollections(local, transport, { maxAgeMs: COLLECTIONS_MAX_AGE_MS });
  } catch (error) {
    if (error instanceof Offline || error instanceof LoginRequired || error instanceof DeviceRevoked
        || error instanceof Forbidden || error instanceof RateLimited || !(error instanceof WaystationError)) {
      throw error;
    }
    console.warn("waystation: could not refresh collection priorities:", error.message);
  }
}

/**
 * A revoked device forgets its sign-in; asked to wipe, it erases everything.
 * @param {import("./local.js").LocalReplica} local
 * @param {DeviceRevoked} error
 */
async function revoked(local, error) {
  if (error.details.wipe) await local.wipe();
  else await local.clearTokens();
}

/**
 * @param {import("./local.js").LocalReplica} local
 * @param {SyncResult} result
 */
async function finish(local, result) {
  result.finishedAt = new Date().toISOString();
  if (result.errorCode !== "SYNC_IN_PROGRESS" && !local.db.closed) {
    await local.mutate(async (m) => {
      m.setMeta("lastSync", result.summary());
      if (result.error === null) m.setMeta("lastSyncAt", result.finishedAt);
    });
  }
  const pending = local.db.closed ? 0 : await local.pendingCount();
  local.events.emit(syncEvent("done", result, { pending }));
  return result;
}
