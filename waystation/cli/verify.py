"""``waystation verify``: prove a replica holds what the server holds, and repair it.

Wraps ``Replica.verify`` (client/verify.py) and prints one row per collection: live records
on the server and on this device, and whether they were equal, repaired or still differ.
Exit codes: 0 every collection is equal (after repair); 1 some collection differs, or the
check could not finish (network, server); 2 usage or configuration error (no replica, not
logged in, an encrypted replica without its key).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from waystation.cli.common import console, err_console, fail_usage
from waystation.cli.replica_access import (
    LOGIN_HINT,
    ca_cert_option,
    insecure_option,
    keyring_option,
    open_replica,
    passphrase_env_option,
    passphrase_prompt_option,
    replica_key,
)
from waystation.client import VerifyResult, VerifyStatus

_STYLE = {
    VerifyStatus.EQUAL: "green",
    VerifyStatus.REPAIRED: "yellow",
    VerifyStatus.DIFFERS: "bold red",
}


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(
    replica: Path = typer.Option(
        ..., "--replica", help="The replica file (SQLite) of this device."
    ),
    no_repair: bool = typer.Option(
        False,
        "--no-repair",
        help="Only compare: leave a collection that differs as it is (exit 1).",
    ),
    collection: list[str] | None = typer.Option(
        None,
        "--collection",
        metavar="NAME",
        help="Check only this collection (repeatable); default: all.",
    ),
    passphrase_env: str | None = passphrase_env_option(),
    use_keyring: bool = keyring_option(),
    passphrase_prompt: bool = passphrase_prompt_option(),
    ca_cert: Path | None = ca_cert_option(),
    insecure: bool = insecure_option(),
) -> None:
    """Sync, then compare the server's digest of each collection with this replica's copy;
    re-pull what differs (local edits and the outbox are kept) and compare again."""
    key = replica_key(replica, passphrase_env, use_keyring, passphrase_prompt)
    rep = open_replica(replica, key, ca_cert=ca_cert, insecure=insecure)
    try:
        if not rep.session.logged_in:
            fail_usage(
                f"this replica is not logged in; log in with `{LOGIN_HINT.format(replica=replica)}`"
            )
        result = rep.verify(repair=not no_repair, collections=collection or None)
    finally:
        rep.close()
    print_result(result)
    if result.needs_login:
        fail_usage(f"{result.error}; log in with `{LOGIN_HINT.format(replica=replica)}`")
    if result.error is not None:
        err_console.print(
            f"[bold red]error:[/] verify could not finish ({result.error_code}): {result.error}"
        )
        raise typer.Exit(1)
    if not result.ok:
        raise typer.Exit(1)


def print_result(result: VerifyResult) -> None:
    if not result.checks:
        return
    table = Table(title="Verify")
    table.add_column("collection", style="bold")
    table.add_column("server", justify="right")
    table.add_column("device", justify="right")
    table.add_column("status")
    for check in result.checks:
        table.add_row(
            check.collection,
            str(check.server_count),
            str(check.local_count),
            f"[{_STYLE[check.status]}]{check.status.value}[/]",
        )
    console.print(table)
    console.print(
        f"server cursor {result.server_cursor}, device cursor "
        f"{result.local_cursor}" + ("; the replica was re-pulled" if result.repulled else "")
    )
