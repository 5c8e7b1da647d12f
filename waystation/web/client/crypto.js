// Encryption of the replica at rest, with WebCrypto only.
//
// A random AES-GCM-256 *data key* encrypts every stored value. It is kept only *wrapped*
// (AES-GCM) by a key derived from the user's password with PBKDF2-SHA-256 (600,000
// iterations, random 16-byte salt); the keyring stores the salt, the iteration count and
// the wrapped key, never the password nor the key in clear. Unlocking derives the wrapping
// key again and unwraps: a wrong password fails GCM's authentication (WrongPassword), so
// unlocking works offline and checks the password at the same time. The unwrapped key is
// non-extractable and lives only in memory.
//
// Each value is sealed with a fresh 12-byte IV and with its storage address (store and
// key) as additional data, so a sealed value moved to another record does not open. A
// sealed value is one byte array, the IV followed by the ciphertext and its tag (one
// object for IndexedDB to copy, not two).

import { WrongPassword } from "./errors.js";

export const PBKDF2_ITERATIONS = 600_000;
const KEYRING_VERSION = 1;

/**
 * @typedef {object} Keyring  what is stored in clear to unlock the replica
 * @property {number} v format version
 * @property {string} kdf "PBKDF2-SHA-256"
 * @property {number} iterations
 * @property {Uint8Array<ArrayBuffer>} salt
 * @property {Uint8Array<ArrayBuffer>} iv the IV that wrapped the key
 * @property {ArrayBuffer} wrapped the data key, wrapped
 */

/** @typedef {Uint8Array<ArrayBuffer>} Sealed  IV (12 bytes), then ciphertext and tag */

const subtle = () => globalThis.crypto.subtle;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** @param {number} n */
function random(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/**
 * The key that wraps the data key, from the password.
 * @param {string} password
 * @param {Uint8Array<ArrayBuffer>} salt
 * @param {number} iterations
 */
async function wrappingKey(password, salt, iterations) {
  const material = await subtle().importKey("raw", encoder.encode(password), "PBKDF2", false,
    ["deriveKey"]);
  return subtle().deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["wrapKey", "unwrapKey"],
  );
}

/**
 * A new data key and the keyring that keeps it wrapped by `password`.
 * @param {string} password
 * @param {{iterations?: number}} [options] iterations below the default are for tests only
 * @returns {Promise<{keyring: Keyring, key: CryptoKey}>}
 */
export async function createKeyring(password, { iterations = PBKDF2_ITERATIONS } = {}) {
  const salt = random(16);
  const iv = random(12);
  const data = await subtle().generateKey({ name: "AES-GCM", length: 256 }, true,
    ["encrypt", "decrypt"]);
  const wrapper = await wrappingKey(password, salt, iterations);
  const wrapped = await subtle().wrapKey("raw", data, wrapper, { name: "AES-GCM", iv });
  /** @type {Keyring} */
  const keyring = { v: KEYRING_VERSION, kdf: "PBKDF2-SHA-256", iterations, salt, iv, wrapped };
  // Keep in memory only a non-extractable copy: the extractable one is let go.
  return { keyring, key: await unwrap(keyring, wrapper) };
}

/**
 * @param {Keyring} keyring
 * @param {CryptoKey} wrapper
 */
function unwrap(keyring, wrapper) {
  return subtle().unwrapKey("raw", keyring.wrapped, wrapper, { name: "AES-GCM", iv: keyring.iv },
    { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

/**
 * The data key, unwrapped with `password`; throws WrongPassword when it does not fit.
 * @param {Keyring} keyring
 * @param {string} password
 * @returns {Promise<CryptoKey>}
 */
export async function unlockKeyring(keyring, password) {
  const wrapper = await wrappingKey(password, keyring.salt, keyring.iterations);
  try {
    return await unwrap(keyring, wrapper);
  } catch {
    throw new WrongPassword("that password does not unlock the data kept in this browser");
  }
}

/**
 * Encrypt a JSON value for the storage address `aad`.
 * @param {CryptoKey} key
 * @param {string} aad where the value is stored, e.g. "records|alerts|a-1"
 * @param {any} value JSON-serialisable
 * @returns {Promise<Sealed>}
 */
export async function seal(key, aad, value) {
  const iv = random(12);
  const data = await subtle().encrypt({ name: "AES-GCM", iv, additionalData: encoder.encode(aad) },
    key, encoder.encode(JSON.stringify(value)));
  const sealed = new Uint8Array(12 + data.byteLength);
  sealed.set(iv);
  sealed.set(new Uint8Array(data), 12);
  return sealed;
}

/**
 * Decrypt a value sealed for `aad`; throws (DOMException OperationError) when the value
 * was altered or belongs elsewhere.
 * @param {CryptoKey} key
 * @param {string} aad
 * @param {Sealed} sealed
 * @returns {Promise<any>}
 */
export async function open(key, aad, sealed) {
  const plain = await subtle().decrypt(
    { name: "AES-GCM", iv: sealed.subarray(0, 12), additionalData: encoder.encode(aad) }, key,
    sealed.subarray(12));
  return JSON.parse(decoder.decode(plain));
}
