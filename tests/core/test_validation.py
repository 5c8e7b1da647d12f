"""Server-side checks of pushed values; every failure names the field a person must fix."""

from __future__ import annotations

from typing import Any

import pytest

from waystation.core.errors import ValidationError
from waystation.core.schema import (
    DEFAULT_MAX_ITEM_LENGTH,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_STRING_LENGTH,
    CollectionSpec,
    Schema,
    SchemaError,
    health_schema,
    parse_schema,
)
from waystation.core.validation import (
    check_fields_shape,
    check_record_size,
    check_stored_numbers,
    validate_increment,
    validate_upsert,
)

SYMPTOM_LOG = {"patient_id": "p-1", "facility_id": "f-1", "date": "2025-11-30"}
ENCOUNTER = {"patient_id": "p-1", "facility_id": "f-1"}


@pytest.fixture(scope="module")
def schema() -> Schema:
    return health_schema()


def rejects(spec: CollectionSpec, fields: dict[str, Any], *, creating: bool = False) -> str:
    """Assert the upsert is refused; return the field path the error names."""
    with pytest.raises(ValidationError) as info:
        validate_upsert(spec, fields, creating=creating)
    assert info.value.code == "VALIDATION_ERROR"
    path = info.value.details["field"]
    assert isinstance(path, str)
    assert path in info.value.message  # the message a person reads names it too
    return path


# --- types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("collection", "name", "good", "bad"),
    [
        ("patients", "name", ["Amina", ""], [42, 4.2, True, ["A"], {"a": 1}]),
        ("symptom_logs", "severity", [0, 10, 5], [5.0, "5", True, [5]]),
        ("symptom_logs", "temperature", [37, 37.5, 25, 45.0], ["37.5", False, float("nan")]),
        ("notification_preferences", "sms", [True, False], [1, 0, "true", "yes"]),
        ("patients", "birth_date", ["1990-02-28", "2024-02-29"], ["1990-02-30", "28/02/1990"]),
        (
            "encounters",
            "occurred_at",
            ["2025-11-30T10:00:00Z", "2025-11-30T10:00:00.123+03:00"],
            ["2025-11-30T10:00:00", "2025-11-30", "yesterday", 1764496800],
        ),
        ("symptom_logs", "symptoms", [[], ["cough", "fever"]], ["cough", [1], ["a", None]]),
        ("encounters", "vitals", [{}, {"pulse": 70, "bp": "120/80"}], [[70], "70", 70]),
    ],
)
def test_each_field_type_accepts_its_values_and_refuses_others(
    schema: Schema, collection: str, name: str, good: list[Any], bad: list[Any]
) -> None:
    spec = schema.collections[collection]
    for value in good:
        validate_upsert(spec, {name: value}, creating=False)
    for value in bad:
        path = rejects(spec, {name: value})
        assert path.startswith(f"fields.{name}"), value


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_number_must_be_finite(schema: Schema, value: float) -> None:
    assert rejects(schema.collections["symptom_logs"], {"temperature": value}) == (
        "fields.temperature"
    )


@pytest.mark.parametrize(
    "value",
    [
        "20251130",  # ISO basic format
        "2025-11-30T00:00:00",  # a datetime is not a date
        "2025-11-3",
        " 2025-11-30",
    ],
)
def test_a_date_is_exactly_yyyy_mm_dd(schema: Schema, value: str) -> None:
    assert rejects(schema.collections["symptom_logs"], {"date": value}) == "fields.date"


@pytest.mark.parametrize("value", ["2025-W48-7", "2025-W01-1"])
def test_an_iso_week_date_is_not_a_date(schema: Schema, value: str) -> None:
    """'2025-W48-7' is 30 November 2025 spelled differently: accepting it would let a patient
    log two symptom entries for one day past the (patient_id, date) unique key."""
    assert rejects(schema.collections["symptom_logs"], {"date": value}) == "fields.date"


@pytest.mark.parametrize(
    "value",
    ["20251130T100000Z", "2025-W48-7T10:00:00Z", "2025-11-30T10Z"],
)
def test_a_datetime_is_rfc_3339(schema: Schema, value: str) -> None:
    assert rejects(schema.collections["appointments"], {"scheduled_at": value}) == (
        "fields.scheduled_at"
    )


