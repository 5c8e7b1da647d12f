"""The soak's checker (bench/soak_check.py) has teeth: a lost write, a write nobody made,
an increment applied twice, and a browser replica that differs from the server are each
reported; the honest case is not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from bench.soak_check import Findings, check_browsers, check_logs
from bench.soak_client import delta, inventory_id, patient_id, village

Server = dict[tuple[str, str], tuple[int, bool, dict[str, Any]]]


def _server(client: int, held: list[int], stock: int | None = None) -> Server:
    records: Server = {
        ("patients", patient_id(client, n)): (1, False, {"village": village(client)}) for n in held
    }
    total = sum(delta(n) for n in held) if stock is None else stock
    records[("pharmacy_inventory", inventory_id(client))] = (
        len(held) + 1,
        False,
        {"quantity": total},
    )
    return records


def _log(tmp_path: Path, lines: list[dict[str, int]]) -> dict[int, Path]:
    path = tmp_path / "client0.log"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return {0: path}


def _problems(server: Server, logs: dict[int, Path]) -> list[str]:
    findings = Findings()
    check_logs(server, logs, findings)
    return findings.problems


def test_the_log_check_passes_an_honest_run_with_one_unlogged_write(tmp_path: Path) -> None:
    # writes 1, 2 logged; 3 stored but killed before its log line; restart at 4
    logs = _log(tmp_path, [{"start": 1}, {"n": 1}, {"n": 2}, {"start": 4}, {"n": 4}])
    assert _problems(_server(0, [1, 2, 3, 4]), logs) == []


def test_the_log_check_reports_lost_invented_and_doubled_writes(tmp_path: Path) -> None:
    logs = _log(tmp_path, [{"start": 1}, {"n": 1}, {"n": 2}, {"n": 3}])
    (lost,) = _problems(_server(0, [1, 3]), logs)
    assert "1 acknowledged write(s) lost, e.g. [2]" in lost
    invented = _problems(_server(0, [1, 2, 3, 9]), logs)
    assert any("writes nobody made: [9]" in p for p in invented), invented
    doubled = _problems(_server(0, [1, 2, 3], stock=sum(map(delta, [1, 2, 3, 3]))), logs)
    assert any("an increment lost or applied twice" in p for p in doubled), doubled


def test_the_browser_check_reports_a_copy_that_differs_or_an_outbox_not_empty(
    tmp_path: Path,
) -> None:
    server = _server(0, [1, 2])
    rows = [[c, i, v, d, f] for (c, i), (v, d, f) in server.items()]
    clean = {"pending": 0, "failed": 0, "rejected": 0, "conflicts": 0}

    def problems(records: list[list[Any]], **outbox: int) -> list[str]:
        dump = tmp_path / "browser.json"
        dump.write_bytes(orjson.dumps({"records": records, **clean, **outbox}))
        findings = Findings()
        check_browsers(server, [dump], findings)
        assert findings.browsers_equal == (records == rows)  # copies equal, outbox aside
        return findings.problems

    assert problems(rows) == []
    assert problems(rows[1:]) == [
        "browser.json: differs from the server: 1 missing, 0 extra, 0 different"
    ]
    older = [[*rows[0][:2], 0, *rows[0][3:]], *rows[1:]]
    assert problems(older) == [
        "browser.json: differs from the server: 0 missing, 0 extra, 1 different"
    ]
    (pending,) = problems(rows, pending=2)
    assert "outbox not clean" in pending and "'pending': 2" in pending
