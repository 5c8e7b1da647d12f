"""The Python client SDK: a local replica that works offline and syncs exactly once.

::

    from waystation.client import Replica

    rep = Replica.open("tablet.db", server="http://127.0.0.1:8000",
                       username="hw1", password="...")
    rid = rep.put("symptom_logs", {"patient_id": "p-1", "facility_id": "f-1",
                                   "date": "2025-11-30", "severity": 3})
    result = rep.sync()

Modules, one job each: ``replica`` (the API) over ``local`` (the device side) and
``link`` (its one HTTP client), ``db`` (the SQLite file), ``outbox``, ``records`` +
``overlay`` (server copy and what the app sees), ``values`` (JSON checks), ``clock`` (the
persisted HLC), ``session`` + ``login`` + ``auth`` (credentials), ``engine``
(``run_sync``) with ``push`` / ``pull`` (its halves) and ``result``, ``transport`` +
``wire`` (HTTP), ``conflicts`` (``ReviewClient``), ``backoff``, ``events``,
``continuous``, ``lock``, ``cursor``, ``errors``; ``keys`` + ``cipher`` (encryption at
rest); ``verify`` (the integrity digest). docs/client.md is the guide.
"""

from waystation.client.backoff import RetryPolicy
from waystation.client.cipher import encrypt_replica
from waystation.client.conflicts import ReviewClient
from waystation.client.continuous import Continuous
from waystation.client.cursor import Cursor
from waystation.client.errors import (
    LoginRequired,
    Offline,
    ReplicaLocked,
    ReplicaNotEncrypted,
    ServerUnavailable,
    TransportError,
)
from waystation.client.events import SyncEvent
from waystation.client.keys import ReplicaKey
from waystation.client.local import LocalReplica
from waystation.client.outbox import OpStatus, OutboxEntry
from waystation.client.replica import Replica, sync_once
from waystation.client.result import OpIssue, SyncResult
from waystation.client.transport import HttpTransport, PullPage, PushAnswer, Transport
from waystation.client.verify import CollectionCheck, VerifyResult, VerifyStatus

__all__ = [
    "CollectionCheck",
    "Continuous",
    "Cursor",
    "HttpTransport",
    "LocalReplica",
    "LoginRequired",
    "Offline",
    "OpIssue",
    "OpStatus",
    "OutboxEntry",
    "PullPage",
    "PushAnswer",
    "Replica",
    "ReplicaKey",
    "ReplicaLocked",
    "ReplicaNotEncrypted",
    "RetryPolicy",
    "ReviewClient",
    "ServerUnavailable",
    "SyncEvent",
    "SyncResult",
    "Transport",
    "TransportError",
    "VerifyResult",
    "VerifyStatus",
    "encrypt_replica",
    "sync_once",
]
