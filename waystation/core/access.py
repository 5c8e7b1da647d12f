"""Who may see and write what: roles, scope grants, per-collection writers.

"Meet" means overlap: a health worker holding ``facility:f-1`` sees every record with that
scope. A new record must land in a scope the caller holds; an update must touch a record in
the caller's scopes and may not add a scope the caller does not hold, so no write can move
a record somewhere the caller cannot see (a patient cannot re-file their log under another
facility; a health worker cannot hand a record to another patient). Admins see and write
everything.

Conflicts held for review are reviewed by admins and by health workers holding a scope of
the record (docs/protocol.md, "Who sees and writes what"); patients and pharmacists review none.
A reviewer sees each side of a conflict only when its record meets their grants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from waystation.core.errors import Forbidden, ValidationError
from waystation.core.resolution import EXISTING_GONE, ResolveRequest
from waystation.core.schema import PUBLIC_SCOPE, CollectionSpec

REVIEWER_ROLES = frozenset({"admin", "health_worker"})


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    user_id: str
    username: str
    role: str
    scopes: frozenset[str]
    device_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def readable_scopes(self) -> frozenset[str]:
        """The scopes a pull filters on (public collections included)."""
        return self.scopes | {PUBLIC_SCOPE}

    def can_see(self, record_scopes: Iterable[str]) -> bool:
        return self.is_admin or not self.readable_scopes().isdisjoint(record_scopes)


def check_role(
    principal: Principal,
    spec: CollectionSpec,
    field_names: Iterable[str],
    *,
    creating: bool,
    deleting: bool = False,
) -> None:
    """Raise Forbidden unless the caller's role may make this kind of write at all.

    Checked before the op's content, so a role that may not write a collection is told so
    rather than being corrected on its fields.
    """
    if principal.is_admin or principal.role in spec.writers:
        return
    role = principal.role
    allowed = spec.field_writers.get(role)  # type: ignore[call-overload]
    if allowed is None:
        raise Forbidden(
            f"role {role!r} may not write {spec.name}; writers: {', '.join(spec.writers)}"
        )
    if creating:
        raise Forbidden(f"role {role!r} may not create {spec.name} records")
    if deleting:
        raise Forbidden(f"role {role!r} may not delete {spec.name} records")
    extra = sorted(set(field_names) - set(allowed))
    if extra:
        raise Forbidden(
            f"role {role!r} may only write {', '.join(allowed)} of {spec.name}",
            {"field": f"fields.{extra[0]}"},
        )


def check_scopes(
    principal: Principal,
    spec: CollectionSpec,
    scopes_before: frozenset[str] | None,
    scopes_after: frozenset[str],
) -> None:
    """Raise Forbidden unless the write meets the caller's grants as the record is and as it
    would become; ``scopes_before`` is None for a record that does not exist yet."""
    if principal.is_admin or spec.is_public:
        return  # a reference collection: the role decides alone
    grants = principal.scopes
    if scopes_before is None:
        # A new record must land in at least one scope the caller holds (a health worker
        # of f-1 creates a patient's encounter in patient:p-1 and facility:f-1).
        if grants.isdisjoint(scopes_after):
            raise Forbidden(
                f"the record would be outside your scopes ({', '.join(sorted(scopes_after))})",
                {"scopes": sorted(scopes_after)},
            )
        return
    if grants.isdisjoint(scopes_before):
        raise Forbidden(f"this {spec.name} record is outside your scopes")
    # An update may not move the record into a scope the caller does not hold.
    foreign = sorted(scopes_after - scopes_before - grants)
    if foreign:
        raise Forbidden(
            f"this change would move the record into {', '.join(foreign)}, which you do not "
            "hold; ask an administrator to move it",
            {"scopes": foreign},
        )


def ends_sessions(
    old_role: str,
    old_scopes: Iterable[str],
    new_role: str,
    new_scopes: Iterable[str],
    *,
    password_changed: bool,
) -> bool:
    """Whether changing a user this way must end their sessions and their devices' tokens:
    a new password (the old one may have leaked), another role, or a scope taken away (a
    device must not keep syncing what its user may no longer see). Adding scopes does not:
    grants are read on every request."""
    return password_changed or old_role != new_role or not set(old_scopes) <= set(new_scopes)


# -- conflicts held for review ------------------------------------------------------------


def require_reviewer(principal: Principal) -> None:
    """Raise Forbidden for roles that never review conflicts."""
    if principal.role not in REVIEWER_ROLES:
        raise Forbidden(
            f"role {principal.role!r} does not review conflicts; admins and health workers "
            "of the record's scopes do"
        )


@dataclass(frozen=True, slots=True)
class Sight:
    """Which sides of a conflict a reviewer may see: the held op's record (``record``: its
    id and ``client_fields``) and, for a UNIQUE_VIOLATION, the record already holding the
    key (``existing``: its id and ``server_fields``). A side outside the reviewer's scopes
    is shown as ``null`` and named in ``hidden``, so a conflict never carries a record the
    caller may not read (docs/security.md, hole 1)."""

    record: bool
    existing: bool

    @property
    def any(self) -> bool:
        return self.record or self.existing


EVERYTHING = Sight(record=True, existing=True)


def conflict_sight(
    principal: Principal,
    spec: CollectionSpec,
    record_id: str,
    record_fields: Mapping[str, Any],
    existing_id: str | None,
    existing_fields: Mapping[str, Any] | None,
) -> Sight | None:
    """What a reviewer may see of one conflict; None when neither side (the conflict is
    then reported as missing: its existence is itself information about a patient).

    ``record_fields``: the held op's record as the server has it, or as the op would
    create it; ``existing_fields``: the record holding the key of a UNIQUE_VIOLATION as
    the server has it (None: there is none, or it is gone)."""
    if principal.is_admin:
        return EVERYTHING
    record = principal.can_see(spec.scopes_of(record_id, record_fields))
    existing = (
        existing_id is not None
        and existing_fields is not None
        and principal.can_see(spec.scopes_of(existing_id, existing_fields))
    )
    sight = Sight(record, existing)
    return sight if sight.any else None


def check_decision(request: ResolveRequest, sight: Sight) -> None:
    """Refuse a decision that needs a side the reviewer may not see: raises
    ValidationError for a merge into a hidden existing record (the answer a deleted one
    gets, never its id) and Forbidden for any decision but ``server_wins`` on a hidden held
    record."""
    if request.target == "existing" and not sight.existing:
        raise ValidationError(EXISTING_GONE, {"field": "target"})
    if request.resolution != "server_wins" and not sight.record:
        raise needs_other_reviewer()


def needs_other_reviewer() -> Forbidden:
    """The refusal of a decision that would write the held op's hidden record."""
    return Forbidden(
        "this decision needs the held op's record, which is outside your scopes; discard "
        "the op (server_wins) or leave it to a reviewer of that record's scopes"
    )
