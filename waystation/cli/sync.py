"""Device-side commands: ``login``, ``sync``, ``status`` and ``encrypt`` over a replica file.

They wrap the client SDK (``waystation.client``) and add only what a terminal needs: a
password prompt, progress bars, a summary table and exit codes — 0 success; 1 this run got
a conflict or a rejection, or could not finish (network, server); 2 usage or configuration
error (no replica, not logged in, login expired: the message says how to log in again; an
encrypted replica without its key: the message names the key options).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
)
from rich.table import Table

from waystation.cli.common import console, err_console, fail_usage
from waystation.cli.replica_access import (
    KEY_OPTIONS,
    LOGIN_HINT,
    ca_cert_option,
    insecure_option,
    keyring_option,
    open_replica,
    passphrase_env_option,
    passphrase_prompt_option,
    replica_key,
)
from waystation.client import (
    Continuous,
    OpStatus,
    Replica,
    ReplicaKey,
    ReplicaLocked,
    SyncEvent,
    SyncResult,
    encrypt_replica,
)
from waystation.client.cipher import FileState, file_state
from waystation.client.errors import TransportError
from waystation.core.errors import RateLimited, Unauthorized, WaystationError


def register(app: typer.Typer) -> None:
    """Add the device-side commands to ``app``."""
    app.command("login")(login)
    app.command("sync")(sync)
    app.command("status")(status)
    app.command("encrypt")(encrypt)


def _replica_option() -> Any:
    return typer.Option(..., "--replica", help="The replica file (SQLite) of this device.")


def login(
    replica: Path = _replica_option(),
    server: str = typer.Option(..., help="The server's base URL, e.g. http://127.0.0.1:8000."),
    username: str = typer.Option(..., help="Your login name."),
    password: str | None = typer.Option(
        None,
        envvar="WAYSTATION_PASSWORD",
        help="For scripts (or set WAYSTATION_PASSWORD); asked for when not given. Never stored.",
    ),
    device_name: str | None = typer.Option(None, help="A name for this device in the admin."),
    passphrase_env: str | None = passphrase_env_option(),
    use_keyring: bool = keyring_option(),
    passphrase_prompt: bool = passphrase_prompt_option(),
    ca_cert: Path | None = ca_cert_option(),
    insecure: bool = insecure_option(),
) -> None:
    """Log in and register this device; creates the replica file when needed (encrypted
    when a key option is given)."""
    key = replica_key(
        replica,
        passphrase_env,
        use_keyring,
        passphrase_prompt,
        creating=file_state(replica) is FileState.NEW,
    )
    if password is None:
        password = typer.prompt("Password", hide_input=True)
    rep = open_replica(replica, key, ca_cert=ca_cert, insecure=insecure, must_exist=False)
    try:
        rep.login(server, username, password, device_name=device_name)
    except ValueError as exc:
        fail_usage(str(exc))
    except Unauthorized as exc:
        _fail_run(f"login refused: {exc.message}")
    except RateLimited as exc:
        _fail_run(f"login refused for now: {exc.message}")
    except TransportError as exc:
        _fail_run(f"could not reach the server: {exc.message}")
    except WaystationError as exc:
        _fail_run(f"login failed ({exc.code}): {exc.message}")
    else:
        state = rep.status()
        console.print(
            f"logged in as [bold]{username}[/] on {rep.server_url} "
            f"(device {rep.device_id}); {state['pending']} op(s) waiting to sync"
        )
    finally:
        rep.close()


def sync(
    replica: Path = _replica_option(),
    server: str | None = typer.Option(
        None, help="Use (and remember) this server URL instead of the stored one."
    ),
    continuous: bool = typer.Option(
        False, "--continuous", help="Keep syncing until interrupted (Ctrl-C)."
    ),
    interval: float = typer.Option(
        300.0, min=1.0, help="Seconds between syncs in --continuous mode."
    ),
    max_items: int | None = typer.Option(
        None, min=1, help="Push at most N outbox entries this run (then pull as usual)."
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Put FAILED entries back to PENDING first."
    ),
    passphrase_env: str | None = passphrase_env_option(),
    use_keyring: bool = keyring_option(),
    passphrase_prompt: bool = passphrase_prompt_option(),
    ca_cert: Path | None = ca_cert_option(),
    insecure: bool = insecure_option(),
) -> None:
    """Push this device's outbox and pull what changed on the server."""
    key = replica_key(replica, passphrase_env, use_keyring, passphrase_prompt)
    # In --continuous mode Ctrl-C means "stop", from before the replica opens: a default
    # KeyboardInterrupt landing in the first moments aborted with a traceback, or was
    # swallowed where it landed and the loop then ran on.
    stop = _StopRequest()
    with stop.on_signals() if continuous else contextlib.nullcontext():
        _sync_command(
            replica,
            key,
            server,
            continuous,
            interval,
            max_items,
            retry_failed,
            ca_cert,
            insecure,
            stop,
        )


