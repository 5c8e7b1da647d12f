// The push half of a sync: outbox batches out, one verdict per op back.
//
// Each batch is marked SYNCING in one transaction before it leaves and gets its verdicts
// in one transaction after the answer, so a page closed at any point leaves either
// PENDING/SYNCING ops (resent, deduplicated by the server) or recorded verdicts — never a
// lost or doubled op. A failed request spends one retry of each op only when the server
// may have seen it (5xx, timeout, 408, 429); being offline spends nothing. When fetch fails
// or a 5xx comes back, the request may have been applied: the ops go back PENDING *in
// doubt*, and the pull waits until a resend settles them. A 408 (the body came too
// slowly) or a 429 (wait for Retry-After, a floor under the backoff) says the server did
// not take the request, so they leave the ops as they were, not in doubt.

import {
  DeviceRevoked, Forbidden, LoginRequired, Offline, PayloadTooLarge, RateLimited, RequestTimeout,
  WaystationError,
} from "./errors.js";
import { syncEvent } from "./events.js";
import * as outbox from "./outbox.js";

const { OpStatus } = outbox;

/**
 * @typedef {import("./local.js").LocalReplica} LocalReplica
 * @typedef {import("./local.js").Mutation} Mutation
 * @typedef {import("./outbox.js").OutboxEntry} OutboxEntry
 */

/**
 * Push PENDING ops until none is left (or `maxItems` were sent). Throws the transport's
 * error after putting the batch back (offline, login) or spending a retry of each op.
 * @param {LocalReplica} local
 * @param {any} transport a Transport (transport.js)
 * @param {import("./engine.js").SyncResult} result
 * @param {{maxItems: number | null, respectBackoff: boolean, batchSize: number, toPush: number}} options
 */
export async function pushOutbox(local, transport, result, { maxItems, respectBackoff, batchSize, toPush }) {
  let remaining = maxItems;
  let size = Math.max(1, batchSize);
  while (remaining === null || remaining > 0) {
    const limit = remaining === null ? size : Math.min(size, remaining);
    const batch = await local.takeBatch(limit, respectBackoff ? Date.now() : Infinity);
    if (!batch.length) return;
    let answer;
    try {
      answer = await transport.push(local.deviceId, batch.map(outbox.toChange));
    } catch (error) {
      if (error instanceof PayloadTooLarge) {
        if (batch.length > 1) {
          await local.putBack(batch);
          size = Math.max(1, Math.floor(batch.length / 2));
          continue;
        }
        await rejectAlone(local, batch[0], error, result);
        continue;
      }
      if (error instanceof Offline) {
        await local.putBack(batch, { inDoubt: error.details.sent !== false });
      } else if (error instanceof LoginRequired || error instanceof DeviceRevoked || error instanceof Forbidden) {
        await local.putBack(batch);
      } else if (error instanceof WaystationError) {
        const floorMs = error instanceof RateLimited ? error.retryAfterMs : 0;
        const refused = error instanceof RateLimited || error instanceof RequestTimeout;
        await local.mutate(async (m) => {
          await spendRetry(local, m, batch, errorDict(error), result, floorMs, !refused);
        }, "verdict");
      } else {
        await local.putBack(batch, { inDoubt: true });
      }
      throw error;
    }
    await recordAnswer(local, batch, answer, result);
    if (remaining !== null) remaining -= batch.length;
    local.events.emit(syncEvent("push", result, {
      pending: await local.pendingCount(), toPush: Math.max(toPush, result.pushed),
    }));
  }
}

/** @param {WaystationError} error */
function errorDict(error) {
  return { code: error.code, message: error.message, details: error.details };
}

/**
 * Spend one retry of each op: back to PENDING after the policy's delay, or FAILED once
 * the retries are spent; in doubt when the server may have applied them. Later ops of a record whose op just FAILED, sent
 * with it or in doubt, share its fate (they could not overtake it anyway).
 * @param {LocalReplica} local
 * @param {Mutation} m
 * @param {OutboxEntry[]} entries
 * @param {{code: string, message: string, details: Record<string, any>}} error
 * @param {import("./engine.js").SyncResult} result
 * @param {number} [floorMs] a 429's Retry-After
 * @param {boolean} [inDoubt] the server may have applied them (not after a 408 or 429)
 */
