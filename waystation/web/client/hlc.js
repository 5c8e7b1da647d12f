// Hybrid logical clock: wall milliseconds, a logical counter and a node id, totally ordered.
//
// Wire form `WWWWWWWWWWWWWWW-CCCCC-NODE` (15 + 5 zero-padded digits), so comparing the
// strings compares the clocks (docs/protocol.md §3). `send` and `receive` follow the
// standard HLC rules; a counter that would pass 99999 moves the clock to the next
// millisecond. The clock keeps an `offsetMs` to the server's time learned from each push
// round trip, so a phone whose date is wrong still stamps sensibly.

import { ValidationError } from "./errors.js";

export const MAX_COUNTER = 99_999;
const HLC_PATTERN = /^([0-9]{15})-([0-9]{5})-([A-Za-z0-9_-]{1,64})$/;
const NODE_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** @typedef {{wall: number, counter: number, node: string}} Hlc */

/**
 * The wire form of a clock.
 * @param {Hlc} hlc
 * @returns {string}
 */
export function formatHlc(hlc) {
  return `${String(hlc.wall).padStart(15, "0")}-${String(hlc.counter).padStart(5, "0")}-${hlc.node}`;
}

/**
 * Parse the wire form; throws ValidationError naming `field` when malformed.
 * @param {string} text
 * @param {string} [field]
 * @returns {Hlc}
 */
export function parseHlc(text, field = "hlc") {
  const match = typeof text === "string" ? HLC_PATTERN.exec(text) : null;
  if (!match) {
    throw new ValidationError(
      `malformed HLC ${JSON.stringify(text)}: expected 15 digits, '-', 5 digits, '-', node id`,
      { field },
    );
  }
  return { wall: Number(match[1]), counter: Number(match[2]), node: match[3] };
}

/**
 * Order of two clocks (-1, 0, 1), the same as comparing their wire strings.
 * @param {Hlc} a
 * @param {Hlc} b
 */
export function compareHlc(a, b) {
  const x = formatHlc(a);
  const y = formatHlc(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A node's clock source. `nowMs` is injectable for tests. */
export class Clock {
  /**
   * @param {string} node this device's id
   * @param {{nowMs?: () => number, last?: Hlc | null, offsetMs?: number}} [options]
   */
  constructor(node, { nowMs = () => Date.now(), last = null, offsetMs = 0 } = {}) {
    if (!NODE_PATTERN.test(node)) {
      throw new ValidationError(`invalid HLC node id ${JSON.stringify(node)}: use [A-Za-z0-9_-]{1,64}`);
    }
    this.node = node;
    this.nowMs = nowMs;
    this.offsetMs = offsetMs;
    /** @type {Hlc} */
    this.last = last ? { wall: last.wall, counter: last.counter, node } : { wall: 0, counter: 0, node };
  }

  /** This node's best guess of the shared time: wall clock plus the learned offset. */
  physicalMs() {
    return Math.trunc(this.nowMs() + this.offsetMs);
  }

  /**
   * A fresh clock for a local write, above every clock this node has seen.
   * @returns {Hlc}
   */
  send() {
    const pt = this.physicalMs();
    if (pt > this.last.wall) {
      this.last = { wall: pt, counter: 0, node: this.node };
    } else if (this.last.counter >= MAX_COUNTER) {
      this.last = { wall: this.last.wall + 1, counter: 0, node: this.node };
    } else {
      this.last = { wall: this.last.wall, counter: this.last.counter + 1, node: this.node };
    }
    return this.last;
  }

  /**
   * Fold a clock seen from elsewhere into ours (the standard receive rule).
   * @param {Hlc} remote
   * @returns {Hlc}
   */
  receive(remote) {
    const pt = this.physicalMs();
    const last = this.last;
    let wall = Math.max(pt, last.wall, remote.wall);
    let counter;
    if (wall === last.wall && wall === remote.wall) counter = Math.max(last.counter, remote.counter) + 1;
    else if (wall === last.wall) counter = last.counter + 1;
    else if (wall === remote.wall) counter = remote.counter + 1;
    else counter = 0;
    if (counter > MAX_COUNTER) {
      wall += 1;
      counter = 0;
    }
    this.last = { wall, counter, node: this.node };
    return this.last;
  }

  /**
   * Learn the offset to the server's time from one round trip, then fold its clock in.
   * The server stamped `server` between sending and receiving: the midpoint is the best
   * estimate of our wall clock at that moment.
   * @param {Hlc} server
   * @param {number} sentAtMs
   * @param {number} receivedAtMs
   */
  observeServerTime(server, sentAtMs, receivedAtMs) {
    const midpoint = Math.floor((sentAtMs + receivedAtMs) / 2);
    this.offsetMs = server.wall - midpoint;
    this.receive(server);
  }
}
