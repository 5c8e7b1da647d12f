"""Registering a device and refreshing its token through the store (``register_device``,
``refresh_device``: the rules are core/accounts.py's), on both engines."""

from __future__ import annotations

import pytest

from waystation.core.errors import DeviceRevoked, Forbidden, Unauthorized
from waystation.core.ids import uuid7
from waystation.store import SqlStore

FAR = 2**42  # a refresh expiry far in the future (ms)


def _user(store: SqlStore) -> str:
    return store.add_user(f"u-{uuid7()[-8:]}", "-", "health_worker", ["facility:f-1"]).id


def test_a_device_id_is_its_first_users_for_good(store: SqlStore) -> None:
    owner, other = _user(store), _user(store)
    assert store.register_device(owner, "d-tab", "tablet", "h-1", refresh_expires_at=FAR) == 0
    with pytest.raises(Forbidden, match="belongs to another user"):
        store.register_device(other, "d-tab", "mine now", "h-2", refresh_expires_at=FAR)
    device = store.find_device("d-tab")
    assert device is not None and (device.user_id, device.refresh_hash) == (owner, "h-1")


def test_logging_a_known_device_in_again_ends_its_earlier_tokens(store: SqlStore) -> None:
    owner = _user(store)
    store.register_device(owner, "d-tab", "tablet", "h-1", refresh_expires_at=FAR)
    gen = store.register_device(owner, "d-tab", "tablet", "h-2", refresh_expires_at=FAR)
    device = store.find_device("d-tab")
    assert device is not None and gen == device.token_gen > 0
    assert device.refresh_hash == "h-2"
    with pytest.raises(Unauthorized):
        store.refresh_device("d-tab", "h-1", "h-3", expires_at=FAR)


def test_a_revoked_device_cannot_register_again_nor_refresh(store: SqlStore) -> None:
    owner = _user(store)
    store.register_device(owner, "d-tab", "tablet", "h-1", refresh_expires_at=FAR)
    store.revoke_device("d-tab", wipe=True)
    with pytest.raises(DeviceRevoked) as registering:
        store.register_device(owner, "d-tab", "tablet", "h-2", refresh_expires_at=FAR)
    with pytest.raises(DeviceRevoked) as refreshing:
        store.refresh_device("d-tab", "h-1", "h-3", expires_at=FAR)
    assert registering.value.details == refreshing.value.details == {"wipe": True}


def test_a_refresh_secret_used_twice_ends_every_session_of_the_device(
    store: SqlStore,
) -> None:
    owner = _user(store)
    store.register_device(owner, "d-tab", "tablet", "h-1", refresh_expires_at=FAR)
    before = store.find_device("d-tab")
    assert store.refresh_device("d-tab", "h-1", "h-2", expires_at=FAR).id == "d-tab"
    with pytest.raises(Unauthorized) as reused:
        store.refresh_device("d-tab", "h-1", "h-3", expires_at=FAR)  # the copy
    assert reused.value.details == {"reason": "refresh_reused"}
    after = store.find_device("d-tab")
    assert before is not None and after is not None
    assert after.token_gen > before.token_gen  # tokens issued before stop
    with pytest.raises(Unauthorized):  # and the genuine holder logs in again too
        store.refresh_device("d-tab", "h-2", "h-4", expires_at=FAR)


def test_an_expired_or_unknown_refresh_secret_is_refused(store: SqlStore) -> None:
    owner = _user(store)
    store.register_device(owner, "d-tab", "tablet", "h-1", refresh_expires_at=1)
    with pytest.raises(Unauthorized) as expired:
        store.refresh_device("d-tab", "h-1", "h-2", expires_at=FAR)
    assert expired.value.details == {"reason": "expired"}
    with pytest.raises(Unauthorized, match="unknown refresh token"):
        store.refresh_device("d-nobody", "h-1", "h-2", expires_at=FAR)


def test_a_disabled_users_device_cannot_refresh(store: SqlStore) -> None:
    """Disabling clears the devices' refresh secrets, so the secret is refused as replaced."""
    owner = _user(store)
    store.register_device(owner, "d-tab", "tablet", "h-1", refresh_expires_at=FAR)
    store.set_user_disabled(owner, True)
    with pytest.raises(Unauthorized):
        store.refresh_device("d-tab", "h-1", "h-2", expires_at=FAR)
