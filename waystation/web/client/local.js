// LocalReplica: the browser's side of a replica — the encrypted database, the outbox, the
// clock, the session (tokens), the events and the locks. Replica (replica.js) is its public
// face; the engine (engine.js) drives it against a Transport.
//
// Every change to the stored state is one `mutate` call: it holds the replica's data lock
// (db.js `exclusive`), lets its callback read and decrypt what it needs and buffer writes,
// then seals every buffered value and writes them all in ONE IndexedDB transaction. So a
// local write and its outbox op, a push answer and its verdicts, a pulled page and its
// cursor each land together or not at all.

import { LocalDB, deleteDatabase, request, tryLock } from "./db.js";
import { EventHub } from "./events.js";
import { Clock, formatHlc, parseHlc } from "./hlc.js";
import { RetryPolicy } from "./backoff.js";
import * as outbox from "./outbox.js";
import * as records from "./records.js";

const { OpStatus } = outbox;
/** Statuses whose ops may still show in a record (outbox.overlays decides per version). */
const OVERLAY_STATUSES = [OpStatus.PENDING, OpStatus.SYNCING, OpStatus.FAILED, OpStatus.SYNCED];
const ACCESS_MARGIN_MS = 30_000;
/** Records of a pulled page encrypted and written per IndexedDB transaction. */
const PAGE_CHUNK = 1000;

/** @param {string} c @param {string} i */
const keyOf = (c, i) => `${c}\u0000${i}`;

/**
 * @typedef {object} Session  the login, sealed in meta "session"
 * @property {string} server
 * @property {{id: string, username: string, role: string, scopes: string[]}} user
 * @property {string | null} accessToken
 * @property {string | null} refreshToken
 * @property {number | null} accessExpiresAt epoch ms
 */

/**
 * @typedef {object} Tokens
 * @property {string} deviceId
 * @property {string} accessToken
 * @property {string | null} refreshToken
 * @property {number} expiresIn seconds
 */

/** One logical change being prepared: reads go to the database, writes are buffered. */
export class Mutation {
  /** @param {LocalReplica} local */
  constructor(local) {
    this.local = local;
    this.db = local.db;
    /** @type {Map<string, any>} */
    this.metaValues = new Map();
    /** @type {Set<string>} */
    this.metaDirty = new Set();
    /** @type {Map<number, outbox.OutboxEntry>} */
    this.entries = new Map();
    /** @type {outbox.OutboxEntry[]} */
    this.added = [];
    /** @type {Set<number>} */
    this.deletedSeqs = new Set();
    /** @type {Map<string, {c: string, i: string, body: records.RecordBody | null, g: number}>} */
    this.recordPuts = new Map();
    /** @type {Map<string, [string, string]>} */
    this.toRefresh = new Map();
    /** @type {Set<string>} collections whose visible records changed */
    this.changedCollections = new Set();
  }

  /**
   * A sealed meta value (cached for this mutation).
   * @param {string} k
   * @param {any} [fallback]
   */
  async meta(k, fallback = null) {
    if (!this.metaValues.has(k)) this.metaValues.set(k, await this.local.readMeta(k, null));
    const value = this.metaValues.get(k);
    return value === null || value === undefined ? fallback : value;
  }

  /**
   * @param {string} k
   * @param {any} value
   */
  setMeta(k, value) {
    this.metaValues.set(k, value);
    this.metaDirty.add(k);
  }

  /**
   * The stored body of a record (buffered writes first), or null.
   * @param {string} c
   * @param {string} i
   * @returns {Promise<{body: records.RecordBody, g: number} | null>}
   */
  async record(c, i) {
    const buffered = this.recordPuts.get(keyOf(c, i));
    if (buffered) return buffered.body ? { body: buffered.body, g: buffered.g } : null;
    const row = await this.db.transaction(["records"], "readonly",
      (tx) => request(tx.objectStore("records").get([c, i])));
    return row ? { body: await records.fromRow(this.db, row), g: row.g } : null;
  }

  /**
   * Clear outbox rows with one of `statuses` (or every row of a record).
   * @param {string[]} statuses
   * @returns {Promise<outbox.OutboxRow[]>}
   */
  async rows(statuses) {
    return this.db.transaction(["outbox"], "readonly", async (tx) => {
      const index = tx.objectStore("outbox").index("status");
      const found = await Promise.all(statuses.map((s) => request(index.getAll(IDBKeyRange.only(s)))));
      return found.flat();
    });
  }

