// The replica's IndexedDB database, its encryption and its locks.
//
// One database per replica (name "waystation" unless the app picks another), three stores:
//
//   meta     keyPath "k". In clear: "keyring" (salt, iterations, wrapped key: crypto.js) and
//            "device" (server URL and device id, so a page can tell that a replica exists
//            and where it syncs before it is unlocked). Every other value is sealed.
//   records  keyPath ["c", "i"] (collection, record id). In clear: those two, "g" (the
//            pull generation), and only where they apply "h" (1: not visible, e.g. deleted)
//            and "f" (1: visible and flagged in conflict), so their indexes hold only those
//            few rows and cost a pulled page nothing. Sealed: the server's copy and what
//            the app sees.
//   outbox   keyPath "seq" (auto-increment: push order within a priority). In clear: op
//            id, status, collection, record id, priority, next attempt time, retry count,
//            in-doubt flag, acknowledged version and time. Sealed: the op (kind, fields,
//            clock, base version), the server's error, the client's creation time.
//
// Nothing identifying a person is in clear: field values, clocks (they say when someone
// wrote) and errors are sealed. Collection names, record ids (UUIDs, or a registry's
// patient id such as "p-1") and outbox bookkeeping are clear because they are looked up.
//
// IndexedDB commits a transaction as soon as it has no request pending at the end of a
// task, and WebCrypto answers in a later task: a transaction cannot wait for a decryption.
// So every logical change runs as: read (one transaction), decrypt and compute, encrypt,
// write (one transaction) — inside `exclusive`, a Web Lock named after the database that
// serialises logical changes across this page and every other tab of the same origin.

import { open as openSealed, seal } from "./crypto.js";
import { ReplicaClosed } from "./errors.js";

export const DEFAULT_NAME = "waystation";
const VERSION = 1;

/**
 * @template T
 * @param {IDBRequest<T>} req
 * @returns {Promise<T>}
 */
export function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/**
 * @param {IDBTransaction} tx
 * @returns {Promise<void>}
 */
function finished(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error || new DOMException("transaction aborted", "AbortError"));
    tx.onerror = () => reject(tx.error);
  });
}

/**
 * Open (creating when needed) the IndexedDB database of replica `name`.
 * @param {string} name
 * @returns {Promise<IDBDatabase>}
 */
export function openDatabase(name) {
  const req = indexedDB.open(name, VERSION);
  req.onupgradeneeded = () => {
    const idb = req.result;
    if (!idb.objectStoreNames.contains("meta")) idb.createObjectStore("meta", { keyPath: "k" });
    if (!idb.objectStoreNames.contains("records")) {
      const records = idb.createObjectStore("records", { keyPath: ["c", "i"] });
      records.createIndex("hidden", "h");
      records.createIndex("flagged", "f");
    }
    if (!idb.objectStoreNames.contains("outbox")) {
      const outbox = idb.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
      outbox.createIndex("status", "s");
      outbox.createIndex("record", ["c", "i"]);
      outbox.createIndex("opId", "id", { unique: true });
    }
  };
  return request(req);
}

/**
 * Delete the database of replica `name` (every record, op, token and key). Other tabs
 * holding it open are asked to close it (their replicas report `wiped`).
 * @param {string} name
 */
export async function deleteDatabase(name) {
  await request(indexedDB.deleteDatabase(name));
}

/**
 * The clear meta values of replica `name` ({keyring, device}), or null when no replica is
 * stored under that name. Never creates a database.
 * @param {string} name
 * @returns {Promise<{keyring: any, device: any} | null>}
 */
export async function readClearMeta(name) {
  if (typeof indexedDB.databases === "function") {
    const all = await indexedDB.databases();
    if (!all.some((d) => d.name === name)) return null;
  }
  const idb = await openDatabase(name);
  try {
    const tx = idb.transaction("meta", "readonly");
    const store = tx.objectStore("meta");
    const [keyring, device] = await Promise.all([request(store.get("keyring")), request(store.get("device"))]);
    return keyring ? { keyring: keyring.keyring, device: device || null } : null;
  } finally {
    idb.close();
  }
}