def test_null_clears_an_optional_field(schema: Schema) -> None:
    validate_upsert(schema.collections["patients"], {"phone": None}, creating=False)
    validate_upsert(schema.collections["encounters"], {"vitals": None}, creating=False)


# --- ranges, enumerations, lengths ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ok", "bad"),
    [("severity", [0, 10], [-1, 11, 1000]), ("temperature", [25, 45, 36.6], [24.9, 45.1, -3])],
)
def test_numbers_stay_in_their_declared_range(
    schema: Schema, name: str, ok: list[float], bad: list[float]
) -> None:
    spec = schema.collections["symptom_logs"]
    for value in ok:
        validate_upsert(spec, {name: value}, creating=False)
    for value in bad:
        with pytest.raises(ValidationError, match=r"(below the minimum|above the maximum)"):
            validate_upsert(spec, {name: value}, creating=False)


def test_an_enumeration_accepts_only_its_values(schema: Schema) -> None:
    spec = schema.collections["appointments"]
    for status in ("PENDING", "CONFIRMED", "COMPLETED", "CANCELLED"):
        validate_upsert(spec, {"status": status}, creating=False)
    for status in ("pending", "DONE", ""):
        with pytest.raises(ValidationError, match="is not one of") as info:
            validate_upsert(spec, {"status": status}, creating=False)
        assert info.value.details == {"field": "fields.status"}
    assert rejects(schema.collections["alerts"], {"level": "critical"}) == "fields.level"


def test_strings_respect_max_length(schema: Schema) -> None:
    spec = schema.collections["patients"]
    validate_upsert(spec, {"phone": "x" * 32}, creating=False)
    with pytest.raises(ValidationError, match="at most 32 characters") as info:
        validate_upsert(spec, {"phone": "x" * 33}, creating=False)
    assert info.value.details == {"field": "fields.phone"}


def test_arrays_respect_max_length_and_item_type() -> None:
    spec = parse_schema(
        {
            "collections": {
                "x": {
                    "scopes": ["*"],
                    "fields": {"tags": {"type": "array", "items": "integer", "max_length": 2}},
                }
            }
        }
    ).collections["x"]
    validate_upsert(spec, {"tags": [1, 2]}, creating=False)
    with pytest.raises(ValidationError, match="at most 2 items"):
        validate_upsert(spec, {"tags": [1, 2, 3]}, creating=False)
    assert rejects(spec, {"tags": [1, "2"]}) == "fields.tags[1]"
    assert rejects(spec, {"tags": [True]}) == "fields.tags[0]"


def test_array_items_name_their_index(schema: Schema) -> None:
    spec = schema.collections["symptom_logs"]
    assert rejects(spec, {"symptoms": ["cough", "fever", 3]}) == "fields.symptoms[2]"


# --- nested objects ------------------------------------------------------------------------


def test_object_members_are_checked_with_their_own_rules(schema: Schema) -> None:
    spec = schema.collections["encounters"]
    validate_upsert(
        spec, {**ENCOUNTER, "vitals": {"temperature": 38.2, "pulse": 96}}, creating=True
    )
    assert rejects(spec, {"vitals": {"pulse": 301}}) == "fields.vitals.pulse"
    assert rejects(spec, {"vitals": {"pulse": 72.5}}) == "fields.vitals.pulse"
    assert rejects(spec, {"vitals": {"temperature": 50}}) == "fields.vitals.temperature"
    assert rejects(spec, {"vitals": {"bp": "1" * 17}}) == "fields.vitals.bp"


def test_an_unknown_object_member_is_refused(schema: Schema) -> None:
    with pytest.raises(ValidationError, match="unknown member") as info:
        validate_upsert(schema.collections["encounters"], {"vitals": {"spo2": 97}}, creating=False)
    assert info.value.details == {"field": "fields.vitals.spo2"}


# --- what an upsert may carry --------------------------------------------------------------


