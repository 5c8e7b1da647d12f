"""Holes 3, 6 and 7 of the security review, through a real server on both engines: counters
cannot be poisoned, records cannot grow without bound, and hostile input gets a 4xx (or a
closed connection), never a 500."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from tests.server.conftest import MakeDevice
from tests.support import LiveServer, SyncApi
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.store import open_store
from waystation.store.tables import records

SAFE = 2**53 - 1


@pytest.fixture
def nurse(make_device: MakeDevice, facility: str) -> SyncApi:
    return make_device("health_worker", (f"facility:{facility}",))


def _stock(nurse: SyncApi, facility: str) -> str:
    item = uuid7()
    [made] = nurse.push(
        [nurse.change("pharmacy_inventory", item, {"facility_id": facility, "medicine_id": "m-1"})]
    )
    assert made["status"] == "applied"
    return item


def _log(nurse: SyncApi, facility: str, **fields: Any) -> dict[str, Any]:
    """A new log of a patient of its own (one log per patient and day)."""
    return nurse.change(
        "symptom_logs",
        uuid7(),
        {
            "patient_id": f"p-{uuid7()[-12:]}",
            "facility_id": facility,
            "date": "2025-11-30",
            **fields,
        },
    )


def _rejected(result: dict[str, Any], field: str) -> str:
    assert result["status"] == "rejected", result
    assert result["error"]["code"] == "VALIDATION_ERROR"
    assert result["error"]["details"]["field"] == field
    message: str = result["error"]["message"]
    return message


def test_hole_3_counter_poisoning_is_refused_and_valid_ops_beside_it_apply(
    nurse: SyncApi,
    facility: str,
) -> None:
    item = _stock(nurse, facility)
    batch = [
        nurse.change("pharmacy_inventory", item, {"quantity": 2**63}, op="increment"),
        nurse.change("pharmacy_inventory", item, {"quantity": -(2**63)}, op="increment"),
        nurse.change("pharmacy_inventory", item, {"quantity": 10**12}, op="increment"),
        nurse.change("pharmacy_inventory", item, {"quantity": 40}, op="increment"),
    ]
    results = nurse.push(batch)
    for result in results[:3]:
        _rejected(result, "fields.quantity")
    assert results[3]["status"] == "applied"
    # the counter still works afterwards, for every later batch
    assert (
        nurse.push([nurse.change("pharmacy_inventory", item, {"quantity": -5}, op="increment")])[0][
            "status"
        ]
        == "applied"
    )
    seen, _ = nurse.pull_all()
    assert seen[item]["fields"]["quantity"] == 35


def test_hole_3_a_counters_total_stays_within_the_safe_integer_range(
    nurse: SyncApi,
    facility: str,
) -> None:
    item = _stock(nurse, facility)
    step = [
        nurse.change("pharmacy_inventory", item, {"quantity": 10**9}, op="increment")
        for _ in range(3)
    ]
    assert all(r["status"] == "applied" for r in nurse.push(step))
    seen, _ = nurse.pull_all()
    assert seen[item]["fields"]["quantity"] == 3 * 10**9


def test_hole_3_a_record_poisoned_before_the_fix_rejects_its_ops_alone(
    shared_server: LiveServer,
    nurse: SyncApi,
    facility: str,
) -> None:
    """A counter stored beyond the range (by a server without this fix) must not turn every
    later batch touching it into a 500."""
    item = _stock(nurse, facility)
    store = open_store(shared_server.db_url, health_schema(), migrate=False)
    try:
        with store.db.write() as conn:
            conn.execute(
                sa.update(records)
                .where(records.c.id == item)
                .values(
                    fields=orjson.dumps(
                        {"facility_id": facility, "medicine_id": "m-1", "quantity": 2**63}
                    ).decode()
                )
            )
    finally:
        store.close()
    other = _stock(nurse, facility)
    results = nurse.push(
        [
            nurse.change("pharmacy_inventory", item, {"quantity": 1}, op="increment"),
            nurse.change("pharmacy_inventory", item, {"batch": "B-9"}),
            nurse.change("pharmacy_inventory", other, {"quantity": 7}, op="increment"),
        ]
    )
    assert "an administrator must repair it" in _rejected(results[0], "fields.quantity")
    _rejected(results[1], "fields.quantity")
    assert results[2]["status"] == "applied"


def test_hole_6_arrays_are_bounded_in_items_and_item_length(
    nurse: SyncApi,
    facility: str,
) -> None:
    results = nurse.push(
        [
            _log(nurse, facility, symptoms=["cough"] * 1_300_000),
            _log(nurse, facility, symptoms=["x" * 5000]),
            _log(nurse, facility, symptoms=["cough", "fever"]),
        ]
    )
    assert "at most 50 items" in _rejected(results[0], "fields.symptoms")
    assert "at most 100 characters" in _rejected(results[1], "fields.symptoms[0]")
    assert results[2]["status"] == "applied"


def test_hole_6_a_record_cannot_grow_past_its_size_limit(
    nurse: SyncApi,
    facility: str,
) -> None:
    """Each field within its own limit, together over the record's (symptom_logs: 12 KiB):
    many small upserts cannot build what one large one may not."""
    assert health_schema().collections["symptom_logs"].max_record_bytes == 12 * 1024
    log = _log(nurse, facility, notes="n" * 10_000)
    assert nurse.push([log])[0]["status"] == "applied"
    grow = nurse.change(
        "symptom_logs", log["record_id"], {"symptoms": ["s" * 100] * 40}, base_version=1
    )
    assert "bytes of fields" in _rejected(nurse.push([grow])[0], "fields")
    shrink = nurse.change(
        "symptom_logs",
        log["record_id"],
        {"notes": "short", "symptoms": ["s" * 100] * 40},
        base_version=1,
    )
    assert nurse.push([shrink])[0]["status"] == "applied"


def test_hole_7_deeply_nested_fields_reject_that_op_alone(nurse: SyncApi, facility: str) -> None:
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000  # within orjson's own limit of 1024
    marker = b'"__DEEP__"'
    deep_op = _log(nurse, facility, notes="__DEEP__")
    good = _log(nurse, facility, date="2025-12-01")
    body = orjson.dumps({"device_id": nurse.device_id, "changes": [deep_op, good]})
    resp = nurse.http.post(
        "/v1/sync/push",
        content=body.replace(marker, deep),
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    field = results[0]["error"]["details"]["field"]
    assert field.startswith("fields.notes.a.a")
    assert "nested deeper" in _rejected(results[0], field)
    assert results[1]["status"] == "applied"


def test_hole_7_an_unparseable_body_is_a_400(nurse: SyncApi) -> None:
    body = b'{"device_id": "x", "changes": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
    resp = nurse.http.post(
        "/v1/sync/push", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "value", [b'"99999999999999999999999999"', b'"2147483648"', '"²"'.encode(), b'"-1"']
)
def test_hole_7_if_match_out_of_range_is_a_400(nurse: SyncApi, value: bytes) -> None:
    resp = nurse.http.put(
        f"/v1/records/symptom_logs/{uuid7()}", json={"fields": {}}, headers={b"If-Match": value}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["details"] == {"field": "If-Match"}


@pytest.mark.parametrize("since", ["²", "99999999999999999999"])
def test_hole_7_a_cursor_out_of_range_is_a_400(nurse: SyncApi, since: str) -> None:
    resp = nurse.http.get("/v1/sync/pull", params={"since": since})
    assert resp.status_code == 400, resp.text


def test_hole_7_base_version_out_of_range_rejects_that_op(nurse: SyncApi, facility: str) -> None:
    change = _log(nurse, facility)
    change["base_version"] = 2**40
    [result] = nurse.push([change])
    _rejected(result, "base_version")


def test_hole_7_no_crash_was_logged(shared_server: LiveServer) -> None:
    assert "Traceback" not in shared_server.log()


# -- slowloris: a server of its own with short timeouts ------------------------------------


@pytest.fixture
def impatient_server(tmp_path: Any) -> Any:
    server = LiveServer(tmp_path, extra_args=["--header-timeout", "1", "--body-timeout", "1"])
    server.start()
    yield server
    server.stop()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` (reads EOF or a reset) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_hole_7_slowloris_connections_are_closed(impatient_server: LiveServer) -> None:
    held = []
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", impatient_server.port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ")  # never finished
        held.append(sock)
    # a normal client is served meanwhile
    assert httpx.get(f"{impatient_server.url}/healthz").status_code == 200
    started = time.monotonic()
    assert all(_closed_within(sock, 10) for sock in held)
    assert time.monotonic() - started < 5
    for sock in held:
        sock.close()


def test_hole_7_a_stalled_body_is_answered_408_and_closed(impatient_server: LiveServer) -> None:
    sock = socket.create_connection(("127.0.0.1", impatient_server.port))
    sock.sendall(
        b"POST /v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        b'\r\nContent-Length: 100\r\n\r\n{"username"'
    )
    sock.settimeout(10)
    answer = b""
    try:
        while chunk := sock.recv(4096):
            answer += chunk
    except ConnectionResetError:
        pass
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"REQUEST_TIMEOUT" in answer
