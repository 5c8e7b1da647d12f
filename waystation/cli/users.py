"""``waystation users add|list`` and ``waystation devices list|revoke``: accounts, run
against the database directly (no server needed). Every change is recorded in the audit
trail with actor ``cli`` and the OS user who ran the command (cli/audit.py)."""

from __future__ import annotations

import re

import typer
from rich.table import Table

from waystation.cli.audit import cli_event
from waystation.cli.common import console, fail_usage, schema_from, store_from
from waystation.core.schema import ROLES
from waystation.core.throttle import account_key
from waystation.core.timefmt import rfc3339

_SCOPE = re.compile(r"[a-z][a-z0-9_]*:[^\s:]+")
users_app = typer.Typer(help="Manage users (roles and scope grants).", no_args_is_help=True)
devices_app = typer.Typer(help="List and revoke devices.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(devices_app, name="devices")


@users_app.command("add")
def add(
    name: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option(..., help=f"One of: {', '.join(ROLES)}."),
    scope: list[str] = typer.Option(
        [],
        help="A scope grant such as patient:p-1 or "
        "facility:f-1 (any kind your schema's scope templates "
        "use); repeat for several.",
    ),
    password: str = typer.Option(
        ...,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help="The password (asked when not given).",
    ),
    db: str = typer.Option(..., help="Database URL or SQLite file path."),
    update: bool = typer.Option(False, "--update", help="Change an existing user."),
) -> None:
    """Add a user (creating and migrating the database when needed)."""
    if role not in ROLES:
        fail_usage(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    for grant in scope:
        if not _SCOPE.fullmatch(grant):
            fail_usage(f"scope {grant!r}: use <kind>:<id>, e.g. patient:p-1 or facility:f-1")
    from waystation.core.accounts import User
    from waystation.server.auth import hash_password, verify_password

    store = store_from(db, schema_from(None))
    try:
        existing = store.find_user(username=name)
        if existing is not None and not update:
            fail_usage(f"user {name!r} already exists; pass --update to change it")
        if existing is not None:
            # The same password keeps its hash: a new hash would count as a new password,
            # and end every session, when only a scope was added.
            same = verify_password(existing.password_hash, password)
            ended = store.update_user(
                User(
                    existing.id,
                    name,
                    existing.password_hash if same else hash_password(password),
                    role,
                    tuple(scope),
                )
            )
            store.audit(
                cli_event(
                    "user.update",
                    target=f"user:{existing.id}",
                    username=name,
                    role=role,
                    scopes=list(scope),
                    password_changed=not same,
                    sessions_ended=ended,
                    before={"role": existing.role, "scopes": list(existing.scopes)},
                )
            )
            console.print(
                f"updated user [bold]{name}[/] ({role})"
                + ("; their sessions and devices' tokens ended: they log in again" if ended else "")
            )
        else:
            user = store.add_user(name, hash_password(password), role, scope)
            store.audit(
                cli_event(
                    "user.add",
                    target=f"user:{user.id}",
                    username=name,
                    role=role,
                    scopes=list(scope),
                )
            )
            console.print(
                f"added user [bold]{name}[/] ({role}{'; ' + ', '.join(scope) if scope else ''})"
            )
    finally:
        store.close()


@users_app.command("list")
def list_users(db: str = typer.Option(..., help="Database URL or SQLite file path.")) -> None:
    """List users with their roles and scopes."""
    store = store_from(db, schema_from(None))
    table = Table("username", "role", "scopes", "id", "disabled")
    for user in store.list_users():
        table.add_row(
            user.username,
            user.role,
            ", ".join(user.scopes),
            user.id,
            rfc3339(user.disabled_at) or "",
        )
    store.close()
    console.print(table)


@users_app.command("disable")
def disable(
    name: str = typer.Argument(..., help="Login name."),
    db: str = typer.Option(..., help="Database URL or SQLite file path."),
) -> None:
    """Disable a user: they can no longer log in, and every session of theirs and every
    token of their devices ends at once."""
    _set_disabled(name, db, disabled=True)


@users_app.command("enable")
def enable(
    name: str = typer.Argument(..., help="Login name."),
    db: str = typer.Option(..., help="Database URL or SQLite file path."),
) -> None:
    """Let a disabled user log in again (their devices log in again too)."""
    _set_disabled(name, db, disabled=False)


@users_app.command("unlock")
def unlock(
    name: str = typer.Argument(..., help="Login name, as the person types it."),
    db: str = typer.Option(..., help="Database URL or SQLite file path."),
) -> None:
    """Let a user locked out by failed logins try again now (their password is unchanged;
    if someone else is guessing it, consider `users add --password` too)."""
    store = store_from(db, schema_from(None))
    try:
        store.clear_login_failures(account_key(name))
        store.audit(cli_event("user.unlock", target=f"account:{name}", username=name))
        console.print(f"unlocked {name}: failed logins forgotten")
    finally:
        store.close()


def _set_disabled(name: str, db: str, *, disabled: bool) -> None:
    store = store_from(db, schema_from(None))
    try:
        user = store.find_user(username=name)
        if user is None:
            fail_usage(f"no user {name!r}")
        store.set_user_disabled(user.id, disabled)
        store.audit(
            cli_event(
                "user.update",
                target=f"user:{user.id}",
                username=name,
                disabled=disabled,
                sessions_ended=disabled,
            )
        )
        console.print(
            f"disabled {name}: their sessions and devices' tokens ended"
            if disabled
            else f"enabled {name}"
        )
    finally:
        store.close()


@devices_app.command("list")
def list_devices(db: str = typer.Option(..., help="Database URL or SQLite file path.")) -> None:
    """List registered devices, their owners and their last contact."""
    store = store_from(db, schema_from(None))
    names = {u.id: u.username for u in store.list_users()}
    table = Table("device", "user", "name", "last push", "last pull", "revoked")
    for dev in store.list_devices():
        table.add_row(
            dev.id,
            names.get(dev.user_id, dev.user_id),
            dev.name,
            rfc3339(dev.last_push_at) or "-",
            rfc3339(dev.last_pull_at) or "-",
            "yes (wipe)" if dev.revoked_at and dev.wipe else "yes" if dev.revoked_at else "",
        )
    store.close()
    console.print(table)


@devices_app.command("revoke")
def revoke(
    device_id: str = typer.Argument(..., help="The device id (see `devices list`)."),
    wipe: bool = typer.Option(False, "--wipe", help="Ask the device to wipe its replica."),
    db: str = typer.Option(..., help="Database URL or SQLite file path."),
) -> None:
    """Revoke a lost or stolen device: its token stops working at once."""
    store = store_from(db, schema_from(None))
    try:
        device = store.find_device(device_id)
        if device is None or not store.revoke_device(device_id, wipe=wipe):
            fail_usage(f"no device {device_id!r}")
        store.audit(
            cli_event(
                "device.revoke", target=f"device:{device_id}", wipe=wipe, owner=device.user_id
            )
        )
        console.print(f"revoked {device_id}{' (wipe requested)' if wipe else ''}")
    finally:
        store.close()
