"""Three devices edit, delete and dispense at random, offline and online, while the server
goes up and down: afterwards every replica and the server hold the same data, and every
stock movement counted exactly once."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from tests.client.conftest import MakeReplica, new_user
from tests.support import LiveServer
from waystation.client import Replica

ROUNDS = 5
FIELDS = ("name", "village", "phone")


def _snapshot(rep: Replica) -> dict[str, list[dict[str, Any]]]:
    return {c: rep.query(c) for c in ("patients", "pharmacy_inventory")}


def _random_writes(rep: Replica, rng: random.Random, moved: Counter[str], tag: str) -> None:
    for n in range(rng.randint(3, 8)):
        patients = [p["id"] for p in rep.query("patients")]
        items = [i["id"] for i in rep.query("pharmacy_inventory")]
        roll = rng.random()
        if roll < 0.25 or not patients:
            rep.put("patients", {"name": f"{tag}-{n}", "facility_id": "f-1"})
        elif roll < 0.6:
            field = rng.choice(FIELDS)
            rep.put("patients", {field: f"{tag}-{n}-{field}"}, id=rng.choice(patients))
        elif roll < 0.7:
            rep.delete("patients", rng.choice(patients))
        else:
            item, delta = rng.choice(items), rng.choice((-3, -2, -1, 1, 2, 5))
            rep.increment("pharmacy_inventory", item, "quantity", delta)
            moved[item] += delta


def test_three_replicas_and_the_server_converge_through_outages(
    live_server: LiveServer, make_replica: MakeReplica
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    reps = [make_replica(live_server, new_user(live_server)) for _ in range(3)]
    admin = make_replica(live_server, new_user(live_server, "admin", ()))
    moved: Counter[str] = Counter()
    for m in range(3):
        item = reps[0].put("pharmacy_inventory", {"facility_id": "f-1", "medicine_id": f"m{m}"})
        reps[0].increment("pharmacy_inventory", item, "quantity", 50)
        moved[item] += 50
    for rep in reps:
        assert rep.sync().ok

    up = True
    for rnd in range(ROUNDS):
        want_up = rng.random() < 0.6
        if want_up != up:
            live_server.start() if want_up else live_server.stop()
            up = want_up
        for i, rep in enumerate(reps):
            _random_writes(rep, rng, moved, f"r{rnd}d{i}")
            if rng.random() < 0.7:
                result = rep.sync()  # never raises, up or down
                assert result.offline != up or result.error_code == "OPS_IN_DOUBT", (seed, result)

    if not up:
        live_server.start()
    for _ in range(2):  # the first round pushes everything, the second pulls it everywhere
        for rep in reps:
            assert rep.sync().ok, seed
    assert admin.sync().ok

    server = _snapshot(admin)
    for rep in reps:
        assert _snapshot(rep) == server, seed
        state = rep.status()
        assert (state["pending"], state["failed"], state["rejected"], state["conflicts"]) == (
            0,
            0,
            0,
            0,
        ), seed
    stock = {i["id"]: i["quantity"] for i in server["pharmacy_inventory"]}
    assert stock == dict(moved), seed
