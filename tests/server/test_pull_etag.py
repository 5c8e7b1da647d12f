"""Pull ETags: short, and an empty page's is its cursor, so a client that just applied a
page can send ``If-None-Match: "<cursor>"`` with ``since=<cursor>`` and get a 304 on its
very next (idle) pull, not a 200 carrying an empty page."""

from __future__ import annotations

import re

from tests.server.conftest import MakeDevice
from tests.support import SyncApi
from waystation.core.ids import uuid7


def _nurse(make_device: MakeDevice, facility: str) -> SyncApi:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    nurse.push([nurse.change("patients", uuid7(), {"name": "A", "facility_id": facility})])
    return nurse


def test_an_empty_pages_etag_is_its_cursor(make_device: MakeDevice, facility: str) -> None:
    nurse = _nurse(make_device, facility)
    full = nurse.http.get("/v1/sync/pull", params={"since": "0"})
    assert re.fullmatch(r'"[A-Za-z0-9_-]{16}"', full.headers["etag"])  # 96 bits, base64url
    cursor = full.json()["cursor"]
    empty = nurse.http.get("/v1/sync/pull", params={"since": cursor})
    assert empty.json() == {"changes": [], "cursor": cursor, "has_more": False}
    assert empty.headers["etag"] == f'"{cursor}"'


def test_the_cursor_as_etag_answers_304_until_something_is_new(
    make_device: MakeDevice, facility: str
) -> None:
    nurse = _nurse(make_device, facility)
    _, cursor = nurse.pull_all()
    idle = nurse.http.get(
        "/v1/sync/pull",
        params={"since": cursor, "limit": "500"},
        headers={"If-None-Match": f'"{cursor}"'},
    )
    assert idle.status_code == 304
    assert idle.content == b""
    assert idle.headers["etag"] == f'"{cursor}"'
    # Nothing else rides on an idle sync but the no-store every API answer carries.
    assert dict(idle.headers) == {"etag": f'"{cursor}"', "cache-control": "no-store"}
    # The cursor is no validator for a request whose answer is not the empty page.
    assert (
        nurse.http.get(
            "/v1/sync/pull", params={"since": "0"}, headers={"If-None-Match": f'"{cursor}"'}
        ).status_code
        == 200
    )
    nurse.push([nurse.change("patients", uuid7(), {"name": "B", "facility_id": facility})])
    fresh = nurse.http.get(
        "/v1/sync/pull", params={"since": cursor}, headers={"If-None-Match": f'"{cursor}"'}
    )
    assert fresh.status_code == 200
    assert [c["fields"]["name"] for c in fresh.json()["changes"]] == ["B"]
    assert fresh.headers["etag"] != f'"{cursor}"'


def test_a_filtered_pulls_cursor_works_as_its_etag_too(
    make_device: MakeDevice, facility: str
) -> None:
    nurse = _nurse(make_device, facility)
    params = {"collections": "patients"}
    _, cursor = nurse.pull_all(**params)
    assert "." in cursor  # the cursor names its filter
    idle = nurse.http.get(
        "/v1/sync/pull",
        params={"since": cursor, **params},
        headers={"If-None-Match": f'"{cursor}"'},
    )
    assert idle.status_code == 304
