// The portal's start: register the service worker, sign in or unlock, then show the page
// the address names and keep it current as the replica changes.

import { byId, h, replace } from "./dom.js";
import { current } from "./router.js";
import { forget, hasReplica, signIn, unlock } from "./session.js";
import { StatusIndicator } from "./status.js";
import { Syncer } from "./syncer.js";
import * as alerts from "./views/alerts.js";
import * as attention from "./views/attention.js";
import * as care from "./views/care.js";
import * as logForm from "./views/log-form.js";
import * as logs from "./views/logs.js";
import * as settings from "./views/settings.js";
import { renderSignIn, renderUnlock } from "./views/signin.js";

const main = byId("main");
const nav = byId("nav");
const notice = byId("notice");

/** @type {import("./session.js").Session | null} */
let session = null;
/** @type {Syncer | null} */
let syncer = null;
/** @type {StatusIndicator | null} */
let indicator = null;
/** @type {ReturnType<typeof setTimeout> | null} */
let noticeTimer = null;
/** Set while the patient signs out (the replica's "wiped" event is then expected). */
let leaving = false;
/** Stops following the open replica's events. */
let unsubscribe = () => {};

/** @param {string} message shown a few seconds at the bottom, read out by screen readers */
function notify(message) {
  notice.textContent = message;
  if (noticeTimer) clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { notice.textContent = ""; }, 6000);
}

async function boot() {
  void registerServiceWorker();
  indicator = new StatusIndicator(() => syncer?.now());
  window.addEventListener("hashchange", () => { void show(); });
  if (await hasReplica()) showUnlock();
  else showSignIn();
}

function showSignIn() {
  nav.hidden = true;
  renderSignIn(main, async (username, password) => {
    started(await signIn(username, password));
  });
}

function showUnlock() {
  nav.hidden = true;
  renderUnlock(main, async (password) => {
    started(await unlock(password));
  }, async () => {
    await forget();
    showSignIn();
  });
}

/** @param {import("./session.js").Session} opened */
function started(opened) {
  session = opened;
  leaving = false;
  nav.hidden = false;
  byId("status").hidden = false;
  unsubscribe = opened.subscribe((event) => {
    if (event.type === "sync") {
      indicator?.onSync(event);
      if (event.phase === "done") void counts();
    } else if (event.type === "change") {
      if (event.source === "local") {
        notify(indicator?.offline
          ? "Saved on this phone. It will be sent to the clinic when you are back online."
          : "Saved.");
      }
      void refresh();
    } else if (event.type === "wiped" && !leaving) {
      void signedOut("This phone's copy of your data was erased. Sign in again to continue.");
    }
  });
  syncer = new Syncer(opened);
  void show();
  syncer.start();
}

/**
 * Back to the sign-in page, saying why: after sign-out, or after the clinic revoked this
 * phone and asked for its copy to be wiped (the library has erased it by then).
 * @param {string} why
 */
async function signedOut(why) {
  unsubscribe();
  syncer?.stop();
  syncer = null;
  session = null;
  byId("status").hidden = true;
  history.replaceState(null, "", location.pathname);
  showSignIn();
  notify(why);
}

/** Each drawing of a page gets a number; only the newest one reaches the screen. */
let drawing = 0;

/**
 * Draw the page the address names. The page is built off screen and shown only if no
 * newer drawing started meanwhile: a redraw after a sync that is still reading the replica
 * must not replace the form the patient just opened.
 */
async function show() {
  const s = session;
  if (!s) return;
  const mine = ++drawing;
  const route = current();
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.route === route.name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const page = document.createElement("div");
  if (route.name === "logs" && route.arg) {
    await logForm.render(page, s, route.arg, () => {});
  } else if (route.name === "alerts") {
    await alerts.render(page, s);
  } else if (route.name === "care") {
    await care.render(page, s);
  } else if (route.name === "settings") {
    await settings.render(page, s, async () => {
      leaving = true;
      await s.signOut();
      await signedOut("Signed out. Your data was erased from this phone.");
    });
  } else if (route.name === "attention") {
    await attention.render(page, s, notify);
  } else {
    await logs.render(page, s);
  }
  if (mine !== drawing || session !== s) return;
  main.replaceChildren(...page.childNodes);
  await counts();
}

/** @type {Promise<void> | null} */
let refreshing = null;
let refreshAgain = false;

/**
 * Redraw after a change (a write here, a sync's pull) — but never under a person's
 * fingers: a form being filled in stays as it is.
 */
async function refresh() {
  if (refreshing) { refreshAgain = true; return; }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      const route = current();
      const editing = route.name === "logs" && route.arg
        || main.contains(document.activeElement) && document.activeElement?.matches("input, textarea, select");
      if (editing) await counts();
      else await show();
    } while (refreshAgain);
  })();
  try { await refreshing; } finally { refreshing = null; }
}

/** The indicator's counts and the unread alerts badge. */
async function counts() {
  const s = session;
  if (!s) return;
  indicator?.setCounts(await s.status());
  const unread = await alerts.unreadCount(s);
  const badge = byId("unread");
  badge.hidden = unread === 0;
  badge.textContent = String(unread);
  badge.setAttribute("aria-label", `${unread} unread`);
}

async function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  const registration = await navigator.serviceWorker.register("sw.js", { scope: "./" })
    .catch((err) => { console.warn("no service worker: the portal will not open offline", err); });
  if (!registration) return;
  const banner = byId("update");
  const offer = () => { if (registration.waiting && navigator.serviceWorker.controller) banner.hidden = false; };
  offer();
  registration.addEventListener("updatefound", () => {
    registration.installing?.addEventListener("statechange", offer);
  });
  let reloading = false;
  byId("update-now").addEventListener("click", () => {
    reloading = true;
    registration.waiting?.postMessage({ type: "skip-waiting" });
  });
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (reloading) location.reload();
  });
}

boot().catch((err) => {
  console.error(err);
  replace(main, h("p", { class: "error" }, `The portal could not start: ${err instanceof Error ? err.message : err}`));
});
