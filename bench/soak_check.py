"""The soak's checker: every replica (Python and browser) against the server, and the
server against the clients' write logs (bench/soak_client.py, bench/soak_browser.py).

Exactly-once, by the logs: for each client, the set S of write numbers whose patient the
server holds must contain every logged number (else a write was lost), and the numbers
it holds beyond the log must each be the one write a kill may have left unlogged: ``n``
with no log line, directly before a ``{"start": n + 1}`` line, or one past the last
logged number (the final kill) (else a write appeared from nowhere).
Each client's stock counter must equal the sum of ``delta(n)`` over S: an
increment lost or applied twice changes that sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from bench.soak_client import delta, inventory_id, village
from waystation.client import Replica, VerifyStatus


@dataclass
class Findings:
    """What the checker found; ``ok`` when nothing is wrong."""

    problems: list[str] = field(default_factory=list)
    logged_writes: int = 0
    unlogged_writes: int = 0
    server_records: int = 0
    replicas_digest_equal: int = 0  # replicas whose every collection's digest is equal
    browsers_equal: int = 0  # browser replicas whose copy of the server equals it
    collections_verified: int = 0  # (replica, collection) pairs compared by digest
    records_verified: int = 0  # live records those digests covered, summed

    @property
    def ok(self) -> bool:
        return not self.problems


def read_server(db_url: str) -> dict[tuple[str, str], tuple[int, bool, dict[str, Any]]]:
    """(collection, id) -> (version, deleted, fields) of every record, read straight from
    the server's database."""
    url = db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT collection, id, version, deleted, fields FROM records")
            ).all()
    finally:
        engine.dispose()
    return {(r[0], r[1]): (int(r[2]), bool(r[3]), orjson.loads(r[4])) for r in rows}


def check_replicas(
    server: dict[tuple[str, str], tuple[int, bool, dict[str, Any]]],
    replica_paths: list[Path],
    findings: Findings,
) -> None:
    """Each replica's copy of the server (its ``server_records``, read from its file) must
    equal the server's records, its outbox must be empty, and its integrity digest must
    equal the server's for every collection (``Replica.verify(repair=False)``: the
    server's ``GET /v1/sync/digest`` against the replica's own; it needs the servers up,
    so call this with the proxy still forwarding and its faults off)."""
    for path in replica_paths:
        with Replica(path) as rep:
            pending = rep.pending_count()
            with rep.db.read() as conn:
                rows = conn.execute(
                    "SELECT collection, id, version, deleted, fields FROM server_records"
                ).fetchall()
            left = rep.status()
            verify_digest(rep, path, findings)
        copy = {(r[0], r[1]): (int(r[2]), bool(r[3]), orjson.loads(r[4])) for r in rows}
        if pending or left["failed"] or left["rejected"] or left["conflicts"]:
            findings.problems.append(
                f"{path.name}: outbox not clean: pending {pending}, "
                f"failed {left['failed']}, rejected {left['rejected']}, "
                f"conflicts {left['conflicts']}"
            )
        if copy != server:
            findings.problems.append(f"{path.name}: {_difference(server, copy)}")


def check_browsers(
    server: dict[tuple[str, str], tuple[int, bool, dict[str, Any]]],
    dumps: list[Path],
    findings: Findings,
) -> None:
    """Each browser replica's copy of the server (every record's server copy, decrypted
    from its IndexedDB by bench/soak_browser.py after its last sync) must equal the
    server's records, and its outbox must be empty. (The JS client has no digest: the
    whole copy is compared, which is what a digest stands for.)"""
    for path in dumps:
        state = orjson.loads(path.read_bytes())
        copy = {(r[0], r[1]): (int(r[2]), bool(r[3]), r[4]) for r in state["records"]}
        left = {k: state[k] for k in ("pending", "failed", "rejected", "conflicts")}
        if any(left.values()):
            findings.problems.append(f"{path.name}: outbox not clean: {left}")
        if copy != server:
            findings.problems.append(f"{path.name}: {_difference(server, copy)}")
        else:
            findings.browsers_equal += 1
            findings.records_verified += sum(1 for _, deleted, _ in copy.values() if not deleted)


