"""SQLCipher under the replica: which files are encrypted, keyed connections, and turning a
plain replica into an encrypted one.

An encrypted replica is a SQLCipher 4 database (the ``sqlcipher3`` package bundles it):
every page, of the file and of its WAL, is AES-256 encrypted and authenticated (HMAC), so
neither the records nor the device tokens can be read off a lost device. The only plain
bytes are the first 16 of the file: SQLCipher's random per-file salt, which also salts the
passphrase's argon2id (keys.py). Connections are keyed with a raw key and that salt
(``PRAGMA key = "x'<key><salt>'"``), so SQLCipher runs no second key derivation of its own.

Plain replicas keep using the standard library's ``sqlite3``; ``sqlcipher3`` is the same
DB-API module built on SQLCipher, so the rest of the client sees the same connection.
"""

from __future__ import annotations

import enum
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any, cast

from waystation.client.errors import ReplicaLocked, ReplicaNotEncrypted
from waystation.client.keys import SALT_BYTES, ReplicaKey

PLAIN_HEADER = b"SQLite format 3\x00"
# The page size of every encrypted replica; SQLCipher must be told it before it can read
# page 1, so it is fixed. 16 KiB, as plain replicas (db.py): fewer pages to encrypt and
# authenticate per record written.
CIPHER_PAGE_BYTES = 16384


class FileState(enum.Enum):
    NEW = "new"  # no file yet, or an empty one
    PLAIN = "plain"
    ENCRYPTED = "encrypted"


def file_state(path: Path) -> FileState:
    """Whether ``path`` is a new, plain SQLite or encrypted (SQLCipher) file."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(PLAIN_HEADER))
    except FileNotFoundError:
        return FileState.NEW
    if not head:
        return FileState.NEW
    return FileState.PLAIN if head == PLAIN_HEADER else FileState.ENCRYPTED


class Keying:
    """What keys every connection to one encrypted replica (holds the key: no repr)."""

    def __init__(self, key: bytes, salt: bytes) -> None:
        self._literal = f"x'{key.hex()}{salt.hex()}'"

    def apply(self, conn: Any) -> None:
        conn.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is our error to raise
        conn.execute(f'PRAGMA key = "{self._literal}"')
        conn.execute(f"PRAGMA cipher_page_size = {CIPHER_PAGE_BYTES}")

    def attach(self, conn: Any, path: Path, name: str) -> None:
        """Attach ``path`` as schema ``name``, encrypted with this key."""
        conn.execute(f"ATTACH DATABASE ? AS {name} KEY ?", (str(path), self._literal))
        conn.execute(f"PRAGMA {name}.cipher_page_size = {CIPHER_PAGE_BYTES}")

    def __repr__(self) -> str:
        return "<Keying (secret)>"


def keying_for(path: Path, key: ReplicaKey | None) -> Keying | None:
    """How to key connections to the replica at ``path``; None for a plain replica.

    Raises ``ReplicaLocked`` (encrypted, but no key given, or the key source has none) and
    ``ReplicaNotEncrypted`` (a key given for a plain replica).
    """
    state = file_state(path)
    if key is None:
        if state is FileState.ENCRYPTED:
            raise ReplicaLocked(
                f"the replica {path} is encrypted: open it with its key "
                "(passphrase=... or key=ReplicaKey...)"
            )
        return None
    if state is FileState.PLAIN:
        raise ReplicaNotEncrypted(
            f"the replica {path} is not encrypted, so a key cannot open it; encrypt it "
            "first with waystation.client.encrypt_replica (or `waystation encrypt`)"
        )
    if state is FileState.ENCRYPTED:
        with open(path, "rb") as file:
            salt = file.read(SALT_BYTES)
        return Keying(key.key_for(salt, new_file=False), salt)
    salt = secrets.token_bytes(SALT_BYTES)
    return Keying(key.key_for(salt, new_file=True), salt)


def connect(path: Path, keying: Keying | None, *, rows: bool = False) -> sqlite3.Connection:
    """A connection to the replica file in autocommit mode (transactions are explicit),
    usable from any thread; ``rows``: rows as ``Row`` objects. Raises ``ReplicaLocked``
    when ``keying`` does not open the file."""
    if keying is None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        if rows:
            conn.row_factory = sqlite3.Row
        return conn
    import sqlcipher3

    cipher_conn = sqlcipher3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=30.0
    )
    try:
        keying.apply(cipher_conn)
        cipher_conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlcipher3.DatabaseError as exc:
        cipher_conn.close()
        raise ReplicaLocked(
            f"wrong key for the replica {path}: the passphrase or key does not open it"
        ) from exc
    if rows:
        cipher_conn.row_factory = sqlcipher3.Row
    return cast(sqlite3.Connection, cipher_conn)


def encrypt_replica(path: str | Path, key: ReplicaKey) -> None:
    """Rewrite the plain replica at ``path`` as an encrypted one, in place, keeping every
    record, op, token and setting; open it afterwards with ``key``.

    Close the replica everywhere first. The plain file is replaced only once the encrypted
    copy is complete and on disk, so a crash leaves one or the other. The disk blocks the
    plain file used are not overwritten (flash storage cannot promise it anyway): rely on
    the device's own disk encryption for what was written before.

    Raises ValueError (already encrypted), FileNotFoundError (no replica there),
    ``ReplicaLocked`` (the key source has no key) or ``RuntimeError`` (still open
    elsewhere).
    """
    import sqlcipher3

    path = Path(path)
    state = file_state(path)
    if state is FileState.ENCRYPTED:
        raise ValueError(f"the replica {path} is already encrypted")
    if state is FileState.NEW:
        raise FileNotFoundError(f"no replica at {path}")
    target = path.with_name(path.name + ".encrypting")
    target.unlink(missing_ok=True)
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        salt = secrets.token_bytes(SALT_BYTES)
        keying = Keying(key.key_for(salt, new_file=True), salt)
        plain = sqlcipher3.connect(str(path), isolation_level=None)
        try:
            keying.attach(plain, target, "encrypted")
            plain.execute("SELECT sqlcipher_export('encrypted')")
            plain.execute("DETACH DATABASE encrypted")
        finally:
            plain.close()
        # The last connection's close checkpoints the WAL into the file and removes it;
        # a WAL left behind belongs to another connection, whose writes would be lost.
        if path.with_name(path.name + "-wal").exists():
            raise RuntimeError(f"the replica {path} is open elsewhere: close it first")
        _fsync(target)
        os.replace(target, path)
        if os.name == "posix":  # the rename itself survives a power cut
            _fsync(path.parent)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
