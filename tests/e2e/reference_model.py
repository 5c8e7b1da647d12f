"""A plain reference model of the server's merge rules, for the convergence property test.

Written from the rules as docs/conflicts.md states them, with dicts and no code of
waystation.core: the server must end in exactly the state this model computes from the ops
it received, in the order it received them. What the model cannot know — the fresh clocks
the server stamps when it re-stamps an op or applies a resolution — it is told.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

DELETED = "_deleted"
SERVER = "server"


@dataclass
class Collection:
    policy: str
    monotonic: frozenset[str]
    counters: frozenset[str]
    required: frozenset[str]
    unique: tuple[str, ...] | None = None  # one unique key, or none


@dataclass
class Rec:
    fields: dict[str, Any] = field(default_factory=dict)
    clocks: dict[str, str] = field(default_factory=dict)
    tomb: str | None = None
    version: int = 0
    # field (or DELETED) -> (record version, device) of its last change
    changed_at: dict[str, tuple[int, str]] = field(default_factory=dict)
    flagged: bool = False

    def deleted(self, counters: frozenset[str]) -> bool:
        if self.tomb is None:
            return False
        return all(c < self.tomb for f, c in self.clocks.items() if f not in counters)


@dataclass
class Outcome:
    status: str  # applied | conflict | rejected | duplicate
    code: str | None = None  # conflict kind or rejection code
    superseded: list[str] = field(default_factory=list)
    restamped: bool = False
    hlc: str | None = None


@dataclass
class Held:
    kind: str
    key: tuple[str, str]
    op: str
    hlc: str
    client_fields: dict[str, Any]
    existing_id: str | None


class Model:
    def __init__(self, collections: dict[str, Collection], max_skew_ms: int) -> None:
        self.collections = collections
        self.max_skew_ms = max_skew_ms
        self.records: dict[tuple[str, str], Rec] = {}
        self.first: dict[str, Outcome] = {}
        self.open: dict[str, Held] = {}  # op id -> what an open conflict holds
        self.top_clock = ""  # the highest clock the server received (fresh ones beat it)

    # -- ops as the server receives them ------------------------------------------------

    def receive(self, op: dict[str, Any], device: str, now_ms: int, fresh: str | None) -> Outcome:
        """One op, received at server time ``now_ms``. ``fresh`` is the clock the server
        stamped on it if it re-stamped it (the model decides whether it must)."""
        first = self.first.get(op["op_id"])
        if first is not None:
            return Outcome("duplicate") if first.status == "applied" else first
        outcome = self._decide(op, device, now_ms, fresh)
        self.first[op["op_id"]] = outcome
        return outcome

    def _decide(self, op: dict[str, Any], device: str, now_ms: int, fresh: str | None) -> Outcome:
        spec = self.collections[op["collection"]]
        key = (op["collection"], op["record_id"])
        rec = self.records.get(key)
        kind, fields, base = op["op"], dict(op["fields"]), op["base_version"]
        if kind == "upsert" and rec is None:
            if base > 0:
                return Outcome("rejected", "NOT_FOUND")
            if not spec.required <= set(fields):
                return Outcome("rejected", "VALIDATION_ERROR")
        if kind != "upsert" and rec is None:
            return Outcome("rejected", "NOT_FOUND")
        assert rec is not None or kind == "upsert"
        hlc, restamped = op["hlc"], False
        if int(hlc[:15]) > now_ms + self.max_skew_ms:
            hlc, restamped = self._fresh(fresh), True
        else:
            self.top_clock = max(self.top_clock, hlc)
        superseded: list[str] = []
        if rec is not None and kind != "increment":
            moved = self._moved(spec, rec, kind, fields, base, device)
            if moved and spec.policy == "manual":
                self.open[op["op_id"]] = Held(
                    "MANUAL_REVIEW",
                    key,
                    kind,
                    hlc,
                    fields if kind == "upsert" else {DELETED: True},
                    None,
                )
                rec.flagged = True
                return Outcome("conflict", "MANUAL_REVIEW")
            if moved and spec.policy == "server_wins":
                if kind == "delete":
                    return Outcome("applied", superseded=[DELETED], restamped=restamped, hlc=hlc)
                if DELETED in moved:
                    return Outcome("applied", superseded=list(fields), restamped=restamped, hlc=hlc)
                superseded = [f for f in fields if f in moved]
                fields = {f: v for f, v in fields.items() if f not in moved}
            if spec.policy == "client_wins" and self._would_lose(spec, rec, kind, fields, hlc):
                hlc, restamped = self._fresh(fresh), True
        new = copy.deepcopy(rec) if rec is not None else Rec()
        changed, lost = self._merge(spec, new, kind, fields, hlc, device)
        superseded += lost
        if changed and kind == "upsert" and spec.unique and not new.deleted(spec.counters):
            holder = self._key_holder(spec, key, rec, new)
            if holder is not None:
                self.open[op["op_id"]] = Held(
                    "UNIQUE_VIOLATION", key, kind, hlc, dict(op["fields"]), holder
                )
                return Outcome("conflict", "UNIQUE_VIOLATION")
        if changed:
            self.records[key] = new
        return Outcome("applied", superseded=superseded, restamped=restamped, hlc=hlc)

    def _fresh(self, fresh: str | None) -> str:
        assert fresh is not None, "the model says this op is re-stamped; the server did not"
        assert fresh > self.top_clock, "a fresh server clock must beat every clock received"
        self.top_clock = fresh
        return fresh

    @staticmethod
    def _moved(
        spec: Collection, rec: Rec, kind: str, fields: dict[str, Any], base: int, device: str
    ) -> list[str]:
        """What another device changed since ``base`` that this op contradicts."""
        deleted = rec.deleted(spec.counters)
        if kind == "delete":
            if deleted:
                return []
            names = [f for f in rec.clocks if f not in spec.counters | spec.monotonic]
        else:
            names = [f for f in fields if f not in spec.monotonic]
            if deleted:
                names.append(DELETED)
        out = []
        for name in names:
            version, who = rec.changed_at.get(name, (0, ""))
            if version > base and who != device:
                out.append(name)
        return out

    @staticmethod
    def _would_lose(
        spec: Collection, rec: Rec, kind: str, fields: dict[str, Any], hlc: str
    ) -> bool:
        if kind == "delete":
            if rec.tomb is not None and rec.tomb >= hlc:
                return True
            names = [f for f in rec.clocks if f not in spec.counters]
        else:
            if rec.deleted(spec.counters) and rec.tomb is not None and rec.tomb >= hlc:
                return True
            names = list(fields)
        return any(rec.clocks.get(f, "") >= hlc for f in names if f not in spec.monotonic)

    @staticmethod
    def _merge(
        spec: Collection, rec: Rec, kind: str, fields: dict[str, Any], hlc: str, device: str
    ) -> tuple[bool, list[str]]:
        """Merge in place; (changed, superseded)."""
        changed: list[str] = []
        lost: list[str] = []
        if kind == "upsert":
            for name, value in fields.items():
                clock = rec.clocks.get(name)
                if name in spec.monotonic:
                    old = rec.fields.get(name, None)
                    merged = bool(old) or bool(value)
                    newest = hlc if clock is None or hlc > clock else clock
                    if name not in rec.fields or merged != old or newest != clock:
                        rec.fields[name], rec.clocks[name] = merged, newest
                        changed.append(name)
                    if merged and not value:
                        lost.append(name)
                elif clock is None or hlc > clock:
                    rec.fields[name], rec.clocks[name] = value, hlc
                    changed.append(name)
                elif hlc < clock:
                    lost.append(name)
            if rec.deleted(spec.counters):
                lost = list(fields)
        elif kind == "delete":
            if rec.tomb is None or hlc > rec.tomb:
                rec.tomb = hlc
                changed.append(DELETED)
            if hlc < rec.tomb or not rec.deleted(spec.counters):
                lost = [DELETED]
        else:
            for name, delta in fields.items():
                if delta == 0:
                    continue
                rec.fields[name] = rec.fields.get(name, 0) + delta
                if name not in rec.clocks or hlc > rec.clocks[name]:
                    rec.clocks[name] = hlc
                changed.append(name)
        if changed:
            rec.version += 1
            for name in changed:
                rec.changed_at[name] = (rec.version, device)
        return bool(changed), lost

    def _key_holder(
        self, spec: Collection, key: tuple[str, str], before: Rec | None, after: Rec
    ) -> str | None:
        assert spec.unique is not None
        value = self._key(spec, after)
        if value is None:
            return None
        if (
            before is not None
            and not before.deleted(spec.counters)
            and self._key(spec, before) == value
        ):
            return None
        for (collection, rid), other in self.records.items():
            if (
                collection == key[0]
                and rid != key[1]
                and not other.deleted(spec.counters)
                and self._key(spec, other) == value
            ):
                return rid
        return None

    @staticmethod
    def _key(spec: Collection, rec: Rec) -> tuple[Any, ...] | None:
        assert spec.unique is not None
        values = tuple(rec.fields.get(f) for f in spec.unique)
        return None if any(v is None for v in values) else values

    # -- resolutions --------------------------------------------------------------------

    def plan(
        self, op_id: str, resolution: str, fields: dict[str, Any] | None, target: str | None
    ) -> list[tuple[str, str, dict[str, Any]]] | None:
        """The changes (record id, op, fields) resolving the conflict of ``op_id``; None
        when the decision is refused."""
        held = self.open[op_id]
        spec = self.collections[held.key[0]]
        rec = self.records.get(held.key)
        if resolution == "client_wins":
            if held.kind == "UNIQUE_VIOLATION":
                return None
            if held.op == "delete":
                return [] if rec is None else [(held.key[1], "delete", {})]
            return [(held.key[1], "upsert", dict(held.client_fields))]
        if resolution == "server_wins":
            return self._reassert(spec, held, rec)
        merged = {**held.client_fields, **(fields or {})}
        if held.kind == "MANUAL_REVIEW":
            if held.op == "delete" or not fields or target is not None:
                return None
            return [(held.key[1], "upsert", merged)]
        if target == "existing":
            assert held.existing_id is not None
            existing = self.records.get((held.key[0], held.existing_id))
            if existing is None or existing.deleted(spec.counters):
                return None
            return [*self._reassert(spec, held, rec), (held.existing_id, "upsert", merged)]
        return [(held.key[1], "upsert", merged)]

    @staticmethod
    def _reassert(
        spec: Collection, held: Held, rec: Rec | None
    ) -> list[tuple[str, str, dict[str, Any]]]:
        if rec is None:
            return []
        if rec.deleted(spec.counters):
            assert rec.tomb is not None
            return (
                [(held.key[1], "delete", {})] if held.op == "upsert" and held.hlc > rec.tomb else []
            )
        live = {f: c for f, c in rec.clocks.items() if f not in spec.counters}
        if held.op == "delete":
            if live and all(c < held.hlc for c in live.values()):
                return [(held.key[1], "upsert", {f: rec.fields[f] for f in live})]
            return []
        beaten = {f: rec.fields[f] for f in held.client_fields if f in live and live[f] < held.hlc}
        return [(held.key[1], "upsert", beaten)] if beaten else []

    def resolve(
        self,
        op_id: str,
        changes: list[tuple[str, str, dict[str, Any]]],
        clocks: list[str],
        now_ms: int,
    ) -> bool:
        """Apply a planned resolution as the server's own ops; False (and nothing changed)
        when one of them would not apply."""
        held = self.open[op_id]
        saved = (copy.deepcopy(self.records), dict(self.open), self.top_clock)
        for (record_id, kind, fields), clock in zip(changes, clocks, strict=True):
            rec = self.records.get((held.key[0], record_id))
            op = {
                "op_id": f"resolution-{op_id}-{record_id}-{clock}",
                "collection": held.key[0],
                "record_id": record_id,
                "op": kind,
                "fields": fields,
                "hlc": clock,
                "base_version": rec.version if rec is not None else 0,
            }
            if self.receive(op, SERVER, now_ms, None).status != "applied":
                self.records, self.open, self.top_clock = saved
                return False
        del self.open[op_id]
        rec = self.records.get(held.key)
        if rec is not None and not any(
            h.key == held.key and h.kind == "MANUAL_REVIEW" for h in self.open.values()
        ):
            rec.flagged = False
        return True
