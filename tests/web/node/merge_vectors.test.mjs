// The shared merge vectors (tests/vectors/merge/*.json, "layer": "merge"), run against the
// JS client's merge.js: the same cases the Python core passes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { isDeleted, mergeChange, recordState } from "../../../waystation/web/client/merge.js";

const here = dirname(fileURLToPath(import.meta.url));
const vectors = join(here, "..", "..", "vectors", "merge");

function kinds(schema, collection) {
  const fields = schema.collections[collection].fields || {};
  const monotonic = new Set();
  const counters = new Set();
  for (const [name, spec] of Object.entries(fields)) {
    if (spec.monotonic) monotonic.add(name);
    if (spec.type === "counter") counters.add(name);
  }
  return { monotonic, counters };
}

function stateOf(raw) {
  if (raw === null) return recordState(null);
  return recordState({ fields: raw.fields, clocks: raw.clocks, deletedClock: raw.deleted_clock, version: raw.version ?? 1 });
}

const files = readdirSync(vectors).filter((f) => f.endsWith(".json")).sort();
let mergeCases = 0;

for (const file of files) {
  const doc = JSON.parse(readFileSync(join(vectors, file), "utf8"));
  if (doc.layer !== "merge") continue;
  for (const c of doc.cases) {
    mergeCases += 1;
    test(`${file}: ${c.name}`, () => {
      const spec = kinds(doc.schema, c.collection);
      const state = stateOf(c.state);
      const before = JSON.stringify(state);
      const out = mergeChange(state, c.change, spec);
      assert.deepEqual({
        fields: out.state.fields,
        clocks: out.state.clocks,
        deleted_clock: out.state.deletedClock,
        deleted: isDeleted(out.state, spec.counters),
        changed: out.changed,
        superseded: out.superseded,
      }, c.expected);
      assert.equal(JSON.stringify(state), before, "merge never modifies what it is given");
    });
  }
}

test("every merge-layer vector file was found", () => {
  assert.ok(files.includes("lww.json") && files.includes("counters.json"));
  assert.ok(mergeCases >= 25, `only ${mergeCases} merge cases`);
});
