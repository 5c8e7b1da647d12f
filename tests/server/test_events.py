"""GET /v1/sync/events: a device hears at once that changes exist in its scopes (server-sent
events, or a long poll), on both engines."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.server.conftest import MakeDevice
from tests.support import EventStream, LiveServer, SyncApi
from waystation.core.ids import uuid7


def _patient(api: SyncApi, facility: str) -> dict[str, Any]:
    return api.change("patients", uuid7(), {"name": "Achieng", "facility_id": facility})


def _long_poll(api: SyncApi, since: str, **params: Any) -> httpx.Response:
    return api.http.get("/v1/sync/events", params={"since": since, **params})


def test_a_subscriber_hears_of_a_push_by_another_device_at_once(
    make_device: MakeDevice, facility: str
) -> None:
    writer = make_device("health_worker", (f"facility:{facility}",))
    reader = make_device("health_worker", (f"facility:{facility}",))
    _, cursor = reader.pull_all()
    stream = EventStream(reader, cursor)
    try:
        assert stream.status == 200
        assert stream.headers is not None
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in stream.headers  # never buffered by gzip
        assert stream.next(timeout=0.3) is None  # nothing new yet: no event
        sent = time.monotonic()
        seq = writer.push([_patient(writer, facility)])[0]["seq"]
        event = stream.next(timeout=5)
        assert event is not None, "no event within 5 s of the push"
        assert event["event"] == "changes"
        assert event["data"] == f'{{"seq":"{seq}"}}'
        assert event["id"] == seq
        assert event["at"] - sent < 2.0
        seen, _ = reader.pull_all(since=cursor)  # the hint was right: the change is there
        assert len(seen) == 1
    finally:
        stream.close()


def test_changes_already_waiting_are_reported_as_soon_as_one_subscribes(
    make_device: MakeDevice, facility: str
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    _, before = nurse.pull_all()
    nurse.push([_patient(nurse, facility)])
    stream = EventStream(nurse, before)
    try:
        event = stream.next(timeout=5)
        assert event is not None
        assert int(event["id"]) > int(before)
    finally:
        stream.close()
    # a reconnecting EventSource sends the last id it saw: nothing more to tell it
    again = EventStream(nurse, None, last_event_id=event["id"])
    try:
        assert again.next(timeout=0.3) is None
    finally:
        again.close()
    quick = _long_poll(nurse, before, wait=0.2).json()
    assert quick == {"changed": True, "seq": event["id"]}


def test_only_changes_in_the_callers_scopes_wake_it(make_device: MakeDevice, facility: str) -> None:
    here = make_device("health_worker", (f"facility:{facility}",))
    elsewhere = make_device("health_worker", (f"facility:{facility}-other",))
    _, cursor = here.pull_all()
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(_long_poll, here, cursor, wait=20)
        # Let the long poll subscribe: the server shows no subscription a test could wait
        # on, and one made after the push below would not be asked to ignore it.
        time.sleep(0.3)
        elsewhere.push([_patient(elsewhere, f"{facility}-other")])
        time.sleep(0.5)  # the behaviour: for this long, it is NOT woken
        assert not waiting.done()  # not woken by a change it could not pull
        started = time.monotonic()
        seq = here.push([_patient(here, facility)])[0]["seq"]
        answer = waiting.result(timeout=10)
        assert time.monotonic() - started < 2.0
    assert answer.status_code == 200
    assert answer.json() == {"changed": True, "seq": seq}


def test_a_long_poll_with_nothing_new_answers_unchanged_after_its_wait(
    make_device: MakeDevice, facility: str
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    nurse.push([_patient(nurse, facility)])
    _, cursor = nurse.pull_all()
    started = time.monotonic()
    answer = _long_poll(nurse, cursor, wait=0.5)
    assert 0.4 < time.monotonic() - started < 5
    assert answer.json() == {"changed": False, "seq": None}
    filtered = _long_poll(nurse, "0", wait=0.5, collections="alerts").json()
    assert filtered == {"changed": False, "seq": None}  # its patient is not an alert


def test_events_refuse_what_a_pull_refuses(
    make_device: MakeDevice, facility: str, shared_server: LiveServer
) -> None:
    nurse = make_device("health_worker", (f"facility:{facility}",))
    for params in (
        {"since": "abc"},
        {"since": "99999999999"},
        {"wait": "0"},
        {"wait": "600"},
        {"collections": "vaccinations"},
        {"since": "1", "collections": "patients"},
    ):
        resp = nurse.http.get("/v1/sync/events", params=params)
        assert resp.status_code == 400, (params, resp.text)
        assert resp.json()["error"]["code"] == "VALIDATION_ERROR"
    anonymous = httpx.get(f"{shared_server.url}/v1/sync/events")
    assert anonymous.status_code == 401