def _sync_command(
    replica: Path,
    key: ReplicaKey | None,
    server: str | None,
    continuous: bool,
    interval: float,
    max_items: int | None,
    retry_failed: bool,
    ca_cert: Path | None,
    insecure: bool,
    stop: _StopRequest,
) -> None:
    rep = open_replica(replica, key, ca_cert=ca_cert, insecure=insecure)
    try:
        if server is not None:
            try:
                rep.set_server(server)
            except ValueError as exc:
                fail_usage(str(exc))
        if not rep.session.logged_in:
            _fail_login(replica, "this replica is not logged in")
        if retry_failed:
            count = rep.retry_failed()
            err_console.print(f"requeued {count} failed op(s)")
        if continuous:
            _run_continuous(rep, replica, interval, max_items, stop)
        result = _sync_with_progress(rep, max_items)
        _print_summary(result)
        _exit_for(result, replica)
    finally:
        rep.close()


def status(
    replica: Path = _replica_option(),
    limit: int = typer.Option(20, min=0, help="List at most N entries that need attention."),
    passphrase_env: str | None = passphrase_env_option(),
    use_keyring: bool = keyring_option(),
    passphrase_prompt: bool = passphrase_prompt_option(),
) -> None:
    """Show what waits to sync, what failed, conflicts, rejections and the last sync."""
    key = replica_key(replica, passphrase_env, use_keyring, passphrase_prompt)
    rep = open_replica(replica, key)
    try:
        state = rep.status()
        table = Table(title=f"Replica {replica}", show_header=False)
        table.add_column("what", style="bold")
        table.add_column("value")
        last = state["last_sync"] or {}
        rows: list[tuple[str, Any]] = [
            ("server", state["server"] or "(not logged in)"),
            ("user", state["user"] or "-"),
            ("device", state["device_id"]),
            ("logged in", "yes" if state["logged_in"] else "no"),
            ("pending", state["pending"]),
            ("failed", state["failed"]),
            ("conflicts", state["conflicts"]),
            ("rejected", state["rejected"]),
            ("records", state["records"]),
            ("records flagged in conflict", state["flagged_records"]),
            ("last sync", _when(state["last_sync_at"]) or "never"),
        ]
        if last.get("error"):
            rows.append(("last attempt", f"{_when(last.get('finished_at'))}: {last['error']}"))
        for name, value in rows:
            table.add_row(name, str(value))
        console.print(table)
        attention = rep.outbox([OpStatus.FAILED, OpStatus.CONFLICT, OpStatus.REJECTED], limit=limit)
        if attention:
            _print_issues(
                "Entries that need attention:",
                [
                    (e.status.value, e.collection, e.record_id, e.op_id, e.last_error or {})
                    for e in attention
                ],
            )
    finally:
        rep.close()


def encrypt(
    replica: Path = _replica_option(),
    passphrase_env: str | None = passphrase_env_option(),
    use_keyring: bool = keyring_option(),
    passphrase_prompt: bool = passphrase_prompt_option(),
) -> None:
    """Encrypt a plain replica in place under a new key (close every app using it first)."""
    state = file_state(replica)
    if state is FileState.NEW:
        fail_usage(f"no replica at {replica}")
    if state is FileState.ENCRYPTED:
        fail_usage(f"the replica {replica} is already encrypted")
    key = replica_key(replica, passphrase_env, use_keyring, passphrase_prompt, creating=True)
    if key is None:
        fail_usage(f"give the new key with {KEY_OPTIONS}")
    try:
        encrypt_replica(replica, key)
    except (ReplicaLocked, RuntimeError) as exc:
        fail_usage(str(exc))
    console.print(f"encrypted {replica}; open it from now on with the same key option")


def _fail_login(replica: Path, why: str) -> NoReturn:
    fail_usage(f"{why}; log in with `{LOGIN_HINT.format(replica=replica)}`")


