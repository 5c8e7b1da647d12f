// Local writes as the replica queues them: each call checked and turned into one op
// description `{collection, recordId, op, fields}` before anything is stored, so a write
// that cannot travel is refused at the call, and a batch of writes is refused whole.

import { ValidationError } from "./errors.js";
import { uuid7 } from "./ids.js";

const RECORD_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const COLLECTION = /^[A-Za-z0-9_]{1,64}$/;

/**
 * @typedef {object} Write
 * @property {string} collection
 * @property {string} recordId
 * @property {"upsert"|"delete"|"increment"} op
 * @property {Record<string, any>} fields
 */

/**
 * Field values as they travel: JSON only; Date objects become ISO strings, undefined
 * values are left out (as JSON.stringify does). Throws TypeError for anything else.
 * @param {any} fields
 * @returns {Record<string, any>}
 */
function normaliseFields(fields) {
  if (!fields || typeof fields !== "object" || Array.isArray(fields)) {
    throw new TypeError("fields must be a plain object");
  }
  /** @param {any} value @param {string} path @returns {any} */
  const clean = (value, path) => {
    if (value === null || typeof value === "string" || typeof value === "boolean") return value;
    if (typeof value === "number") {
      if (!Number.isFinite(value)) throw new TypeError(`${path}: ${value} cannot travel as JSON`);
      return value;
    }
    if (value instanceof Date) return value.toISOString();
    if (Array.isArray(value)) return value.map((v, n) => clean(v, `${path}[${n}]`));
    if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
      /** @type {Record<string, any>} */
      const out = {};
      for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = clean(v, `${path}.${k}`);
      return out;
    }
    throw new TypeError(`${path}: a ${typeof value} cannot travel as JSON`);
  };
  return clean(fields, "fields");
}

/**
 * @param {string} collection
 * @param {string} recordId
 * @param {"upsert"|"delete"|"increment"} op
 * @param {Record<string, any>} fields
 * @returns {Write}
 */
function checked(collection, recordId, op, fields) {
  if (typeof collection !== "string" || !COLLECTION.test(collection)) {
    throw new ValidationError(`invalid collection name ${JSON.stringify(collection)}`, { field: "collection" });
  }
  if (typeof recordId !== "string" || !RECORD_ID.test(recordId)) {
    throw new ValidationError(`invalid record id ${JSON.stringify(recordId)}: use [A-Za-z0-9_.:-]{1,128}`, { field: "id" });
  }
  return { collection, recordId, op, fields };
}

/**
 * A create (a new UUIDv7 id) or an update of some fields.
 * @param {string} collection
 * @param {Record<string, any>} fields
 * @param {string} [id]
 * @returns {Write}
 */
export function putWrite(collection, fields, id) {
  const values = normaliseFields(fields);
  const embedded = values.id;
  delete values.id;
  if (embedded !== undefined && id !== undefined && embedded !== id) {
    throw new TypeError(`fields carry id ${JSON.stringify(embedded)} but id ${JSON.stringify(id)} was given`);
  }
  return checked(collection, id ?? embedded ?? uuid7(), "upsert", values);
}

/**
 * @param {string} collection
 * @param {string} id
 * @returns {Write}
 */
export function deleteWrite(collection, id) {
  return checked(collection, id, "delete", {});
}

/**
 * @param {string} collection
 * @param {string} id
 * @param {string} field
 * @param {number} delta an integer
 * @returns {Write}
 */
export function incrementWrite(collection, id, field, delta) {
  if (typeof delta !== "number" || !Number.isInteger(delta)) throw new TypeError("delta must be an integer");
  if (typeof field !== "string" || !field) throw new TypeError("field must be a non-empty string");
  return checked(collection, id, "increment", { [field]: delta });
}

/**
 * The writes of one `Replica.atomic` call, queued in call order. Each method checks its
 * write at once (and throws as the replica's own would); nothing is stored until the
 * callback has returned, and a batch is closed after that.
 */
export class WriteBatch {
  constructor() {
    /** @type {Write[]} */
    this.writes = [];
    this.closed = false;
  }

  /** @param {Write} write */
  queue(write) {
    if (this.closed) throw new TypeError("this atomic batch has ended: write through the replica");
    this.writes.push(write);
    return write;
  }

  /**
   * As `Replica.put`; returns the record's id at once.
   * @param {string} collection
   * @param {Record<string, any>} fields
   * @param {string} [id]
   * @returns {string}
   */
  put(collection, fields, id) {
    return this.queue(putWrite(collection, fields, id)).recordId;
  }

  /**
   * As `Replica.delete`.
   * @param {string} collection
   * @param {string} id
   */
  delete(collection, id) {
    this.queue(deleteWrite(collection, id));
  }

  /**
   * As `Replica.increment`.
   * @param {string} collection
   * @param {string} id
   * @param {string} field
   * @param {number} delta
   */
  increment(collection, id, field, delta) {
    this.queue(incrementWrite(collection, id, field, delta));
  }
}
