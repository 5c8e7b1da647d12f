"""Issue 11, hole 8: the replica holds patient data and tokens, so a field app can encrypt
it (SQLCipher, keyed from a passphrase or the OS keyring). Files are read as raw bytes,
exactly as someone who copied them off a lost tablet would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyrings.alt.file import PlaintextKeyring

from tests.client.conftest import FAST_RETRIES, new_user
from tests.support import LiveServer
from waystation.client import Replica, ReplicaKey, ReplicaLocked, encrypt_replica
from waystation.client.errors import ReplicaNotEncrypted
from waystation.core.ids import uuid7

PASSPHRASE = "correct horse battery staple"


def replica_bytes(path: Path) -> dict[str, bytes]:
    """The replica file and its WAL/SHM side files, as bytes on disk."""
    found = {}
    for suffix in ("", "-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            found[side.name] = side.read_bytes()
    return found


def leaks(path: Path, *secrets: str) -> list[tuple[str, str]]:
    """(file, secret) for each secret found in the replica's files."""
    return [
        (name, secret)
        for name, data in replica_bytes(path).items()
        for secret in secrets
        if secret.encode() in data
    ]


def test_hole_8_encrypted_replica_files_hold_no_patient_name_or_token(
    shared_server: LiveServer, tmp_path: Path
) -> None:
    user = new_user(shared_server)
    path = tmp_path / "tablet.db"
    name = f"Zebedee Quillfeather {uuid7()[-8:]}"
    rep = Replica.open(
        path,
        server=shared_server.url,
        username=user,
        password="pw",
        passphrase=PASSPHRASE,
        retry_policy=FAST_RETRIES,
    )
    try:
        patient = rep.put("patients", {"name": name, "facility_id": "f-1"})
        result = rep.sync()
        assert result.ok and result.applied == 1 and result.pulled >= 1, result
        access, refresh = rep.session.access_token(), rep.session.refresh_token()
        assert access and refresh
        # While open, recent commits live in the WAL: it must be encrypted too.
        assert "tablet.db-wal" in replica_bytes(path)
        assert leaks(path, name, access, refresh) == []
    finally:
        rep.close()
    assert leaks(path, name, access, refresh) == []
    assert path.read_bytes()[:16] != b"SQLite format 3\x00"

    with Replica.open(path, passphrase=PASSPHRASE) as reopened:
        assert (reopened.get("patients", patient) or {}).get("name") == name
        assert reopened.session.refresh_token() == refresh
    with pytest.raises(ReplicaLocked, match="wrong key"):
        Replica.open(path, passphrase="not the passphrase")
    with pytest.raises(ReplicaLocked, match="encrypted"):
        Replica.open(path)


