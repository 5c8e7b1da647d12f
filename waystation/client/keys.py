"""Where the key of an encrypted replica comes from: a passphrase, the OS keyring, or the
app's own key store.

A replica is encrypted with SQLCipher under a 256-bit key (cipher.py). ``ReplicaKey`` only
says how to obtain those 32 bytes for a file, given the file's 16-byte salt (SQLCipher
keeps it, in the clear, as the first 16 bytes of the file; it is random per file):

- ``from_passphrase``: argon2id of the passphrase with the file's salt. The parameters
  are fixed (changing them would lock every existing replica out): 3 passes over 64 MiB
  with 4 lanes, RFC 9106's "low memory" choice; about 0.3 s per open on one core.
- ``from_keyring``: 32 random bytes made when the replica is created and kept in the OS
  keyring (the ``keyring`` package: macOS Keychain, Windows Credential Locker, Secret
  Service on Linux; ``pip install 'waystation[keyring]'``).
- ``from_bytes``: 32 bytes the app keeps itself (Android Keystore, a hardware token).

No key ever appears in a ``repr``.
"""

from __future__ import annotations

import abc
import secrets
from typing import Any

from argon2.low_level import Type, hash_secret_raw

from waystation.client.errors import ReplicaLocked

KEY_BYTES = 32
SALT_BYTES = 16
ARGON2_TIME_COST = 3
ARGON2_MEMORY_KIB = 64 * 1024
ARGON2_PARALLELISM = 4


class ReplicaKey(abc.ABC):
    """How to get the 32-byte SQLCipher key of a replica file. Build one with
    :meth:`from_passphrase`, :meth:`from_keyring` or :meth:`from_bytes`."""

    @abc.abstractmethod
    def key_for(self, salt: bytes, *, new_file: bool) -> bytes:
        """The key of the replica file whose salt is ``salt`` (``new_file``: the file is
        being created now). Raises ``ReplicaLocked`` when the source holds no key for it."""

    @staticmethod
    def from_passphrase(passphrase: str) -> ReplicaKey:
        """A key derived from a passphrase (argon2id with the file's salt); raises
        ValueError for an empty one."""
        if not isinstance(passphrase, str) or not passphrase:
            raise ValueError("the replica passphrase must be a non-empty string")
        return _PassphraseKey(passphrase)

    @staticmethod
    def from_keyring(service: str, name: str) -> ReplicaKey:
        """A random key kept in the OS keyring under (``service``, ``name``), made when the
        replica is created. Opening an existing replica whose entry is missing raises
        ``ReplicaLocked``; without the ``keyring`` package, ``ReplicaLocked`` says how to
        install it."""
        if not service or not name:
            raise ValueError("a keyring key needs a service and a name")
        return _KeyringKey(service, name)

    @staticmethod
    def from_bytes(key: bytes) -> ReplicaKey:
        """A 32-byte key the app keeps itself; raises ValueError for any other length."""
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise ValueError(f"a replica key is {KEY_BYTES} bytes")
        return _RawKey(key)

    def __repr__(self) -> str:
        return f"<{type(self).__name__.lstrip('_')} (secret)>"


class _PassphraseKey(ReplicaKey):
    def __init__(self, passphrase: str) -> None:
        self._passphrase = passphrase

    def key_for(self, salt: bytes, *, new_file: bool) -> bytes:
        return hash_secret_raw(
            self._passphrase.encode(),
            salt,
            time_cost=ARGON2_TIME_COST,
            memory_cost=ARGON2_MEMORY_KIB,
            parallelism=ARGON2_PARALLELISM,
            hash_len=KEY_BYTES,
            type=Type.ID,
        )


class _RawKey(ReplicaKey):
    def __init__(self, key: bytes) -> None:
        self._key = key

    def key_for(self, salt: bytes, *, new_file: bool) -> bytes:
        return self._key


class _KeyringKey(ReplicaKey):
    def __init__(self, service: str, name: str) -> None:
        self.service = service
        self.name = name

    def key_for(self, salt: bytes, *, new_file: bool) -> bytes:
        keyring = _keyring()
        where = f"the OS keyring (service {self.service!r}, name {self.name!r})"
        try:
            stored = keyring.get_password(self.service, self.name)
            if stored is None and new_file:
                stored = secrets.token_bytes(KEY_BYTES).hex()
                keyring.set_password(self.service, self.name, stored)
        except keyring.errors.KeyringError as exc:
            raise ReplicaLocked(f"{where} cannot be used: {exc}") from exc
        if stored is None:
            raise ReplicaLocked(f"{where} holds no key for this replica")
        try:
            key = bytes.fromhex(stored)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise ReplicaLocked(f"{where} holds something that is not a replica key")
        return key

    def __repr__(self) -> str:
        return f"<KeyringKey service={self.service!r} name={self.name!r}>"


def _keyring() -> Any:
    try:
        import keyring
        import keyring.errors
    except ImportError as exc:
        raise ReplicaLocked(
            "the OS keyring needs the keyring package: pip install 'waystation[keyring]'"
        ) from exc
    return keyring