  /**
   * @param {string} c
   * @param {string} i
   * @returns {Promise<outbox.OutboxRow[]>}
   */
  async recordRows(c, i) {
    return this.db.transaction(["outbox"], "readonly",
      (tx) => request(tx.objectStore("outbox").index("record").getAll(IDBKeyRange.only([c, i]))));
  }

  /**
   * A row as an entry (buffered version first).
   * @param {outbox.OutboxRow} row
   */
  async entry(row) {
    return this.entries.get(/** @type {number} */ (row.seq)) || outbox.fromRow(this.db, row);
  }

  /** @param {outbox.OutboxEntry} entry a new op (gets its seq when written) */
  addEntry(entry) {
    this.added.push(entry);
    this.refreshLater(entry.collection, entry.recordId);
  }

  /** @param {outbox.OutboxEntry} entry a changed op (has its seq) */
  putEntry(entry) {
    this.entries.set(/** @type {number} */ (entry.seq), entry);
  }

  /** @param {outbox.OutboxEntry} entry */
  deleteEntry(entry) {
    this.deletedSeqs.add(/** @type {number} */ (entry.seq));
    this.entries.delete(/** @type {number} */ (entry.seq));
    this.refreshLater(entry.collection, entry.recordId);
  }

  /**
   * @param {string} c
   * @param {string} i
   * @param {records.RecordBody | null} body null deletes the row
   * @param {number} g pull generation (-1: no server copy)
   */
  putRecord(c, i, body, g) {
    this.recordPuts.set(keyOf(c, i), { c, i, body, g });
    this.changedCollections.add(c);
  }

  /**
   * Recompute what the app sees of a record once this mutation's writes are known.
   * @param {string} c
   * @param {string} i
   */
  refreshLater(c, i) {
    this.toRefresh.set(keyOf(c, i), [c, i]);
  }

  /** @param {string} c @param {string} i */
  async refresh(c, i) {
    const stored = await this.record(c, i);
    const server = stored ? stored.body.s : null;
    const version = server ? server.version : 0;
    const rows = (await this.recordRows(c, i)).filter((r) => !this.deletedSeqs.has(/** @type {number} */ (r.seq)));
    /** @type {outbox.OutboxEntry[]} */
    const mine = [];
    for (const row of rows) {
      const buffered = this.entries.get(/** @type {number} */ (row.seq));
      const status = buffered ? buffered.status : row.s;
      const rv = buffered ? buffered.resultVersion || 0 : row.rv;
      if (outbox.overlays({ s: status, rv }, version)) mine.push(buffered || await outbox.fromRow(this.db, row));
    }
    for (const added of this.added) {
      if (added.collection === c && added.recordId === i) mine.push(added);
    }
    mine.sort((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity));
    if (!server && mine.length === 0) {
      if (stored) this.putRecord(c, i, null, -1);
      return;
    }
    const ops = mine.map((e) => ({ op: e.op, fields: e.fields, superseded: e.superseded }));
    const body = mine.length
      ? { s: server, o: true, v: records.visible(server ? server.fields : null, server ? server.deleted : false, ops) }
      : { s: server, o: false };
    this.putRecord(c, i, body, stored ? stored.g : -1);
  }

  /** Seal every buffered value and write them all in one transaction. */
  async commit() {
    for (const [c, i] of this.toRefresh.values()) await this.refresh(c, i);
    const db = this.db;
    const [metaRows, changedRows, addedRows, recordRows] = await Promise.all([
      Promise.all([...this.metaDirty].map((k) => this.local.metaRow(k, this.metaValues.get(k)))),
      Promise.all([...this.entries.values()].map((e) => outbox.toRow(db, e))),
      Promise.all(this.added.map((e) => outbox.toRow(db, e))),
      Promise.all([...this.recordPuts.values()].map(async (p) => (
        p.body ? { put: await records.toRow(db, p.c, p.i, p.body, p.g) } : { del: [p.c, p.i] }))),
    ]);
    if (!metaRows.length && !changedRows.length && !addedRows.length && !recordRows.length
        && !this.deletedSeqs.size) return;
    const addedSeqs = await db.transaction(["meta", "outbox", "records"], "readwrite", async (tx) => {
      const meta = tx.objectStore("meta");
      const box = tx.objectStore("outbox");
      const recs = tx.objectStore("records");
      for (const row of metaRows) meta.put(row);
      for (const row of changedRows) box.put(row);
      for (const seq of this.deletedSeqs) box.delete(seq);
      for (const item of recordRows) {
        if ("put" in item) recs.put(item.put);
        else recs.delete(item.del);
      }
      return Promise.all(addedRows.map((row) => request(box.add(row))));
    });
    this.added.forEach((e, n) => { e.seq = Number(addedSeqs[n]); });
  }
}

