// How long an op waits after a failed attempt, and when it is given up (FAILED).
//
// Exponential backoff with jitter, as the Python client's RetryPolicy: `initialMs`
// doubling up to `maxWaitMs`, plus up to `jitterMs` at random, so devices that failed
// together do not all come back at once. Only attempts the server may have seen count
// (5xx, lost answers, 429); being offline spends nothing, because a phone may be offline
// for days. A 429's Retry-After is a floor under the wait.

export class RetryPolicy {
  /**
   * @param {{maxRetries?: number, initialMs?: number, maxWaitMs?: number, jitterMs?: number,
   *          random?: () => number}} [options]
   */
  constructor({ maxRetries = 8, initialMs = 2000, maxWaitMs = 3_600_000, jitterMs = 2000,
    random = Math.random } = {}) {
    this.maxRetries = maxRetries;
    this.initialMs = initialMs;
    this.maxWaitMs = maxWaitMs;
    this.jitterMs = jitterMs;
    this.random = random;
  }

  /**
   * Milliseconds to wait after the `attempt`-th failed attempt (1-based).
   * @param {number} attempt
   * @param {number} [floorMs] e.g. a 429's Retry-After
   * @returns {number}
   */
  delayMs(attempt, floorMs = 0) {
    const n = Math.max(1, Math.trunc(attempt));
    const exponential = Math.min(this.initialMs * 2 ** (n - 1), this.maxWaitMs);
    return Math.max(floorMs, exponential) + this.random() * this.jitterMs;
  }
}