async function spendRetry(local, m, entries, error, result, floorMs = 0, inDoubt = true) {
  const policy = local.retryPolicy;
  const now = Date.now();
  /** @type {Map<string, number>} record key -> seq of its FAILED op */
  const failedAt = new Map();
  const ordered = [...entries].sort((a, b) => Number(a.seq) - Number(b.seq));
  for (const e of ordered) {
    const key = `${e.collection}\u0000${e.recordId}`;
    const retries = e.retryCount + 1;
    const fails = failedAt.has(key) || retries >= policy.maxRetries;
    m.putEntry({
      ...e, status: fails ? OpStatus.FAILED : OpStatus.PENDING, retryCount: retries,
      nextAttemptAt: now + policy.delayMs(retries, floorMs), lastError: error,
      inDoubt: Boolean(e.inDoubt) || inDoubt,
    });
    if (fails) {
      result.failed += 1;
      result.issues.push(issue(e, OpStatus.FAILED, error));
      if (!failedAt.has(key)) failedAt.set(key, Number(e.seq));
    }
  }
  const inBatch = new Set(entries.map((e) => e.seq));
  for (const [key, seq] of failedAt) {
    const [c, i] = key.split("\u0000");
    for (const row of await m.recordRows(c, i)) {
      if (inBatch.has(row.seq) || Number(row.seq) <= seq) continue;
      if (row.s === OpStatus.SYNCING || (row.s === OpStatus.PENDING && row.d === 1)) {
        const follower = await m.entry(row);
        m.putEntry({ ...follower, status: OpStatus.FAILED, lastError: error });
        result.failed += 1;
        result.issues.push(issue(follower, OpStatus.FAILED, error));
      }
    }
  }
}

/**
 * One op too large for any request can never succeed: REJECTED with the server's error.
 * @param {LocalReplica} local
 * @param {OutboxEntry} entry
 * @param {WaystationError} error
 * @param {import("./engine.js").SyncResult} result
 */
async function rejectAlone(local, entry, error, result) {
  const verdict = { status: "rejected", error: errorDict(error) };
  await local.mutate(async (m) => {
    m.putEntry(outbox.withVerdict(entry, verdict));
    m.refreshLater(entry.collection, entry.recordId);
  }, "verdict");
  result.pushed += 1;
  result.rejected += 1;
  result.issues.push(issue(entry, OpStatus.REJECTED, errorDict(error)));
}

/**
 * Store the server's answer: every verdict, the records they touch, the server's clock.
 * @param {LocalReplica} local
 * @param {OutboxEntry[]} batch
 * @param {import("./transport.js").PushAnswer} answer
 * @param {import("./engine.js").SyncResult} result
 */
async function recordAnswer(local, batch, answer, result) {
  /** @type {Map<string, any>} */
  const byOp = new Map();
  for (const r of answer.results) if (r && typeof r === "object") byOp.set(r.op_id, r);
  await local.mutate(async (m) => {
    /** @type {OutboxEntry[]} */
    const unanswered = [];
    for (const e of batch) {
      const verdict = byOp.get(e.opId);
      let next;
      try {
        next = outbox.withVerdict(e, verdict || {});
      } catch {
        unanswered.push(e);
        continue;
      }
      m.putEntry(next);
      m.refreshLater(e.collection, e.recordId);
      result.pushed += 1;
      if (next.status === OpStatus.SYNCED) {
        if (verdict.status === "duplicate") result.duplicates += 1;
        else result.applied += 1;
      } else {
        if (next.status === OpStatus.CONFLICT) result.conflicts += 1;
        else result.rejected += 1;
        result.issues.push(issue(e, next.status, /** @type {any} */ (next.lastError)));
      }
    }
    if (unanswered.length) {
      await spendRetry(local, m, unanswered,
        { code: "NO_RESULT", message: "the server gave no result for this op", details: {} }, result);
    }
    await local.observeServer(m, answer.serverHlc, answer.sentAtMs, answer.receivedAtMs);
  }, "verdict");
  result.bytesSent += answer.bytesSent;
  result.bytesReceived += answer.bytesReceived;
}

/**
 * @param {OutboxEntry} e
 * @param {string} status
 * @param {{code: string, message: string, details: Record<string, any>}} error
 */
export function issue(e, status, error) {
  return {
    opId: e.opId, collection: e.collection, recordId: e.recordId, status,
    code: String(error?.code ?? "UNKNOWN"), message: String(error?.message ?? ""),
    details: error?.details || {},
  };
}