export class LocalReplica {
  /**
   * @param {LocalDB} db the unlocked database
   * @param {{deviceId: string, server: string, retryPolicy?: RetryPolicy}} options
   */
  constructor(db, { deviceId, server, retryPolicy }) {
    this.db = db;
    this.name = db.name;
    this.deviceId = deviceId;
    this.server = server;
    this.retryPolicy = retryPolicy || new RetryPolicy();
    this.events = new EventHub();
    /** Epoch ms before which the server asked not to be contacted (429 Retry-After). */
    this.notBefore = 0;
    /** @type {BroadcastChannel | null} tells other tabs of this replica what changed */
    this.channel = typeof BroadcastChannel === "function" ? new BroadcastChannel(`waystation:${this.name}`) : null;
    if (this.channel) {
      this.channel.onmessage = (message) => {
        const data = message.data || {};
        if (data.type === "change") this.events.emit({ type: "change", source: "other-tab", collections: data.collections || [] });
      };
    }
  }

  // -- meta -------------------------------------------------------------------------

  /**
   * A sealed meta value, read outside any mutation.
   * @param {string} k
   * @param {any} [fallback]
   */
  async readMeta(k, fallback = null) {
    const row = await this.db.transaction(["meta"], "readonly", (tx) => request(tx.objectStore("meta").get(k)));
    if (!row) return fallback;
    const value = await this.db.unseal(`meta|${k}`, row.v);
    return value === null || value === undefined ? fallback : value;
  }

  /**
   * @param {string} k
   * @param {any} value
   */
  async metaRow(k, value) {
    return { k, v: await this.db.seal(`meta|${k}`, value) };
  }

  /**
   * Run one logical change (see Mutation); emits a "change" event for the collections
   * whose visible records it changed.
   * @template T
   * @param {(m: Mutation) => Promise<T>} fn
   * @param {string} [source] the "change" event's source
   * @returns {Promise<T>}
   */
  async mutate(fn, source = "local") {
    const m = new Mutation(this);
    const result = await this.db.exclusive(async () => {
      const value = await fn(m);
      await m.commit();
      return value;
    });
    if (m.changedCollections.size) this.announce([...m.changedCollections], source);
    return result;
  }

  /**
   * @param {string[]} collections
   * @param {string} source
   */
  announce(collections, source) {
    this.events.emit({ type: "change", source, collections });
    if (this.channel) this.channel.postMessage({ type: "change", collections });
  }

  // -- clock ------------------------------------------------------------------------

  /**
   * A fresh clock for a local write, persisted by the mutation.
   * @param {Mutation} m
   * @returns {Promise<string>}
   */
  async stamp(m) {
    const clock = await this.clock(m);
    const hlc = formatHlc(clock.send());
    this.keepClock(m, clock);
    return hlc;
  }

  /** @param {Mutation} m */
  async clock(m) {
    const saved = await m.meta("clock", {});
    return new Clock(this.deviceId, {
      last: saved.last ? parseHlc(saved.last) : null, offsetMs: Number(saved.offsetMs || 0),
    });
  }

  /**
   * @param {Mutation} m
   * @param {Clock} clock
   */
  keepClock(m, clock) {
    m.setMeta("clock", { last: formatHlc(clock.last), offsetMs: clock.offsetMs });
  }

  /**
   * Fold a server answer's clock into ours and learn the offset to its time.
   * @param {Mutation} m
   * @param {string | null | undefined} serverHlc
   * @param {number} sentAtMs
   * @param {number} receivedAtMs
   */
  async observeServer(m, serverHlc, sentAtMs, receivedAtMs) {
    if (typeof serverHlc !== "string") return;
    let server;
    try {
      server = parseHlc(serverHlc);
    } catch {
      return;
    }
    const clock = await this.clock(m);
    clock.observeServerTime(server, sentAtMs, receivedAtMs);
    this.keepClock(m, clock);
  }

  // -- session (the transport's credentials) ---------------------------------------

  /** @returns {Promise<Session | null>} */
  session() {
    return this.readMeta("session", null);
  }

