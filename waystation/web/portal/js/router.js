// Pages are addressed by the hash (#/logs, #/logs/new, #/logs/<id>, #/alerts, ...), so a
// reload — online or off — comes back to the same page and the service worker only ever
// has to serve one document.

/**
 * @typedef {{name: string, arg: string | null}} Route
 */

export const PAGES = ["logs", "alerts", "care", "settings", "attention"];

/** The page the hash names (the symptom logs when it names none). @returns {Route} */
export function current() {
  const [name, arg] = location.hash.replace(/^#\/?/, "").split("/");
  return PAGES.includes(name) ? { name, arg: arg ? decodeURIComponent(arg) : null }
    : { name: "logs", arg: null };
}

/** @param {string} path e.g. "logs/new" */
export function go(path) {
  const hash = `#/${path}`;
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}
