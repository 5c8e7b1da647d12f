// `Replica`: the local copy a web app reads and writes, offline or not — the library's
// public face.
//
//   Replica (this module) → engine.syncOnce → LocalReplica (local.js: database, outbox,
//   clock, session, events, locks) and Transport (transport.js: push, pull, status, events)
//
// Every write lands in the replica and the outbox in one IndexedDB transaction and returns
// at once; the UI never waits for the network. `sync()` exchanges the outbox and the change
// feed with the server. The network is needed only to sign in the first time: after that
// `Replica.unlock(password)` opens the replica offline (the password unwraps the key that
// decrypts it; it is never stored).

import { RetryPolicy } from "./backoff.js";
import { DEFAULT_NAME, LocalDB, deleteDatabase, openDatabase, readClearMeta, request } from "./db.js";
import { createKeyring, unlockKeyring } from "./crypto.js";
import { SyncResult, syncOnce } from "./engine.js";
import {
  DeviceRevoked, NoReplica, ReplicaExists, WrongPassword,
} from "./errors.js";
import { formatHlc, parseHlc } from "./hlc.js";
import { newDeviceId, uuid7 } from "./ids.js";
import { AutoSync } from "./live.js";
import { LocalReplica, tokenFields } from "./local.js";
import { newEntry } from "./outbox.js";
import { readPullState, repullEverything } from "./pull.js";
import { HttpTransport, login, registerDevice } from "./transport.js";
import { WriteBatch, deleteWrite, incrementWrite, putWrite } from "./writes.js";

export { OpStatus } from "./outbox.js";
export { RetryPolicy } from "./backoff.js";
export { HttpTransport } from "./transport.js";
export { SyncResult, syncOnce } from "./engine.js";
export { DEFAULT_NAME } from "./db.js";
export { WriteBatch } from "./writes.js";

/** @typedef {import("./writes.js").Write} Write */

/**
 * @typedef {object} OpenOptions
 * @property {string} [name] the IndexedDB database (one replica per name; default "waystation")
 * @property {RetryPolicy} [retryPolicy]
 * @property {typeof fetch} [fetch] e.g. to put a fault in front of a real server in tests
 * @property {number} [timeoutMs] per request (default 30 s)
 */

/**
 * Whether a replica is stored in this browser under `name`, without unlocking it: its
 * server and device id, or null. (The user's name is sealed: it identifies a person.)
 * @param {{name?: string}} [options]
 * @returns {Promise<{server: string, deviceId: string} | null>}
 */
export async function stored({ name = DEFAULT_NAME } = {}) {
  const clear = await readClearMeta(name);
  return clear && clear.device ? { server: clear.device.server, deviceId: clear.device.deviceId } : null;
}

/**
 * Erase the replica stored under `name` without unlocking it (a forgotten password, a
 * shared phone): every record, op, token and key.
 * @param {{name?: string}} [options]
 */
export async function erase({ name = DEFAULT_NAME } = {}) {
  await deleteDatabase(name);
}

/** @param {string} server */
function normaliseServer(server) {
  const url = new URL(server, globalThis.location ? globalThis.location.href : undefined);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`server must be an http:// or https:// URL, got ${JSON.stringify(server)}`);
  }
  return url.href.replace(/\/+$/, "");
}

/**
 * Whether a user's grants shrank: a scope gone, or another role (an admin, who sees
 * everything, demoted keeps scopes that say nothing of it).
 * @param {{role?: string, scopes?: string[]}} before
 * @param {{role?: string, scopes?: string[]}} after
 */
export function maySeeLess(before, after) {
  const now = new Set(after.scopes || []);
  return before.role !== after.role || (before.scopes || []).some((s) => !now.has(s));
}

/** A replica of the records this user may see, kept in this browser. */
export class Replica {
  /**
   * Use `Replica.login` or `Replica.unlock`.
   * @param {LocalReplica} local
   * @param {HttpTransport} transport
   * @param {{id: string, username: string, role: string, scopes: string[]} | null} user
   */
  constructor(local, transport, user) {
    this.local = local;
    this.transport = transport;
    this.user = user;
    /** @type {AutoSync | null} */
    this.auto = null;
    local.db.onclose = () => {
      // another tab signed out (deleted the database)
      if (this.auto) this.auto.stop();
      local.events.emit({ type: "wiped" });
    };
  }

