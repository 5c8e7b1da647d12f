"""``waystation conflicts list | resolve``: a reviewer's view of the conflicts held on the
server, from a logged-in replica (they wrap ``Replica.conflicts`` / ``Replica.resolve``).

Exit codes: 0 success; 1 the server refused or could not be reached (already resolved,
forbidden, network); 2 usage or configuration error (no replica, not logged in, a decision
that does not fit the conflict, no such conflict).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import orjson
import typer
from rich.table import Table

from waystation.cli.common import console, err_console, fail_usage
from waystation.cli.replica_access import (
    ca_cert_option,
    keyring_option,
    open_replica,
    passphrase_env_option,
    passphrase_prompt_option,
    replica_key,
)
from waystation.client.conflicts import RESOLUTIONS
from waystation.client.errors import LoginRequired
from waystation.core.errors import NotFound, ValidationError, WaystationError

conflicts_app = typer.Typer(
    name="conflicts",
    help="List and resolve conflicts held on the server for review.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(conflicts_app, name="conflicts")


def _replica_option() -> Any:
    return typer.Option(..., "--replica", help="The replica file (SQLite) of this device.")


@conflicts_app.command("list")
def list_(
    replica: Path = _replica_option(),
    status: str = typer.Option("open", help="open or resolved."),
    collection: str | None = typer.Option(None, help="Only this collection."),
    record_id: str | None = typer.Option(None, "--record-id", help="Only this record."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts)."),
    passphrase_env: str | None = passphrase_env_option(),
    use_keyring: bool = keyring_option(),
    passphrase_prompt: bool = passphrase_prompt_option(),
    ca_cert: Path | None = ca_cert_option(),
) -> None:
    """List the conflicts you may review: both sides of each, field by field."""
    if status not in ("open", "resolved"):
        fail_usage(f"--status must be open or resolved, not {status!r}")
    key = replica_key(replica, passphrase_env, use_keyring, passphrase_prompt)
    rep = open_replica(replica, key, ca_cert=ca_cert)
    try:
        found = _call(
            replica, lambda: rep.conflicts(status, collection=collection, record_id=record_id)
        )
    finally:
        rep.close()
    if as_json:
        console.print_json(orjson.dumps(found).decode())
        return
    if not found:
        console.print(f"no {status} conflicts")
        return
    for conflict in found:
        _print_conflict(conflict)


@conflicts_app.command("resolve")
def resolve(
    conflict_id: str = typer.Argument(..., help="The conflict's id (from `conflicts list`)."),
    replica: Path = _replica_option(),
    resolution: str = typer.Option(
        ...,
        help="client_wins (the held op), server_wins (the server's values; for a "
        "unique key: discard) or merge (the held op with --field values over it).",
    ),
    field: list[str] = typer.Option(
        [],
        "--field",
        help="NAME=VALUE for merge (repeat); VALUE is JSON when it parses "
        '(5, true, null, "text"), text otherwise.',
    ),
    target: str | None = typer.Option(
        None,
        help="For a unique-key conflict: record (keep both: change the key with "
        "--field) or existing (merge into the record that holds the key).",
    ),
    no_sync: bool = typer.Option(False, "--no-sync", help="Do not sync afterwards."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts)."),
    passphrase_env: str | None = passphrase_env_option(),
    use_keyring: bool = keyring_option(),
    passphrase_prompt: bool = passphrase_prompt_option(),
    ca_cert: Path | None = ca_cert_option(),
) -> None:
    """Resolve a conflict, then sync so this replica shows the result."""
    if resolution not in RESOLUTIONS:
        fail_usage(f"--resolution must be one of {', '.join(RESOLUTIONS)}")
    if target is not None and target not in ("record", "existing"):
        fail_usage("--target must be record or existing")
    fields = _parse_fields(field) if field else None
    key = replica_key(replica, passphrase_env, use_keyring, passphrase_prompt)
    rep = open_replica(replica, key, ca_cert=ca_cert)
    try:
        resolved = _call(
            replica, lambda: rep.resolve(conflict_id, resolution, fields=fields, target=target)
        )
        result = None if no_sync else rep.sync()
    finally:
        rep.close()
    if as_json:
        console.print_json(orjson.dumps(resolved).decode())
    else:
        how = resolved["resolution"] + (
            " into the existing record" if resolved.get("target") == "existing" else ""
        )
        record = resolved["record_id"] or "(a record outside your scopes)"
        console.print(f"resolved {resolved['collection']}/{record}: {how}")
        for change in resolved.get("changes") or []:
            console.print(
                f"  wrote {change['collection']}/{change['record_id']} "
                f"(version {change['version']})"
            )
    if result is not None and result.error is not None:
        err_console.print(f"[yellow]resolved, but the sync did not finish:[/] {result.error}")
        raise typer.Exit(1)


def _call(replica: Path, call: Any) -> Any:
    try:
        return call()
    except LoginRequired as exc:
        fail_usage(f"{exc.message}")
    except (ValidationError, NotFound) as exc:
        fail_usage(exc.message)
    except ValueError as exc:
        fail_usage(str(exc))
    except WaystationError as exc:
        _fail(f"{exc.code}: {exc.message}")


def _fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _parse_fields(pairs: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            fail_usage(f"--field {pair!r}: use NAME=VALUE")
        try:
            fields[name] = orjson.loads(text)
        except orjson.JSONDecodeError:
            fields[name] = text
    return fields


def _print_conflict(conflict: dict[str, Any]) -> None:
    """Both sides, field by field: what the server has and what the held op wanted."""
    record = conflict["record_id"] or "(a record outside your scopes)"
    title = (
        f"{conflict['id']}  {conflict['collection']}/{record}  "
        f"{conflict['kind']} ({conflict['op']} from device {conflict['device_id']}, "
        f"{conflict['created_at']}, {conflict['status']})"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("field", style="bold")
    other = "existing record" if conflict["kind"] == "UNIQUE_VIOLATION" else "server"
    table.add_column(other)
    table.add_column("held op (client)")
    # a side outside the reviewer's scopes comes as null and is named in "hidden"
    server, client = conflict["server_fields"], conflict["client_fields"]
    for name in sorted(set(server or {}) | set(client or {})):
        table.add_row(name, _show(server, name), _show(client, name))
    console.print(table)
    for side in conflict.get("hidden") or []:
        what = "the held op's record" if side == "record" else "the record holding the key"
        console.print(f"  {what} is outside your scopes: its fields are not shown")
    if conflict.get("existing_id"):
        console.print(f"  the key is held by {conflict['existing_id']}")
    if conflict.get("resolution"):
        console.print(
            f"  resolved: {conflict['resolution']} by {conflict['resolved_by']} "
            f"at {conflict['resolved_at']}"
        )


def _show(fields: dict[str, Any] | None, name: str) -> str:
    if fields is None:
        return "(hidden)"
    return orjson.dumps(fields[name]).decode() if name in fields else "-"
