"""``GET /v1/audit``'s query: malformed input is a 400 VALIDATION_ERROR naming the
parameter, as the OpenAPI document says, never a 500 (hole 11).

Before these checks the route failed with a 500 on an ``after`` of Unicode digits (``²``
passes ``str.isdigit`` but not ``int``), on an ``after`` beyond a 64-bit id (SQLite cannot
bind it), on a ``limit`` beyond 64 bits (the read's audit entry could not be encoded) and,
on PostgreSQL, on a NUL in a text filter (PostgreSQL text cannot hold one); a ``since``
ending in a NUL was taken as the time before it.
"""

from __future__ import annotations

import pytest

from tests.server.conftest import MakeDevice
from tests.support import SyncApi

NUL = "\x00"


@pytest.fixture
def admin(make_device: MakeDevice) -> SyncApi:
    return make_device("admin")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "²"}, "after"),
        ({"after": "1" * 20}, "after"),
        ({"after": "-1"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"user_id": f"u{NUL}1"}, "user_id"),
        ({"device_id": f"d{NUL}1"}, "device_id"),
        ({"scope": f"patient:p{NUL}1"}, "scope"),
        ({"action": f"sync.pull{NUL}"}, "action"),
        ({"since": f"2025-11-30T00:00:00Z{NUL}"}, "since"),
        ({"until": "yesterday"}, "until"),
    ],
)
def test_hole_11_a_malformed_audit_query_is_a_400_not_a_500(
    admin: SyncApi, params: dict[str, str], field: str
) -> None:
    resp = admin.http.get("/v1/audit", params=params)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"]["field"] == field


def test_the_largest_entry_id_and_page_size_are_answered(admin: SyncApi) -> None:
    """The bounds themselves are valid: an empty page after the last possible id, and a
    page size above the maximum clamped to it."""
    last = admin.http.get("/v1/audit", params={"after": str(2**63 - 1)})
    assert last.status_code == 200, last.text
    assert last.json() == {"entries": [], "has_more": False}
    for limit in ("1000000", str(10**30)):
        big = admin.http.get("/v1/audit", params={"limit": limit})
        assert big.status_code == 200, big.text
        assert len(big.json()["entries"]) <= 1000
    reads = admin.http.get("/v1/audit", params={"action": "audit.read"}).json()["entries"]
    # the two big reads, each recorded with the page size it was given (then this one)
    assert [r["details"]["filters"] for r in reads[-3:]] == [
        {"limit": 1000},
        {"limit": 1000},
        {"action": "audit.read"},
    ]
