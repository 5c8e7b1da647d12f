"""Errors only a device meets: the exchange with the server did not complete, the replica
has no usable login, or its file cannot be opened with the key given.

The hierarchy (request-level protocol errors such as ``DeviceRevoked`` or ``CursorExpired``
come from ``waystation.core.errors``, rebuilt from the server's error body)::

    WaystationError
    ├── TransportError            the exchange did not complete
    │   ├── Offline               OFFLINE: the server could not be reached; nothing arrived
    │   └── ServerUnavailable     SERVER_UNAVAILABLE: the request may have arrived but no
    │                             usable answer came back (5xx, timeout, dropped connection)
    ├── LoginRequired             LOGIN_REQUIRED: no credentials, or the refresh failed
    ├── ReplicaLocked             REPLICA_LOCKED: an encrypted replica opened without its
    │                             key, or with a wrong one
    └── ReplicaNotEncrypted       REPLICA_NOT_ENCRYPTED: a key given for a plain replica

``Offline`` never counts against an op's retries (a device may be offline for days);
``ServerUnavailable`` does, because the server saw the request and failed it.
"""

from __future__ import annotations

from waystation.core.errors import WaystationError


class TransportError(WaystationError):
    """The exchange with the server did not complete; retrying later is safe."""

    code = "TRANSPORT_ERROR"
    status = 503


class Offline(TransportError):
    """Could not connect (refused, unreachable, DNS, connect timeout): the request never left."""

    code = "OFFLINE"


class ServerUnavailable(TransportError):
    """The request may have reached the server, but the answer was a 5xx or never came."""

    code = "SERVER_UNAVAILABLE"


class LoginRequired(WaystationError):
    """The replica cannot authenticate: never logged in, or its refresh credential was refused.

    The message says how to log in again.
    """

    code = "LOGIN_REQUIRED"
    status = 401


class ReplicaLocked(WaystationError):
    """The replica file is encrypted and was opened without its key, or with a wrong one
    (or the OS keyring holds no key for it). The message says which."""

    code = "REPLICA_LOCKED"
    status = 401


class ReplicaNotEncrypted(WaystationError):
    """A key was given for a replica file that is not encrypted: opening it anyway would
    let the app believe its data is protected. ``encrypt_replica`` converts it."""

    code = "REPLICA_NOT_ENCRYPTED"
    status = 400
