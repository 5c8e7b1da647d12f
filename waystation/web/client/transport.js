// How the client talks to a server: protocol v1 over `fetch`. The only module that does
// network; the engine calls a Transport's methods (push, pull, status, healthz,
// waitForChanges, events), so tests and other transports can stand in.
//
// Every method may throw:
//   Offline            the server could not be reached (details.sent: false when the
//                      browser said it was offline and nothing left; "unknown" when fetch
//                      failed and the request may have left: a push then stays in doubt)
//   ServerUnavailable  5xx, a timeout, an answer cut off: the request may have arrived
//   RequestTimeout     408: the server stopped waiting for the request's body (nothing
//                      was applied; a ServerUnavailable, so retried the same way)
//   LoginRequired      no usable tokens: never signed in, the session ended (reason
//                      session_ended, disabled, refresh_reused), the refresh token refused
//                      or expired. The tokens are then forgotten, so nothing is sent
//                      again with them until the person signs in again
//   DeviceRevoked      the device was revoked (details.wipe)
//   RateLimited        429 (retryAfterMs from Retry-After)
//   PayloadTooLarge, Forbidden, ValidationError, NotFound as the server answers; pull also
//   CursorExpired (re-pull from the start).
//
// Answers come back gzip'd when they are large: the browser decodes them (it sends
// Accept-Encoding itself). Push bodies of 16 KiB or more are sent gzip'd
// (CompressionStream). Every request says `cache: "no-store"`: the HTTP cache must never
// answer for the server, and a pull's If-None-Match is the client's own, so a 304 reaches
// the engine as a 304 (an idle sync).

import {
  DeviceRevoked, LoginRequired, Offline, RequestTimeout, ServerUnavailable, Unauthorized,
  errorFromBody,
} from "./errors.js";

export const GZIP_MIN_BYTES = 16 * 1024;
const encoder = new TextEncoder();

/**
 * @typedef {object} Reply
 * @property {number} status
 * @property {any} body parsed JSON (null for a 304)
 * @property {Headers} headers
 * @property {number} bytesSent
 * @property {number} bytesReceived
 */

/**
 * @typedef {object} ExchangeOptions
 * @property {any} [body] sent as JSON
 * @property {Record<string, string>} [params]
 * @property {Record<string, string>} [headers]
 * @property {string | null} [token]
 * @property {number} [timeoutMs]
 * @property {AbortSignal} [signal]
 */

