"""A client killed (SIGKILL) at random points of a 3,000-op sync, again and again: once it
reopens and syncs, the server holds every op exactly once and nothing is pending."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from tests.client.conftest import MakeReplica, new_user
from tests.support import LiveServer
from waystation.client import OpStatus, Replica

REPO = Path(__file__).resolve().parents[2]
ITEMS = 30
OPS = 3000
KILLS = 5
BATCH = 50  # 60 pushes of one round trip and one commit each: each kill lands mid-sync


def _sync_and_kill(replica: Path, batches: int, delay: float) -> list[str]:
    """Start a syncing client process pushing ``BATCH`` ops a request; SIGKILL it
    ``delay`` seconds after it reported ``batches`` pushed batches (mid-request, mid-commit
    or between batches)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.client.sync_child", str(replica), "--batch-size", str(BATCH)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    lines = [child.stdout.readline().strip()]  # "start": the sync is under way
    while batches > 0 and lines[-1]:
        lines.append(child.stdout.readline().strip())
        batches -= lines[-1].startswith("push")
    time.sleep(delay)  # the behaviour: a kill at a random moment of the sync, not a wait
    child.kill()
    rest, _ = child.communicate(timeout=10)
    return [*lines, *rest.splitlines(), f"killed after {delay:.3f}s"]


def test_killed_mid_sync_then_every_op_arrives_exactly_once(
    live_server: LiveServer, make_replica: MakeReplica, tmp_path: Path
) -> None:
    user = new_user(live_server, "pharmacist")
    rep = make_replica(live_server, user)
    path = rep.path
    with rep.atomic():  # one commit for the whole stock take
        items = [
            rep.put("pharmacy_inventory", {"facility_id": "f-1", "medicine_id": f"m{i}"})
            for i in range(ITEMS)
        ]
        for n in range(OPS - ITEMS):
            rep.increment("pharmacy_inventory", items[n % ITEMS], "quantity", 1)
    rep.close()

    rng = random.Random()
    seen = []
    for _ in range(KILLS):
        seen.append(_sync_and_kill(path, rng.randint(0, 1), rng.uniform(0.0, 0.05)))
    assert sum("result ok" not in run for run in seen) >= KILLS - 1, seen  # died mid-sync

    with Replica(path) as reopened:
        result = reopened.sync()
        assert result.ok, (result, seen)
        assert reopened.status()["pending"] == 0
        assert {e.status for e in reopened.outbox()} == {OpStatus.SYNCED}

    other = make_replica(live_server, new_user(live_server, "pharmacist"))
    assert other.sync().ok
    stock = {i["id"]: i["quantity"] for i in other.query("pharmacy_inventory")}
    assert stock == {item: (OPS - ITEMS) // ITEMS for item in items}, seen