def test_every_connection_of_an_encrypted_replica_is_keyed(tmp_path: Path) -> None:
    """The read-only side connection (used while another thread holds the writer) reads
    through the same key."""
    with Replica.open(tmp_path / "r.db", passphrase=PASSPHRASE) as rep:
        rep.put("symptom_logs", {"patient_id": "p-1", "facility_id": "f-1", "date": "2025-11-30"})
        seen: list[int] = []

        def read_from_another_thread() -> None:
            with rep.db.read_committed() as conn:
                seen.append(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

        import threading

        with rep.db.transaction():  # this thread holds the main connection
            reader = threading.Thread(target=read_from_another_thread)
            reader.start()
            reader.join(10)
        assert seen == [1]


def test_a_key_for_a_plain_replica_is_refused_and_encrypt_replica_converts_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    name = "Achieng Plaintext-Only"
    with Replica.open(path) as rep:
        rid = rep.put("patients", {"name": name, "facility_id": "f-1"})
        device = rep.device_id
    assert leaks(path, name)  # a plain replica: the name is there for anyone to read
    key = ReplicaKey.from_passphrase(PASSPHRASE)
    with pytest.raises(ReplicaNotEncrypted, match="encrypt_replica"):
        Replica.open(path, key=key)

    encrypt_replica(path, key)

    assert leaks(path, name) == []
    assert not path.with_name("old.db-wal").exists()
    with Replica.open(path, key=key) as rep:
        assert (rep.get("patients", rid) or {}).get("name") == name
        assert rep.device_id == device and rep.pending_count() == 1
    with pytest.raises(ReplicaLocked):
        Replica.open(path)


@pytest.fixture
def file_keyring(tmp_path: Path) -> Iterator[KeyringBackend]:
    """A real keyring backend (a file in the test's directory) as the process's keyring."""
    previous = keyring.get_keyring()
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_a_keyring_key_is_made_once_and_opens_the_replica(
    tmp_path: Path, file_keyring: KeyringBackend
) -> None:
    path = tmp_path / "laptop.db"
    key = ReplicaKey.from_keyring("waystation-test", str(path))
    with Replica.open(path, key=key) as rep:
        rid = rep.put("patients", {"name": "Keyring Kept", "facility_id": "f-1"})
    stored = file_keyring.get_password("waystation-test", str(path))
    assert stored is not None and len(bytes.fromhex(stored)) == 32
    assert leaks(path, "Keyring Kept") == []
    with Replica.open(path, key=ReplicaKey.from_keyring("waystation-test", str(path))) as rep:
        assert rep.get("patients", rid) is not None
    with pytest.raises(ReplicaLocked, match="keyring"):
        Replica.open(path, key=ReplicaKey.from_keyring("waystation-test", "another entry"))


def test_the_key_never_shows_in_a_repr() -> None:
    assert PASSPHRASE not in repr(ReplicaKey.from_passphrase(PASSPHRASE))
    raw = os.urandom(32)
    assert raw.hex() not in repr(ReplicaKey.from_bytes(raw))
    with pytest.raises(ValueError):
        ReplicaKey.from_bytes(b"short")
    with pytest.raises(ValueError):
        ReplicaKey.from_passphrase("")


# -- the command line ------------------------------------------------------------------


def waystation(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "200", "WAYSTATION_PASSWORD": "pw", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "waystation", *args],
        capture_output=True,
        text=True,
        env=full,
        input=stdin,
        timeout=60,
    )


def test_cli_login_with_a_passphrase_makes_an_encrypted_replica(
    shared_server: LiveServer, tmp_path: Path
) -> None:
    user = new_user(shared_server)
    path = tmp_path / "cli.db"
    env = {"WS_REPLICA_PASSPHRASE": PASSPHRASE}
    login = waystation(
        "login",
        "--replica",
        str(path),
        "--server",
        shared_server.url,
        "--username",
        user,
        "--passphrase-env",
        "WS_REPLICA_PASSPHRASE",
        env=env,
    )
    assert login.returncode == 0, login.stderr
    assert path.read_bytes()[:16] != b"SQLite format 3\x00"

    for command in (["status"], ["sync"], ["conflicts", "list"]):
        locked = waystation(*command, "--replica", str(path))
        assert locked.returncode == 2, (command, locked.stdout, locked.stderr)
        assert "encrypted" in locked.stderr and "--passphrase-env" in locked.stderr
        assert "Traceback" not in locked.stderr

    synced = waystation(
        "sync", "--replica", str(path), "--passphrase-env", "WS_REPLICA_PASSPHRASE", env=env
    )
    assert synced.returncode == 0, synced.stdout + synced.stderr
    wrong = waystation(
        "status", "--replica", str(path), "--passphrase-env", "WS_WRONG", env={"WS_WRONG": "nope"}
    )
    assert wrong.returncode == 2 and "wrong key" in wrong.stderr
    prompted = waystation(
        "status", "--replica", str(path), "--passphrase-prompt", stdin=PASSPHRASE + "\n"
    )
    assert prompted.returncode == 0, prompted.stderr
    assert user in prompted.stdout


def test_cli_keyring_and_encrypt_command(tmp_path: Path) -> None:
    env = {
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    path = tmp_path / "plain.db"
    with Replica.open(path) as rep:
        rep.put("patients", {"name": "Moved To Cipher", "facility_id": "f-1"})
    refused = waystation("status", "--replica", str(path), "--keyring", env=env)
    assert refused.returncode == 2 and "waystation encrypt" in refused.stderr

    done = waystation("encrypt", "--replica", str(path), "--keyring", env=env)
    assert done.returncode == 0, done.stderr
    assert leaks(path, "Moved To Cipher") == []
    opened = waystation("status", "--replica", str(path), "--keyring", env=env)
    assert opened.returncode == 0, opened.stderr
    assert "pending" in opened.stdout
    again = waystation("encrypt", "--replica", str(path), "--keyring", env=env)
    assert again.returncode == 2 and "already encrypted" in again.stderr
