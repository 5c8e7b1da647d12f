"""Every ``waystation`` command explains itself: ``--help`` works on each one, says what the
command does, and documents each of its options — the first thing a clinic's operator
types. Walks the real command tree, so a new command is covered the day it is added."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from waystation.cli import app

ROOT = typer.main.get_command(app)


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each command under ``command`` with its path of names (typer carries its own click,
    so commands are recognised by what they have, not by class)."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(ROOT))


def test_the_tree_holds_the_commands_the_docs_name() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert {
        "serve",
        "demo",
        "login",
        "sync",
        "status",
        "users add",
        "users disable",
        "devices revoke",
        "conflicts resolve",
        "audit verify",
    } <= names


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: " ".join(p) or "waystation")
def test_help_of_every_command_says_what_it_does_and_each_option(path: tuple[str, ...]) -> None:
    command = COMMANDS[path]
    shown = CliRunner().invoke(app, [*path, "--help"], prog_name="waystation")
    assert shown.exit_code == 0, shown.output
    assert shown.output.lstrip().startswith("Usage: waystation"), shown.output
    assert (command.help or "").strip(), f"{' '.join(path)} has no help text"
    undocumented = [
        p.name
        for p in command.params
        if p.param_type_name == "option" and not (p.help or "").strip()
    ]
    assert undocumented == [], f"{' '.join(path)}: options without help: {undocumented}"


def test_the_installed_entry_point_answers_help() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "waystation", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "Offline-first data sync" in run.stdout
    assert "Traceback" not in run.stderr