/** @param {string} text */
async function gzip(text) {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** @param {string | null} value Retry-After: seconds or an HTTP date */
export function retryAfterMs(value) {
  if (!value) return 0;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : 0;
}

/**
 * Whether the server answers GET /healthz within 5 s (never throws).
 * @param {typeof fetch} fetchFn
 * @param {URL} target
 */
async function reachable(fetchFn, target) {
  try {
    const prefix = target.pathname.split("/v1/")[0]; // a server mounted under a path
    const probe = await fetchFn(new URL(`${prefix}/healthz`, target).href,
      { cache: "no-store", credentials: "omit", signal: AbortSignal.timeout(5000) });
    return probe.ok;
  } catch {
    return false;
  }
}

function browserOffline() {
  return globalThis.navigator !== undefined && globalThis.navigator.onLine === false;
}

/**
 * @param {AbortSignal | undefined} signal
 * @param {number} timeoutMs
 */
function withTimeout(signal, timeoutMs) {
  const timeout = AbortSignal.timeout(timeoutMs);
  if (!signal) return timeout;
  return typeof AbortSignal.any === "function" ? AbortSignal.any([signal, timeout]) : signal;
}

/**
 * One request to a Waystation server; resolves with a 2xx or 304 answer, or throws (see
 * the module's header). `fetchFn` is injectable to put a fault in front of a real server.
 * @param {typeof fetch} fetchFn
 * @param {string} method
 * @param {string} url absolute, or relative to the page
 * @param {ExchangeOptions} [options]
 * @returns {Promise<Reply>}
 */
export async function exchange(fetchFn, method, url, { body, params, headers, token, timeoutMs = 30_000, signal } = {}) {
  const target = new URL(url, globalThis.location ? globalThis.location.href : undefined);
  for (const [k, v] of Object.entries(params || {})) target.searchParams.set(k, v);
  /** @type {Record<string, string>} */
  const send = { Accept: "application/json", ...(headers || {}) };
  if (token) send.Authorization = `Bearer ${token}`;
  /** @type {Uint8Array<ArrayBuffer> | undefined} */
  let content;
  if (body !== undefined) {
    const text = JSON.stringify(body);
    send["Content-Type"] = "application/json";
    if (text.length >= GZIP_MIN_BYTES && typeof CompressionStream === "function") {
      content = await gzip(text);
      send["Content-Encoding"] = "gzip";
    } else {
      content = encoder.encode(text);
    }
  }
  if (browserOffline()) {
    throw new Offline(`cannot reach ${target.host}: this device is offline`, { sent: false });
  }
  const requestSignal = withTimeout(signal, timeoutMs);
  /** @type {Response} */
  let response;
  /** @type {ArrayBuffer | null} */
  let raw = null;
  try {
    response = await fetchFn(target.href, {
      method, headers: send, body: content, cache: "no-store", credentials: "omit",
      signal: requestSignal,
    });
    raw = response.status === 304 ? null : await response.arrayBuffer();
  } catch (error) {
    if (signal && signal.aborted) throw error;
    const name = /** @type {any} */ (error)?.name;
    if (name === "TimeoutError" || (name === "AbortError" && requestSignal.aborted)) {
      throw new ServerUnavailable(`no answer from ${target.host} within ${timeoutMs} ms`, { timeout: true });
    }
    // fetch says only "failed": refused, unreachable, or cut off after the request left.
    // If the server answers a probe, it was the answer that got lost.
    const reason = /** @type {any} */ (error)?.message || String(error);
    if (!target.pathname.endsWith("/healthz") && await reachable(fetchFn, target)) {
      throw new ServerUnavailable(`the answer from ${target.host} was lost (${reason})`, { lost: true });
    }
    throw new Offline(`cannot reach ${target.host}: ${reason}`, { sent: "unknown" });
  }
  const bytesSent = content ? content.byteLength : 0;
  const length = Number(response.headers.get("Content-Length"));
  const bytesReceived = Number.isFinite(length) && length > 0 ? length : raw ? raw.byteLength : 0;
  let parsed = null;
  if (raw && raw.byteLength) {
    try {
      parsed = JSON.parse(new TextDecoder().decode(raw));
    } catch {
      parsed = null;
    }
  }
  if (response.status >= 500) {
    throw new ServerUnavailable(`the server failed with HTTP ${response.status}`, { status: response.status });
  }
  if (response.status === 408) {
    const error = errorFromBody(parsed, 408);
    throw new RequestTimeout(error.message, { ...error.details, status: 408 });
  }
  if (response.status >= 400) {
    throw errorFromBody(parsed, response.status, retryAfterMs(response.headers.get("Retry-After")));
  }
  if (response.status !== 304 && parsed === null) {
    throw new ServerUnavailable(`${target.host} answered HTTP ${response.status} without JSON: is it a Waystation server?`);
  }
  return { status: response.status, body: parsed, headers: response.headers, bytesSent, bytesReceived };
}

/**
 * @typedef {object} Credentials  where the transport finds and keeps the device's tokens
 * @property {string} deviceId
 * @property {() => Promise<string | null>} accessToken null when missing or expired
 * @property {() => Promise<string | null>} refreshToken
 * @property {(tokens: import("./local.js").Tokens) => Promise<void>} saveTokens
 * @property {() => Promise<void>} clearTokens forget tokens the server will never take again
 */

/**
 * Why the server refused a token, from a 401's `details.reason`: only an expired access
 * token is worth a refresh. An ended session (`session_ended`), a disabled account
 * (`disabled`) or a refresh family ended by a reuse (`refresh_reused`) refuse the refresh
 * token too, and sending it again would only be refused again.
 * @param {Unauthorized} error
 */
function refreshable(error) {
  const reason = error.details ? error.details.reason : undefined;
  return reason === undefined || reason === null || reason === "expired";
}

/**
 * @param {any} body
 * @param {string} deviceId
 * @returns {import("./local.js").Tokens}
 */
function tokensOf(body, deviceId) {
  return {
    deviceId: String(body.device_id || deviceId),
    accessToken: String(body.access_token),
    refreshToken: body.refresh_token ? String(body.refresh_token) : null,
    expiresIn: Number(body.expires_in || 0),
  };
}

/**
 * Log in: a short-lived user token (used only to register a device) and the user.
 * Throws Unauthorized for a wrong username or password.
 * @param {typeof fetch} fetchFn
 * @param {string} server
 * @param {string} username
 * @param {string} password
 */
export async function login(fetchFn, server, username, password) {
  const reply = await exchange(fetchFn, "POST", `${server}/v1/auth/token`, { body: { username, password } });
  return { userToken: String(reply.body.access_token), user: { username, ...(reply.body.user || {}) } };
}

/**
 * Register this device with a user token; returns its tokens. Throws DeviceRevoked for a
 * revoked device id, Forbidden for one held by another user.
 * @param {typeof fetch} fetchFn
 * @param {string} server
 * @param {string} userToken
 * @param {string} deviceId
 * @param {string} deviceName
 */
export async function registerDevice(fetchFn, server, userToken, deviceId, deviceName) {
  const reply = await exchange(fetchFn, "POST", `${server}/v1/devices`,
    { body: { name: deviceName, device_id: deviceId }, token: userToken });
  return tokensOf(reply.body, deviceId);
}

/**
 * Trade the refresh token for new tokens (they rotate). Throws LoginRequired when the
 * server refuses it, DeviceRevoked when the device was revoked.
 * @param {typeof fetch} fetchFn
 * @param {string} server
 * @param {string} refreshToken
 * @param {string} deviceId
 */
export async function refreshTokens(fetchFn, server, refreshToken, deviceId) {
  try {
    const reply = await exchange(fetchFn, "POST", `${server}/v1/auth/refresh`, { body: { refresh_token: refreshToken } });
    return tokensOf(reply.body, deviceId);
  } catch (error) {
    if (error instanceof Unauthorized && !(error instanceof DeviceRevoked)) {
      throw new LoginRequired(`this device's sign-in has ended (${error.message}): sign in again`,
        { reason: error.details.reason ?? "refresh_refused" });
    }
    throw error;
  }
}

/**
 * @typedef {object} PushAnswer
 * @property {any[]} results one per op, in request order
 * @property {string | null} serverHlc
 * @property {number} bytesSent
 * @property {number} bytesReceived
 * @property {number} sentAtMs
 * @property {number} receivedAtMs
 */

/**
 * @typedef {object} PullPage
 * @property {any[]} changes
 * @property {string} cursor
 * @property {boolean} hasMore
 * @property {string | null} etag
 * @property {boolean} notModified
 * @property {number} bytesSent
 * @property {number} bytesReceived
 */

/** Protocol v1 over fetch. Refreshes an expired access token once per request. */
export class HttpTransport {
  /**
   * @param {string} server e.g. location.origin
   * @param {Credentials} credentials
   * @param {{fetch?: typeof fetch, timeoutMs?: number}} [options]
   */
  constructor(server, credentials, { fetch: fetchFn, timeoutMs = 30_000 } = {}) {
    this.server = server.replace(/\/+$/, "");
    this.credentials = credentials;
    this.fetch = fetchFn || globalThis.fetch.bind(globalThis);
    this.timeoutMs = timeoutMs;
    /** @type {Promise<string> | null} one refresh at a time: refresh tokens are single-use */
    this.refreshing = null;
  }

  /**
   * Send ops in order; the answer has one result per op.
   * @param {string} deviceId
   * @param {any[]} changes
   * @returns {Promise<PushAnswer>}
   */
  async push(deviceId, changes) {
    const sentAtMs = Date.now();
    const reply = await this.authed("POST", "/v1/sync/push", { body: { device_id: deviceId, changes } });
    const receivedAtMs = Date.now();
    const body = object(reply);
    return {
      results: Array.isArray(body.results) ? body.results : [],
      serverHlc: typeof body.server_hlc === "string" ? body.server_hlc : null,
      bytesSent: reply.bytesSent, bytesReceived: reply.bytesReceived, sentAtMs, receivedAtMs,
    };
  }

  /**
   * One page of changes after `since`. Without the ETag of an earlier answer to this very
   * request, offer the one an empty page at `since` has (its cursor quoted): then an idle
   * sync is a 304 the first time too.
   * @param {string} since
   * @param {{limit: number, etag?: string | null}} options
   * @returns {Promise<PullPage>}
   */
  async pull(since, { limit, etag = null }) {
    const start = since === "" || since === "0";
    const offer = etag || (start ? null : `"${since}"`);
    const reply = await this.authed("GET", "/v1/sync/pull", {
      params: { since, limit: String(limit) }, headers: offer ? { "If-None-Match": offer } : {},
    });
    if (reply.status === 304) {
      return { changes: [], cursor: since, hasMore: false, etag: offer, notModified: true,
        bytesSent: reply.bytesSent, bytesReceived: reply.bytesReceived };
    }
    const body = object(reply);
    return {
      changes: Array.isArray(body.changes) ? body.changes : [],
      cursor: String(body.cursor ?? since),
      hasMore: Boolean(body.has_more),
      etag: reply.headers.get("ETag"),
      notModified: false,
      bytesSent: reply.bytesSent,
      bytesReceived: reply.bytesReceived,
    };
  }

  /** GET /v1/sync/status: server clock, collections (priority, counters), device. */
  async status() {
    const sentAtMs = Date.now();
    const reply = await this.authed("GET", "/v1/sync/status", {});
    return { body: object(reply), sentAtMs, receivedAtMs: Date.now() };
  }

  /** A cheap connectivity probe: true when the server answers. Never throws. */
  async healthz() {
    try {
      await exchange(this.fetch, "GET", `${this.server}/healthz`, { timeoutMs: 5000 });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Long poll: true as soon as the server has changes after `since` for this device.
   * @param {string} since
   * @param {{waitS?: number, signal?: AbortSignal}} [options]
   */
  async waitForChanges(since, { waitS = 25, signal } = {}) {
    const token = await this.credentials.accessToken();
    if (!token) throw new LoginRequired("no access token yet: sync first");
    const reply = await exchange(this.fetch, "GET", `${this.server}/v1/sync/events`, {
      params: { since, wait: String(waitS) }, token, timeoutMs: (waitS + 15) * 1000, signal,
    });
    return Boolean(object(reply).changed);
  }

  /**
   * Follow GET /v1/sync/events as server-sent events, read with fetch streaming
   * (EventSource cannot send an Authorization header). Calls `onChanges` for each
   * `changes` event; resolves when the server ends the stream (after ~5 minutes) or
   * `signal` aborts; throws like exchange() when it cannot open, and ServerUnavailable
   * when nothing (not even a keepalive) arrives for `idleMs`.
   * @param {string} since the pull cursor
   * @param {{signal: AbortSignal, onOpen?: () => void, onChanges: (seq: string | null) => void, idleMs?: number}} options
   */
  async events(since, { signal, onOpen, onChanges, idleMs = 45_000 }) {
    const token = await this.credentials.accessToken();
    if (!token) throw new LoginRequired("no access token yet: sync first");
    if (browserOffline()) throw new Offline("this device is offline", { sent: false });
    const url = new URL(`${this.server}/v1/sync/events`, globalThis.location ? globalThis.location.href : undefined);
    url.searchParams.set("since", since);
    const idle = new AbortController();
    const both = typeof AbortSignal.any === "function" ? AbortSignal.any([signal, idle.signal]) : signal;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => idle.abort(), idleMs);
    };
    arm();
    /** @type {Response} */
    let response;
    try {
      response = await this.fetch(url.href, {
        headers: { Accept: "text/event-stream", Authorization: `Bearer ${token}` },
        cache: "no-store", credentials: "omit", signal: both,
      });
    } catch (error) {
      clearTimeout(timer);
      if (signal.aborted) return;
      throw new Offline(`cannot open the event stream: ${/** @type {any} */ (error)?.message || error}`, { sent: "unknown" });
    }
    if (!response.ok || !response.body) {
      clearTimeout(timer);
      let parsed = null;
      try {
        parsed = await response.json();
      } catch {
        parsed = null;
      }
      if (response.status >= 500) throw new ServerUnavailable(`the event stream failed with HTTP ${response.status}`);
      throw errorFromBody(parsed, response.status, retryAfterMs(response.headers.get("Retry-After")));
    }
    if (onOpen) onOpen();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    /** @type {Record<string, string>} */
    let event = {};
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        arm();
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (line === "") {
            if (event.event === "changes") {
              let seq = null;
              try {
                seq = JSON.parse(event.data || "{}").seq ?? null;
              } catch {
                seq = null;
              }
              onChanges(seq);
            }
            event = {};
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const name = colon < 0 ? line : line.slice(0, colon);
            event[name] = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          }
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (idle.signal.aborted) throw new ServerUnavailable(`the event stream was silent for ${idleMs} ms`);
      throw new Offline(`the event stream broke: ${/** @type {any} */ (error)?.message || error}`, { sent: "unknown" });
    } finally {
      clearTimeout(timer);
      reader.cancel().catch(() => undefined);
    }
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {ExchangeOptions} options
   */
  async authed(method, path, options) {
    const url = `${this.server}${path}`;
    /** @param {string} token */
    const send = (token) => exchange(this.fetch, method, url, { timeoutMs: this.timeoutMs, ...options, token });
    const token = (await this.credentials.accessToken()) || (await this.refresh(null));
    let fresh;
    try {
      return await send(token);
    } catch (error) {
      if (!(error instanceof Unauthorized) || error instanceof DeviceRevoked) throw error;
      if (refreshable(error)) {
        fresh = await this.refresh(token);
      } else {
        // Signed in again meanwhile (another tab)? Then the new token gets one try.
        const now = await this.credentials.accessToken();
        if (!now || now === token) throw await this.ended(error, token);
        fresh = now;
      }
    }
    try {
      return await send(fresh);
    } catch (error) {
      if (error instanceof Unauthorized && !(error instanceof DeviceRevoked)) throw await this.ended(error, fresh);
      throw error;
    }
  }

  /**
   * The server will not take this device's tokens again: forget them (so nothing is sent
   * with them again, and the replica's status says it is signed out), unless a sign-in
   * replaced them meanwhile, and say so.
   * @param {Unauthorized} error
   * @param {string} refused the access token the server refused
   */
  async ended(error, refused) {
    const now = await this.credentials.accessToken();
    if (!now || now === refused) await this.credentials.clearTokens();
    return new LoginRequired(`this device's sign-in has ended (${error.message}): sign in again`,
      { reason: error.details.reason ?? "refused" });
  }

  /**
   * A new access token from the refresh token, one refresh at a time: refresh tokens are
   * single-use, and the server ends every session of a device that presents one twice. A
   * caller whose token `failed` finds the one a refresh just stored instead. A refused
   * refresh forgets the tokens (LoginRequired).
   * @param {string | null} failed the access token the server just refused, if any
   */
  refresh(failed) {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        const current = await this.credentials.accessToken();
        if (current && failed && current !== failed) return current;
        const refresh = await this.credentials.refreshToken();
        if (!refresh) throw new LoginRequired("this device is not signed in (or its sign-in ended): sign in again");
        let tokens;
        try {
          tokens = await refreshTokens(this.fetch, this.server, refresh, this.credentials.deviceId);
        } catch (error) {
          // Refused: forget the tokens, unless a sign-in replaced them meanwhile.
          if (error instanceof LoginRequired && (await this.credentials.refreshToken()) === refresh) {
            await this.credentials.clearTokens();
          }
          throw error;
        }
        await this.credentials.saveTokens(tokens);
        return tokens.accessToken;
      })().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }
}

/**
 * The answer's JSON object; anything else is a server defect, retried like a 5xx.
 * @param {Reply} reply
 */
function object(reply) {
  if (!reply.body || typeof reply.body !== "object" || Array.isArray(reply.body)) {
    throw new ServerUnavailable("the server answered with something other than a JSON object");
  }
  return reply.body;
}
