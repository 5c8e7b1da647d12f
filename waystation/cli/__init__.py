"""The ``waystation`` command line: one typer app, one module per group of commands.

Each command wraps the SDK or the store; the forms in docs/client.md ("From the command
line") and docs/operations.md are a contract that scripts rely on. Exit codes: 0 success;
1 this run got a conflict or a rejection, or could not finish; 2 usage or configuration
error.
"""

from __future__ import annotations

import signal

# First thing, before the imports below (~0.5 s): a shell script's background job starts
# with SIGINT ignored, and `sync --continuous` and `serve` install their own handlers only
# after those imports, so a SIGINT in between was lost and the loop then ran for good. The
# command restores Python's own handler at once: SIGINT stops it at any moment.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

try:
    import typer

    from waystation.cli import audit, conflicts, serve, sync, users, verify
except KeyboardInterrupt:  # Ctrl-C while starting: stop quietly, with the shell's code
    raise SystemExit(130) from None

app = typer.Typer(
    name="waystation",
    help="Offline-first data sync for health services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
serve.register(app)
users.register(app)
sync.register(app)
conflicts.register(app)
audit.register(app)
verify.register(app)


def main() -> None:
    app()