  /** The access token, or null when missing or about to expire (refresh first). */
  async accessToken() {
    const s = await this.session();
    if (!s || !s.accessToken) return null;
    if (s.accessExpiresAt && Date.now() >= s.accessExpiresAt) return null;
    return s.accessToken;
  }

  async refreshToken() {
    const s = await this.session();
    return s ? s.refreshToken : null;
  }

  /**
   * Keep rotated tokens at once (the old refresh token no longer works).
   * @param {Tokens} tokens
   */
  async saveTokens(tokens) {
    await this.mutate(async (m) => {
      const s = await m.meta("session", {});
      m.setMeta("session", { ...s, ...tokenFields(tokens, s.refreshToken) });
    });
  }

  /** Forget the tokens (a revoked device): the next sync asks to sign in again. */
  async clearTokens() {
    await this.mutate(async (m) => {
      const s = await m.meta("session", {});
      m.setMeta("session", { ...s, accessToken: null, refreshToken: null, accessExpiresAt: null });
    });
  }

  // -- reads ------------------------------------------------------------------------

  /**
   * @param {string} c
   * @param {string} i
   * @returns {Promise<Record<string, any> | null>}
   */
  async get(c, i) {
    const row = await this.db.transaction(["records"], "readonly", (tx) => request(tx.objectStore("records").get([c, i])));
    if (!row || row.h) return null;
    const fields = records.shown(await records.fromRow(this.db, row));
    return fields ? { id: i, ...fields } : null;
  }

