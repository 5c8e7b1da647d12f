"""RFC 3339 UTC times, the protocol's only time format on the wire."""

from __future__ import annotations

import datetime as dt


def rfc3339(ms: int | None) -> str | None:
    """Unix milliseconds as ``2025-11-30T10:00:03.000Z`` (None stays None)."""
    if ms is None:
        return None
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