def test_an_unknown_field_is_refused_and_the_declared_ones_listed(schema: Schema) -> None:
    with pytest.raises(ValidationError) as info:
        validate_upsert(schema.collections["patients"], {"nickname": "Ami"}, creating=False)
    assert info.value.details == {"field": "fields.nickname"}
    assert "birth_date" in info.value.message


def test_an_upsert_may_not_set_a_counter(schema: Schema) -> None:
    with pytest.raises(ValidationError, match="increment") as info:
        validate_upsert(
            schema.collections["pharmacy_inventory"],
            {"facility_id": "f-1", "medicine_id": "m-1", "quantity": 100},
            creating=True,
        )
    assert info.value.details == {"field": "fields.quantity"}


def test_a_create_needs_every_required_field(schema: Schema) -> None:
    spec = schema.collections["symptom_logs"]
    validate_upsert(spec, SYMPTOM_LOG, creating=True)
    for name in SYMPTOM_LOG:
        partial = {k: v for k, v in SYMPTOM_LOG.items() if k != name}
        with pytest.raises(ValidationError, match="required to create") as info:
            validate_upsert(spec, partial, creating=True)
        assert info.value.details == {"field": f"fields.{name}"}
    # a partial update of an existing record needs none of them
    validate_upsert(spec, {"severity": 4}, creating=False)


def test_a_create_lists_everything_missing(schema: Schema) -> None:
    with pytest.raises(ValidationError) as info:
        validate_upsert(schema.collections["prescriptions"], {"dose": "5 mg"}, creating=True)
    for name in ("patient_id", "facility_id", "medicine_id"):
        assert name in info.value.message


def test_a_required_field_cannot_be_cleared(schema: Schema) -> None:
    spec = schema.collections["patients"]
    assert rejects(spec, {"name": None}) == "fields.name"
    assert rejects(spec, {"name": None, "facility_id": "f-1"}, creating=True) == "fields.name"


def test_a_create_needs_the_fields_its_scopes_are_made_of() -> None:
    """Even when not declared required: a record without its scope fields belongs nowhere."""
    spec = parse_schema(
        {
            "collections": {
                "visits": {
                    "scopes": ["facility:{facility_id}"],
                    "fields": {"facility_id": {"type": "string"}, "note": {"type": "string"}},
                }
            }
        }
    ).collections["visits"]
    assert spec.required == []
    assert rejects(spec, {"note": "hi"}, creating=True) == "fields.facility_id"
    validate_upsert(spec, {"note": "hi", "facility_id": "f-1"}, creating=True)
    validate_upsert(spec, {"note": "hi"}, creating=False)


# --- increments ----------------------------------------------------------------------------


def test_an_increment_carries_integer_deltas_of_counters(schema: Schema) -> None:
    spec = schema.collections["pharmacy_inventory"]
    validate_increment(spec, {"quantity": -5}, {})
    validate_increment(spec, {"quantity": 0}, {})
    with pytest.raises(ValidationError, match="at least one counter") as info:
        validate_increment(spec, {}, {})
    assert info.value.details == {"field": "fields"}
    for fields, path in (
        ({"batch": 3}, "fields.batch"),
        ({"stock": 3}, "fields.stock"),
        ({"quantity": 2.5}, "fields.quantity"),
        ({"quantity": "5"}, "fields.quantity"),
        ({"quantity": True}, "fields.quantity"),
        ({"quantity": None}, "fields.quantity"),
    ):
        with pytest.raises(ValidationError) as info:
            validate_increment(spec, fields, {})
        assert info.value.details == {"field": path}


def test_an_increment_of_a_collection_without_counters_is_refused(schema: Schema) -> None:
    with pytest.raises(ValidationError, match="counters: \\[\\]"):
        validate_increment(schema.collections["patients"], {"name": 1}, {})


def test_hole_3_a_delta_and_a_total_stay_within_bounds(schema: Schema) -> None:
    spec = schema.collections["pharmacy_inventory"]
    validate_increment(spec, {"quantity": 10**9}, {"quantity": 5})
    for delta, current in (
        (10**9 + 1, 0),
        (-(10**9) - 1, 0),
        (2**63, 0),
        (1, 2**53 - 1),
        (-1, -(2**53) + 1),
    ):
        with pytest.raises(ValidationError) as info:
            validate_increment(spec, {"quantity": delta}, {"quantity": current})
        assert info.value.details == {"field": "fields.quantity"}