  /**
   * Sign in (online) and keep a replica in this browser. The first time, this logs in,
   * creates the encrypted database and registers the device; when this user's replica is
   * already here it is unlocked (and the device registered again if its sign-in was
   * revoked). Throws Unauthorized (wrong username or password), Offline,
   * ServerUnavailable, ReplicaExists (another sign-in's data is here: sign out first).
   * @param {OpenOptions & {server?: string, username: string, password: string,
   *          deviceName?: string, iterations?: number}} options `iterations` of PBKDF2
   *          below the default are for tests only
   * @returns {Promise<Replica>}
   */
  static async login({ server, username, password, deviceName, name = DEFAULT_NAME, iterations,
    retryPolicy, fetch: fetchFn, timeoutMs }) {
    const url = normaliseServer(server || (globalThis.location ? globalThis.location.origin : ""));
    const fetcher = fetchFn || globalThis.fetch.bind(globalThis);
    const clear = await readClearMeta(name);
    if (clear) {
      let replica;
      try {
        replica = await Replica.unlock({ password, name, retryPolicy, fetch: fetchFn, timeoutMs });
      } catch (error) {
        if (error instanceof WrongPassword) {
          throw new ReplicaExists("this browser keeps the data of another sign-in (or of an older "
            + "password): unlock it with the password it was saved with, or sign out to erase it");
        }
        throw error;
      }
      if (!replica.user || replica.user.username !== username || replica.server !== url) {
        replica.close();
        throw new ReplicaExists(`this browser keeps the data of another sign-in on ${replica.server}: sign out first`);
      }
      if (!(await replica.local.refreshToken())) await replica.register(username, password, deviceName);
      return replica;
    }
    const { userToken, user } = await login(fetcher, url, username, password);
    const { keyring, key } = await createKeyring(password, iterations ? { iterations } : {});
    const deviceId = newDeviceId();
    const idb = await openDatabase(name);
    try {
      await request(idb.transaction("meta", "readwrite").objectStore("meta")
        .put({ k: "device", server: url, deviceId }));
      const db = new LocalDB(idb, name, key);
      const local = new LocalReplica(db, { deviceId, server: url, retryPolicy });
      await local.mutate(async (m) => {
        m.setMeta("session", { server: url, user, accessToken: null, refreshToken: null, accessExpiresAt: null });
      });
      const replica = new Replica(local, new HttpTransport(url, local, { fetch: fetchFn, timeoutMs }), user);
      await replica.register(username, password, deviceName, userToken);
      // The keyring last: a database without one is not a replica (stored() says null).
      await request(idb.transaction("meta", "readwrite").objectStore("meta").put({ k: "keyring", keyring }));
      return replica;
    } catch (error) {
      idb.close();
      await deleteDatabase(name).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Open the replica kept in this browser with the user's password; works offline.
   * Throws NoReplica (nothing kept under `name`), WrongPassword.
   * @param {OpenOptions & {password: string}} options
   * @returns {Promise<Replica>}
   */
  static async unlock({ password, name = DEFAULT_NAME, retryPolicy, fetch: fetchFn, timeoutMs }) {
    const clear = await readClearMeta(name);
    if (!clear || !clear.device) throw new NoReplica("no replica is kept in this browser: sign in first");
    const key = await unlockKeyring(clear.keyring, password);
    const db = new LocalDB(await openDatabase(name), name, key);
    const local = new LocalReplica(db, { deviceId: clear.device.deviceId, server: clear.device.server, retryPolicy });
    const session = await local.session();
    const transport = new HttpTransport(clear.device.server, local, { fetch: fetchFn, timeoutMs });
    return new Replica(local, transport, session ? session.user : null);
  }

  /**
   * Sign this replica in again (online) when its sign-in was lost (`status().loggedIn` is
   * false: a revoked device, a refused refresh token): log in, register this device and
   * keep its tokens. A device id the administrator revoked is replaced by a fresh one
   * (after erasing the data when asked). Throws ReplicaExists for another user's name,
   * Unauthorized, Offline, ServerUnavailable.
   * @param {string} username
   * @param {string} password
   * @param {string} [deviceName]
   * @param {string} [userToken] from a login just made
   */
  async register(username, password, deviceName, userToken) {
    if (this.user && this.user.username !== username) {
      throw new ReplicaExists(`this replica belongs to ${this.user.username}: sign out first`);
    }
    const fetcher = this.transport.fetch;
    const before = this.user;
    let token = userToken;
    if (!token) {
      const fresh = await login(fetcher, this.server, username, password);
      token = fresh.userToken;
      this.user = fresh.user;
    }
    const name = deviceName || "Patient portal (web)";
    let tokens;
    try {
      tokens = await registerDevice(fetcher, this.server, token, this.deviceId, name);
    } catch (error) {
      if (!(error instanceof DeviceRevoked)) throw error;
      await this.renode(Boolean(error.details.wipe));
      tokens = await registerDevice(fetcher, this.server, token, this.deviceId, name);
    }
    const user = this.user;
    await this.local.mutate(async (m) => {
      const session = await m.meta("session", {});
      m.setMeta("session", { ...session, server: this.server, user, ...tokenFields(tokens) });
    });
    // The user lost a scope or changed role since this replica last signed in: what it
    // holds of them must go, and only a fresh snapshot tells what that is.
    if (before && user && maySeeLess(before, user)) await repullEverything(this.local);
  }

  /**
   * Carry on under a new device id (the old one was revoked); with `wipe`, erase the data
   * first. The clock never goes below its last stamp.
   * @param {boolean} wipe
   */
  async renode(wipe) {
    const deviceId = newDeviceId();
    await this.local.mutate(async (m) => {
      if (wipe) {
        await this.local.db.transaction(["records", "outbox"], "readwrite", (tx) => {
          tx.objectStore("records").clear();
          tx.objectStore("outbox").clear();
        });
        m.setMeta("pull", null);
        m.setMeta("lastSync", null);
        m.setMeta("lastSyncAt", null);
      }
      const clock = await m.meta("clock", null);
      if (clock && clock.last) m.setMeta("clock", { ...clock, last: formatHlc({ ...parseHlc(clock.last), node: deviceId }) });
    });
    await this.local.db.transaction(["meta"], "readwrite",
      (tx) => { tx.objectStore("meta").put({ k: "device", server: this.server, deviceId }); });
    this.local.deviceId = deviceId;
    this.transport.credentials = this.local;
  }

  get deviceId() {
    return this.local.deviceId;
  }

  get server() {
    return this.local.server;
  }

  get name() {
    return this.local.name;
  }

  // -- writes -----------------------------------------------------------------------

  /**
   * Create a record (a new UUIDv7 id) or update some of its fields; returns its id. Queues
   * one upsert op. The server validates: a rejection comes back in the outbox, never as
   * an exception here. Throws TypeError for values that cannot travel as JSON.
   * @param {string} collection
   * @param {Record<string, any>} fields
   * @param {string} [id]
   * @returns {Promise<string>}
   */
  async put(collection, fields, id) {
    const write = putWrite(collection, fields, id);
    await this.commitWrites([write]);
    return write.recordId;
  }

  /**
   * Delete a record (a tombstone: a later upsert by anyone may bring it back).
   * @param {string} collection
   * @param {string} id
   */
  async delete(collection, id) {
    await this.commitWrites([deleteWrite(collection, id)]);
  }

  /**
   * Add `delta` to a counter field; deltas from every device add up exactly once.
   * @param {string} collection
   * @param {string} id
   * @param {string} field
   * @param {number} delta an integer
   */
  async increment(collection, id, field, delta) {
    await this.commitWrites([incrementWrite(collection, id, field, delta)]);
  }

  /**
   * Group writes: all of them land in the replica and the outbox in one IndexedDB
   * transaction, or none (a dispensing and the stock it takes; a tab closed between two
   * separate writes would keep one without the other). `build` queues them on the batch
   * it is given (`put` returns the new id at once); it may be async, e.g. to read first.
   * A write the batch refuses throws there and nothing of the batch is stored; so does
   * an exception from `build`. Sync sees the writes only once they are all stored.
   * @template T
   * @param {(batch: WriteBatch) => T | Promise<T>} build
   * @returns {Promise<T>} what `build` returned
   */
  async atomic(build) {
    const batch = new WriteBatch();
    let value;
    try {
      value = await build(batch);
    } finally {
      batch.closed = true;
    }
    await this.commitWrites(batch.writes);
    return value;
  }

  /**
   * Store writes and their outbox entries in one mutation (one IndexedDB transaction).
   * @param {Write[]} writes
   */
  async commitWrites(writes) {
    if (!writes.length) return;
    const local = this.local;
    await local.mutate(async (m) => {
      const collections = await m.meta("collections", null);
      for (const { collection, recordId, op, fields } of writes) {
        const stored = await m.record(collection, recordId);
        const info = collections && collections.byName ? collections.byName[collection] : null;
        m.addEntry(newEntry({
          opId: uuid7(), collection, recordId, op, fields, hlc: await local.stamp(m),
          baseVersion: stored && stored.body.s ? stored.body.s.version : 0,
          priority: info ? info.priority : 0,
        }));
      }
    });
  }

  // -- reads ------------------------------------------------------------------------

  /**
   * The record as this device sees it (server copy + unsynced ops), or null.
   * @param {string} collection
   * @param {string} id
   */
  get(collection, id) {
    return this.local.get(collection, id);
  }

  /**
   * Visible records of `collection` whose fields equal the given values, by id.
   * @param {string} collection
   * @param {Record<string, any>} [equals]
   */
  query(collection, equals = {}) {
    return this.local.query(collection, equals);
  }

  /**
   * Outbox entries, oldest first, optionally by status ("REJECTED", or a list).
   * @param {{status?: string | string[], collection?: string, recordId?: string, limit?: number}} [filter]
   */
  outbox(filter = {}) {
    return this.local.entries(filter);
  }

  /** Ops waiting to reach the server (PENDING or SYNCING). */
  pendingCount() {
    return this.local.pendingCount();
  }

  /** What a person wants at a glance: what waits, what failed, when it last synced. */
  async status() {
    const [counts, recordCounts, session, lastSyncAt, lastSync, pull] = await Promise.all([
      this.local.counts(), this.local.recordCounts(), this.local.session(),
      this.local.readMeta("lastSyncAt", null), this.local.readMeta("lastSync", null),
      readPullState(this.local),
    ]);
    return {
      deviceId: this.deviceId,
      server: this.server,
      user: session && session.user ? session.user.username : null,
      loggedIn: Boolean(session && (session.accessToken || session.refreshToken)),
      pending: counts.PENDING + counts.SYNCING,
      failed: counts.FAILED,
      conflicts: counts.CONFLICT,
      rejected: counts.REJECTED,
      synced: counts.SYNCED,
      ...recordCounts,
      lastSyncAt,
      lastSync,
      cursor: pull.cursor,
    };
  }

  /** The server's collections as last fetched: {name: {priority, policy, counters}}. */
  collections() {
    return this.local.collections();
  }

  // -- outbox housekeeping ----------------------------------------------------------

  /** Put FAILED ops back to PENDING with a fresh retry budget; returns how many. */
  retryFailed() {
    return this.local.retryFailed();
  }

  /**
   * Drop a FAILED, CONFLICT or REJECTED op a person has dealt with (its effect leaves the
   * visible record); false when there is no such op.
   * @param {string} opId
   */
  discard(opId) {
    return this.local.discard(opId);
  }

  // -- sync -------------------------------------------------------------------------

  /**
   * Push the outbox, pull what changed. Never throws for network, server or sign-in
   * trouble: the result says what happened and the ops wait in the outbox.
   * @param {import("./engine.js").SyncOptions & {retryFailed?: boolean}} [options]
   * @returns {Promise<SyncResult>}
   */
  async sync({ retryFailed = false, ...options } = {}) {
    if (this.local.db.closed) {
      const result = new SyncResult();
      result.fail("REPLICA_CLOSED", "this replica is closed: unlock it again");
      return result;
    }
    if (retryFailed) await this.retryFailed();
    return syncOnce(this.local, this.transport, options);
  }

  /**
   * Follow events (sync progress, changed records, live connection, wipe); returns a
   * function that unsubscribes. See events.js for their shapes.
   * @param {import("./events.js").Listener} listener
   */
  subscribe(listener) {
    return this.local.events.subscribe(listener);
  }

  /**
   * Keep syncing while the page is open (live.js): on `online`, every `intervalMs`, after
   * local writes, when the server reports changes (`live`).
   * @param {{intervalMs?: number, live?: boolean, debounceMs?: number}} [options]
   */
  startAuto(options = {}) {
    if (!this.auto) this.auto = new AutoSync(this, options);
    this.auto.start();
    return this.auto;
  }

  stopAuto() {
    if (this.auto) this.auto.stop();
  }

  /** Ask the auto-sync loop (or, without one, a plain sync) to sync now. */
  syncSoon() {
    if (this.auto && this.auto.running) this.auto.soon(0);
    else this.sync().catch((error) => console.error("waystation: sync failed", error));
  }

  // -- lifecycle --------------------------------------------------------------------

  /** Erase this replica from the browser (records, outbox, tokens, keys) and close it. */
  async signOut() {
    this.stopAuto();
    await this.local.wipe();
  }

  /** Close the replica: the key leaves memory; `Replica.unlock` opens it again. */
  close() {
    this.stopAuto();
    this.local.close();
  }
}


