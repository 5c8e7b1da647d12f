"""``waystation audit list | verify | head``: read and check the audit trail, against the
database directly (no server needed). docs/operations.md, "The audit trail", is the guide.

Exit codes: 0 success (``verify``: the chain is intact); 1 ``verify`` found the chain
broken (the first bad entry is named); 2 usage or configuration error.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.table import Table

from waystation.cli.common import console, err_console, fail_usage, schema_from, store_from
from waystation.core.audit import AuditEvent

if TYPE_CHECKING:
    from waystation.store import SqlStore

audit_app = typer.Typer(help="Read and verify the audit trail.", no_args_is_help=True)

CLI_ACTOR = "cli"  # the actor of the admin commands run against the database


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


def cli_event(action: str, *, target: str, **details: Any) -> AuditEvent:
    """An admin action taken by the command line: actor ``cli``, with the OS user who ran
    it (``details.os_user``); no client address."""
    return AuditEvent(
        action,
        actor_user_id=CLI_ACTOR,
        target=target,
        details={"os_user": getpass.getuser(), **details},
    )


def _db_option() -> Any:
    return typer.Option(..., help="Database URL or SQLite file path.")


@audit_app.command("list")
def list_(
    db: str = _db_option(),
    user: str | None = typer.Option(
        None, "--user", help="Only this actor: a username, or cli for the admin commands."
    ),
    device: str | None = typer.Option(None, "--device", help="Only this device id."),
    scope: str | None = typer.Option(
        None, "--scope", help="Only entries concerning records of this scope, e.g. patient:p-1."
    ),
    action: str | None = typer.Option(None, "--action", help="Only this action, e.g. sync.pull."),
    since: str | None = typer.Option(
        None, "--since", help="From this time (RFC 3339, e.g. 2025-11-30T00:00:00Z)."
    ),
    until: str | None = typer.Option(None, "--until", help="Before this time (RFC 3339)."),
    after: int = typer.Option(0, "--after", min=0, help="Entries after this id (paging)."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="At most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts)."),
) -> None:
    """List audit entries, oldest first (page on with --after the last id shown)."""
    from waystation.core.errors import ValidationError
    from waystation.server.routes.stats import parse_since
    from waystation.store.audit import AuditFilter

    try:
        since_ms, until_ms = parse_since(since), parse_since(until, "until")
    except ValidationError as exc:
        fail_usage(exc.message)
    store = store_from(db, schema_from(None))
    try:
        names = {u.id: u.username for u in store.list_users()}
        user_id = _user_id(store, user)
        page = store.list_audit(
            AuditFilter(user_id, device, scope, action, since_ms, until_ms),
            after=after,
            limit=limit,
        )
    finally:
        store.close()
    if as_json:
        console.print_json(
            orjson.dumps({"entries": page.entries, "has_more": page.has_more}).decode()
        )
        return
    table = Table(show_lines=True)
    table.add_column("id", no_wrap=True)
    table.add_column("at (UTC)", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("who", overflow="fold")  # folded, never cut: an audit shows every value
    table.add_column("outcome", no_wrap=True)
    table.add_column("what", overflow="fold", ratio=1)
    for e in page.entries:
        actor = names.get(e["user_id"], e["user_id"])
        who = [
            actor or "-",
            *([f"device {e['device_id']}"] if e["device_id"] else []),
            *([f"from {e['client_address']}"] if e["client_address"] else []),
        ]
        what = [
            *([e["target"]] if e["target"] else []),
            *(["scopes " + " ".join(e["scopes"])] if e["scopes"] else []),
            *([orjson.dumps(e["details"]).decode()] if e["details"] else []),
        ]
        table.add_row(
            e["id"],
            e["at"].replace("T", " ")[:19],
            e["action"],
            "\n".join(who),
            e["outcome"],
            "\n".join(what),
        )
    console.print(table)
    if page.has_more:
        console.print(f"more entries follow: --after {page.entries[-1]['id']}")


def _user_id(store: SqlStore, user: str | None) -> str | None:
    if user is None or user == CLI_ACTOR:
        return user
    found = store.find_user(username=user)
    if found is None:
        store.close()
        fail_usage(f"no user {user!r} (see `waystation users list`)")
    return found.id


@audit_app.command("verify")
def verify(
    db: str = _db_option(),
    head: str | None = typer.Option(
        None,
        "--head",
        help="A head printed earlier by "
        "`waystation audit head` (<count>:<hash>) and kept "
        "elsewhere: the trail must still contain it.",
    ),
) -> None:
    """Walk the hash chain: exit 0 when intact, 1 naming the first bad entry."""
    from waystation.store.audit import ChainHead

    anchor = None
    if head is not None:
        try:
            anchor = ChainHead.parse(head)
        except ValueError as exc:
            fail_usage(str(exc))
    store = store_from(db, schema_from(None))
    try:
        result = store.verify_audit(anchor)
    finally:
        store.close()
    if not result.ok:
        err_console.print(f"[bold red]audit trail broken:[/] {result.problem}")
        raise typer.Exit(1)
    against = f", and contains the kept head {anchor.count}" if anchor else ""
    console.print(f"audit trail intact: {result.checked} entries{against}; head {result.head}")


@audit_app.command("head")
def head(db: str = _db_option()) -> None:
    """Print the chain's head, <count>:<hash>: keep it elsewhere, verify against it later."""
    store = store_from(db, schema_from(None))
    try:
        current = store.audit_head()
    finally:
        store.close()
    typer.echo(str(current))
