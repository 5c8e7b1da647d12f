"""The pull page as bytes: the stored JSON is spliced into the answer undecoded, so the
body must be exactly what encoding the decoded changes gives, on both engines."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.store.conftest import ADMIN, NURSE
from waystation.core.hlc import Clock
from waystation.core.ids import uuid7
from waystation.core.timefmt import rfc3339
from waystation.store import SqlStore
from waystation.store.pull import Cursor, FeedState, Page, feed_state, rfc3339_ms

CLOCK = Clock("d-render")


def _op(
    collection: str, record_id: str, fields: dict[str, Any], op: str = "upsert", **extra: Any
) -> dict[str, Any]:
    return {
        "op_id": uuid7(),
        "collection": collection,
        "record_id": record_id,
        "op": op,
        "fields": fields,
        "hlc": str(CLOCK.send()),
        **extra,
    }


def _decoded_body(page: Page) -> bytes:
    return orjson.dumps(
        {"changes": page.changes, "cursor": str(page.cursor), "has_more": page.has_more}
    )


def _fill(store: SqlStore) -> tuple[str, str]:
    """Records of every kind a page can carry: plain, with text that JSON must escape,
    nested values and floats, a counter, a tombstone (deleted_hlc) and one deleted and
    written again."""
    gone, back = uuid7(), uuid7()
    item = uuid7()
    ops = [
        _op(
            "patients",
            uuid7(),
            {
                "name": 'Achieng "Mama" O\u2019Neil\n\t\\ \u00e9\U0001f600',
                "facility_id": "f-1",
                "village": "Ahero </script>",
            },
        ),
        _op(
            "encounters",
            uuid7(),
            {
                "patient_id": "p-1",
                "facility_id": "f-1",
                "notes": "x" * 300,
                "vitals": {
                    "temperature": 37.25,
                    "pulse": 61,
                    "bp": "120/80",
                    "tags": [1, 2.5, None],
                },
            },
        ),
        _op("pharmacy_inventory", item, {"facility_id": "f-1", "medicine_id": "m-1"}),
        _op("pharmacy_inventory", item, {"quantity": 12}, op="increment"),
        _op("patients", gone, {"name": "Gone", "facility_id": "f-1"}),
        _op("patients", back, {"name": "Back", "facility_id": "f-1"}),
    ]
    ops += [_op("patients", uuid7(), {"name": f"p{i}", "facility_id": "f-1"}) for i in range(12)]
    store.push(ADMIN, ops)
    store.push(
        ADMIN,
        [
            _op("patients", gone, {}, op="delete", base_version=1),
            _op("patients", back, {}, op="delete", base_version=1),
        ],
    )
    store.push(
        ADMIN, [_op("patients", back, {"name": "Back again", "facility_id": "f-1"}, base_version=2)]
    )
    return gone, back


def test_a_page_renders_as_encoding_its_decoded_changes_would(store: SqlStore) -> None:
    gone, back = _fill(store)
    for principal in (ADMIN, NURSE):
        cursor, pages = Cursor(0), 0
        while True:
            page = store.pull(principal, cursor, 5)
            assert page.json() == _decoded_body(page)
            for size in (1, 2, 3, 200):
                assert b"".join(page.json_pieces(size)) == page.json()
            pages += 1
            cursor = page.cursor
            if not page.has_more:
                break
        assert pages >= 4
    everything = store.pull(ADMIN, Cursor(0), 100)
    by_id = {c["id"]: c for c in orjson.loads(everything.json())["changes"]}
    assert by_id[gone]["deleted"] is True and by_id[gone]["fields"] == {}
    assert "deleted_hlc" in by_id[gone]
    assert by_id[back]["deleted"] is False and "deleted_hlc" in by_id[back]
    assert by_id[back]["fields"]["name"] == "Back again"


def test_an_empty_page_renders_too(store: SqlStore) -> None:
    page = store.pull(ADMIN, Cursor(0), 10)
    assert page.empty and not page.has_more
    assert page.json() == b'{"changes":[],"cursor":"0","has_more":false}'
    assert b"".join(page.json_pieces()) == page.json()


def test_the_feed_state_moves_with_every_change_and_only_then(store: SqlStore) -> None:
    with store.db.read() as conn:
        before = feed_state(conn)
    page = store.pull(ADMIN, Cursor(0), 10)
    assert page.state == before == FeedState(0, 0)
    store.push(ADMIN, [_op("patients", uuid7(), {"name": "A", "facility_id": "f-1"})])
    with store.db.read() as conn:
        after = feed_state(conn)
    assert after.head > before.head
    assert store.pull(ADMIN, Cursor(0), 10).state == after
    assert store.pull(NURSE, Cursor(0), 10).state == after  # reads do not move it


@pytest.mark.parametrize(
    "ms",
    [0, 1, 999, 1000, 1_795_324_175_244, 1_795_324_175_999, 1_795_324_176_000, 4_102_444_800_123],
)
def test_updated_at_is_formatted_as_everywhere_else(ms: int) -> None:
    assert rfc3339_ms(ms) == rfc3339(ms)
