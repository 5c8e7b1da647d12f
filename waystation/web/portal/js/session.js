// The signed-in patient: the library's Replica plus what the portal needs to know about
// the person (their patient id and facility). The only portal module that calls the
// library, so the pages speak of patients and logs, not of replicas and outboxes.

import { Replica, erase, stored } from "/web/client/replica.js";

/** The name of the replica's IndexedDB database in this browser. */
const DB_NAME = "waystation-portal";

/** Sync answers a person fixes by signing in again, not by waiting for the network. */
export const LOGIN_CODES = new Set(["LOGIN_REQUIRED", "DEVICE_REVOKED"]);

/**
 * @typedef {{id: string, [field: string]: unknown}} Rec
 * @typedef {{opId: string, collection: string, recordId: string, op: string,
 *   fields: Record<string, unknown>, status: string, conflictId?: string | null,
 *   lastError?: {code: string, message: string, details?: Record<string, unknown>} | null}} Entry
 * @typedef {{pending?: number, failed?: number, conflicts?: number, rejected?: number,
 *   lastSyncAt?: string | null, loggedIn?: boolean,
 *   lastSync?: {errorCode?: string | null} | null}} Status
 * @typedef {{type: string, phase?: string, source?: string, pending?: number, toPush?: number,
 *   pushed?: number, pulled?: number, error?: string | null, errorCode?: string | null,
 *   connected?: boolean}} ReplicaEvent
 */

/** Whether this browser holds a replica (to offer "unlock" rather than "sign in"). Its
 * owner's name is not kept in clear, so the unlock page cannot greet them by name. */
export async function hasReplica() {
  return (await stored({ name: DB_NAME })) !== null;
}

/**
 * First sign-in on this browser (needs the network): logs in, registers the device, and
 * makes the encrypted replica. Rejects with the library's error (code UNAUTHORIZED for a
 * wrong password, OFFLINE without a network); its message is for the person.
 * @param {string} username
 * @param {string} password
 */
export async function signIn(username, password) {
  const replica = await Replica.login({ server: location.origin, username, password,
    deviceName: "Patient portal", name: DB_NAME });
  return new Session(replica);
}

/**
 * Open the replica again after a reload, offline or not: the password unwraps its key.
 * Rejects (code WRONG_PASSWORD) when it does not.
 * @param {string} password
 */
export async function unlock(password) {
  return new Session(await Replica.unlock({ password, name: DB_NAME }));
}

/** Erase this browser's replica without unlocking it ("not you?", a forgotten password). */
export async function forget() {
  await erase({ name: DB_NAME });
}

export class Session {
  /** @param {any} replica the library's Replica */
  constructor(replica) {
    this.replica = replica;
    /** @type {{id: string, username: string, role: string, scopes: string[]}} */
    this.user = replica.user;
    const scope = (this.user.scopes || []).find((s) => s.startsWith("patient:"));
    /** The patient this user is (a patient user holds exactly one patient scope). */
    this.patientId = scope ? scope.slice("patient:".length) : null;
  }

  get username() { return this.user.username; }

  /** The patient's facility, from their patient record (needed to create a log). */
  async facilityId() {
    const me = this.patientId ? await this.replica.get("patients", this.patientId) : null;
    return me && typeof me.facility_id === "string" ? me.facility_id : null;
  }

  /** @param {string} collection @param {Record<string, unknown>} [equals] @returns {Promise<Rec[]>} */
  query(collection, equals = {}) { return this.replica.query(collection, equals); }

  /** @param {string} collection @param {string} id @returns {Promise<Rec | null>} */
  get(collection, id) { return this.replica.get(collection, id); }

  /**
   * Saved on this phone at once, with or without a network.
   * @param {string} collection @param {Record<string, unknown>} fields @param {string} [id]
   * @returns {Promise<string>} the record id
   */
  put(collection, fields, id) { return this.replica.put(collection, fields, id); }

  /** @param {{status?: string | string[]}} [filter] @returns {Promise<Entry[]>} */
  outbox(filter = {}) { return this.replica.outbox(filter); }

  /** @param {string} opId @returns {Promise<boolean>} */
  discard(opId) { return this.replica.discard(opId); }

  /** @returns {Promise<number>} */
  retryFailed() { return this.replica.retryFailed(); }

  /** @returns {Promise<Status>} */
  status() { return this.replica.status(); }

  /**
   * Every event of the replica: sync progress, changes (local writes, pulls, verdicts,
   * another tab), live connection, wipe.
   * @param {(event: ReplicaEvent) => void} listener
   * @returns {() => void} unsubscribes
   */
  subscribe(listener) { return this.replica.subscribe(listener); }

  /** Sync on the library's triggers: `online`, an interval, live changes, local writes. */
  startAuto() { this.replica.startAuto({ intervalMs: 60_000, live: true }); }

  stopAuto() { this.replica.stopAuto(); }

  /** Sync as soon as possible (once more after a sync in progress). */
  syncSoon() { this.replica.syncSoon(); }

  /**
   * Whether syncing needs the patient's password again: the refresh token was refused, or
   * the clinic revoked this phone without a wipe. What is on the phone is kept meanwhile.
   * @param {Status} status
   */
  static loginNeeded(status) {
    return status.loggedIn === false || LOGIN_CODES.has(status.lastSync?.errorCode ?? "");
  }

  /**
   * Sign in again on this phone (online): registers the device again — under a new device
   * id if the clinic revoked the old one — keeping every entry not yet sent, then syncs.
   * Rejects with the library's error (code UNAUTHORIZED for a wrong password).
   * @param {string} password
   */
  async signInAgain(password) {
    await this.replica.register(this.user.username, password);
    this.startAuto(); // the library's loop stopped when the sign-in ended; it syncs at once
  }

  /** Erase the replica (records, outbox, keys) and forget the device. */
  async signOut() {
    this.replica.stopAuto();
    await this.replica.signOut();
  }

  /** Everything this browser holds for the patient, as one JSON-ready object. */
  async exportData() {
    const collections = ["patients", "symptom_logs", "alerts", "notification_preferences",
      "appointments", "prescriptions", "encounters", "medicines"];
    /** @type {Record<string, Rec[]>} */
    const records = {};
    for (const name of collections) records[name] = await this.query(name);
    const entry = (/** @type {Entry} */ e) => ({ op_id: e.opId, collection: e.collection,
      record_id: e.recordId, op: e.op, fields: e.fields, status: e.status, error: e.lastError ?? null });
    return {
      exported_at: new Date().toISOString(),
      user: { id: this.user.id, username: this.user.username, patient_id: this.patientId },
      records,
      not_yet_sent: (await this.outbox({ status: ["PENDING", "SYNCING", "FAILED"] })).map(entry),
      needs_attention: (await this.outbox({ status: ["REJECTED", "CONFLICT"] })).map(entry),
    };
  }
}