def _difference(
    server: dict[tuple[str, str], tuple[int, bool, dict[str, Any]]],
    copy: dict[tuple[str, str], tuple[int, bool, dict[str, Any]]],
) -> str:
    missing = len(server.keys() - copy.keys())
    extra = len(copy.keys() - server.keys())
    differ = sum(1 for k in server.keys() & copy.keys() if server[k] != copy[k])
    return f"differs from the server: {missing} missing, {extra} extra, {differ} different"


def verify_digest(rep: Replica, path: Path, findings: Findings) -> None:
    """The replica's digest against the server's, without repair: every collection must
    be ``equal`` (a repair would hide the very difference the soak looks for)."""
    result = rep.verify(repair=False)
    if result.error is not None:
        findings.problems.append(
            f"{path.name}: verify did not finish: {result.error_code}: {result.error}"
        )
        return
    findings.collections_verified += len(result.checks)
    findings.records_verified += sum(c.server_count for c in result.checks)
    unequal = [c for c in result.checks if c.status is not VerifyStatus.EQUAL]
    if unequal or not result.checks:
        findings.problems.append(
            f"{path.name}: digest not equal: "
            + (
                ", ".join(
                    f"{c.collection} {c.status.value} (server {c.server_count}, "
                    f"replica {c.local_count})"
                    for c in unequal
                )
                or "no collection compared"
            )
        )
    else:
        findings.replicas_digest_equal += 1


def read_log(path: Path) -> tuple[set[int], set[int]]:
    """(logged write numbers, numbers a kill may have left unlogged). A client killed
    before it opened its log has none."""
    logged: set[int] = set()
    allowed: set[int] = set()
    text = path.read_bytes() if path.exists() else b""
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:  # a kill mid-line: the write before it is logged
            continue
        if "n" in entry:
            logged.add(int(entry["n"]))
        elif "start" in entry and int(entry["start"]) > 1:
            allowed.add(int(entry["start"]) - 1)
    # The last process was killed too (the clean phase starts with that): its next write.
    allowed.add(max(logged, default=0) + 1)
    return logged, allowed - logged


def check_logs(
    server: dict[tuple[str, str], tuple[int, bool, dict[str, Any]]],
    logs: dict[int, Path],
    findings: Findings,
) -> None:
    """The server against each client's write log (exactly once, see the module)."""
    for client, log_path in logs.items():
        logged, allowed = read_log(log_path)
        held = {
            int(key[1].rsplit("-n", 1)[1])
            for key, (_, deleted, fields) in server.items()
            if key[0] == "patients" and not deleted and fields.get("village") == village(client)
        }
        lost = logged - held
        extra = held - logged
        findings.logged_writes += len(logged)
        findings.unlogged_writes += len(extra & allowed)
        if lost:
            findings.problems.append(
                f"client {client}: {len(lost)} acknowledged write(s) lost, e.g. {sorted(lost)[:5]}"
            )
        if extra - allowed:
            findings.problems.append(
                f"client {client}: writes nobody made: {sorted(extra - allowed)[:5]}"
            )
        stock = server.get(("pharmacy_inventory", inventory_id(client)))
        total = stock[2].get("quantity") if stock else None
        expected = sum(delta(n) for n in held)
        if total != expected:
            findings.problems.append(
                f"client {client}: stock {total}, expected {expected} "
                "(an increment lost or applied twice)"
            )


def check(
    db_url: str,
    replica_paths: list[Path],
    logs: dict[int, Path],
    browser_dumps: list[Path] | None = None,
) -> Findings:
    """Everything the soak promises, from real reads of every file and the database."""
    findings = Findings()
    server = read_server(db_url)
    findings.server_records = len(server)
    check_replicas(server, replica_paths, findings)
    check_browsers(server, browser_dumps or [], findings)
    check_logs(server, logs, findings)
    return findings
