"""Who may review a held conflict, and which sides of it they see (core/access.py)."""

from __future__ import annotations

import pytest

from waystation.core.access import (
    EVERYTHING,
    Principal,
    Sight,
    check_decision,
    conflict_sight,
    require_reviewer,
)
from waystation.core.errors import Forbidden, ValidationError
from waystation.core.resolution import ResolveRequest
from waystation.core.schema import health_schema

PATIENTS = health_schema().get("patients")
ADMIN = Principal("u-a", "admin", "admin", frozenset())
NURSE_F1 = Principal("u-n", "nurse", "health_worker", frozenset({"facility:f-1"}))


@pytest.mark.parametrize("role", ["patient", "pharmacist"])
def test_roles_that_review_no_conflict_are_refused(role: str) -> None:
    with pytest.raises(Forbidden, match="does not review conflicts"):
        require_reviewer(Principal("u-x", "x", role, frozenset({"facility:f-1"})))


@pytest.mark.parametrize("principal", [ADMIN, NURSE_F1])
def test_admins_and_health_workers_review(principal: Principal) -> None:
    require_reviewer(principal)


def test_a_health_worker_sees_only_the_sides_in_their_scopes() -> None:
    assert PATIENTS is not None
    own, other = {"facility_id": "f-1"}, {"facility_id": "f-2"}
    assert conflict_sight(NURSE_F1, PATIENTS, "p-1", own, "p-2", other) == Sight(True, False)
    assert conflict_sight(NURSE_F1, PATIENTS, "p-1", other, "p-2", own) == Sight(False, True)
    assert conflict_sight(NURSE_F1, PATIENTS, "p-1", other, None, None) is None
    assert conflict_sight(ADMIN, PATIENTS, "p-1", other, "p-2", other) == EVERYTHING


def test_a_decision_needing_a_hidden_side_is_refused() -> None:
    merge_existing = ResolveRequest(resolution="merge", target="existing", fields={})
    with pytest.raises(ValidationError):
        check_decision(merge_existing, Sight(record=True, existing=False))
    with pytest.raises(Forbidden, match="outside your scopes"):
        check_decision(ResolveRequest(resolution="client_wins"), Sight(False, True))
    check_decision(ResolveRequest(resolution="server_wins"), Sight(False, True))
