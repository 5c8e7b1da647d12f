"""What the device-side commands share to open a replica and reach its server: the key of
an encrypted replica (``--passphrase-env NAME``, ``--passphrase-prompt``, ``--keyring``)
and how far to trust the network (``--ca-cert FILE``, ``--insecure``).

A replica opened without the key it needs, or with a wrong one, is a configuration error:
exit 2 with a message naming the option to use.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import typer

from waystation.cli.common import fail_usage
from waystation.client import Replica, ReplicaKey, ReplicaLocked, ReplicaNotEncrypted

KEYRING_SERVICE = "waystation"
KEY_OPTIONS = "--passphrase-env NAME, --passphrase-prompt or --keyring"
LOGIN_HINT = "waystation login --replica {replica} --server URL --username NAME"


def passphrase_env_option() -> Any:
    return typer.Option(
        None,
        "--passphrase-env",
        metavar="NAME",
        help="Encrypted replica: the environment variable that holds its passphrase.",
    )


def keyring_option() -> Any:
    return typer.Option(
        False,
        "--keyring",
        help="Encrypted replica: its key is in the OS keyring (made when the replica is created).",
    )


def passphrase_prompt_option() -> Any:
    return typer.Option(
        False, "--passphrase-prompt", help="Encrypted replica: ask for its passphrase."
    )


def ca_cert_option() -> Any:
    return typer.Option(
        None,
        "--ca-cert",
        metavar="FILE",
        help="Trust a server certificate signed by this CA (PEM); default: "
        "the system's CAs, or the file SSL_CERT_FILE names.",
    )


def insecure_option() -> Any:
    return typer.Option(
        False,
        "--insecure",
        help="Allow http:// to another machine: the password, tokens and "
        "patient data then cross the network in clear text.",
    )


def replica_key(
    replica: Path,
    passphrase_env: str | None,
    use_keyring: bool,
    prompt: bool,
    *,
    creating: bool = False,
) -> ReplicaKey | None:
    """The key the options name (None without one); exits 2 for several, or for an unset
    variable. ``creating``: a prompt asks twice (a typo would lock the new replica)."""
    if sum((passphrase_env is not None, use_keyring, prompt)) > 1:
        fail_usage(f"give one of {KEY_OPTIONS}, not several")
    if passphrase_env is not None:
        passphrase = os.environ.get(passphrase_env)
        if not passphrase:
            fail_usage(f"--passphrase-env {passphrase_env}: that environment variable is not set")
        return ReplicaKey.from_passphrase(passphrase)
    if use_keyring:
        return ReplicaKey.from_keyring(KEYRING_SERVICE, str(replica.resolve()))
    if prompt:
        passphrase = typer.prompt(
            "Replica passphrase", hide_input=True, confirmation_prompt=creating, err=True
        )
        if not passphrase:
            fail_usage("the replica passphrase must not be empty")
        return ReplicaKey.from_passphrase(passphrase)
    return None


def tls_trust(ca_cert: Path | None) -> ssl.SSLContext | bool:
    """What ``--ca-cert`` asks the client to trust (True: the defaults); exits 2 for a
    file that is missing or holds no PEM certificate."""
    if ca_cert is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as exc:
        fail_usage(f"--ca-cert {ca_cert}: cannot load a CA certificate from it ({exc})")


def open_replica(
    replica: Path,
    key: ReplicaKey | None,
    *,
    ca_cert: Path | None = None,
    insecure: bool = False,
    must_exist: bool = True,
) -> Replica:
    """Open the replica file (exit 2 when it is missing and ``must_exist``, or when the key
    does not fit it)."""
    if must_exist and not replica.exists():
        fail_usage(
            f"no replica at {replica}; create one with `{LOGIN_HINT.format(replica=replica)}`"
        )
    try:
        return Replica(replica, key=key, verify=tls_trust(ca_cert), insecure=insecure)
    except ReplicaLocked as exc:
        if key is None:
            fail_usage(f"the replica {replica} is encrypted: give its key with {KEY_OPTIONS}")
        fail_usage(exc.message)
    except ReplicaNotEncrypted:
        fail_usage(
            f"the replica {replica} is not encrypted: encrypt it first with "
            f"`waystation encrypt --replica {replica}` and a key option, or open it "
            "without one"
        )
