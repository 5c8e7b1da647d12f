"""The replica without a server: writes land at once, survive restarts and crashes, and
wait in the outbox for the server's verdict."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from pathlib import Path

import pytest

from waystation.client import OpStatus, Replica, SyncEvent
from waystation.client.db import set_meta
from waystation.core.hlc import HLC

LOG = {"patient_id": "p-1", "facility_id": "f-1", "date": "2025-11-30", "severity": 3}


def test_writes_are_readable_at_once_and_wait_in_the_outbox(replica: Replica) -> None:
    rid = replica.put("symptom_logs", LOG)
    replica.put("symptom_logs", {"severity": 5}, id=rid)

    assert replica.get("symptom_logs", rid) == {"id": rid, **LOG, "severity": 5}
    assert replica.query("symptom_logs", patient_id="p-1") == [{"id": rid, **LOG, "severity": 5}]
    entries = replica.outbox()
    assert [(e.op, e.status, e.record_id) for e in entries] == [
        ("upsert", OpStatus.PENDING, rid),
        ("upsert", OpStatus.PENDING, rid),
    ]
    assert entries[1].fields == {"severity": 5}  # a partial update carries only its fields
    assert entries[0].hlc < entries[1].hlc
    assert HLC.parse(entries[0].hlc).node == replica.device_id
    assert all(e.base_version == 0 and e.retry_count == 0 for e in entries)
    assert replica.status()["pending"] == 2


def test_new_records_get_distinct_uuid7_ids_made_offline(replica: Replica) -> None:
    ids = [replica.put("patients", {"name": f"P{i}", "facility_id": "f-1"}) for i in range(50)]
    assert len(set(ids)) == 50
    assert {uuid.UUID(i).version for i in ids} == {7}


def test_counter_shows_pending_deltas(replica: Replica) -> None:
    item = replica.put("pharmacy_inventory", {"facility_id": "f-1", "medicine_id": "m-1"})
    replica.increment("pharmacy_inventory", item, "quantity", 100)
    replica.increment("pharmacy_inventory", item, "quantity", -5)
    assert replica.get("pharmacy_inventory", item)["quantity"] == 95  # type: ignore[index]


def test_delete_hides_the_record_but_keeps_the_op(replica: Replica) -> None:
    rid = replica.put("symptom_logs", LOG)
    replica.delete("symptom_logs", rid)
    assert replica.get("symptom_logs", rid) is None
    assert replica.query("symptom_logs") == []
    assert [e.op for e in replica.outbox()] == ["upsert", "delete"]


def test_query_compares_values_as_json_does(replica: Replica) -> None:
    a = replica.put("notification_preferences", {"patient_id": "p-1", "sms": True})
    b = replica.put("notification_preferences", {"patient_id": "p-2", "sms": 1})
    c = replica.put("notification_preferences", {"patient_id": "p-3"})
    assert [r["id"] for r in replica.query("notification_preferences", sms=True)] == [a]
    assert [r["id"] for r in replica.query("notification_preferences", sms=1)] == [b]
    assert [r["id"] for r in replica.query("notification_preferences", sms=None)] == [c]
    assert len(replica.query("notification_preferences")) == 3


def test_invalid_data_is_queued_for_the_server_to_judge(replica: Replica) -> None:
    rid = replica.put("symptom_logs", {**LOG, "severity": 42})
    replica.put("no_such_collection", {"x": 1})
    assert replica.get("symptom_logs", rid)["severity"] == 42  # type: ignore[index]
    assert replica.status()["pending"] == 2


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.put("symptom_logs", {"severity": math.nan}),
        lambda r: r.put("symptom_logs", {"when": object()}),
        lambda r: r.put("symptom_logs", {"when": dt.datetime(2025, 1, 1)}),  # no time zone
        lambda r: r.put("symptom_logs", {1: "x"}),
        lambda r: r.put("symptom_logs", {"a": 1}, id="has spaces"),
        lambda r: r.put("", {"a": 1}),
        lambda r: r.increment("pharmacy_inventory", "i-1", "quantity", 1.5),
        lambda r: r.increment("pharmacy_inventory", "i-1", "quantity", True),
    ],
)
def test_broken_calls_fail_at_once_and_queue_nothing(replica: Replica, call: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        call(replica)  # type: ignore[operator]
    assert replica.outbox() == []


def test_dates_and_aware_datetimes_travel_as_iso_strings(replica: Replica) -> None:
    when = dt.datetime(2025, 11, 30, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    rid = replica.put("appointments", {"scheduled_at": when, "day": dt.date(2025, 11, 30)})
    assert replica.get("appointments", rid) == {
        "id": rid,
        "scheduled_at": "2025-11-30T06:30:00Z",
        "day": "2025-11-30",
    }


def test_an_id_inside_the_fields_names_the_record(replica: Replica) -> None:
    rid = replica.put("symptom_logs", LOG)
    record = replica.get("symptom_logs", rid)
    assert record is not None
    record["severity"] = 7
    assert replica.put("symptom_logs", record) == rid
    assert replica.outbox()[-1].fields == {**LOG, "severity": 7}
    with pytest.raises(ValueError):
        replica.put("symptom_logs", record, id="another-id")


def test_writes_survive_a_restart_and_the_clock_never_goes_backwards(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with Replica.open(path) as rep:
        rid = rep.put("symptom_logs", LOG)
        device = rep.device_id
        # As if the device's wall clock had been far ahead when it last wrote.
        ahead = HLC(HLC.parse(rep.outbox()[0].hlc).wall + 3_600_000, 7, device)
        with rep.db.transaction() as conn:
            set_meta(conn, "hlc_last", str(ahead))
    with Replica.open(path) as rep:
        assert rep.device_id == device
        assert rep.get("symptom_logs", rid) == {"id": rid, **LOG}
        rep.put("symptom_logs", {"severity": 4}, id=rid)
        assert HLC.parse(rep.outbox()[-1].hlc) > ahead


def test_ops_left_syncing_by_a_crash_go_back_to_pending_at_open(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with Replica.open(path) as rep:
        rid = rep.put("symptom_logs", LOG)
        with rep.db.transaction() as conn:  # what a sync killed mid-push leaves behind
            conn.execute("UPDATE outbox SET status = 'SYNCING'")
        assert rep.outbox()[0].status is OpStatus.SYNCING
        assert rep.get("symptom_logs", rid) is not None  # in flight still shows
    with Replica.open(path) as rep:
        [entry] = rep.outbox()
        assert entry.status is OpStatus.PENDING
        assert entry.retry_count == 0
        assert rep.get("symptom_logs", rid) == {"id": rid, **LOG}


def test_sync_without_a_login_reports_it_and_keeps_the_ops(replica: Replica) -> None:
    replica.put("symptom_logs", LOG)
    result = replica.sync()
    assert result.error_code == "LOGIN_REQUIRED"
    assert "waystation login" in (result.error or "")
    assert result.needs_login and not result.ok
    assert [e.status for e in replica.outbox()] == [OpStatus.PENDING]


def test_sync_while_offline_reports_it_and_spends_no_retry(unreachable_replica: Replica) -> None:
    rep = unreachable_replica
    rid = rep.put("symptom_logs", LOG)
    events: list[SyncEvent] = []
    rep.subscribe(events.append)
    for _ in range(5):  # more attempts than the retry budget: being offline is not a failure
        result = rep.sync()
        assert result.offline and result.error_code == "OFFLINE"
    [entry] = rep.outbox()
    assert entry.status is OpStatus.PENDING and entry.retry_count == 0
    assert rep.get("symptom_logs", rid) == {"id": rid, **LOG}
    assert events[-1].phase == "done" and events[-1].error and events[-1].pending == 1
    assert rep.status()["last_sync_at"] is None


def test_a_failing_event_listener_never_breaks_a_sync(unreachable_replica: Replica) -> None:
    def broken(event: SyncEvent) -> None:
        raise RuntimeError("UI bug")

    unreachable_replica.subscribe(broken)
    assert unreachable_replica.sync().offline


def test_discard_removes_only_entries_that_need_attention(replica: Replica) -> None:
    rid = replica.put("symptom_logs", LOG)
    [entry] = replica.outbox()
    assert not replica.discard(entry.op_id)  # still PENDING: it must reach the server
    with replica.db.transaction() as conn:
        conn.execute("UPDATE outbox SET status = 'REJECTED'")
    assert replica.discard(entry.op_id)
    assert replica.outbox() == []
    assert replica.get("symptom_logs", rid) is None


def test_login_needs_an_http_server_url(replica: Replica) -> None:
    with pytest.raises(ValueError):
        replica.login("ftp://example.org", "hw1", "pw")
    assert not replica.status()["logged_in"]
