// The overlay: what the app sees is the server's copy with unsynced ops replayed on top.
import { test } from "node:test";
import assert from "node:assert/strict";

import { matches, shown, visible } from "../../../waystation/web/client/records.js";

test("a pending edit stays over a newer pulled copy", () => {
  const seen = visible({ severity: 3, notes: "server" }, false, [{ op: "upsert", fields: { severity: 5 } }]);
  assert.deepEqual(seen, { severity: 5, notes: "server" });
});

test("a counter shows the server's value plus the deltas still on their way", () => {
  const seen = visible({ quantity: 100 }, false, [
    { op: "increment", fields: { quantity: -5 } }, { op: "increment", fields: { quantity: -5 } }]);
  assert.equal(seen.quantity, 90);
});

test("a local delete hides the record; an upsert brings it back with its fields", () => {
  assert.equal(visible({ a: 1 }, false, [{ op: "delete", fields: {} }]), null);
  assert.deepEqual(visible({ a: 1 }, true, [{ op: "upsert", fields: { b: 2 } }]), { a: 1, b: 2 });
  assert.equal(visible(null, false, []), null);
});

test("fields the server said were superseded do not show", () => {
  assert.deepEqual(visible({ a: "server" }, false, [{ op: "upsert", fields: { a: "mine", b: 1 }, superseded: ["a"] }]),
    { a: "server", b: 1 });
});

test("stored bodies: the server copy shows as it is unless ops overlay it", () => {
  const s = { version: 1, seq: "1", deleted: false, fields: { a: 1 }, conflict: false, updatedAt: null, deletedHlc: null };
  assert.deepEqual(shown({ s, o: false }), { a: 1 });
  assert.equal(shown({ s: { ...s, deleted: true }, o: false }), null);
  assert.deepEqual(shown({ s, o: true, v: { a: 2 } }), { a: 2 });
});

test("query equality is JSON equality: 1 and true stay apart, a missing field is null", () => {
  assert.ok(matches({ a: 1, b: [1, 2] }, { a: 1, b: [1, 2] }));
  assert.ok(!matches({ a: 1 }, { a: true }));
  assert.ok(matches({ a: 1 }, { z: null }));
  assert.ok(!matches({ a: 1 }, { z: 0 }));
});
