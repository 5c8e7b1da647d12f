"""Replicas converge: a stateful property test of 2 to 5 devices and the server.

Hypothesis drives real Python client replicas (waystation.client: outbox, overlay, sync
engine) against the real store, in process, over a transport that can lose acks, deliver
a batch twice, reorder the ops of different records, cut a pull short, or replay an old
batch late. Devices write offline (upserts, deletes, increments) in collections of every
policy, sync partially and at random, with clocks skewed by up to a day; a reviewer
resolves conflicts now and then. After everyone syncs fully:

- every replica shows exactly what the server holds;
- the server holds exactly what a plain reference model of the merge rules computes from
  the ops it received, in the order it received them (tests/e2e/reference_model.py), and
  answered each op as the model says;
- every acknowledged write is present, superseded by a higher clock (and in the op log),
  or held in a conflict (open, or resolved by a reviewer); every increment counts once.

Runs: 500 examples by default (about a minute on one core). ``WAYSTATION_LONG=1`` runs
20,000 (``WAYSTATION_PROPERTY_EXAMPLES=N`` any number), e.g.
``WAYSTATION_LONG=1 .venv/bin/pytest tests/e2e/test_convergence_property.py``.
Each example uses its own SQLite files, on /dev/shm when there is one.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from tests.e2e.reference_model import Collection, Model
from waystation.client import PullPage, PushAnswer, Replica, RetryPolicy, sync_once
from waystation.client.cursor import Cursor as ClientCursor
from waystation.client.db import LocalDB, set_meta
from waystation.client.errors import Offline, ServerUnavailable
from waystation.core.access import Principal
from waystation.core.errors import NotFound, WaystationError
from waystation.core.hlc import HLC, Clock
from waystation.core.resolution import ResolveRequest
from waystation.core.schema import parse_schema
from waystation.store import open_store
from waystation.store.codec import state_from_row
from waystation.store.database import Database
from waystation.store.pull import Cursor as ServerCursor
from waystation.store.store import SqlStore
from waystation.store.tables import conflicts, op_log, records

LONG = os.environ.get("WAYSTATION_LONG") == "1"
EXAMPLES = int(os.environ.get("WAYSTATION_PROPERTY_EXAMPLES", 20_000 if LONG else 500))
STEPS = 30

T0 = 1_764_496_800_000
MINUTE = 60_000
DAY = 24 * 60 * MINUTE
FACILITY = "f-1"
POLICIES = {
    "lww_notes": "lww",
    "manual_notes": "manual",
    "server_notes": "server_wins",
    "client_notes": "client_wins",
}
FIELDS = {
    "facility_id": {"type": "string"},
    "a": {"type": "string"},
    "b": {"type": "integer"},
    "code": {"type": "string"},
    "read": {"type": "boolean", "monotonic": True},
    "qty": {"type": "counter"},
}
SCHEMA = parse_schema(
    {
        "collections": {
            name: {
                "policy": policy,
                "scopes": ["facility:{facility_id}"],
                "writers": ["health_worker", "admin"],
                "required": ["facility_id"],
                "fields": FIELDS,
                **({"unique": [["facility_id", "code"]]} if policy == "lww" else {}),
            }
            for name, policy in POLICIES.items()
        }
    }
)
MODEL_COLLECTIONS = {
    name: Collection(
        policy,
        frozenset({"read"}),
        frozenset({"qty"}),
        frozenset({"facility_id"}),
        ("facility_id", "code") if policy == "lww" else None,
    )
    for name, policy in POLICIES.items()
}
NO_WAIT = RetryPolicy(max_retries=3, initial_s=0, max_wait_s=0, jitter_s=0)
FAULTS = (None, None, None, "lost_ack", "duplicate", "reorder", "cut_pull", "offline", "replay")

devices_ = st.integers(0, 4)
collections_ = st.sampled_from(sorted(POLICIES))
record_ids = st.sampled_from(["r1", "r2"])
upserts = st.fixed_dictionaries(
    {},
    optional={
        "a": st.sampled_from(["x", "y", "z"]),
        "b": st.integers(0, 3),
        "code": st.sampled_from(["k1", "k2", None]),
        "read": st.booleans(),
    },
)
writes_ = st.one_of(
    st.tuples(st.just("upsert"), collections_, record_ids, upserts, st.booleans()),
    st.tuples(st.just("upsert"), collections_, record_ids, upserts, st.booleans()),
    st.tuples(st.just("delete"), collections_, record_ids, st.none(), st.booleans()),
    st.tuples(st.just("increment"), collections_, record_ids, st.integers(-5, 5), st.booleans()),
)
merged_values = st.fixed_dictionaries(
    {},
    optional={"a": st.sampled_from(["m", "n"]), "code": st.sampled_from(["k1", "k2", "k3", None])},
)


@dataclass(frozen=True)
class Work:
    """Writes on one device, ``later`` ms on, its clock maybe reset ``skew`` ms off.
    Deletes and increments go to records the device sees, unless ``blind`` (an app acting
    on an id it got elsewhere)."""

    device: int
    writes: list[tuple[Any, ...]]
    skew: int | None
    later: int


@dataclass(frozen=True)
class Sync:
    """One device syncs through one network fault (``replay``: an old request of the
    device arrives again, late, first); ``max_items`` makes it a partial push."""

    device: int
    fault: str | None
    max_items: int | None
    page_size: int
    seed: int
    later: int


@dataclass(frozen=True)
class Review:
    """A reviewer resolves the ``pick``-th open conflict."""

    pick: int
    resolution: str
    target: str | None
    fields: dict[str, Any]


@dataclass(frozen=True)
class EveryoneSyncs:
    """Everyone syncs fully and every claim is checked (then work goes on)."""


works = st.builds(
    Work,
    devices_,
    st.lists(writes_, min_size=1, max_size=4),
    st.none() | st.integers(-DAY, DAY),
    st.integers(0, 10 * MINUTE),
)
syncs = st.builds(
    Sync,
    devices_,
    st.sampled_from(FAULTS),
    st.none() | st.integers(1, 3),
    st.sampled_from([500, 1]),
    st.integers(0, 2**16),
    st.integers(0, 10 * MINUTE),
)
reviews = st.builds(
    Review,
    st.integers(0, 1000),
    st.sampled_from(["client_wins", "server_wins", "merge"]),
    st.sampled_from([None, None, "existing"]),
    merged_values,
)
actions = st.one_of(works, syncs, works, syncs, reviews, st.just(EveryoneSyncs()))


@dataclass(frozen=True)
class Template:
    root: Path
    path: Path
    users: list[str]
    admin: str


@cache
def _template() -> Template:
    """A migrated server database with its users, copied for each example (migrating one
    costs more than a whole example)."""
    scratch = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="waystation-convergence-", dir=scratch))
    atexit.register(shutil.rmtree, root, True)
    path = root / "template.db"
    store = open_store(f"sqlite:///{path}", SCHEMA)
    users = [
        store.add_user(f"hw-{i}", "-", "health_worker", [f"facility:{FACILITY}"]).id
        for i in range(5)
    ]
    admin = store.add_user("admin", "-", "admin", []).id
    store.close()
    return Template(root, path, users, admin)


@dataclass
class Device:
    id: str
    replica: Replica
    principal: Principal
    skew_ms: int = 0
    clock: Clock | None = None
    sent: list[list[dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class Delivery:
    device: str
    op: dict[str, Any]
    result: dict[str, Any]


class StoreTransport:
    """The client's ``Transport`` over the store in process, with one injected fault."""

    def __init__(
        self, world: Convergence, device: Device, fault: str | None, rng: random.Random
    ) -> None:
        self.world, self.device, self.fault, self.rng = world, device, fault, rng
        self.pages = 0

    @property
    def store(self) -> SqlStore:
        assert self.world.store is not None, "the machine syncs only after start()"
        return self.world.store

    def push(self, device_id: str, changes: Any) -> PushAnswer:
        if self.fault == "offline":
            raise Offline("no network")
        ops: list[dict[str, Any]] = orjson.loads(orjson.dumps(list(changes)))
        delivered = self._interleave(ops) if self.fault == "reorder" else ops
        results = self.world.deliver(self.device, delivered)
        if self.fault == "duplicate":
            results = self.world.deliver(self.device, delivered)
        self.device.sent.append(delivered)
        if self.fault == "lost_ack":
            raise ServerUnavailable("the answer was lost on the way back")
        by_op = {r["op_id"]: r for r in results}
        now = self.world.now + self.device.skew_ms
        return PushAnswer(
            [by_op[op["op_id"]] for op in ops], str(self.store.clock.send()), 0, 0, now, now
        )

    def _interleave(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Another order that keeps each record's ops in order (the client never lets a
        record's later op overtake an earlier one; different records may race)."""
        queues: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for op in ops:
            queues[(op["collection"], op["record_id"])].append(op)
        out: list[dict[str, Any]] = []
        while queues:
            key = self.rng.choice(sorted(queues))
            out.append(queues[key].pop(0))
            if not queues[key]:
                del queues[key]
        return out

    def pull(self, since: ClientCursor, *, limit: int, etag: str | None = None) -> PullPage:
        if self.fault == "offline":
            raise Offline("no network")
        if self.fault == "cut_pull" and self.pages >= 1:
            raise ServerUnavailable("the connection dropped mid-pull")
        self.pages += 1
        page = self.store.pull(self.device.principal, ServerCursor.parse(str(since)), limit)
        changes = orjson.loads(orjson.dumps(page.changes))
        return PullPage(changes, ClientCursor(str(page.cursor)), page.has_more)

    def status(self) -> dict[str, Any]:
        if self.fault == "offline":
            raise Offline("no network")
        return {"collections": SCHEMA.describe(), "server_hlc": str(self.store.clock.send())}

    def healthz(self) -> bool:
        return self.fault != "offline"

    def digest(self, collections: Any = None) -> Any:
        """Not part of this machine: it compares the devices' tables with the server's
        directly (the digest has its own tests, tests/server/test_digest.py)."""
        raise NotFound("no digest in the in-process convergence machine")

    def wait_for_changes(self, since: ClientCursor, *, wait: float = 25.0) -> bool:
        return False  # only the continuous loop waits; sync_once never calls it

    def close(self) -> None:
        pass


class Convergence(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        template = _template()
        self.dir = Path(tempfile.mkdtemp(dir=template.root))
        shutil.copy(template.path, self.dir / "server.db")
        self.template = template
        self.now = T0
        self.devices: list[Device] = []
        self.deliveries: list[Delivery] = []
        self.received_at: dict[str, int] = {}  # op id -> index of its first delivery
        self.resolved: set[str] = set()
        self.steps_since_check = 0
        self.store: SqlStore | None = None
        # the sync engine reads the wall clock to learn its offset to the server's time
        self._patch = mock.patch("waystation.client.engine.wall_ms", lambda: self.now)
        self._patch.start()

    # -- set-up -----------------------------------------------------------------------

    @initialize(count=st.integers(2, 5), lenient=st.booleans())
    def start(self, count: int, lenient: bool) -> None:
        """``lenient``: the server accepts clocks up to two days ahead (so skewed clocks
        compete on clock alone) instead of re-stamping those over five minutes ahead."""
        skew = 2 * DAY if lenient else 5 * MINUTE
        store = SqlStore(
            Database(f"sqlite:///{self.dir / 'server.db'}"), SCHEMA, max_clock_skew_ms=skew
        )
        store.clock = Clock("s-test", now_ms=lambda: self.now, last=store.clock.last)
        self.store = store
        self.model = Model(MODEL_COLLECTIONS, skew)
        self.admin = Principal(self.template.admin, "admin", "admin", frozenset(), None)
        for i in range(count):
            device_id, path = f"d-{i}", self.dir / f"replica-{i}.db"
            local = LocalDB(path)  # a fixed device id, so examples replay exactly
            with local.transaction() as conn:
                set_meta(conn, "device_id", device_id)
            local.close()
            user = self.template.users[i]
            store.add_device(device_id, user, f"tablet {i}", "-", refresh_expires_at=0)
            device = Device(
                device_id,
                Replica(path, retry_policy=NO_WAIT),
                Principal(
                    user, f"hw-{i}", "health_worker", frozenset({f"facility:{FACILITY}"}), device_id
                ),
            )
            self.devices.append(device)
            self._wire_clock(device)

    def _device(self, index: int) -> Device:
        device = self.devices[index % len(self.devices)]
        self._wire_clock(device)
        return device

    def _wire_clock(self, device: Device) -> None:
        """Each device's wall clock is the shared test time plus its skew. (The replica may
        replace its clock after a far-ahead stamp; keep its state, rewire the time.)"""
        keeper = device.replica.clock_keeper
        if keeper.clock is device.clock:
            return
        device.clock = Clock(
            device.id,
            now_ms=lambda: self.now + device.skew_ms,
            last=keeper.clock.last,
            offset_ms=keeper.clock.offset_ms,
        )
        keeper.clock = device.clock

    # -- what devices, the network and reviewers do ---------------------------------
    #
    # One rule whose argument is the action: hypothesis' swarm testing switches whole
    # rules off per example, and an example without writes or syncs proves nothing.

    @rule(action=actions)
    def step(self, action: Work | Sync | Review | EveryoneSyncs) -> None:
        if isinstance(action, Work):
            self.work_offline(action)
        elif isinstance(action, Sync):
            self.sync(action)
        elif isinstance(action, Review):
            self.review(action)
        elif self.steps_since_check >= 6:
            self.converge_and_check()

    def work_offline(self, work: Work) -> None:
        self.now += work.later
        device = self._device(work.device)
        if work.skew is not None:
            device.skew_ms = work.skew
        replica = device.replica
        for kind, collection, rid, arg, blind in work.writes:
            seen = replica.get(collection, rid) is not None
            if kind == "upsert":
                fields = arg if seen and not blind else {**arg, "facility_id": FACILITY}
                replica.put(collection, fields, id=rid)
            elif seen or blind:
                if kind == "delete":
                    replica.delete(collection, rid)
                else:
                    replica.increment(collection, rid, "qty", arg)

    def sync(self, sync: Sync) -> None:
        self.now += sync.later
        device = self._device(sync.device)
        rng = random.Random(sync.seed)
        if sync.fault == "replay" and device.sent:
            self.deliver(device, rng.choice(device.sent))
        sync_once(
            device.replica,
            StoreTransport(self, device, sync.fault, rng),
            max_items=sync.max_items,
            page_size=sync.page_size,
        )
        self.steps_since_check += 1

    def review(self, review: Review) -> None:
        """A reviewer resolves one open conflict (picked among them in receipt order); the
        server's answer, and what it writes, must be the model's."""
        if not self.model.open:
            return
        held = sorted(self.model.open, key=self.received_at.__getitem__)
        op_id = held[review.pick % len(held)]
        merge = review.resolution == "merge"
        request = ResolveRequest(
            resolution=review.resolution,
            fields=review.fields if merge else None,
            target=review.target if merge else None,
        )
        plan = self.model.plan(op_id, review.resolution, request.fields, request.target)
        assert self.store is not None
        try:
            body = self.store.resolve_conflict(self.admin, self._conflict_id(op_id), request)
        except WaystationError as exc:
            if plan is None:
                assert exc.code == "VALIDATION_ERROR", exc
                return
            fake = self._next_clocks(len(plan))
            assert not self.model.resolve(op_id, plan, fake, self.now), (
                f"the server refused a resolution the model carries out: {exc.message}"
            )
            return
        assert plan is not None, f"the server accepted {request} that the model refuses"
        assert [(c["record_id"], c["op"]) for c in body["changes"]] == [
            (record_id, kind) for record_id, kind, _ in plan
        ]
        clocks = [c["hlc"] for c in body["changes"]]
        assert self.model.resolve(op_id, plan, clocks, self.now)
        self.resolved.add(op_id)

    def teardown(self) -> None:
        import sys

        try:
            if self.store is not None and sys.exc_info()[0] is None:
                self.converge_and_check()
                self._report()
        finally:
            self._patch.stop()
            for device in self.devices:
                device.replica.close()
            if self.store is not None:
                self.store.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _report(self) -> None:
        """What the example exercised (``--hypothesis-show-statistics``)."""
        outcomes = Counter(
            f"{d.result['status']}{' restamped' if d.result.get('restamped') else ''}"
            f"{' ' + d.result['error']['code'] if 'error' in d.result else ''}"
            for d in self.deliveries
        )
        for outcome in outcomes:
            event(f"op {outcome}")
        if self.resolved:
            event("a conflict resolved")
        if any(r.deleted for r in self._server_records().values()):
            event("a record ends deleted")

    # -- the server, as the network reaches it ------------------------------------------

    def deliver(self, device: Device, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Deliver ops to the server; check each answer against the model's."""
        assert self.store is not None
        results: list[dict[str, Any]] = [dict(r) for r in self.store.push(device.principal, ops)]
        for op, result in zip(ops, results, strict=True):
            fresh = None
            if result.get("restamped"):
                fresh = result["hlc"]
            elif result["status"] == "conflict" and not result.get("duplicate"):
                effective = self._effective_hlc(op["op_id"])
                fresh = effective if effective != op["hlc"] else None
            expected = self.model.receive(op, device.id, self.now, fresh)
            _check_answer(op, expected, result)
            self.received_at.setdefault(op["op_id"], len(self.deliveries))
            self.deliveries.append(Delivery(device.id, op, result))
        return results

    def _effective_hlc(self, op_id: str) -> str:
        assert self.store is not None
        with self.store.db.read() as conn:
            return str(
                conn.execute(
                    sa.select(op_log.c.effective_hlc).where(
                        op_log.c.op_id == op_id, op_log.c.duplicate == sa.false()
                    )
                ).scalar_one()
            )

    def _conflict_id(self, op_id: str) -> str:
        assert self.store is not None
        with self.store.db.read() as conn:
            return str(
                conn.execute(
                    sa.select(conflicts.c.id).where(conflicts.c.op_id == op_id)
                ).scalar_one()
            )

    def _next_clocks(self, n: int) -> list[str]:
        top = HLC.parse(self.model.top_clock) if self.model.top_clock else HLC(self.now, 0, "s")
        out, wall, counter = [], max(top.wall, self.now), top.counter
        for _ in range(n):
            counter += 1
            out.append(str(HLC(wall, counter, "s-test")))
        return out

    # -- the end: everyone syncs, then every claim is checked ---------------------------

    def converge_and_check(self) -> None:
        self.steps_since_check = 0
        for device in self.devices:
            device.replica.retry_failed()
        for _ in range(2):
            for device in self.devices:
                self._wire_clock(device)
                for _ in range(6):
                    result = sync_once(
                        device.replica, StoreTransport(self, device, None, random.Random(0))
                    )
                    if result.error is None and device.replica.pending_count() == 0:
                        break
                else:
                    raise AssertionError(f"{device.id} cannot settle: {result.error}")
        server = self._server_records()
        self._check_server_equals_model(server)
        self._check_replicas_equal_server(server)
        self._check_acknowledged_writes(server)
        self._check_op_log_and_stats()

    def _server_records(self) -> dict[tuple[str, str], Any]:
        assert self.store is not None
        with self.store.db.read() as conn:
            return {(row.collection, row.id): row for row in conn.execute(sa.select(records))}

    def _check_server_equals_model(self, server: dict[tuple[str, str], Any]) -> None:
        assert set(server) == set(self.model.records)
        for key, row in server.items():
            state, expected = state_from_row(row), self.model.records[key]
            counters = MODEL_COLLECTIONS[key[0]].counters
            assert state.fields == expected.fields, key
            assert state.clocks == expected.clocks, key
            assert state.deleted_clock == expected.tomb, key
            assert bool(row.deleted) == expected.deleted(counters), key
            assert state.version == expected.version, key
            assert {
                k: (v, state.field_devices[k]) for k, v in state.field_versions.items()
            } == expected.changed_at, key
            assert state.conflict == expected.flagged, key
        assert self.store is not None
        with self.store.db.read() as conn:
            open_ops = set(
                conn.execute(
                    sa.select(conflicts.c.op_id).where(conflicts.c.status == "open")
                ).scalars()
            )
            resolved = set(
                conn.execute(
                    sa.select(conflicts.c.op_id).where(conflicts.c.status == "resolved")
                ).scalars()
            )
        assert open_ops == set(self.model.open)
        assert resolved == self.resolved

    def _check_replicas_equal_server(self, server: dict[tuple[str, str], Any]) -> None:
        live = {key: orjson.loads(row.fields) for key, row in server.items() if not row.deleted}
        flagged = {key for key, row in server.items() if row.conflict and not row.deleted}
        for device in self.devices:
            with device.replica.db.read() as conn:
                seen = {
                    (r[0], r[1]): orjson.loads(r[2])
                    for r in conn.execute("SELECT collection, id, fields FROM records")
                }
                marks = {
                    (r[0], r[1])
                    for r in conn.execute(
                        "SELECT collection, id FROM server_records WHERE conflict = 1"
                        " AND deleted = 0"
                    )
                }
                waiting = conn.execute(
                    "SELECT count(*) FROM outbox WHERE status IN ('PENDING', 'SYNCING', 'FAILED')"
                ).fetchone()[0]
            assert waiting == 0, device.id
            assert seen == live, device.id
            assert marks == flagged, device.id

    def _check_acknowledged_writes(self, server: dict[tuple[str, str], Any]) -> None:
        logged = self._first_receipts()
        counted: Counter[tuple[str, str]] = Counter()
        seen: set[str] = set()
        for delivery in self.deliveries:
            op, result = delivery.op, delivery.result
            if op["op_id"] in seen:
                continue
            seen.add(op["op_id"])
            key = (op["collection"], op["record_id"])
            if result["status"] == "conflict":
                assert op["op_id"] in self.model.open or op["op_id"] in self.resolved
                continue
            if result["status"] != "applied":
                continue
            assert logged[op["op_id"]] == op["fields"], "every applied op is in the op log"
            state = state_from_row(server[key])
            if op["op"] == "increment":
                counted[key] += op["fields"]["qty"]
            elif op["op"] == "delete":
                if "_deleted" not in result.get("superseded", []):
                    assert state.deleted_clock is not None
                    assert state.deleted_clock >= result["hlc"], op
            else:
                _check_upsert_kept(op, result, state, POLICIES[op["collection"]])
        for key, row in server.items():
            assert state_from_row(row).fields.get("qty", 0) == counted[key], key

    def _first_receipts(self) -> dict[str, Any]:
        assert self.store is not None
        with self.store.db.read() as conn:
            return {
                row.op_id: orjson.loads(row.fields)
                for row in conn.execute(
                    sa.select(op_log.c.op_id, op_log.c.fields).where(
                        op_log.c.duplicate == sa.false(), op_log.c.device_id.is_not(None)
                    )
                )
            }

    def _check_op_log_and_stats(self) -> None:
        assert self.store is not None
        with self.store.db.read() as conn:
            rows = conn.execute(
                sa.select(op_log.c.op_id, op_log.c.device_id).order_by(op_log.c.id)
            ).all()
        from_devices = [row.op_id for row in rows if row.device_id is not None]
        assert from_devices == [d.op["op_id"] for d in self.deliveries]
        stats = self.store.sync_stats()
        assert stats["total"] == len(rows)
        assert stats["applied"] + stats["duplicate"] + stats["conflicts"] + stats[
            "rejected"
        ] == len(rows)
        per_device = Counter(d.device for d in self.deliveries)
        assert {d["device_id"]: d["total"] for d in stats["by_device"]} == {
            device.id: per_device[device.id] for device in self.devices
        }
        assert stats["open_conflicts"] == len(self.model.open)


def _check_answer(op: dict[str, Any], expected: Any, result: dict[str, Any]) -> None:
    """The server answered this op as the model says it must."""
    where = f"{op['op']} {op['collection']}/{op['record_id']} {op['fields']}: {result}"
    if expected.status == "duplicate":
        assert result["status"] == "duplicate", where
        return
    assert result["status"] == expected.status, where
    if expected.status == "applied":
        assert sorted(result.get("superseded", [])) == sorted(expected.superseded), where
        assert bool(result.get("restamped")) == expected.restamped, where
        assert result["hlc"] == expected.hlc, where
    else:
        assert result["error"]["code"] == expected.code, where


def _check_upsert_kept(op: dict[str, Any], result: dict[str, Any], state: Any, policy: str) -> None:
    """Each field of an acknowledged upsert is present with its clock, or lost to a higher
    clock (a later write, a newer tombstone), a monotonic true, or server_wins."""
    effective = result["hlc"]
    lost = set(result.get("superseded", []))
    for name, value in op["fields"].items():
        clock = state.clocks.get(name)
        if name in lost:
            assert (
                (clock is not None and clock > effective)
                or (state.deleted_clock is not None and state.deleted_clock > effective)
                or (name == "read" and state.fields.get(name) is True)
                or (policy == "server_wins")
            ), (name, op, result)
            continue
        assert clock is not None and clock >= effective, (name, op, result)
        if name == "read" and value is True:
            assert state.fields[name] is True
        elif clock == effective and name != "read":
            assert state.fields[name] == value, (name, op, result)


CHUNK = 1000  # examples per hypothesis run: its record of explored inputs grows with each


@pytest.mark.timeout(0 if EXAMPLES > 1000 else 600)
def test_replicas_and_the_server_converge_on_the_reference_model() -> None:
    left = EXAMPLES
    while left > 0:
        run_state_machine_as_test(
            Convergence,
            settings=settings(
                max_examples=min(left, CHUNK),
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
        left -= CHUNK
