// Every error the client names, with its protocol code.
//
//   WaystationError                      code
//   ├── ValidationError                  VALIDATION_ERROR   400
//   ├── Unauthorized                     UNAUTHORIZED       401
//   │   └── DeviceRevoked                DEVICE_REVOKED     401 (details.wipe)
//   ├── Forbidden                        FORBIDDEN          403
//   ├── NotFound                         NOT_FOUND          404
//   ├── CursorExpired                    CURSOR_EXPIRED     410
//   ├── PayloadTooLarge                  PAYLOAD_TOO_LARGE  413
//   ├── RateLimited                      RATE_LIMITED       429 (retryAfterMs)
//   ├── TransportError                   the exchange did not complete
//   │   ├── Offline                      OFFLINE: nothing reached the server
//   │   └── ServerUnavailable            SERVER_UNAVAILABLE: 5xx, timeout, lost answer
//   │       └── RequestTimeout           REQUEST_TIMEOUT    408: the body came too slowly
//   ├── LoginRequired                    LOGIN_REQUIRED: no tokens, the session ended, or
//   │                                    the refresh was refused (details.reason)
//   └── local to this browser
//       ├── WrongPassword                WRONG_PASSWORD: the replica did not unlock
//       ├── NoReplica                    NO_REPLICA: nothing stored under that name
//       ├── ReplicaExists                REPLICA_EXISTS: another sign-in's data is here
//       └── ReplicaClosed                REPLICA_CLOSED: signed out, wiped or closed
//
// The server's error bodies ({"error": {code, message, details}}) become the class their
// code names (errorFromBody), so the client and the server speak one vocabulary. Branch on
// `code`, never on `message`, which is for people.

/** Base of every error with a protocol code. */
export class WaystationError extends Error {
  /**
   * @param {string} message for a person
   * @param {Record<string, any>} [details] machine-readable, e.g. {field}
   * @param {string} [code] overrides the class's code (an unknown server code)
   */
  constructor(message, details = {}, code) {
    super(message);
    this.name = new.target.name;
    /** @type {string} */
    this.code = code || /** @type {any} */ (new.target).code || "INTERNAL";
    /** @type {Record<string, any>} */
    this.details = details || {};
  }
}
WaystationError.code = "INTERNAL";

export class ValidationError extends WaystationError {}
ValidationError.code = "VALIDATION_ERROR";
export class Unauthorized extends WaystationError {}
Unauthorized.code = "UNAUTHORIZED";
export class DeviceRevoked extends Unauthorized {}
DeviceRevoked.code = "DEVICE_REVOKED";
export class Forbidden extends WaystationError {}
Forbidden.code = "FORBIDDEN";
export class NotFound extends WaystationError {}
NotFound.code = "NOT_FOUND";
export class CursorExpired extends WaystationError {}
CursorExpired.code = "CURSOR_EXPIRED";
export class PayloadTooLarge extends WaystationError {}
PayloadTooLarge.code = "PAYLOAD_TOO_LARGE";

export class RateLimited extends WaystationError {
  /**
   * @param {string} message
   * @param {Record<string, any>} [details]
   * @param {number} [retryAfterMs] from the Retry-After header
   */
  constructor(message, details = {}, retryAfterMs = 0) {
    super(message, details);
    this.retryAfterMs = retryAfterMs;
  }
}
RateLimited.code = "RATE_LIMITED";

export class TransportError extends WaystationError {}
TransportError.code = "TRANSPORT_ERROR";
/** The server could not be reached; the request never left (spends no retry). */
export class Offline extends TransportError {}
Offline.code = "OFFLINE";
/** The request may have reached the server but no usable answer came back. */
export class ServerUnavailable extends TransportError {}
ServerUnavailable.code = "SERVER_UNAVAILABLE";
/**
 * The server never saw the whole request: its body paused longer than the server waits
 * (408; the connection is closed). Nothing was applied; the same request is sent again
 * later, like after a 5xx.
 */
export class RequestTimeout extends ServerUnavailable {}
RequestTimeout.code = "REQUEST_TIMEOUT";
/**
 * Never logged in, the session ended (a password or access change, a disabled account, a
 * refresh token presented twice) or the refresh token was refused or expired: sign in
 * again. `details.reason` carries the server's reason when there is one.
 */
export class LoginRequired extends WaystationError {}
LoginRequired.code = "LOGIN_REQUIRED";

/** The password did not unlock the replica stored in this browser. */
export class WrongPassword extends WaystationError {}
WrongPassword.code = "WRONG_PASSWORD";
/** No replica is stored in this browser under that name. */
export class NoReplica extends WaystationError {}
NoReplica.code = "NO_REPLICA";
/** This browser holds another sign-in's replica: sign out (erase it) first. */
export class ReplicaExists extends WaystationError {}
ReplicaExists.code = "REPLICA_EXISTS";
/** The replica was closed, signed out or wiped; unlock or sign in again. */
export class ReplicaClosed extends WaystationError {}
ReplicaClosed.code = "REPLICA_CLOSED";

const BY_CODE = Object.fromEntries(
  [ValidationError, Unauthorized, DeviceRevoked, Forbidden, NotFound, CursorExpired,
    PayloadTooLarge, RateLimited].map((cls) => [/** @type {any} */ (cls).code, cls]),
);

/**
 * The error a server's error body names.
 * @param {any} body the parsed JSON body (or null)
 * @param {number} status HTTP status
 * @param {number} [retryAfterMs] for a 429
 * @returns {WaystationError}
 */
export function errorFromBody(body, status, retryAfterMs = 0) {
  const error = body && typeof body === "object" ? body.error : null;
  const code = error && typeof error.code === "string" ? error.code : null;
  const message = error && typeof error.message === "string"
    ? error.message : `the server answered HTTP ${status}`;
  const details = error && error.details && typeof error.details === "object"
    ? error.details : {};
  if (code === "RATE_LIMITED" || status === 429) {
    return new RateLimited(message, details, retryAfterMs);
  }
  const cls = code ? BY_CODE[code] : undefined;
  if (cls) return new cls(message, details);
  if (status === 401) return new Unauthorized(message, details);
  return new WaystationError(message, details, code || `HTTP_${status}`);
}
