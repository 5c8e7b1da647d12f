"""Who may see and write what: roles, scope grants, per-collection writers.

"Meet" means overlap: a health worker holding ``facility:f-1`` sees every record with that
scope. A new record must land in a scope the caller holds; an update must touch a record in
the caller's scopes and may not add a scope the caller does not hold, so no write can move
a record somewhere the caller cannot see (a patient cannot re-file their log under another
facility; a health worker cannot hand a record to another patient). Admins see and write
everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from waystation.core.errors import Forbidden
from waystation.core.schema import PUBLIC_SCOPE, CollectionSpec


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


def ends_sessions(old_role: str, old_scopes: Iterable[str], new_role: str,
                  new_scopes: Iterable[str], *, password_changed: bool) -> bool:
    """Whether changing a user this way must end their sessions and their devices' tokens:
    a new password (the old one may have leaked), another role, or a scope taken away (a
    device must not keep syncing what its user may no longer see). Adding scopes does not:
    grants are read on every request."""
    return password_changed or old_role != new_role or not set(old_scopes) <= set(new_scopes)
