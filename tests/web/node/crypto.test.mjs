// Encryption at rest (WebCrypto, as node provides it too): the password unwraps the data
// key, a wrong one is refused, and a sealed value opens only at its own address.
import { test } from "node:test";
import assert from "node:assert/strict";

import { createKeyring, open, seal, unlockKeyring } from "../../../waystation/web/client/crypto.js";

test("the keyring unlocks with the password only, and keeps no key in clear", async () => {
  const { keyring, key } = await createKeyring("correct horse", { iterations: 1000 });
  assert.equal(key.extractable, false);
  assert.equal(keyring.kdf, "PBKDF2-SHA-256");
  assert.equal(keyring.salt.length, 16);
  const again = await unlockKeyring(keyring, "correct horse");
  const sealed = await seal(key, "records|a|1", { secret: "fever" });
  assert.deepEqual(await open(again, "records|a|1", sealed), { secret: "fever" });
  await assert.rejects(unlockKeyring(keyring, "wrong"), (e) => e.code === "WRONG_PASSWORD");
});

test("the default derivation is PBKDF2 with at least 600,000 iterations", async () => {
  const { keyring } = await createKeyring("pw");
  assert.ok(keyring.iterations >= 600_000);
});

test("a sealed value neither shows its content nor opens at another address", async () => {
  const { key } = await createKeyring("pw", { iterations: 1000 });
  const sealed = await seal(key, "records|symptom_logs|r-1", { notes: "chest pain" });
  assert.ok(sealed instanceof Uint8Array && sealed.length > 12 + 16);
  assert.ok(!Buffer.from(sealed).toString("latin1").includes("chest pain"));
  await assert.rejects(open(key, "records|symptom_logs|r-2", sealed));
});
