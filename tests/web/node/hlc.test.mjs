// The JS client's hybrid logical clock: the wire form and the send/receive rules of
// docs/protocol.md §3, as the Python core implements them.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Clock, MAX_COUNTER, formatHlc, parseHlc } from "../../../waystation/web/client/hlc.js";

test("the wire form pads wall and counter so string order is clock order", () => {
  const a = formatHlc({ wall: 1764496800000, counter: 0, node: "d-7f3a" });
  assert.equal(a, "001764496800000-00000-d-7f3a");
  assert.deepEqual(parseHlc(a), { wall: 1764496800000, counter: 0, node: "d-7f3a" });
  const b = formatHlc({ wall: 1764496800000, counter: 10, node: "d-7f3a" });
  const c = formatHlc({ wall: 1764496800001, counter: 0, node: "a" });
  assert.ok(a < b && b < c);
});

test("a malformed clock is a VALIDATION_ERROR naming its field", () => {
  assert.throws(() => parseHlc("yesterday"), (e) => e.code === "VALIDATION_ERROR" && e.details.field === "hlc");
  assert.throws(() => parseHlc("1-2-x", "fields.x"), (e) => e.details.field === "fields.x");
});

test("send never goes backwards, even when the wall clock does", () => {
  let now = 1_000_000;
  const clock = new Clock("d-a", { nowMs: () => now });
  const first = formatHlc(clock.send());
  now -= 500; // the phone's clock was set back
  const second = formatHlc(clock.send());
  assert.ok(second > first);
  assert.equal(clock.last.counter, 1);
});

test("the counter overflows into the next millisecond", () => {
  const clock = new Clock("d-a", { nowMs: () => 5, last: { wall: 5, counter: MAX_COUNTER, node: "x" } });
  assert.deepEqual(clock.send(), { wall: 6, counter: 0, node: "d-a" });
});

test("receive folds a remote clock in: ours is then above it", () => {
  const clock = new Clock("d-a", { nowMs: () => 100 });
  const remote = { wall: 5000, counter: 7, node: "s-1" };
  clock.receive(remote);
  assert.deepEqual(clock.last, { wall: 5000, counter: 8, node: "d-a" });
  assert.ok(formatHlc(clock.send()) > formatHlc(remote));
});

test("a phone whose date is wrong learns the offset to the server's time", () => {
  const clock = new Clock("d-a", { nowMs: () => 1_000 });
  clock.observeServerTime({ wall: 101_000, counter: 0, node: "s-1" }, 900, 1_100);
  assert.equal(clock.offsetMs, 100_000);
  assert.ok(clock.send().wall >= 101_000);
});

test("an invalid node id is refused", () => {
  assert.throws(() => new Clock("no spaces"), /node id/);
});