def _fail_run(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _sync_with_progress(rep: Replica, max_items: int | None) -> SyncResult:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[bytes]}"),
        console=err_console,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def follow(event: SyncEvent) -> None:
        moved = _bytes(event.bytes_sent + event.bytes_received)
        if event.phase == "start":
            tasks["push"] = progress.add_task("push", total=event.to_push, bytes="")
        elif event.phase == "push" and "push" in tasks:
            progress.update(tasks["push"], completed=event.pushed, bytes=moved)
        elif event.phase == "pull":
            if "pull" not in tasks:
                tasks["pull"] = progress.add_task("pull", total=None, bytes="")
            progress.update(tasks["pull"], completed=event.pulled, bytes=moved)

    unsubscribe = rep.subscribe(follow)
    try:
        with progress:
            return rep.sync(max_items=max_items)
    finally:
        unsubscribe()


def _run_continuous(
    rep: Replica, replica: Path, interval: float, max_items: int | None, stop: _StopRequest
) -> NoReturn:
    def report(result: SyncResult) -> None:
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        line = (
            f"{stamp} pushed {result.pushed} (applied {result.applied}, conflicts "
            f"{result.conflicts}, rejected {result.rejected}), pulled {result.pulled}"
        )
        if result.error:
            line += f" — [red]{result.error}[/]"
        console.print(line)
        for issue in result.issues:
            console.print(
                f"  {issue.status} {issue.collection}/{issue.record_id}: "
                f"{issue.code} {issue.message}"
            )

    def connectivity(event: SyncEvent) -> None:
        if event.phase in ("online", "offline"):
            err_console.print(
                f"server {'reachable' if event.phase == 'online' else 'unreachable'}"
                f"; {event.pending} op(s) waiting"
            )

    loop = Continuous(rep, interval=interval, max_items=max_items, on_result=report)
    rep.subscribe(connectivity)
    err_console.print(f"syncing every {interval:g}s; Ctrl-C to stop")
    stop.attach(loop)
    try:
        last = loop.run()
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, mid-sync (nothing acked is lost)
        raise typer.Exit(0) from None
    if last is not None and last.needs_login:
        _fail_login(replica, last.error or "the login expired")
    raise typer.Exit(0)


class _StopRequest:
    """The first Ctrl-C (or SIGTERM) asks the loop to stop after the current sync (or not
    to start, when it comes before the loop exists); the second interrupts it.

    The handler only sets a flag, writes its notice straight to the stderr descriptor and
    asks the loop to stop through a re-entrant lock: a KeyboardInterrupt raised wherever
    the main thread happens to be (a finaliser, a thread pool's shutdown) can be swallowed
    there, a buffered write can collide with the one it interrupted, and a plain lock that
    the interrupted code holds would deadlock.
    """

    def __init__(self) -> None:
        self.asked = False
        self._loop: Continuous | None = None

    def attach(self, loop: Continuous) -> None:
        """From now on a stop request stops ``loop`` (at once if one came already)."""
        self._loop = loop
        if self.asked:
            loop.stop()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        with contextlib.suppress(OSError):
            os.write(2, b"stopping after the current sync (Ctrl-C again to stop now)\n")
        if self._loop is not None:
            self._loop.stop()

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM this way inside the block."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _print_summary(result: SyncResult) -> None:
    table = Table(title="Sync", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("count", justify="right")
    for name, value in (
        ("pushed", result.pushed),
        ("applied", result.applied),
        ("duplicates", result.duplicates),
        ("conflicts", result.conflicts),
        ("rejected", result.rejected),
        ("failed", result.failed),
        ("pulled", result.pulled),
        ("sent", _bytes(result.bytes_sent)),
        ("received", _bytes(result.bytes_received)),
        ("cursor", str(result.cursor) if result.cursor is not None else "-"),
    ):
        table.add_row(name, str(value))
    console.print(table)
    if result.issues:
        _print_issues(
            "This run's conflicts, rejections and failures:",
            [
                (
                    i.status,
                    i.collection,
                    i.record_id,
                    i.op_id,
                    {"code": i.code, "message": i.message},
                )
                for i in result.issues
            ],
        )


def _print_issues(title: str, rows: list[tuple[str, str, str, str, dict[str, Any]]]) -> None:
    """One entry per two lines: narrow terminals and logs keep the reason readable."""
    console.print(f"[bold]{title}[/]")
    for status_, collection, record_id, op_id, error in rows:
        console.print(f"  [bold]{status_}[/] {collection}/{record_id} (op {op_id})")
        console.print(f"      {error.get('code', '')}: {error.get('message', '')}")


def _exit_for(result: SyncResult, replica: Path) -> None:
    if result.needs_login:
        _fail_login(replica, result.error or "the login expired")
    if result.error is not None:
        _fail_run(f"sync could not finish ({result.error_code}): {result.error}")
    if not result.ok:
        raise typer.Exit(1)


def _when(stamp: str | None) -> str | None:
    if not stamp:
        return None
    moment = dt.datetime.fromisoformat(stamp)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"
