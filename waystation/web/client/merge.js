// Merge one change into a record: pure functions on plain data, no clock, no I/O.
// The same rules as the server's core/merge.py, checked by the shared vectors
// (tests/vectors/merge, "layer": "merge"):
//
// - upsert, per field: the higher HLC wins. Clocks of different writes are never equal
//   (the node id is part of the clock); an equal clock is the same write re-delivered and
//   changes nothing (idempotence).
// - monotonic flags: the value is the OR of everything seen, the clock the max; a `false`
//   over `true` is superseded.
// - delete: a tombstone clock, the max of all deletes seen. The record is deleted while that
//   clock is above every non-counter field clock; an upsert below the tombstone is merged
//   into the hidden fields but reported superseded.
// - increment: deltas add up; counters ignore tombstones.
//
// HLCs are wire strings: comparing the strings compares the clocks.

/** The pseudo-field a delete is reported and versioned under. */
export const DELETED = "_deleted";

/**
 * @typedef {object} RecordState
 * @property {Record<string, any>} fields every field, including those kept under a tombstone
 * @property {Record<string, string>} clocks the HLC of the write that set each field
 * @property {string | null} deletedClock the tombstone's HLC
 * @property {number} version
 * @property {Record<string, number>} fieldVersions
 * @property {Record<string, string>} fieldDevices
 */

/**
 * @typedef {object} MergeOutcome
 * @property {RecordState} state the new state (the given one is never modified)
 * @property {boolean} changed
 * @property {string[]} superseded the change's fields that did not take effect
 */

/**
 * A state for a record nobody wrote yet, or a copy of `raw`'s keys.
 * @param {Partial<RecordState> | null} [raw]
 * @returns {RecordState}
 */
export function recordState(raw) {
  return {
    fields: { ...(raw?.fields || {}) },
    clocks: { ...(raw?.clocks || {}) },
    deletedClock: raw?.deletedClock ?? null,
    version: raw?.version ?? 0,
    fieldVersions: { ...(raw?.fieldVersions || {}) },
    fieldDevices: { ...(raw?.fieldDevices || {}) },
  };
}

/**
 * Deleted while the tombstone clock is above every non-counter field clock.
 * @param {RecordState} state
 * @param {Set<string>} [counters]
 */
export function isDeleted(state, counters = new Set()) {
  const tombstone = state.deletedClock;
  if (tombstone === null || tombstone === undefined) return false;
  return Object.entries(state.clocks).every(([name, clock]) => counters.has(name) || clock < tombstone);
}

/**
 * @param {RecordState} state
 * @param {Iterable<string>} changed
 * @param {string} device
 */
function bump(state, changed, device) {
  state.version += 1;
  for (const name of changed) {
    state.fieldVersions[name] = state.version;
    state.fieldDevices[name] = device;
  }
}

/**
 * Apply an upsert field by field.
 * @param {RecordState} state
 * @param {Record<string, any>} fields
 * @param {string} hlc
 * @param {string} device
 * @param {{monotonic?: Set<string>, counters?: Set<string>}} [spec]
 * @returns {MergeOutcome}
 */
export function mergeUpsert(state, fields, hlc, device, { monotonic = new Set(), counters = new Set() } = {}) {
  const next = recordState(state);
  /** @type {string[]} */
  const changed = [];
  /** @type {string[]} */
  let superseded = [];
  for (const [name, value] of Object.entries(fields)) {
    const current = Object.prototype.hasOwnProperty.call(next.clocks, name) ? next.clocks[name] : null;
    if (monotonic.has(name)) {
      const oldValue = next.fields[name];
      const merged = Boolean(oldValue) || Boolean(value);
      const newest = current === null || hlc > current ? hlc : current;
      if (merged !== oldValue || newest !== current) {
        next.fields[name] = merged;
        next.clocks[name] = newest;
        changed.push(name);
      }
      if (merged && !value) superseded.push(name);
      continue;
    }
    if (current === null || hlc > current) {
      next.fields[name] = value;
      next.clocks[name] = hlc;
      changed.push(name);
    } else if (hlc < current) {
      superseded.push(name);
    }
  }
  if (changed.length) bump(next, changed, device);
  if (isDeleted(next, counters)) superseded = Object.keys(fields); // held under a newer tombstone
  return { state: next, changed: changed.length > 0, superseded };
}

/**
 * Raise the tombstone clock to `hlc` (the highest delete holds it). Superseded when a
 * later delete already holds it, or a newer field write keeps the record alive.
 * @param {RecordState} state
 * @param {string} hlc
 * @param {string} device
 * @param {{counters?: Set<string>}} [spec]
 * @returns {MergeOutcome}
 */
export function mergeDelete(state, hlc, device, { counters = new Set() } = {}) {
  const next = recordState(state);
  const raised = next.deletedClock === null || hlc > next.deletedClock;
  if (raised) {
    next.deletedClock = hlc;
    bump(next, [DELETED], device);
  }
  const lost = hlc < /** @type {string} */ (next.deletedClock) || !isDeleted(next, counters);
  return { state: next, changed: raised, superseded: lost ? [DELETED] : [] };
}

/**
 * Add each delta to its counter (a missing counter starts at 0).
 * @param {RecordState} state
 * @param {Record<string, number>} deltas
 * @param {string} hlc
 * @param {string} device
 * @returns {MergeOutcome}
 */
export function mergeIncrement(state, deltas, hlc, device) {
  const next = recordState(state);
  const touched = Object.keys(deltas).filter((name) => deltas[name] !== 0);
  for (const name of touched) {
    next.fields[name] = Math.trunc(Number(next.fields[name] || 0)) + deltas[name];
    const current = next.clocks[name];
    if (current === undefined || current === null || hlc > current) next.clocks[name] = hlc;
  }
  if (touched.length) bump(next, touched, device);
  return { state: next, changed: touched.length > 0, superseded: [] };
}

/**
 * Merge one change (`{op, fields, hlc, device}`) with the collection's field kinds.
 * @param {RecordState} state
 * @param {{op: string, fields?: Record<string, any>, hlc: string, device: string}} change
 * @param {{monotonic?: Set<string>, counters?: Set<string>}} [spec]
 * @returns {MergeOutcome}
 */
export function mergeChange(state, change, spec = {}) {
  const fields = change.fields || {};
  if (change.op === "upsert") return mergeUpsert(state, fields, change.hlc, change.device, spec);
  if (change.op === "delete") return mergeDelete(state, change.hlc, change.device, spec);
  if (change.op === "increment") return mergeIncrement(state, fields, change.hlc, change.device);
  throw new TypeError(`unknown op ${JSON.stringify(change.op)}`);
}
