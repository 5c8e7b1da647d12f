"""Who may do what, asked of a real server on both engines: every role against every
endpoint, in its own scope and in another's; then 1,000 seeded random attempts by users of
facility B on facility A, whose answers must carry nothing of A — no field value, no record
or conflict id the attacker did not send itself — and must read the same for A's records as
for ids that were never used.

Facility A's records carry a secret marker in every text field; A's ids are known to the
attackers (as if guessed or leaked), which is the worst case."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support import LiveServer, SyncApi
from waystation.core.ids import uuid7

ROLES = ("patient", "health_worker", "pharmacist", "admin")
MARKER = "SECRET-A"


@dataclass
class Facility:
    """One facility's people and records: a patient, a device per role, a record of every
    collection (ids by collection) and open conflicts."""

    fid: str
    patient_id: str
    devices: dict[str, SyncApi]
    records: dict[str, str] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    log_date: str = "2025-11-30"


def _user(server: LiveServer, role: str, fid: str, patient_id: str) -> SyncApi:
    scopes = {"patient": (f"patient:{patient_id}",), "admin": ()}.get(role, (f"facility:{fid}",))
    name = f"{role}-{fid}-{uuid7()[-8:]}"
    server.add_user(name, role, scopes)
    return SyncApi(server.url, name)


def _seed(server: LiveServer, admin: SyncApi, tag: str) -> Facility:
    fid, patient_id = f"f-{tag}-{uuid7()[-8:]}", f"p-{tag}-{uuid7()[-8:]}"
    devices = {role: _user(server, role, fid, patient_id) for role in ROLES[:3]}
    devices["admin"] = admin
    fac = Facility(fid, patient_id, devices)
    secret = f"{MARKER}-{uuid7()}" if tag == "a" else f"public-{tag}"
    where = {"patient_id": patient_id, "facility_id": fid}
    seeds: dict[str, tuple[str, dict[str, Any]]] = {
        "patients": (patient_id, {"name": secret, "facility_id": fid}),
        "encounters": (uuid7(), {**where, "notes": secret, "diagnosis": secret}),
        "symptom_logs": (uuid7(), {**where, "date": fac.log_date, "notes": secret}),
        "alerts": (uuid7(), {**where, "title": secret, "body": secret}),
        "notification_preferences": (uuid7(), {"patient_id": patient_id, "sms": True}),
        "appointments": (
            uuid7(),
            {**where, "scheduled_at": "2025-12-01T09:00:00Z", "reason": secret},
        ),
        "prescriptions": (uuid7(), {**where, "medicine_id": "m-1", "dose": secret}),
        "pharmacy_inventory": (
            uuid7(),
            {"facility_id": fid, "medicine_id": "m-1", "batch": secret},
        ),
    }
    changes = [admin.change(c, rid, fields) for c, (rid, fields) in seeds.items()]
    assert all(r["status"] == "applied" for r in admin.push(changes))
    fac.records = {c: rid for c, (rid, _) in seeds.items()}
    # two open conflicts of the facility: a held prescription edit, a second log of a day
    nurse = devices["health_worker"]
    rx = fac.records["prescriptions"]
    assert (
        admin.push([admin.change("prescriptions", rx, {"dose": f"{secret}-2"}, base_version=1)])[0][
            "status"
        ]
        == "applied"
    )
    held = nurse.push([nurse.change("prescriptions", rx, {"dose": f"{secret}-3"}, base_version=1)])[
        0
    ]
    twice = nurse.push(
        [nurse.change("symptom_logs", uuid7(), {**where, "date": fac.log_date, "notes": secret})]
    )[0]
    fac.conflicts = [held["conflict_id"], twice["conflict_id"]]
    return fac


@dataclass
class World:
    server: LiveServer
    a: Facility
    b: Facility

    @property
    def a_ids(self) -> set[str]:
        return {*self.a.records.values(), *self.a.conflicts, self.a.patient_id}


@pytest.fixture(scope="module")
def world(shared_server: LiveServer) -> Iterator[World]:
    shared_server.add_user("matrix-admin", "admin")
    admin = SyncApi(shared_server.url, "matrix-admin")
    made = World(shared_server, _seed(shared_server, admin, "a"), _seed(shared_server, admin, "b"))
    yield made
    for fac in (made.a, made.b):
        for api in fac.devices.values():
            api.close()


# -- the matrix ----------------------------------------------------------------------------

# (collection a role writes in its own scope, the fields of a partial update)
OWN_WRITE: dict[str, tuple[str, dict[str, Any]]] = {
    "patient": ("symptom_logs", {"severity": 3}),
    "health_worker": ("encounters", {"diagnosis": "malaria"}),
    "pharmacist": ("pharmacy_inventory", {"batch": "B-2"}),
    "admin": ("medicines", {"name": "Amoxicillin"}),
}


def _status_of(api: SyncApi, method: str, path: str, **kwargs: Any) -> int:
    return api.http.request(method, path, **kwargs).status_code


@pytest.mark.parametrize("role", ROLES)
def test_every_role_on_every_endpoint_in_its_own_scope_and_another(world: World, role: str) -> None:
    me = world.b.devices[role]
    own, other = world.b, world.a
    admin = role == "admin"
    reviewer = role in ("health_worker", "admin")

    # auth: a user login registers devices; a device token may not
    token = me.http.post("/v1/auth/token", json={"username": me.user["username"], "password": "pw"})
    assert token.status_code == 200
    user_token = token.json()["access_token"]
    assert (
        me.http.post(
            "/v1/devices", json={"name": "x"}, headers={"Authorization": f"Bearer {user_token}"}
        ).status_code
        == 200
    )
    assert _status_of(me, "POST", "/v1/devices", json={"name": "x"}) == 403

    # sync: pull, status, events answer every role; pull holds only what it may see
    seen, _ = me.pull_all()
    assert not (set(seen) & world.a_ids) or admin
    assert _status_of(me, "GET", "/v1/sync/status") == 200
    assert _status_of(me, "GET", "/v1/sync/events", params={"wait": "0.05"}) == 200

    # push: a write in its own scope applies; in the other's, it is a missing record
    collection, fields = OWN_WRITE[role]
    target = own.records.get(collection) or uuid7()
    base = 0 if collection == "medicines" else 1
    if collection == "medicines":
        fields = {**fields}
    [mine] = me.push([me.change(collection, target, fields, base_version=base)])
    assert mine["status"] == "applied", mine
    for coll, rid in other.records.items():
        [theirs] = me.push([me.change(coll, rid, {}, op="delete", base_version=1)])
        expected = {"applied"} if admin else {"rejected"}
        assert theirs["status"] in expected, (coll, theirs)
        if not admin:
            assert theirs["error"]["code"] in ("NOT_FOUND", "FORBIDDEN"), theirs

    # records: own readable (where its scopes allow), the other's a 404
    own_record = (
        own.records["symptom_logs"] if role != "pharmacist" else own.records["pharmacy_inventory"]
    )
    own_collection = "symptom_logs" if role != "pharmacist" else "pharmacy_inventory"
    assert _status_of(me, "GET", f"/v1/records/{own_collection}/{own_record}") == 200
    for coll, rid in other.records.items():
        status = _status_of(me, "GET", f"/v1/records/{coll}/{rid}")
        assert status == (200 if admin else 404), (coll, status)

    # conflicts: reviewers list and read their own; others get 403; another's is a 404
    listing = me.http.get("/v1/conflicts")
    assert listing.status_code == (200 if reviewer else 403)
    if reviewer:
        listed = {c["id"] for c in listing.json()["conflicts"]}
        assert set(own.conflicts) <= listed
        assert not (listed & set(other.conflicts)) or admin
    for cid in other.conflicts:
        shown = _status_of(me, "GET", f"/v1/conflicts/{cid}")
        assert shown == (200 if admin else 404 if reviewer else 403)
        resolved = _status_of(
            me,
            "POST",
            f"/v1/conflicts/{cid}/resolve",
            json={"resolution": "server_wins"} if not admin else {"resolution": "nope"},
        )
        assert resolved == (400 if admin else 404 if reviewer else 403)

    # stats are for administrators
    assert _status_of(me, "GET", "/v1/sync/stats") == (200 if admin else 403)


# -- 1,000 random attempts -----------------------------------------------------------------

ATTEMPTS = 1000


def _leaks(world: World, resp: httpx.Response, sent: str) -> list[str]:
    """What of facility A the answer carries that the request did not."""
    text = resp.text + " ".join(f"{k}: {v}" for k, v in resp.headers.items())
    found = [MARKER] if MARKER in text else []
    found += [i for i in world.a_ids if i in text and i not in sent]
    return found


def _same(hidden: httpx.Response, missing: httpx.Response, hidden_id: str, missing_id: str) -> bool:
    return hidden.status_code == missing.status_code and hidden.text.replace(
        hidden_id, "<id>"
    ) == missing.text.replace(missing_id, "<id>")


def test_a_thousand_random_cross_scope_attempts_leak_nothing(world: World) -> None:
    rng = random.Random(20261205)
    attackers = [world.b.devices[role] for role in ROLES[:3]]
    collections = list(world.a.records)
    a_records = list(world.a.records.items())
    cursors = ["0"]
    # what the attackers wrote into their own facility (A's patient id as a link, say) is
    # theirs to read back; a leak is only what they never sent
    sent_before = ""
    made = 0
    while made < ATTEMPTS:
        me = rng.choice(attackers)
        kind = rng.choice(["pull", "get", "put", "conflict", "resolve", "stats", "events", "push"])
        coll, rid = rng.choice(a_records)
        missing = uuid7()
        if kind == "pull":
            params = {"since": rng.choice(cursors)}
            if rng.random() < 0.5:
                params["collections"] = ",".join(rng.sample(collections, 2))
                params["since"] = "0"
            resp = me.http.get("/v1/sync/pull", params=params)
            assert resp.status_code == 200
            if "collections" not in params:
                cursors.append(resp.json()["cursor"])
            assert _leaks(world, resp, sent_before) == []
            made += 1
        elif kind in ("get", "put"):
            method = "GET" if kind == "get" else "PUT"
            body: dict[str, Any] = {"json": {"fields": {"notes": "x"}}} if kind == "put" else {}
            if_match = rng.choice([None, '"1"', '"0"', '"7"'])
            headers = {"If-Match": if_match} if if_match and kind == "put" else {}
            hidden = me.http.request(method, f"/v1/records/{coll}/{rid}", headers=headers, **body)
            absent = me.http.request(
                method, f"/v1/records/{coll}/{missing}", headers=headers, **body
            )
            assert _same(hidden, absent, rid, missing), (kind, coll, hidden.text, absent.text)
            assert _leaks(world, hidden, rid) == []
            made += 2
        elif kind in ("conflict", "resolve"):
            cid = rng.choice(world.a.conflicts)
            if kind == "conflict":
                hidden = me.http.get(f"/v1/conflicts/{cid}")
                absent = me.http.get(f"/v1/conflicts/{missing}")
            else:
                body = {"resolution": rng.choice(["server_wins", "client_wins", "merge"])}
                hidden = me.http.post(f"/v1/conflicts/{cid}/resolve", json=body)
                absent = me.http.post(f"/v1/conflicts/{missing}/resolve", json=body)
            assert _same(hidden, absent, cid, missing), (hidden.text, absent.text)
            assert _leaks(world, hidden, cid) == []
            made += 2
        elif kind == "stats":
            resp = me.http.get("/v1/sync/stats")
            assert resp.status_code == 403 and _leaks(world, resp, "") == []
            made += 1
        elif kind == "events":
            resp = me.http.get(
                "/v1/sync/events", params={"since": rng.choice(cursors), "wait": "0.02"}
            )
            assert resp.status_code == 200 and _leaks(world, resp, sent_before) == []
            made += 1
        else:
            attempts, sent = _push_attempts(world, me, rng, a_records)
            made += attempts
            sent_before += sent
    assert made >= ATTEMPTS


def _push_attempts(
    world: World, me: SyncApi, rng: random.Random, a_records: list[tuple[str, str]]
) -> tuple[int, str]:
    """A batch of ops at A's records, each paired with the same op at an unused id, plus a
    create that collides with one of A's unique keys (or, once an administrator's test has
    deleted A's log, is applied in B's facility). Returns the number of attempts and the
    text of what was sent."""
    changes: list[dict[str, Any]] = []
    pairs: list[tuple[str, str]] = []
    for _ in range(10):
        coll, rid = rng.choice(a_records)
        op = rng.choice(["delete", "upsert", "increment", "create"])
        missing = uuid7()
        if op == "delete":
            made = [me.change(coll, i, {}, op="delete", base_version=1) for i in (rid, missing)]
        elif op == "increment":
            made = [me.change(coll, i, {"quantity": -1}, op="increment") for i in (rid, missing)]
        elif op == "upsert":
            base = rng.randint(1, 3)
            made = [me.change(coll, i, {"notes": "x"}, base_version=base) for i in (rid, missing)]
        else:
            made = [
                me.change(coll, i, {"patient_id": world.b.patient_id, "facility_id": world.b.fid})
                for i in (rid, missing)
            ]
        changes += made
        pairs.append((rid, missing))
    collide = me.change(
        "symptom_logs",
        uuid7(),
        {
            "patient_id": world.a.patient_id,
            "facility_id": world.b.fid,
            "date": world.a.log_date,
            "notes": "mine",
        },
    )
    results = me.push([*changes, collide])
    for (rid, missing), hidden, absent in zip(pairs, results[0::2], results[1::2], strict=False):
        h, a = dict(hidden), dict(absent)
        h.pop("op_id")
        a.pop("op_id")
        assert h["status"] == "rejected", h
        if a["status"] == "applied":
            # the one answer a missing id cannot share: a valid create over a taken id
            assert h["error"]["details"] == {"field": "record_id"}, h
        else:
            assert str(h).replace(rid, "<id>") == str(a).replace(missing, "<id>"), (h, a)
    sent = " ".join(str(c) for c in (*changes, collide))
    text = str(results)
    assert MARKER not in text
    assert [i for i in world.a_ids if i in text and i not in sent] == []
    body = me.http.get(f"/v1/conflicts/{results[-1].get('conflict_id')}")
    if body.status_code == 200:
        assert _leaks(world, body, str(collide)) == []  # its own key values, nothing of A's
    return len(changes) + 1, sent
