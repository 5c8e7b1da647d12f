"""``GET /v1/sync/digest`` on both engines: per collection, the count and digest of exactly
the live records a pull delivers to the caller, at the cursor a caught-up pull holds."""

from __future__ import annotations

from typing import Any

import httpx

from tests.server.conftest import MakeDevice
from tests.support import SyncApi
from waystation.core.digest import digest_records
from waystation.core.schema import health_schema

ALL = sorted(health_schema().collections)


def _digest(api: SyncApi, **params: str) -> httpx.Response:
    return api.http.get("/v1/sync/digest", params=params)


def _expected(api: SyncApi) -> tuple[dict[str, dict[str, Any]], str]:
    """The digest computed from what a full pull delivers to ``api`` (the reference), and
    the pull's final cursor."""
    seen, cursor = api.pull_all()
    live = sorted(
        (c["collection"], c["id"], c["version"], c["fields"])
        for c in seen.values()
        if not c["deleted"]
    )
    found = digest_records(live, ALL)
    return {name: {"count": d.count, "digest": d.digest} for name, d in found.items()}, cursor


def _patients(api: SyncApi, facility: str, ids: list[str]) -> None:
    results = api.push(
        [api.change("patients", i, {"name": f"n-{i}", "facility_id": facility}) for i in ids]
    )
    assert [r["status"] for r in results] == ["applied"] * len(ids), results


def test_a_caller_gets_the_digest_of_its_own_facility_only(
    make_device: MakeDevice, facility: str
) -> None:
    other = f"{facility}-b"
    mine = make_device("health_worker", (f"facility:{facility}",))
    theirs = make_device("health_worker", (f"facility:{other}",))
    # ids whose order differs between code points and a locale's collation
    _patients(mine, facility, [f"{facility}{s}" for s in ("B", "_x", "a", "a-b", "aa")])
    _patients(theirs, other, [f"{other}-1"])
    alert = mine.change(
        "alerts",
        f"{facility}-al",
        {"patient_id": f"{facility}a", "facility_id": facility, "title": "t"},
    )
    assert mine.push([alert])[0]["status"] == "applied"

    for api, patients, alerts in ((mine, 5, 1), (theirs, 1, 0)):
        answer = _digest(api)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        expected, cursor = _expected(api)
        assert sorted(body["collections"]) == ALL  # every collection, empty ones too
        assert body["collections"] == expected
        assert body["cursor"] == cursor
        assert body["collections"]["patients"]["count"] == patients
        assert body["collections"]["alerts"]["count"] == alerts
    assert (
        _digest(mine).json()["collections"]["patients"]
        != _digest(theirs).json()["collections"]["patients"]
    )


def test_deleted_records_leave_the_count_and_change_the_digest(
    make_device: MakeDevice, facility: str
) -> None:
    api = make_device("health_worker", (f"facility:{facility}",))
    _patients(api, facility, [f"{facility}-1", f"{facility}-2"])
    before = _digest(api).json()["collections"]["patients"]
    assert before["count"] == 2
    assert (
        api.push([api.change("patients", f"{facility}-2", op="delete", base_version=1)])[0][
            "status"
        ]
        == "applied"
    )
    after = _digest(api).json()
    assert after["collections"]["patients"]["count"] == 1
    assert after["collections"]["patients"]["digest"] != before["digest"]
    assert after["collections"] == _expected(api)[0]


def test_the_cursor_moves_only_for_changes_the_caller_may_pull(
    make_device: MakeDevice, facility: str
) -> None:
    api = make_device("health_worker", (f"facility:{facility}",))
    stranger = make_device("health_worker", (f"facility:{facility}-z",))
    _patients(api, facility, [f"{facility}-1"])
    _, cursor = api.pull_all()
    assert _digest(api).json()["cursor"] == cursor

    _patients(stranger, f"{facility}-z", [f"{facility}-z1"])  # another facility's change
    assert _digest(api).json()["cursor"] == cursor  # nothing for this device to pull
    assert api.pull_all(since=cursor) == ({}, cursor)

    _patients(api, facility, [f"{facility}-2"])
    moved = _digest(api).json()["cursor"]
    assert moved != cursor and moved == api.pull_all(since=cursor)[1]


def test_a_collections_filter_lists_those_and_an_unknown_one_is_refused(
    make_device: MakeDevice, facility: str
) -> None:
    api = make_device("health_worker", (f"facility:{facility}",))
    _patients(api, facility, [f"{facility}-1"])
    some = _digest(api, collections="patients,alerts").json()
    assert sorted(some["collections"]) == ["alerts", "patients"]
    assert some["collections"]["patients"] == _digest(api).json()["collections"]["patients"]

    unknown = _digest(api, collections="patients,nope")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "VALIDATION_ERROR"
    assert unknown.json()["error"]["details"] == {"field": "collections"}
    assert "nope" in unknown.json()["error"]["message"]


def test_a_user_token_is_refused_as_for_a_pull(
    make_device: MakeDevice,
    facility: str,
) -> None:
    api = make_device("health_worker", (f"facility:{facility}",))
    login = api.http.post(
        "/v1/auth/token", json={"username": api.user["username"], "password": "pw"}
    )
    answer = api.http.get(
        "/v1/sync/digest", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "FORBIDDEN"
    assert answer.headers["cache-control"] == "no-store"


def test_an_admin_digest_covers_every_facility(make_device: MakeDevice, facility: str) -> None:
    worker = make_device("health_worker", (f"facility:{facility}",))
    _patients(worker, facility, [f"{facility}-1", f"{facility}-2"])
    admin = make_device("admin")
    body = _digest(admin).json()
    expected, cursor = _expected(admin)
    assert body == {"cursor": cursor, "collections": expected}
    assert body["collections"]["patients"]["count"] >= 2