  /**
   * Visible records of collection `c` matching `equals`, by id.
   * @param {string} c
   * @param {Record<string, any>} equals
   */
  async query(c, equals = {}) {
    const rows = await this.db.transaction(["records"], "readonly",
      (tx) => request(tx.objectStore("records").getAll(IDBKeyRange.bound([c], [c, []]))));
    const shownRows = rows.filter((r) => !r.h);
    const bodies = await Promise.all(shownRows.map((r) => records.fromRow(this.db, r)));
    /** @type {Record<string, any>[]} */
    const found = [];
    bodies.forEach((body, n) => {
      const fields = records.shown(body);
      if (fields && records.matches(fields, equals)) found.push({ id: shownRows[n].i, ...fields });
    });
    return found.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Outbox entries, oldest first.
   * @param {{status?: string | string[] | null, collection?: string | null, recordId?: string | null, limit?: number | null}} [filter]
   */
  async entries({ status = null, collection = null, recordId = null, limit = null } = {}) {
    const statuses = status === null || status === undefined ? null
      : (Array.isArray(status) ? status : [status]).map((s) => String(s).toUpperCase());
    let rows = await this.db.transaction(["outbox"], "readonly", async (tx) => {
      const store = tx.objectStore("outbox");
      if (collection !== null && recordId !== null) return request(store.index("record").getAll(IDBKeyRange.only([collection, recordId])));
      if (statuses) return (await Promise.all(statuses.map((s) => request(store.index("status").getAll(IDBKeyRange.only(s)))))).flat();
      return request(store.getAll());
    });
    rows = rows.filter((r) => (!statuses || statuses.includes(r.s)) && (collection === null || r.c === collection)
      && (recordId === null || r.i === recordId));
    rows.sort((a, b) => a.seq - b.seq);
    if (limit !== null) rows = rows.slice(0, limit);
    return Promise.all(rows.map((r) => outbox.fromRow(this.db, r)));
  }

  /** How many entries are in each status. */
  async counts() {
    return this.db.transaction(["outbox"], "readonly", async (tx) => {
      const index = tx.objectStore("outbox").index("status");
      const found = await Promise.all(outbox.STATUSES.map((s) => request(index.count(IDBKeyRange.only(s)))));
      return Object.fromEntries(outbox.STATUSES.map((s, n) => [s, found[n]]));
    });
  }

  /** Ops waiting to reach the server (PENDING or SYNCING). */
  async pendingCount() {
    const c = await this.counts();
    return c.PENDING + c.SYNCING;
  }

  /** Visible records, and those flagged by an open conflict on the server. */
  async recordCounts() {
    return this.db.transaction(["records"], "readonly", async (tx) => {
      const store = tx.objectStore("records");
      const [all, hidden, flagged] = await Promise.all([
        request(store.count()), request(store.index("hidden").count()),
        request(store.index("flagged").count()),
      ]);
      return { records: all - hidden, flaggedRecords: flagged };
    });
  }

  // -- sync support -----------------------------------------------------------------

  /**
   * Run `fn` as the only sync of this replica (in any tab); `busy` when another runs.
   * @template T, B
   * @param {() => Promise<T>} fn
   * @param {B} busy
   */
  exclusiveSync(fn, busy) {
    return tryLock(`waystation:${this.name}:sync`, fn, busy);
  }

  /** SYNCING ops left by a page closed mid-push go back to PENDING, in doubt. */
  async recoverSyncing() {
    await this.mutate(async (m) => {
      for (const row of await m.rows([OpStatus.SYNCING])) {
        m.putEntry({ ...(await m.entry(row)), status: OpStatus.PENDING, inDoubt: true });
      }
    });
  }

  /** True while a PENDING or SYNCING op may have been applied without our knowing. */
  async hasOpsInDoubt() {
    return this.db.transaction(["outbox"], "readonly", async (tx) => {
      const index = tx.objectStore("outbox").index("status");
      if (await request(index.count(IDBKeyRange.only(OpStatus.SYNCING)))) return true;
      const pending = await request(index.getAll(IDBKeyRange.only(OpStatus.PENDING)));
      return pending.some((r) => r.d === 1);
    });
  }

  /**
   * Mark the next batch SYNCING and return it (decrypted), in push order.
   * @param {number} limit
   * @param {number} dueMs
   * @returns {Promise<outbox.OutboxEntry[]>}
   */
  takeBatch(limit, dueMs) {
    return this.mutate(async (m) => {
      const rows = await m.rows([OpStatus.PENDING, OpStatus.SYNCING, OpStatus.FAILED]);
      const picked = outbox.pickBatch(rows, limit, dueMs);
      const batch = await Promise.all(picked.map((r) => m.entry(r)));
      for (const e of batch) m.putEntry({ ...e, status: OpStatus.SYNCING });
      return batch;
    });
  }

  /**
   * Put a batch back to PENDING: it never reached the server (no retry spent). With
   * `inDoubt`, it may have: the pull then waits until a resend settles it.
   * @param {outbox.OutboxEntry[]} batch
   * @param {{inDoubt?: boolean}} [options]
   */
  putBack(batch, { inDoubt = false } = {}) {
    return this.mutate(async (m) => {
      for (const e of batch) m.putEntry({ ...e, status: OpStatus.PENDING, inDoubt: e.inDoubt || inDoubt });
    });
  }

  /**
   * Adopt the server's collection priorities for ops not yet answered.
   * @param {Mutation} m
   * @param {Record<string, number>} priorities
   */
  async setPriorities(m, priorities) {
    for (const row of await m.rows([OpStatus.PENDING, OpStatus.SYNCING, OpStatus.FAILED])) {
      const p = priorities[row.c];
      if (p !== undefined && p !== row.p) m.putEntry({ ...(await m.entry(row)), priority: p });
    }
  }

  /** The collections' priorities and counters as last fetched: {name: {priority, policy, counters}}. */
  async collections() {
    const cached = await this.readMeta("collections", null);
    return cached ? cached.byName : {};
  }

  /** Requeue FAILED ops with a fresh retry budget; returns how many. */
  retryFailed() {
    return this.mutate(async (m) => {
      const rows = await m.rows([OpStatus.FAILED]);
      for (const row of rows) {
        m.putEntry({ ...(await m.entry(row)), status: OpStatus.PENDING, retryCount: 0, nextAttemptAt: null });
      }
      return rows.length;
    });
  }

  /**
   * Drop a FAILED, CONFLICT or REJECTED op a person has dealt with (its effect leaves
   * the visible record); false when there is no such op.
   * @param {string} opId
   */
  discard(opId) {
    return this.mutate(async (m) => {
      const row = await this.db.transaction(["outbox"], "readonly",
        (tx) => request(tx.objectStore("outbox").index("opId").get(opId)));
      if (!row || ![OpStatus.FAILED, OpStatus.CONFLICT, OpStatus.REJECTED].includes(row.s)) return false;
      m.deleteEntry(await m.entry(row));
      return true;
    });
  }

  /**
   * Forget SYNCED ops acknowledged before `beforeMs` (the server keeps the op log).
   * @param {number} beforeMs
   */
  pruneSynced(beforeMs) {
    return this.mutate(async (m) => {
      for (const row of await m.rows([OpStatus.SYNCED])) {
        if (row.a && row.a < beforeMs) m.deletedSeqs.add(/** @type {number} */ (row.seq));
      }
    });
  }

  /**
   * Store a pulled page: the server copies, what the app sees, and the pull position. A
   * pull never overwrites a pending edit: records with overlaying ops are replayed.
   *
   * Records no op overlays (nearly all of them) are written in chunks of `PAGE_CHUNK`,
   * the next chunk encrypted while the previous one is written; the records with ops and
   * the new cursor are committed last, in one transaction. A page closed halfway leaves
   * some server copies newer than the saved cursor: the next pull delivers them again and
   * they are replaced by the same state, so nothing is skipped.
   * @param {any[]} changes
   * @param {(m: Mutation) => Promise<void>} position sets the cursor meta in the last commit
   * @param {number} generation
   */
  async applyPage(changes, position, generation) {
    const m = new Mutation(this);
    /** @type {Set<string>} */
    const collections = new Set();
    await this.db.exclusive(async () => {
      /** @type {Map<string, outbox.OutboxRow[]>} */
      const opsOf = new Map();
      for (const row of await m.rows(OVERLAY_STATUSES)) {
        const k = keyOf(row.c, row.i);
        const list = opsOf.get(k);
        if (list) list.push(row);
        else opsOf.set(k, [row]);
      }
      /** @type {[string, string, records.RecordBody][]} */
      const plain = [];
      for (const change of changes) {
        const copy = records.serverCopy(change);
        const c = String(change.collection);
        const i = String(change.id);
        collections.add(c);
        const mine = (opsOf.get(keyOf(c, i)) || []).filter((r) => outbox.overlays(r, copy.version));
        if (mine.length) {
          m.putRecord(c, i, { s: copy, o: false }, generation);
          m.refreshLater(c, i);
        } else {
          plain.push([c, i, { s: copy, o: false }]);
        }
      }
      /** @type {Promise<unknown>} */
      let writing = Promise.resolve();
      for (let first = 0; first < plain.length; first += PAGE_CHUNK) {
        const rows = await Promise.all(plain.slice(first, first + PAGE_CHUNK)
          .map(([c, i, body]) => records.toRow(this.db, c, i, body, generation)));
        await writing;
        writing = this.db.transaction(["records"], "readwrite", (tx) => {
          const store = tx.objectStore("records");
          for (const row of rows) store.put(row);
        });
      }
      await writing;
      await position(m);
      await m.commit();
    });
    if (collections.size) this.announce([...collections], "pull");
    return changes.length;
  }

  /**
   * Forget server copies a full re-pull did not deliver again (deletes missed while the
   * cursor was expired, records outside the user's scopes now), and the SYNCED ops of
   * records without a server copy: they overlay only until the pulled copy catches up,
   * and none will come. (Every SYNCED op was acknowledged before the re-pull began, since
   * a sync pushes first, so the snapshot holds whatever of them the device may still
   * see.) Returns how many server copies were dropped.
   * @param {number} generation
   */
  dropOlderGenerations(generation) {
    return this.mutate(async (m) => {
      const rows = await this.db.transaction(["records"], "readonly", (tx) => request(tx.objectStore("records").getAll()));
      let dropped = 0;
      for (const row of rows) {
        if (row.g < 0 || row.g >= generation) continue;
        const body = await records.fromRow(this.db, row);
        m.putRecord(row.c, row.i, { ...body, s: null }, -1);
        m.refreshLater(row.c, row.i);
        dropped += 1;
      }
      for (const row of await m.rows([OpStatus.SYNCED])) {
        const stored = await m.record(row.c, row.i);
        if (!stored || !stored.body.s) m.deleteEntry(await m.entry(row));
      }
      return dropped;
    }, "pull");
  }

  /**
   * Erase the replica from this browser: every record, op, token and the keyring (a
   * sign-out, or a revoked device asked to wipe). Emits "wiped".
   */
  async wipe() {
    this.close();
    await deleteDatabase(this.name);
    this.events.emit({ type: "wiped" });
  }

  /** Stop: close the database, forget the key, stop talking to other tabs. */
  close() {
    if (this.channel) this.channel.close();
    this.channel = null;
    this.db.close();
  }
}

/**
 * The session fields a registration or refresh sets.
 * @param {Tokens} tokens
 * @param {string | null} [previousRefresh]
 */
export function tokenFields(tokens, previousRefresh = null) {
  return {
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken || previousRefresh,
    // A little early, so a token never expires in flight.
    accessExpiresAt: tokens.expiresIn > 0 ? Date.now() + tokens.expiresIn * 1000 - ACCESS_MARGIN_MS : null,
  };
}
