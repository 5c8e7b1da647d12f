// Push order and verdicts of the JS outbox (the same rules as client/outbox.py).
import { test } from "node:test";
import assert from "node:assert/strict";

import { OpStatus, newEntry, overlays, pickBatch, toChange, withVerdict } from "../../../waystation/web/client/outbox.js";

const row = (seq, s, c, i, p = 0, n = 0) => ({ seq, s, c, i, p, n });

test("higher collection priority goes first, then age", () => {
  const rows = [row(1, "PENDING", "logs", "a"), row(2, "PENDING", "encounters", "b", 1), row(3, "PENDING", "logs", "c")];
  assert.deepEqual(pickBatch(rows, 10).map((r) => r.seq), [2, 1, 3]);
  assert.deepEqual(pickBatch(rows, 2).map((r) => r.seq), [2, 1]);
});

test("a record's later ops wait behind an earlier FAILED, SYNCING or backing-off op", () => {
  const now = 1000;
  const rows = [
    row(1, "FAILED", "logs", "a"), row(2, "PENDING", "logs", "a"),
    row(3, "SYNCING", "logs", "b"), row(4, "PENDING", "logs", "b"),
    row(5, "PENDING", "logs", "c", 0, 5000), row(6, "PENDING", "logs", "c"),
    row(7, "PENDING", "logs", "d"),
  ];
  assert.deepEqual(pickBatch(rows, 10, now).map((r) => r.seq), [7]);
  // an explicit sync does not wait for backoff
  assert.deepEqual(pickBatch(rows, 10).map((r) => r.seq), [5, 6, 7]);
});

test("unsynced ops overlay; SYNCED ones only until the pulled copy catches up", () => {
  assert.ok(overlays({ s: "PENDING", rv: 0 }, 9));
  assert.ok(overlays({ s: "FAILED", rv: 0 }, 9));
  assert.ok(overlays({ s: "SYNCED", rv: 3 }, 2));
  assert.ok(!overlays({ s: "SYNCED", rv: 3 }, 3));
  assert.ok(!overlays({ s: "REJECTED", rv: 0 }, 0));
  assert.ok(!overlays({ s: "CONFLICT", rv: 0 }, 0));
});

test("verdicts: applied adopts a re-stamped clock, conflicts and rejections keep the reason", () => {
  const e = newEntry({ opId: "op-1", collection: "logs", recordId: "r", op: "upsert", fields: { a: 1 },
    hlc: "001795327700805-00000-d-a", baseVersion: 0, priority: 0, nowMs: 0 });
  assert.equal(toChange(e).created_at_client, "1970-01-01T00:00:00.000Z");
  const applied = withVerdict(e, { status: "applied", version: 2, restamped: true, hlc: "001795324100837-00002-s-1", superseded: ["a"] });
  assert.equal(applied.status, OpStatus.SYNCED);
  assert.equal(applied.hlc, "001795324100837-00002-s-1");
  assert.deepEqual(applied.superseded, ["a"]);
  const dup = withVerdict({ ...e, inDoubt: true }, { status: "duplicate", version: 1, hlc: e.hlc });
  assert.equal(dup.status, OpStatus.SYNCED);
  assert.equal(dup.inDoubt, false);
  const conflict = withVerdict(e, { status: "conflict", conflict_id: "c-1",
    error: { code: "UNIQUE_VIOLATION", message: "another", details: { existing_id: "x" } } });
  assert.equal(conflict.status, OpStatus.CONFLICT);
  assert.equal(conflict.conflictId, "c-1");
  assert.deepEqual(conflict.lastError.details, { existing_id: "x" });
  const rejected = withVerdict(e, { status: "rejected" });
  assert.equal(rejected.status, OpStatus.REJECTED);
  assert.equal(rejected.lastError.code, "UNKNOWN");
  assert.throws(() => withVerdict(e, { status: "maybe" }), TypeError);
});