def test_hole_3_max_delta_is_set_per_counter() -> None:
    spec = parse_schema(
        {
            "collections": {
                "stock": {"scopes": ["*"], "fields": {"n": {"type": "counter", "max_delta": 10}}}
            }
        }
    ).collections["stock"]
    validate_increment(spec, {"n": -10}, {})
    with pytest.raises(ValidationError, match="limit of \\+/-10"):
        validate_increment(spec, {"n": 11}, {})


def test_hole_3_integers_beyond_the_safe_range_are_refused(schema: Schema) -> None:
    spec = schema.collections["encounters"]
    assert rejects(spec, {"vitals": {"pulse": 2**60}}, creating=False) == "fields.vitals.pulse"


def test_hole_3_a_stored_counter_out_of_range_blocks_further_writes(schema: Schema) -> None:
    spec = schema.collections["pharmacy_inventory"]
    check_stored_numbers(spec, {"quantity": 2**53 - 1})
    with pytest.raises(ValidationError, match="administrator must repair"):
        check_stored_numbers(spec, {"quantity": 2**63})


_LIMITED = parse_schema(
    {
        "collections": {
            "notes": {
                "scopes": ["*"],
                "max_record_bytes": 300,
                "fields": {
                    "text": {"type": "string"},
                    "tags": {"type": "array", "items": "string"},
                    "short_tags": {
                        "type": "array",
                        "items": "string",
                        "max_items": 2,
                        "max_item_length": 3,
                    },
                    "legacy": {"type": "array", "items": "integer", "max_length": 2},
                },
            }
        }
    }
).collections["notes"]


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"text": "x" * (DEFAULT_MAX_STRING_LENGTH + 1)}, "fields.text"),
        ({"tags": ["a"] * (DEFAULT_MAX_ITEMS + 1)}, "fields.tags"),
        ({"tags": ["x" * (DEFAULT_MAX_ITEM_LENGTH + 1)]}, "fields.tags[0]"),
        ({"short_tags": ["a", "b", "c"]}, "fields.short_tags"),
        ({"short_tags": ["abcd"]}, "fields.short_tags[0]"),
        ({"legacy": [1, 2, 3]}, "fields.legacy"),
    ],
)
def test_hole_6_limits_apply_with_their_defaults_when_unset(
    fields: dict[str, Any],
    path: str,
) -> None:
    assert rejects(_LIMITED, fields, creating=False) == path


def test_hole_6_the_record_size_counts_the_merged_fields() -> None:
    check_record_size(_LIMITED, {"text": "x" * 280})
    with pytest.raises(ValidationError, match="over the 300 bytes") as info:
        check_record_size(_LIMITED, {"text": "x" * 280, "short_tags": ["abc"]})
    assert info.value.details == {"field": "fields"}


def test_hole_6_array_limits_belong_to_arrays_and_max_items_has_one_name() -> None:
    with pytest.raises(SchemaError, match="only for arrays"):
        parse_schema(
            {
                "collections": {
                    "c": {"scopes": ["*"], "fields": {"s": {"type": "string", "max_items": 3}}}
                }
            }
        )
    with pytest.raises(SchemaError, match="not both"):
        parse_schema(
            {
                "collections": {
                    "c": {
                        "scopes": ["*"],
                        "fields": {"a": {"type": "array", "max_items": 3, "max_length": 3}},
                    }
                }
            }
        )


def test_hole_7_fields_nested_too_deep_are_refused_without_recursion() -> None:
    deep: Any = 1
    for _ in range(100_000):  # far past Python's recursion limit
        deep = {"a": deep}
    with pytest.raises(ValidationError, match="nested deeper") as info:
        check_fields_shape({"notes": deep})
    assert info.value.details["field"].startswith("fields.notes.a")
    check_fields_shape({"vitals": {"pulse": 80}, "symptoms": ["cough"]})
    with pytest.raises(ValidationError) as info:
        check_fields_shape({"symptoms": [1, 2**64]})
    assert info.value.details == {"field": "fields.symptoms[1]"}
