// What the app sees: the server's copy of a record with the device's unsynced ops replayed
// on top (the overlay), and the stored form of both.
//
// The server's copy is never edited locally, so a pull never overwrites a pending local
// edit, and a counter reads as the server's value plus the deltas still on their way. Which
// ops overlay is outbox.js's `overlays`. Replay rules, mirroring the server's merge for a
// single writer: an upsert sets its fields (resurrecting a deleted record, whose fields are
// kept through the delete), a delete hides the record, an increment adds to its counter
// whether or not the record is deleted.
//
// A stored record row is {c, i, g, h?, f?, v}; `v` seals {s, v, o}: `s` the
// server's copy (or null before any pull delivered it), `o` whether ops overlay it and,
// when they do, `v` the visible fields (null: not visible). Without overlay the visible
// fields are the server copy's own, stored once.

/**
 * @typedef {object} ServerCopy  a record as the last pull delivered it. The per-field
 *   clocks are not kept: the server merges, the replica only overlays, and leaving them
 *   out halves what each pulled record costs to encrypt and store.
 * @property {number} version
 * @property {string} seq
 * @property {boolean} deleted
 * @property {Record<string, any>} fields
 * @property {boolean} conflict
 * @property {string | null} updatedAt
 * @property {string | null} deletedHlc
 */

/** @typedef {{op: string, fields: Record<string, any>, superseded?: string[]}} LocalOp */
/** @typedef {{s: ServerCopy | null, v?: Record<string, any> | null, o: boolean}} RecordBody */

/**
 * The visible fields of a record, or null when it does not exist or is deleted.
 * @param {Record<string, any> | null} serverFields null when the server's copy is unknown
 * @param {boolean} serverDeleted
 * @param {LocalOp[]} ops in push order
 * @returns {Record<string, any> | null}
 */
export function visible(serverFields, serverDeleted, ops) {
  /** @type {Record<string, any>} */
  const fields = { ...(serverFields || {}) };
  let exists = serverFields !== null && !serverDeleted;
  for (const op of ops) {
    if (op.op === "upsert") {
      const lost = new Set(op.superseded || []);
      for (const [name, value] of Object.entries(op.fields)) {
        if (!lost.has(name)) fields[name] = value;
      }
      exists = true;
    } else if (op.op === "delete") {
      exists = false;
    } else if (op.op === "increment") {
      for (const [name, delta] of Object.entries(op.fields)) {
        const current = fields[name];
        fields[name] = (typeof current === "number" ? current : 0) + delta;
      }
    }
  }
  return exists ? fields : null;
}

/**
 * A pulled change as the server copy the replica keeps.
 * @param {any} change one item of a pull's `changes`
 * @returns {ServerCopy}
 */
export function serverCopy(change) {
  return {
    version: Number(change.version),
    seq: String(change.seq),
    deleted: Boolean(change.deleted),
    fields: change.fields || {},
    conflict: Boolean(change.conflict),
    updatedAt: change.updated_at ?? null,
    deletedHlc: change.deleted_hlc ?? null,
  };
}

/**
 * The visible fields of a stored record body.
 * @param {RecordBody} body
 * @returns {Record<string, any> | null}
 */
export function shown(body) {
  if (body.o) return body.v ?? null;
  return body.s && !body.s.deleted ? body.s.fields : null;
}

/**
 * @param {string} collection
 * @param {string} id
 */
export function aadOf(collection, id) {
  return `records|${collection}|${id}`;
}

/**
 * A record body as a stored row.
 * @param {import("./db.js").LocalDB} db
 * @param {string} collection
 * @param {string} id
 * @param {RecordBody} body
 * @param {number} generation the pull generation that delivered the server copy
 */
export async function toRow(db, collection, id, body, generation) {
  /** @type {{c: string, i: string, g: number, v: Uint8Array<ArrayBuffer>, h?: number, f?: number}} */
  const row = { c: collection, i: id, g: generation, v: await db.seal(aadOf(collection, id), body) };
  if (shown(body) === null) row.h = 1;
  else if (body.s && body.s.conflict) row.f = 1;
  return row;
}

/**
 * A stored row's body.
 * @param {import("./db.js").LocalDB} db
 * @param {{c: string, i: string, v: Uint8Array<ArrayBuffer>}} row
 * @returns {Promise<RecordBody>}
 */
export function fromRow(db, row) {
  return db.unseal(aadOf(row.c, row.i), row.v);
}

/**
 * Whether a visible record matches `equals` (JSON equality of each given field; a
 * missing field matches null). 1 and true stay distinct, as in JSON.
 * @param {Record<string, any>} fields
 * @param {Record<string, any>} equals
 */
export function matches(fields, equals) {
  for (const [name, want] of Object.entries(equals)) {
    const have = Object.prototype.hasOwnProperty.call(fields, name) ? fields[name] : undefined;
    if (have === undefined) {
      if (want !== null) return false;
    } else if (typeof want === "object" && want !== null) {
      if (JSON.stringify(have) !== JSON.stringify(want)) return false;
    } else if (have !== want) {
      return false;
    }
  }
  return true;
}
