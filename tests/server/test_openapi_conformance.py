"""The server answers as its OpenAPI document says (hole 11).

schemathesis generates requests from the document, for every operation, with bodies, in
positive and negative modes (its examples, coverage and fuzzing phases), sends them to a
real ``waystation serve`` process, and checks each answer: never a 5xx, a documented
status, a documented content type, a body that fits the documented schema. The document
fuzzed is built in-process from the routes (schemathesis's pytest integration needs it at
collection time) and is checked to be the one the server serves.

Each engine gets its own seeded run (a CI failure reproduces; the seeds differ, so the two
runs are different cases), and the module counts them: at least ``MIN_CASES`` in all, over
every operation on both engines. Requests come from an admin (a device token, and a user
token where only that works), so the 200 paths are reached, not only the 401s; a push's
``device_id`` is the caller's device, and some conflict and record ids are ones that exist.
Run the whole module: its last test checks the count.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import BACKENDS, FIGURE
from tests.pg import database_url
from tests.support import LiveServer, SyncApi
from waystation.core.ids import uuid7
from waystation.core.schema import health_schema
from waystation.server.app import api_routes
from waystation.server.openapi import build_openapi

SEEDS = {"sqlite": 20251130, "postgresql": 20251201}
MAX_EXAMPLES = 120  # per operation and mode; the coverage phase adds its own cases
MIN_CASES = 5000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
LONG_POLL_S = 0.05  # instead of the default 25 s a long poll with nothing new would hold

DOCUMENT = build_openapi(health_schema(), api_routes())


def _schema(seed: int) -> Any:
    config = schemathesis.Config.from_dict(
        {
            "seed": seed,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
        }
    )
    return schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=config)


SCHEMAS = {engine: _schema(SEEDS[engine]) for engine in BACKENDS}


@dataclass
class Caller:
    """Who the generated requests come from, the ids worth hitting, and what the run did."""

    server: LiveServer
    device: SyncApi
    user_token: str
    conflict_id: str
    record: tuple[str, str]
    session: requests.Session = field(default_factory=requests.Session)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)  # operation -> failing cases
    started: float = field(default_factory=time.monotonic)
    finished: float = 0.0

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())


def _caller(server: LiveServer) -> Caller:
    """An admin with a device, over a facility with a record held in an open conflict."""
    facility = f"f-{uuid7()[-12:]}"
    made: list[SyncApi] = []

    def device(role: str, *scopes: str) -> SyncApi:
        name = f"{role}-{uuid7()[-12:]}"
        server.add_user(name, role, scopes)
        made.append(SyncApi(server.url, name))
        return made[-1]

    a = device("health_worker", f"facility:{facility}")
    b = device("health_worker", f"facility:{facility}")
    rx = uuid7()
    created = {
        "patient_id": "p-1",
        "facility_id": facility,
        "medicine_id": "m-amox",
        "dose": "250 mg",
    }
    assert a.push([a.change("prescriptions", rx, created)])[0]["status"] == "applied"
    assert (
        b.push([b.change("prescriptions", rx, {"dose": "1 g"}, base_version=1)])[0]["status"]
        == "applied"
    )
    held = a.push([a.change("prescriptions", rx, {"dose": "500 mg"}, base_version=1)])[0]
    assert held["status"] == "conflict", held
    admin = device("admin")
    login = httpx.post(
        f"{server.url}/v1/auth/token", json={"username": admin.user["username"], "password": "pw"}
    )
    assert login.status_code == 200, login.text
    for api in (a, b):
        api.close()
    return Caller(
        server, admin, login.json()["access_token"], held["conflict_id"], ("prescriptions", rx)
    )


class Engines:
    """A server and its caller per engine, started when the run first reaches it."""

    def __init__(self, request: pytest.FixtureRequest, workdir: Path) -> None:
        self.request = request
        self.workdir = workdir
        self.callers: dict[str, Caller] = {}

    def caller(self, engine: str) -> Caller:
        if engine not in self.callers:
            cluster = self.request.getfixturevalue("postgres") if engine == "postgresql" else None
            workdir = self.workdir / engine
            workdir.mkdir()
            server = LiveServer(workdir, db_url=database_url(engine, workdir, cluster))
            server.start()
            self.callers[engine] = _caller(server)
        return self.callers[engine]

    def close(self) -> None:
        for caller in self.callers.values():
            caller.session.close()
            caller.device.close()
            caller.server.stop()


@pytest.fixture(scope="module")
def engines(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engines]:
    made = Engines(request, tmp_path_factory.mktemp("conformance"))
    yield made
    made.close()


def _aim(case: Any, caller: Caller) -> str:
    """Point some generated requests at things that exist, so that deeper answers are
    reached, and keep long polls short; returns the token to send."""
    path = case.operation.path
    if path == "/v1/devices":
        return caller.user_token  # a device token may not register devices
    if (
        path == "/v1/sync/push"
        and isinstance(case.body, dict)
        and isinstance(case.body.get("device_id"), str)
    ):
        case.body["device_id"] = caller.device.device_id
    elif path.startswith("/v1/conflicts/{conflict_id}") and _even(case, "conflict_id"):
        case.path_parameters["conflict_id"] = caller.conflict_id
    elif path == "/v1/records/{collection}/{record_id}" and _even(case, "record_id"):
        case.path_parameters.update(zip(("collection", "record_id"), caller.record, strict=True))
    elif path == "/v1/sync/events":
        query = case.query if isinstance(case.query, dict) else {}
        wait = query.get("wait")
        if wait is None or (isinstance(wait, int | float) and wait > LONG_POLL_S):
            query["wait"] = LONG_POLL_S
        case.query = query
    return caller.device.token


def _even(case: Any, name: str) -> bool:
    """About half of the generated values, chosen by the (seeded) value itself."""
    return len(str((case.path_parameters or {}).get(name, ""))) % 2 == 0


def _conformance_test(engine: str, operation_id: str) -> Any:
    """The test of one operation on one engine. One test function each: pytest 9.2 gives
    every case of one schemathesis-parametrized function the same node id, and xdist then
    runs only the first of them."""

    @SCHEMAS[engine].include(operation_id=operation_id).parametrize()  # type: ignore[untyped-decorator]
    def test(case: Any, engines: Engines) -> None:
        caller = engines.caller(engine)
        token = _aim(case, caller)
        headers = {"Authorization": f"Bearer {token}"}
        response = case.call(
            base_url=caller.server.url, session=caller.session, timeout=30, headers=headers
        )
        caller.statuses[(case.operation.label, response.status_code)] += 1
        caller.finished = time.monotonic()
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception:
            caller.failed[case.operation.label] += 1
            raise

    return test


OPERATION_IDS = [
    operation["operationId"]
    for methods in DOCUMENT["paths"].values()
    for operation in methods.values()
]
for _engine in BACKENDS:
    for _operation_id in OPERATION_IDS:
        globals()[
            f"test_hole_11_every_answer_is_the_documented_one__{_engine}__{_operation_id}"
        ] = _conformance_test(_engine, _operation_id)


@pytest.mark.parametrize("engine", BACKENDS)
def test_hole_11_the_served_document_is_the_one_tested(engines: Engines, engine: str) -> None:
    served = httpx.get(f"{engines.caller(engine).server.url}/openapi.json")
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def test_hole_11_the_run_made_at_least_5000_cases_over_every_operation(
    engines: Engines, record_property: Any
) -> None:
    """Last in the module: what the conformance test above did on each engine, shown at
    the end of the run (tests/conftest.py, "figures")."""
    operations = {
        f"{method.upper()} {path}"
        for path, methods in DOCUMENT["paths"].items()
        for method in methods
    }
    for engine in BACKENDS:
        caller = engines.callers.get(engine)
        assert caller is not None, f"the conformance test did not run on {engine}"
        statuses = Counter(status for _, status in caller.statuses.elements())
        record_property(
            FIGURE,
            f"OpenAPI conformance, {engine}: {caller.cases} cases over "
            f"{len(operations)} operations in "
            f"{caller.finished - caller.started:.0f} s; statuses "
            f"{dict(sorted(statuses.items()))}",
        )
        assert {label for label, _ in caller.statuses} == operations
    total = sum(caller.cases for caller in engines.callers.values())
    failed = sum((caller.failed for caller in engines.callers.values()), Counter[str]())
    record_property(
        FIGURE,
        f"OpenAPI conformance: {total} cases in all (at least "
        f"{MIN_CASES}); failing cases (5xx, undocumented status, "
        f"schema or content type): {failed.total()} {dict(failed)}",
    )
    assert total >= MIN_CASES
    assert not failed  # each failure is reported by its operation's test above
