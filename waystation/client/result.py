"""What one sync did, as a value: read by the CLI, a UI, the status API and the tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from waystation.client.cursor import Cursor

# Errors a person fixes by logging in again, not by waiting for the network.
LOGIN_ERRORS = frozenset({"LOGIN_REQUIRED", "DEVICE_REVOKED"})


@dataclass(frozen=True, slots=True)
class OpIssue:
    """An op of this run that did not go through: CONFLICT, REJECTED or FAILED, and why."""

    op_id: str
    collection: str
    record_id: str
    status: str
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SyncResult:
    """Totals of one ``sync_once`` run (entries left from earlier runs never count).

    ``pushed`` ops were answered by the server: ``applied + duplicates + conflicts +
    rejected``. ``failed`` ops spent their last retry in this run. ``error`` (with
    ``error_code``) is set when the run could not finish: offline (``OFFLINE``), server
    trouble (``SERVER_UNAVAILABLE``), login needed (``LOGIN_REQUIRED``, ``DEVICE_REVOKED``).
    """

    pushed: int = 0
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    failed: int = 0
    pulled: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    cursor: Cursor | None = None
    error: str | None = None
    error_code: str | None = None
    issues: list[OpIssue] = field(default_factory=list)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        """Finished, and every op of this run went through."""
        return self.error is None and not (self.conflicts or self.rejected or self.failed)

    @property
    def offline(self) -> bool:
        return self.error_code == "OFFLINE"

    @property
    def needs_login(self) -> bool:
        return self.error_code in LOGIN_ERRORS

    def fail(self, code: str, message: str) -> None:
        """Record why the run could not finish (the first reason wins)."""
        if self.error is None:
            self.error, self.error_code = message, code

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of the totals (kept as the replica's last sync)."""
        return {
            "pushed": self.pushed,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "rejected": self.rejected,
            "failed": self.failed,
            "pulled": self.pulled,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "cursor": str(self.cursor) if self.cursor is not None else None,
            "error": self.error,
            "error_code": self.error_code,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }
