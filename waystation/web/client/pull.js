// The pull half of a sync: every page of the change feed since the cursor, into the replica.
//
// Each page is applied and the cursor saved in one transaction, so a page closed mid-pull
// resumes from the last page applied. Pulled changes replace the server's copy only;
// unsynced local ops are replayed on top (records.js), so a pull never loses a pending edit.
// While page n is applied, page n+1 is already being fetched (one request in flight at
// most); pages are applied strictly in order.
//
// 410 CURSOR_EXPIRED (or a 400 saying the server never issued our cursor: its database was
// replaced) starts a full re-pull under a new *generation*: every record the fresh snapshot
// delivers is stamped with it, and once the last page is in, server copies of older
// generations are dropped — deletes the replica missed — and so are acknowledged (SYNCED)
// ops of records the snapshot did not deliver. Pending ops are kept throughout. A sign-in
// that finds the user's scopes shrunk or their role changed starts the same re-pull
// (repullEverything): what the user may no longer see leaves the replica.

import { CursorExpired, ValidationError } from "./errors.js";
import { syncEvent } from "./events.js";

/**
 * @typedef {object} PullState  sealed in meta "pull"
 * @property {string} cursor
 * @property {{since: string, etag: string | null} | null} etag the ETag of the page that led here
 * @property {number} generation
 * @property {boolean} repullActive
 */

/**
 * @param {import("./local.js").LocalReplica} local
 * @returns {Promise<PullState>}
 */
export async function readPullState(local) {
  const state = await local.readMeta("pull", null);
  return { cursor: "0", etag: null, generation: 0, repullActive: false, ...(state || {}) };
}

/** @param {unknown} error */
function cursorRefused(error) {
  return error instanceof CursorExpired
    || (error instanceof ValidationError && error.details.field === "since");
}

/**
 * Pull until `hasMore` is false (or the server answers 304); throws the transport's error,
 * leaving every page applied so far in place.
 * @param {import("./local.js").LocalReplica} local
 * @param {any} transport
 * @param {import("./engine.js").SyncResult} result
 * @param {{pageSize: number}} options
 */
export async function pullChanges(local, transport, result, { pageSize }) {
  let restarted = false;
  let state = await readPullState(local);
  let since = state.cursor;
  /** @param {string} from @param {string | null} etag */
  const fetchPage = (from, etag) => {
    const page = transport.pull(from, { limit: pageSize, etag });
    page.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
    return page;
  };
  let coming = fetchPage(since, etagFor(state));
  for (;;) {
    /** @type {import("./transport.js").PullPage} */
    let page;
    try {
      page = await coming;
    } catch (error) {
      if (!cursorRefused(error) || restarted || since === "0" || since === "") throw error;
      await startFullRepull(local, state.generation + 1);
      restarted = true;
      state = await readPullState(local);
      since = state.cursor;
      coming = fetchPage(since, null);
      continue;
    }
    result.bytesSent += page.bytesSent;
    result.bytesReceived += page.bytesReceived;
    result.cursor = page.cursor;
    if (page.notModified) break;
    if (page.hasMore) coming = fetchPage(page.cursor, null);
    const from = since;
    const applied = await local.applyPage(page.changes, async (m) => {
      const current = await m.meta("pull", {});
      m.setMeta("pull", { ...current, cursor: page.cursor, etag: { since: from, etag: page.etag } });
    }, state.generation);
    result.pulled += applied;
    local.events.emit(syncEvent("pull", result, { pending: await local.pendingCount() }));
    if (!page.hasMore) break;
    since = page.cursor;
  }
  await finishFullRepull(local);
}

/**
 * The ETag to offer for a pull from the saved cursor: the one of the page that led there
 * (when that page is still the answer, the server says 304).
 * @param {PullState} state
 */
function etagFor(state) {
  return state.etag && state.etag.since === state.cursor ? state.etag.etag : null;
}

/**
 * Make the next sync pull everything afresh and then drop what the fresh snapshot lacks
 * (pending ops are kept): for a replica whose user lost scopes or changed role, which the
 * change feed would never tell it about.
 * @param {import("./local.js").LocalReplica} local
 */
export async function repullEverything(local) {
  const state = await readPullState(local);
  await startFullRepull(local, state.generation + 1);
}

/**
 * @param {import("./local.js").LocalReplica} local
 * @param {number} generation
 */
async function startFullRepull(local, generation) {
  await local.mutate(async (m) => {
    const current = await m.meta("pull", {});
    m.setMeta("pull", { ...current, cursor: "0", etag: null, generation, repullActive: true });
  }, "pull");
}

/** @param {import("./local.js").LocalReplica} local */
async function finishFullRepull(local) {
  const state = await readPullState(local);
  if (!state.repullActive) return;
  await local.dropOlderGenerations(state.generation);
  await local.mutate(async (m) => {
    const current = await m.meta("pull", {});
    m.setMeta("pull", { ...current, repullActive: false });
  }, "pull");
}