/** A promise chain: the lock where the Web Locks API is missing (node, old browsers). */
class Mutex {
  constructor() {
    /** @type {Promise<unknown>} */
    this.tail = Promise.resolve();
  }

  /**
   * @template T
   * @param {() => Promise<T>} fn
   * @returns {Promise<T>}
   */
  run(fn) {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** @type {Map<string, Mutex>} */
const mutexes = new Map();

/**
 * Run `fn` holding the lock `lockName` (this page and every tab of the origin).
 * @template T
 * @param {string} lockName
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
export function withLock(lockName, fn) {
  const locks = globalThis.navigator?.locks;
  if (locks) return /** @type {Promise<T>} */ (locks.request(lockName, () => fn()));
  let mutex = mutexes.get(lockName);
  if (!mutex) mutexes.set(lockName, (mutex = new Mutex()));
  return mutex.run(fn);
}

/** @type {Set<string>} */
const heldHere = new Set();

/**
 * Run `fn` holding `lockName` if nobody holds it; otherwise return `busy` at once.
 * @template T, B
 * @param {string} lockName
 * @param {() => Promise<T>} fn
 * @param {B} busy
 * @returns {Promise<T | B>}
 */
export async function tryLock(lockName, fn, busy) {
  const locks = globalThis.navigator?.locks;
  if (locks) {
    return locks.request(lockName, { ifAvailable: true }, (lock) => (lock ? fn() : busy));
  }
  if (heldHere.has(lockName)) return busy;
  heldHere.add(lockName);
  try {
    return await fn();
  } finally {
    heldHere.delete(lockName);
  }
}

/** An open, unlocked replica database: IndexedDB plus the data key. */
export class LocalDB {
  /**
   * @param {IDBDatabase} idb
   * @param {string} name
   * @param {CryptoKey} key the unwrapped data key (memory only)
   */
  constructor(idb, name, key) {
    this.idb = idb;
    this.name = name;
    /** @type {CryptoKey | null} */
    this.key = key;
    this.closed = false;
    /** @type {(() => void) | null} called once when another tab deletes the database */
    this.onclose = null;
    idb.onversionchange = () => {
      this.close();
      if (this.onclose) this.onclose();
    };
  }

  /** @returns {CryptoKey} */
  liveKey() {
    if (this.closed || !this.key) throw new ReplicaClosed("this replica is closed: unlock it again");
    return this.key;
  }

  /**
   * @param {string} aad
   * @param {any} value
   */
  seal(aad, value) {
    return seal(this.liveKey(), aad, value);
  }

  /**
   * @param {string} aad
   * @param {import("./crypto.js").Sealed} sealed
   */
  unseal(aad, sealed) {
    return openSealed(this.liveKey(), aad, sealed);
  }

  /**
   * One IndexedDB transaction; `body` may await IndexedDB requests only (never crypto).
   * Resolves with `body`'s value once the transaction committed (durably, for writes).
   * @template T
   * @param {string[]} stores
   * @param {IDBTransactionMode} mode
   * @param {(tx: IDBTransaction) => Promise<T> | T} body
   * @returns {Promise<T>}
   */
  async transaction(stores, mode, body) {
    this.liveKey();
    const tx = mode === "readwrite"
      ? this.idb.transaction(stores, mode, { durability: "strict" })
      : this.idb.transaction(stores, mode);
    const done = finished(tx);
    let result;
    try {
      result = await body(tx);
    } catch (error) {
      try {
        tx.abort();
      } catch {
        // already finished
      }
      await done.catch(() => undefined);
      throw error;
    }
    await done;
    return result;
  }

  /**
   * Run one logical change (read, decrypt, compute, encrypt, write) with no other logical
   * change of this replica in between, in this tab or another. Do not nest.
   * @template T
   * @param {() => Promise<T>} fn
   * @returns {Promise<T>}
   */
  exclusive(fn) {
    return withLock(`waystation:${this.name}:data`, fn);
  }

  /** Forget the key and close the database. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.key = null;
    this.idb.close();
  }
}
