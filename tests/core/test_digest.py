"""The integrity digest (core/digest.py): the documented algorithm, byte for byte, and the
properties a device relies on to prove it holds what the server holds."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waystation.core.digest import (
    EMPTY,
    EMPTY_DIGEST,
    CollectionDigest,
    DigestBuilder,
    digest_records,
    fields_hash,
)

Row = tuple[str, str, int, dict[str, Any]]


def _by_hand(records: list[tuple[str, int, bytes]]) -> str:
    """docs/protocol.md's recipe, written out: canonical fields given as their bytes."""
    outer = hashlib.sha256()
    for record_id, version, canonical in records:
        inner = hashlib.sha256(canonical).hexdigest()
        outer.update(f"{record_id}\n{version}\n{inner}\n".encode())
    return outer.hexdigest()


def test_the_digest_is_the_documented_recipe() -> None:
    rows: list[Row] = [
        ("patients", "p-1", 3, {"name": "Amina", "facility_id": "f-1"}),
        ("patients", "p-2", 1, {"vitals": {"pulse": 80, "bp": "120/80"}, "age": 4.5}),
    ]
    found = digest_records(rows, ["patients"])
    assert found["patients"] == CollectionDigest(
        2,
        _by_hand(
            [
                ("p-1", 3, b'{"facility_id":"f-1","name":"Amina"}'),
                ("p-2", 1, b'{"age":4.5,"vitals":{"bp":"120/80","pulse":80}}'),
            ]
        ),
    )


def test_an_empty_collection_is_listed_with_count_0_and_the_hash_of_nothing() -> None:
    found = digest_records([], ["medicines", "patients"])
    assert found == {"medicines": EMPTY, "patients": EMPTY}
    assert (
        EMPTY
        == CollectionDigest(0, hashlib.sha256(b"").hexdigest())
        == CollectionDigest(0, EMPTY_DIGEST)
    )


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.text(max_size=6), _JSON, max_size=6))
def test_the_order_of_keys_never_changes_a_fields_hash(fields: dict[str, Any]) -> None:
    def reverse(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reverse(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reverse(v) for v in value]
        return value

    assert fields_hash(reverse(fields)) == fields_hash(fields)


@pytest.mark.parametrize(
    "change", ["field value", "version", "id", "missing record", "extra record"]
)
def test_any_difference_in_the_live_records_changes_the_digest(change: str) -> None:
    base: list[Row] = [("alerts", f"a-{n}", 1, {"title": f"t{n}", "read": False}) for n in range(5)]
    altered = list(base)
    if change == "field value":
        altered[2] = ("alerts", "a-2", 1, {"title": "t2", "read": True})
    elif change == "version":
        altered[2] = ("alerts", "a-2", 2, base[2][3])
    elif change == "id":
        altered[2] = ("alerts", "a-2x", 1, base[2][3])
    elif change == "missing record":
        del altered[2]
    else:
        altered.append(("alerts", "a-9", 1, {"title": "t9"}))
    assert digest_records(altered, ["alerts"]) != digest_records(base, ["alerts"])


def test_records_out_of_id_order_are_refused_rather_than_hashed() -> None:
    builder = DigestBuilder()
    builder.add("b", 1, {})
    with pytest.raises(ValueError, match="out of order"):
        builder.add("a", 1, {})
    with pytest.raises(ValueError, match="out of order"):
        builder.add("b", 1, {})  # twice


def test_rows_of_a_collection_not_asked_for_or_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="not asked for"):
        digest_records([("secrets", "x", 1, {})], ["patients"])
    with pytest.raises(ValueError, match="out of order"):
        digest_records([("patients", "x", 1, {}), ("alerts", "y", 1, {})], ["alerts", "patients"])


def test_ids_are_ordered_by_code_point_as_both_engines_are_asked_to() -> None:
    """'B' < '_' < 'a' < 'a-b' < 'aa' by code point (a locale collation would differ)."""
    ids = ["B", "_x", "a", "a-b", "aa"]
    assert ids == sorted(ids)
    builder = DigestBuilder()
    for record_id in ids:
        builder.add(record_id, 1, {})
    assert builder.result().count == 5
