// Ids made in the browser: record and op ids (UUIDv7, so a record created offline never
// collides and ids sort by creation time) and device ids (`d-` + 16 hex digits, the HLC
// node id that stamps offline writes before the device is registered).

/** @param {number} n */
function randomBytes(n) {
  const bytes = new Uint8Array(n);
  globalThis.crypto.getRandomValues(bytes);
  return bytes;
}

/** @param {Uint8Array} bytes */
function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

let lastMs = 0;
let sequence = 0;

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Within one
 * millisecond a 12-bit sequence keeps ids of this page in creation order.
 * @param {number} [nowMs]
 * @returns {string}
 */
export function uuid7(nowMs = Date.now()) {
  let ms = Math.max(Math.trunc(nowMs), lastMs);
  if (ms === lastMs) {
    sequence += 1;
    if (sequence > 0xfff) {
      ms += 1;
      sequence = 0;
    }
  } else {
    sequence = randomBytes(1)[0];
  }
  lastMs = ms;
  const bytes = randomBytes(16);
  const time = ms.toString(16).padStart(12, "0");
  for (let i = 0; i < 6; i++) bytes[i] = parseInt(time.slice(i * 2, i * 2 + 2), 16);
  bytes[6] = 0x70 | (sequence >> 8);
  bytes[7] = sequence & 0xff;
  bytes[8] = 0x80 | (bytes[8] & 0x3f);
  const h = hex(bytes);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A device id made in the browser: `d-` and 16 hex digits. */
export function newDeviceId() {
  return `d-${hex(randomBytes(8))}`;
}
