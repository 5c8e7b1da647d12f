// Backoff with jitter, the error vocabulary, and ids made in the browser.
import { test } from "node:test";
import assert from "node:assert/strict";

import { RetryPolicy } from "../../../waystation/web/client/backoff.js";
import { CursorExpired, DeviceRevoked, RateLimited, Unauthorized, errorFromBody } from "../../../waystation/web/client/errors.js";
import { newDeviceId, uuid7 } from "../../../waystation/web/client/ids.js";
import { retryAfterMs } from "../../../waystation/web/client/transport.js";

test("waits double from the initial delay up to the maximum, plus jitter", () => {
  const policy = new RetryPolicy({ initialMs: 2000, maxWaitMs: 10_000, jitterMs: 1000, random: () => 0.5 });
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => policy.delayMs(n)), [2500, 4500, 8500, 10_500, 10_500]);
  assert.equal(policy.delayMs(1, 60_000), 60_500, "a Retry-After is a floor");
});

test("server error bodies become the class their code names", () => {
  const revoked = errorFromBody({ error: { code: "DEVICE_REVOKED", message: "m", details: { wipe: true } } }, 401);
  assert.ok(revoked instanceof DeviceRevoked && revoked instanceof Unauthorized);
  assert.equal(revoked.details.wipe, true);
  assert.ok(errorFromBody({ error: { code: "CURSOR_EXPIRED", message: "m" } }, 410) instanceof CursorExpired);
  const limited = errorFromBody(null, 429, 3000);
  assert.ok(limited instanceof RateLimited);
  assert.equal(limited.retryAfterMs, 3000);
  assert.equal(errorFromBody({ error: { code: "TEAPOT", message: "m" } }, 418).code, "TEAPOT");
  assert.equal(retryAfterMs("7"), 7000);
  assert.equal(retryAfterMs(null), 0);
});

test("UUIDv7 ids sort by creation and carry the version; device ids are d- and 16 hex", () => {
  const ids = Array.from({ length: 50 }, () => uuid7());
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, 50);
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.match(newDeviceId(), /^d-[0-9a-f]{16}$/);
});

test("a 408 is a RequestTimeout, retried like a lost answer; a 429 carries its Retry-After", async () => {
  const { RequestTimeout, ServerUnavailable } = await import("../../../waystation/web/client/errors.js");
  const { exchange } = await import("../../../waystation/web/client/transport.js");
  /** @param {number} status @param {object} body @param {Record<string, string>} [headers] */
  const answering = (status, body, headers = {}) => async () => new Response(JSON.stringify(body),
    { status, headers: { "Content-Type": "application/json", ...headers } });
  const slow = await exchange(answering(408, { error: { code: "REQUEST_TIMEOUT",
    message: "the request body paused", details: { timeout_s: 30 } } }), "POST",
  "http://127.0.0.1:1/v1/sync/push", { body: {} }).catch((e) => e);
  assert.ok(slow instanceof RequestTimeout && slow instanceof ServerUnavailable);
  assert.equal(slow.code, "REQUEST_TIMEOUT");
  assert.equal(slow.details.timeout_s, 30);
  const limited = await exchange(answering(429, { error: { code: "RATE_LIMITED", message: "wait",
    details: { retry_after: 3.6 } } }, { "Retry-After": "4" }), "POST",
  "http://127.0.0.1:1/v1/auth/token", { body: {} }).catch((e) => e);
  assert.ok(limited instanceof RateLimited);
  assert.equal(limited.retryAfterMs, 4000);
});

test("a sign-in that may see less (a scope gone, another role) calls for a full re-pull", async () => {
  const { maySeeLess } = await import("../../../waystation/web/client/replica.js");
  const before = { role: "patient", scopes: ["patient:p-1", "patient:p-2"] };
  assert.equal(maySeeLess(before, { role: "patient", scopes: ["patient:p-1"] }), true);
  assert.equal(maySeeLess(before, { role: "health_worker", scopes: before.scopes }), true);
  assert.equal(maySeeLess(before, { role: "patient", scopes: [...before.scopes, "patient:p-3"] }), false);
  assert.equal(maySeeLess(before, { ...before }), false);
});
