// The durable outbox: every local write as an op waiting for (or holding) its verdict.
//
//     PENDING ──push──▶ SYNCING ──answer──▶ SYNCED | CONFLICT | REJECTED
//        ▲                 │
//        │                 ├── no answer, retries left ──▶ PENDING (retryCount + 1, backoff)
//        │                 └── no answer, retries spent ─▶ FAILED ──retryFailed()──┐
//        └──────── page closed mid-sync: SYNCING found by the next sync ◀───────────┘
//
// An op sent without an answer coming back (a lost answer, a 5xx, a page closed mid-push)
// is *in doubt*: the server may have applied it. The engine holds the pull back until a
// resend settles it (the server answers `duplicate`), because a pulled copy that already
// contains an op plus the same op replayed on top would count it twice.
//
// Push order: higher collection priority first, then age (seq). An op is held back while
// an earlier op of its record is FAILED, in flight, or waiting out its backoff, so a partial
// update never overtakes the create it depends on.
//
// This module is pure: it turns entries into stored rows and back, and picks batches from
// the rows' clear bookkeeping. local.js runs it inside transactions.

export const OpStatus = Object.freeze({
  PENDING: "PENDING",
  SYNCING: "SYNCING",
  SYNCED: "SYNCED",
  FAILED: "FAILED",
  CONFLICT: "CONFLICT",
  REJECTED: "REJECTED",
});
export const STATUSES = Object.values(OpStatus);

/**
 * @typedef {object} OutboxEntry  one op and where it stands
 * @property {number} [seq] push order (set when stored)
 * @property {string} opId
 * @property {string} collection
 * @property {string} recordId
 * @property {"upsert"|"delete"|"increment"} op
 * @property {Record<string, any>} fields
 * @property {string} hlc
 * @property {number} baseVersion
 * @property {number} priority
 * @property {string} status
 * @property {number} retryCount
 * @property {number | null} nextAttemptAt epoch ms, after a failed attempt
 * @property {{code: string, message: string, details: Record<string, any>} | null} lastError
 * @property {string} createdAt RFC 3339
 * @property {string | null} ackedAt RFC 3339
 * @property {number | null} resultVersion the record's version after the op (SYNCED)
 * @property {string[]} superseded fields that did not take effect (SYNCED)
 * @property {string | null} conflictId (CONFLICT)
 * @property {boolean} inDoubt sent without an answer
 */

/**
 * @typedef {object} OutboxRow  an entry as stored: bookkeeping in clear, the op sealed
 * @property {number} [seq]
 * @property {string} id op id
 * @property {string} s status
 * @property {string} c collection
 * @property {string} i record id
 * @property {number} p priority
 * @property {number} n next attempt (epoch ms, 0 = now)
 * @property {number} r retry count
 * @property {number} d 1 when in doubt
 * @property {number} rv acknowledged version (0 until SYNCED)
 * @property {number} a acknowledged at (epoch ms, 0 until answered)
 * @property {Uint8Array<ArrayBuffer>} v the sealed op
 */

/** @param {number} ms */
export function rfc3339(ms) {
  return new Date(ms).toISOString();
}

/**
 * A new PENDING entry.
 * @param {{opId: string, collection: string, recordId: string, op: OutboxEntry["op"],
 *          fields: Record<string, any>, hlc: string, baseVersion: number, priority: number,
 *          nowMs?: number}} op
 * @returns {OutboxEntry}
 */
export function newEntry({ opId, collection, recordId, op, fields, hlc, baseVersion, priority, nowMs = Date.now() }) {
  return {
    opId, collection, recordId, op, fields, hlc, baseVersion, priority,
    status: OpStatus.PENDING,
    retryCount: 0,
    nextAttemptAt: null,
    lastError: null,
    createdAt: rfc3339(nowMs),
    ackedAt: null,
    resultVersion: null,
    superseded: [],
    conflictId: null,
    inDoubt: false,
  };
}

/** @param {string} opId */
export function aadOf(opId) {
  return `outbox|${opId}`;
}

/**
 * The sealed part of an entry.
 * @param {OutboxEntry} e
 */
function secretOf(e) {
  return {
    op: e.op, fields: e.fields, hlc: e.hlc, baseVersion: e.baseVersion, lastError: e.lastError,
    createdAt: e.createdAt, superseded: e.superseded, conflictId: e.conflictId,
  };
}

/**
 * An entry as stored.
 * @param {import("./db.js").LocalDB} db
 * @param {OutboxEntry} e
 * @returns {Promise<OutboxRow>}
 */
export async function toRow(db, e) {
  /** @type {OutboxRow} */
  const row = {
    id: e.opId, s: e.status, c: e.collection, i: e.recordId, p: e.priority,
    n: e.nextAttemptAt || 0, r: e.retryCount, d: e.inDoubt ? 1 : 0, rv: e.resultVersion || 0,
    a: e.ackedAt ? Date.parse(e.ackedAt) : 0, v: await db.seal(aadOf(e.opId), secretOf(e)),
  };
  if (e.seq !== undefined) row.seq = e.seq;
  return row;
}

