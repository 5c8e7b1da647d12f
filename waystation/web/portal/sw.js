// The portal's service worker (scope /portal/): it keeps the app shell — the pages,
// styles, icons and the JS client library — in a versioned cache, so after the first
// visit the portal opens and reloads with no network at all.
//
// - install: fetch every file of SHELL (bypassing the HTTP cache) into the cache named
//   after VERSION. If one fails, the install fails and the previous version stays in
//   charge: a half-cached shell never takes over.
// - activate: delete every other portal cache (a clean upgrade), take the open pages.
// - fetch: the shell's files come from the cache first; the API (/v1/) is never touched:
//   the replica, not the service worker, is what keeps data offline.
// - sync (Background Sync): the worker cannot read the replica (it is encrypted with a key
//   that only lives in an unlocked page), so it asks the open pages to sync.
//
// VERSION is a digest of every file of SHELL (tests/web/test_portal_shell.py computes it
// and says the new value when a file changed): the shell is served from the cache first, so
// a changed file reaches phones only under a new VERSION. An open page then offers "Update".

const VERSION = "0a28b3cef83d";
const CACHE = `waystation-portal-${VERSION}`;
const PREFIX = "waystation-portal-";
const SYNC_TAG = "waystation-outbox";

// Paths relative to this file. tests/web/test_portal_shell.py checks that every file of
// the portal and of the library is listed.
const SHELL = [
  "./",
  "index.html",
  "manifest.webmanifest",
  "icon.svg",
  "css/portal.css",
  "js/app.js",
  "js/dom.js",
  "js/format.js",
  "js/router.js",
  "js/session.js",
  "js/status.js",
  "js/syncer.js",
  "js/views/alerts.js",
  "js/views/attention.js",
  "js/views/care.js",
  "js/views/logs.js",
  "js/views/log-form.js",
  "js/views/settings.js",
  "js/views/signin.js",
  // The JS client library, served beside the portal under /web/client/.
  "../web/client/backoff.js",
  "../web/client/crypto.js",
  "../web/client/db.js",
  "../web/client/engine.js",
  "../web/client/errors.js",
  "../web/client/events.js",
  "../web/client/hlc.js",
  "../web/client/ids.js",
  "../web/client/live.js",
  "../web/client/local.js",
  "../web/client/merge.js",
  "../web/client/outbox.js",
  "../web/client/pull.js",
  "../web/client/push.js",
  "../web/client/records.js",
  "../web/client/replica.js",
  "../web/client/transport.js",
  "../web/client/writes.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL.map((path) => new Request(path, { cache: "no-cache" })));
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("message", (event) => {
  // The page's "Update" button: the waiting worker takes over now.
  if (event.data && event.data.type === "skip-waiting") self.skipWaiting();
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (!url.pathname.startsWith("/portal/") && !url.pathname.startsWith("/web/")) return;
  event.respondWith(fromShell(request, url));
});

/**
 * A shell file from this version's cache, else from the network (stored for next time).
 * A navigation to any page of the portal gets the cached index.html, so deep links open
 * offline too.
 * @param {Request} request
 * @param {URL} url
 */
async function fromShell(request, url) {
  const cache = await caches.open(CACHE);
  const key = request.mode === "navigate" && url.pathname.startsWith("/portal/")
    ? new URL("index.html", self.registration.scope).href : request;
  const hit = await cache.match(key, { ignoreSearch: request.mode === "navigate" });
  if (hit) return hit;
  const answer = await fetch(request);
  if (answer.ok && answer.type === "basic") await cache.put(request, answer.clone());
  return answer;
}

self.addEventListener("sync", (event) => {
  if (event.tag === SYNC_TAG) event.waitUntil(askPagesToSync());
});

async function askPagesToSync() {
  const pages = await self.clients.matchAll({ type: "window" });
  for (const page of pages) page.postMessage({ type: "sync" });
}
