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
