"""The schema is data: the shipped health schema loads, and a wrong file says what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from waystation.core.schema import (
    CollectionSpec,
    Schema,
    SchemaError,
    health_schema,
    load_schema,
    parse_schema,
)

HEALTH_TOML = Path(__file__).resolve().parents[2] / "waystation" / "schemas" / "health.toml"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return health_schema()


def collection(**body: Any) -> dict[str, Any]:
    """A one-collection schema document ``x`` with sensible defaults overridden by ``body``."""
    base: dict[str, Any] = {
        "scopes": ["facility:{facility_id}"],
        "fields": {"facility_id": {"type": "string"}, "name": {"type": "string"}},
    }
    return {"collections": {"x": {**base, **body}}}


# --- the health schema ---------------------------------------------------------------------


def test_the_health_schema_declares_the_demo_collections(schema: Schema) -> None:
    assert set(schema.collections) == {
        "patients",
        "encounters",
        "symptom_logs",
        "alerts",
        "notification_preferences",
        "appointments",
        "prescriptions",
        "medicines",
        "pharmacy_inventory",
    }
    assert all(name == spec.name for name, spec in schema.collections.items())
    assert schema.get("nope") is None


def test_the_packaged_schema_and_the_file_on_disk_agree(schema: Schema) -> None:
    assert load_schema(HEALTH_TOML) == schema
    assert load_schema(str(HEALTH_TOML)) == schema


@pytest.mark.parametrize(
    ("name", "policy", "required", "writers", "priority"),
    [
        ("patients", "lww", ["name", "facility_id"], ["health_worker", "admin"], 0),
        ("encounters", "lww", ["patient_id", "facility_id"], ["health_worker", "admin"], 1),
        (
            "symptom_logs",
            "lww",
            ["patient_id", "facility_id", "date"],
            ["patient", "health_worker", "admin"],
            0,
        ),
        ("alerts", "lww", ["patient_id", "facility_id", "title"], ["health_worker", "admin"], 0),
        ("notification_preferences", "lww", ["patient_id"], ["patient", "admin"], 0),
        (
            "appointments",
            "lww",
            ["patient_id", "facility_id", "scheduled_at"],
            ["patient", "health_worker", "admin"],
            0,
        ),
        (
            "prescriptions",
            "manual",
            ["patient_id", "facility_id", "medicine_id", "dose"],
            ["health_worker", "admin"],
            1,
        ),
        ("medicines", "server_wins", ["name"], ["admin"], 0),
        (
            "pharmacy_inventory",
            "lww",
            ["facility_id", "medicine_id"],
            ["pharmacist", "health_worker", "admin"],
            0,
        ),
    ],
)
def test_each_collection_has_the_designed_policy_and_rules(
    schema: Schema,
    name: str,
    policy: str,
    required: list[str],
    writers: list[str],
    priority: int,
) -> None:
    spec = schema.collections[name]
    assert spec.policy == policy
    assert spec.required == required
    assert spec.writers == writers
    assert spec.priority == priority


def test_special_fields_of_the_health_schema(schema: Schema) -> None:
    assert schema.collections["pharmacy_inventory"].counters == {"quantity"}
    assert schema.collections["alerts"].monotonic == {"read"}
    assert schema.collections["alerts"].field_writers == {"patient": ["read"]}
    assert schema.collections["symptom_logs"].unique == [["patient_id", "date"]]
    vitals = schema.collections["encounters"].fields["vitals"]
    assert vitals.type == "object"
    assert vitals.fields is not None
    assert set(vitals.fields) == {"temperature", "pulse", "bp"}
    assert schema.collections["symptom_logs"].fields["symptoms"].items == "string"
    assert schema.collections["medicines"].is_public
    assert not schema.collections["patients"].is_public
    assert all(not c.counters for n, c in schema.collections.items() if n != "pharmacy_inventory")


def test_describe_tells_clients_policy_priority_and_counters(schema: Schema) -> None:
    described = {c["name"]: c for c in schema.describe()}
    assert described["pharmacy_inventory"] == {
        "name": "pharmacy_inventory",
        "policy": "lww",
        "priority": 0,
        "counters": ["quantity"],
    }
    assert described["prescriptions"]["policy"] == "manual"
    assert described["prescriptions"]["priority"] == 1


# --- scopes and unique keys ----------------------------------------------------------------


def test_scopes_of_fills_templates_from_the_record(schema: Schema) -> None:
    encounters = schema.collections["encounters"]
    assert encounters.scopes_of("e-1", {"patient_id": "p-1", "facility_id": "f-1"}) == {
        "patient:p-1",
        "facility:f-1",
    }
    patients = schema.collections["patients"]
    assert patients.scopes_of("p-9", {"facility_id": "f-2", "name": "Amina"}) == {
        "patient:p-9",
        "facility:f-2",
    }
    assert schema.collections["medicines"].scopes_of("m-1", {"name": "ORS"}) == {"*"}


@pytest.mark.parametrize("missing", [None, ""])
def test_scopes_of_leaves_out_a_template_whose_field_is_missing(
    schema: Schema, missing: str | None
) -> None:
    spec = schema.collections["encounters"]
    assert spec.scopes_of("e-1", {"patient_id": "p-1", "facility_id": missing}) == {"patient:p-1"}
    assert spec.scopes_of("e-1", {}) == frozenset()


def test_scope_fields_are_what_the_templates_read(schema: Schema) -> None:
    assert schema.collections["patients"].scope_fields == {"facility_id"}
    assert schema.collections["encounters"].scope_fields == {"patient_id", "facility_id"}
    assert schema.collections["medicines"].scope_fields == frozenset()


def test_unique_keys_of_one_symptom_log_per_patient_per_day(schema: Schema) -> None:
    spec = schema.collections["symptom_logs"]
    day = {"patient_id": "p-1", "date": "2025-11-30", "severity": 3}
    keys = spec.unique_keys_of(day)
    assert list(keys) == ["patient_id,date"]
    assert keys == spec.unique_keys_of({**day, "severity": 9})
    assert keys != spec.unique_keys_of({**day, "date": "2025-12-01"})
    assert keys != spec.unique_keys_of({**day, "patient_id": "p-2"})
    # the separator keeps ("a", "b,c") apart from ("a,b", "c")
    assert spec.unique_keys_of({"patient_id": "a,b", "date": "c"}) != spec.unique_keys_of(
        {"patient_id": "a", "date": "b,c"}
    )


def test_unique_keys_of_skips_a_key_with_an_unset_field(schema: Schema) -> None:
    spec = schema.collections["symptom_logs"]
    assert spec.unique_keys_of({"patient_id": "p-1"}) == {}
    assert spec.unique_keys_of({"patient_id": "p-1", "date": None}) == {}
    assert schema.collections["patients"].unique_keys_of({"name": "x"}) == {}


# --- an integrator's own schema ------------------------------------------------------------


def test_a_minimal_collection_gets_the_documented_defaults() -> None:
    spec = parse_schema(collection()).collections["x"]
    assert isinstance(spec, CollectionSpec)
    assert spec.policy == "lww"
    assert spec.writers == ["admin"]
    assert spec.required == []
    assert spec.priority == 0


def test_a_schema_file_is_read_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "clinic.toml"
    path.write_text(
        '[collections.visits]\nscopes = ["facility:{facility_id}"]\nwriters = ["health_worker"]\n'
        "[collections.visits.fields]\n"
        'facility_id = { type = "string" }\n'
        'weight = { type = "number", min = 0 }\n',
        encoding="utf-8",
    )
    spec = load_schema(path).collections["visits"]
    assert spec.fields["weight"].min == 0
    assert spec.writers == ["health_worker"]


def test_a_missing_file_is_a_schema_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(SchemaError, match=r"nope\.toml"):
        load_schema(path)


def test_a_file_that_is_not_toml_is_a_schema_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[collections.x\nscopes = ", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"broken\.toml"):
        load_schema(path)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({}, ["collections"]),
        ({"collections": {}}, ["collections"]),
        ({"collections": [{"scopes": ["*"]}]}, ["collections"]),
        ({"collections": {"Bad-Name": collection()["collections"]["x"]}}, ["Bad-Name"]),
        (collection(colour="blue"), ["'x'", "colour"]),
        (collection(policy="first_wins"), ["'x'", "policy"]),
        (collection(writers=["nurse"]), ["'x'", "writers"]),
        (collection(field_writers={"nurse": ["name"]}), ["'x'", "field_writers", "nurse"]),
        (collection(field_writers={"patient": ["age"]}), ["'x'", "age"]),
        (collection(required=["age"]), ["'x'", "age"]),
        (collection(unique=[["name", "age"]]), ["'x'", "age"]),
        (collection(scopes=[]), ["'x'", "scope"]),
        (collection(scopes=["ward:{ward_id}"]), ["'x'", "ward_id"]),
        (collection(fields={"facility_id": {"type": "text"}}), ["'x'", "fields.facility_id"]),
        (
            collection(fields={"facility_id": {"type": "string"}, "Name": {"type": "string"}}),
            ["'x'", "Name"],
        ),
        (
            collection(fields={"facility_id": {"type": "string"}, "id": {"type": "string"}}),
            ["'x'", "'id'"],
        ),
        (
            collection(fields={"facility_id": {"type": "string", "maxlen": 3}}),
            ["'x'", "maxlen"],
        ),
        (
            collection(fields={"facility_id": {"type": "string", "monotonic": True}}),
            ["'x'", "monotonic"],
        ),
        (
            collection(fields={"facility_id": {"type": "string", "items": "string"}}),
            ["'x'", "items"],
        ),
        (
            collection(fields={"facility_id": {"type": "array", "items": "object"}}),
            ["'x'", "scalar"],
        ),
        (
            collection(
                fields={"facility_id": {"type": "string", "fields": {"a": {"type": "string"}}}}
            ),
            ["'x'", "objects"],
        ),
        (
            collection(
                fields={
                    "facility_id": {"type": "string"},
                    "vitals": {"type": "object", "fields": {"pulse": {"type": "int"}}},
                }
            ),
            ["'x'", "vitals", "pulse"],
        ),
        (
            collection(
                fields={"facility_id": {"type": "string"}, "stock": {"type": "counter"}},
                required=["stock"],
            ),
            ["'x'", "counter", "stock"],
        ),
        (
            collection(fields={"facility_id": {"type": "string"}, "v": {"type": "object"}}),
            ["'x'", "fields.v", "members"],
        ),
        (
            collection(
                fields={"facility_id": {"type": "string"}, "ok": {"type": "boolean", "enum": [1]}}
            ),
            ["'x'", "fields.ok", "enum"],
        ),
        (
            collection(
                fields={
                    "facility_id": {"type": "string"},
                    "tags": {"type": "array", "items": "string", "enum": ["a"]},
                }
            ),
            ["'x'", "fields.tags", "enum"],
        ),
        (
            collection(
                fields={"facility_id": {"type": "string"}, "stock": {"type": "counter", "min": 0}}
            ),
            ["'x'", "fields.stock", "min/max"],
        ),
        (
            collection(
                fields={
                    "facility_id": {"type": "string"},
                    "box": {"type": "object", "fields": {"n": {"type": "counter"}}},
                }
            ),
            ["'x'", "fields.box", "'n'", "top-level"],
        ),
        (
            collection(
                fields={
                    "facility_id": {"type": "string"},
                    "box": {
                        "type": "object",
                        "fields": {"seen": {"type": "boolean", "monotonic": True}},
                    },
                }
            ),
            ["'x'", "fields.box", "'seen'", "top-level"],
        ),
    ],
)
def test_a_wrong_schema_is_a_schema_error_saying_where(
    document: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(SchemaError) as info:
        parse_schema(document)
    for word in words:
        assert word in str(info.value)


def test_a_schema_error_reads_as_a_sentence() -> None:
    with pytest.raises(SchemaError) as info:
        parse_schema(collection(required=["age"]))
    assert str(info.value) == "collection 'x': required field 'age' is not declared"


def test_a_wrong_schema_file_is_a_schema_error(tmp_path: Path) -> None:
    path = tmp_path / "clinic.toml"
    path.write_text(
        '[collections.visits]\nscopes = ["facility:{facility_id}"]\nrequired = ["weight"]\n'
        '[collections.visits.fields]\nfacility_id = { type = "string" }\n',
        encoding="utf-8",
    )
    with pytest.raises(SchemaError, match=r"visits.*weight"):
        load_schema(path)


def test_a_collection_that_is_not_a_table_is_a_schema_error() -> None:
    """``patients = "oops"`` under [collections] must be reported, not crash with TypeError."""
    with pytest.raises(SchemaError, match="patients"):
        parse_schema({"collections": {"patients": "oops"}})


def test_a_collection_keeps_the_name_of_its_table() -> None:
    """A stray ``name`` key must not rename the collection (or be silently obeyed)."""
    document = collection(name="something_else")
    try:
        spec = parse_schema(document).collections["x"]
    except SchemaError:
        return
    assert spec.name == "x"
