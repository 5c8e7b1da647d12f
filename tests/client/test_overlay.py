"""The visible record = the server's copy with the device's unsynced ops replayed in order."""

from __future__ import annotations

from waystation.client.overlay import LocalOp, visible


def test_pending_upsert_shows_over_the_server_copy_without_touching_other_fields() -> None:
    server = {"name": "Amina", "village": "Kisima"}
    assert visible(server, False, [LocalOp("upsert", {"village": "Pwani"})]) == {
        "name": "Amina",
        "village": "Pwani",
    }


def test_counter_reads_server_value_plus_pending_deltas() -> None:
    ops = [LocalOp("increment", {"quantity": -5}), LocalOp("increment", {"quantity": -5})]
    assert visible({"quantity": 100}, False, ops) == {"quantity": 90}


def test_increment_of_a_field_the_server_never_set_starts_from_zero() -> None:
    assert visible({"medicine_id": "m-1"}, False, [LocalOp("increment", {"quantity": 3})]) == {
        "medicine_id": "m-1",
        "quantity": 3,
    }


def test_pending_delete_hides_the_record_and_a_later_upsert_brings_it_back_whole() -> None:
    server = {"name": "Amina", "phone": "123"}
    assert visible(server, False, [LocalOp("delete", {})]) is None
    back = visible(server, False, [LocalOp("delete", {}), LocalOp("upsert", {"phone": "456"})])
    assert back == {"name": "Amina", "phone": "456"}


def test_record_deleted_on_the_server_stays_hidden_unless_an_upsert_resurrects_it() -> None:
    assert visible({}, True, []) is None
    assert visible({}, True, [LocalOp("increment", {"quantity": 1})]) is None
    assert visible({}, True, [LocalOp("upsert", {"name": "B"})]) == {"name": "B"}


def test_unknown_record_exists_only_once_an_upsert_creates_it() -> None:
    assert visible(None, False, []) is None
    assert visible(None, False, [LocalOp("increment", {"quantity": 1})]) is None
    assert visible(None, False, [LocalOp("upsert", {"a": 1})]) == {"a": 1}


def test_superseded_fields_of_an_acknowledged_op_do_not_show() -> None:
    op = LocalOp("upsert", {"a": "mine", "b": "mine"}, superseded=frozenset({"a"}))
    assert visible({"a": "theirs", "b": "old"}, False, [op]) == {"a": "theirs", "b": "mine"}