/**
 * A stored row as an entry.
 * @param {import("./db.js").LocalDB} db
 * @param {OutboxRow} row
 * @returns {Promise<OutboxEntry>}
 */
export async function fromRow(db, row) {
  const secret = await db.unseal(aadOf(row.id), row.v);
  return {
    seq: row.seq,
    opId: row.id,
    collection: row.c,
    recordId: row.i,
    op: secret.op,
    fields: secret.fields,
    hlc: secret.hlc,
    baseVersion: secret.baseVersion,
    priority: row.p,
    status: row.s,
    retryCount: row.r,
    nextAttemptAt: row.n || null,
    lastError: secret.lastError,
    createdAt: secret.createdAt,
    ackedAt: row.a ? rfc3339(row.a) : null,
    resultVersion: row.s === OpStatus.SYNCED ? row.rv : null,
    superseded: secret.superseded || [],
    conflictId: secret.conflictId,
    inDoubt: row.d === 1,
  };
}

/**
 * The op as protocol v1 pushes it.
 * @param {OutboxEntry} e
 */
export function toChange(e) {
  return {
    op_id: e.opId,
    collection: e.collection,
    record_id: e.recordId,
    op: e.op,
    fields: e.fields,
    hlc: e.hlc,
    base_version: e.baseVersion,
    created_at_client: e.createdAt,
  };
}

/**
 * Whether an op still shows in the record the app reads, over a server copy at
 * `serverVersion`: unsynced ops, and SYNCED ops the pulled copy has not caught up with
 * (so an edit does not flicker back between the push answer and the next pull).
 * CONFLICT and REJECTED ops are the server's verdict that the op did not take effect.
 * @param {{s: string, rv: number}} row
 * @param {number} serverVersion
 */
export function overlays(row, serverVersion) {
  if (row.s === OpStatus.PENDING || row.s === OpStatus.SYNCING || row.s === OpStatus.FAILED) return true;
  return row.s === OpStatus.SYNCED && row.rv > serverVersion;
}

/**
 * The next PENDING rows to push, in push order, at most `limit`. With `dueMs`, rows still
 * waiting out a backoff are skipped (and hold back the later ops of their record).
 * @template {{seq?: number, s: string, c: string, i: string, p: number, n: number}} R
 * @param {R[]} rows every row that is PENDING, SYNCING or FAILED
 * @param {number} limit
 * @param {number} [dueMs] Infinity: an explicit sync tries every PENDING op now
 * @returns {R[]}
 */
export function pickBatch(rows, limit, dueMs = Infinity) {
  const bySeq = [...rows].sort((a, b) => Number(a.seq) - Number(b.seq));
  /** @type {Set<string>} */
  const blocked = new Set();
  /** @type {R[]} */
  const ready = [];
  for (const row of bySeq) {
    const key = `${row.c}\u0000${row.i}`;
    if (blocked.has(key)) continue;
    const waiting = row.s === OpStatus.PENDING && row.n > dueMs;
    if (row.s === OpStatus.FAILED || row.s === OpStatus.SYNCING || waiting) {
      blocked.add(key);
      continue;
    }
    if (row.s === OpStatus.PENDING) ready.push(row);
  }
  ready.sort((a, b) => b.p - a.p || Number(a.seq) - Number(b.seq));
  return ready.slice(0, limit);
}

/**
 * The error of a conflict or rejection, in one shape.
 * @param {any} result
 * @returns {{code: string, message: string, details: Record<string, any>}}
 */
export function errorOf(result) {
  const error = result && typeof result.error === "object" && result.error ? result.error : null;
  if (!error) return { code: "UNKNOWN", message: "the server gave no reason", details: {} };
  return {
    code: String(error.code ?? "UNKNOWN"),
    message: String(error.message ?? ""),
    details: error.details && typeof error.details === "object" ? error.details : {},
  };
}

/**
 * The entry after the server's verdict; throws TypeError for an unknown status.
 * @param {OutboxEntry} e
 * @param {any} result one result of a push answer
 * @param {number} [nowMs]
 * @returns {OutboxEntry}
 */
export function withVerdict(e, result, nowMs = Date.now()) {
  const status = result && result.status;
  const acked = rfc3339(nowMs);
  if (status === "applied" || status === "duplicate") {
    return {
      ...e,
      status: OpStatus.SYNCED,
      ackedAt: acked,
      resultVersion: Number(result.version || 0),
      superseded: Array.isArray(result.superseded) ? result.superseded : [],
      hlc: result.restamped && typeof result.hlc === "string" ? result.hlc : e.hlc,
      lastError: null,
      nextAttemptAt: null,
      inDoubt: false,
    };
  }
  if (status === "conflict" || status === "rejected") {
    return {
      ...e,
      status: status === "conflict" ? OpStatus.CONFLICT : OpStatus.REJECTED,
      ackedAt: acked,
      lastError: errorOf(result),
      conflictId: typeof result.conflict_id === "string" ? result.conflict_id : null,
      inDoubt: false,
    };
  }
  throw new TypeError(`unknown op status ${JSON.stringify(status)} from the server`);
}
