"""``waystation audit list | verify | head``, and the admin commands that the trail records
(``users add``, ``users add --update``, ``devices revoke``), run against the database
directly on both engines, as an operator runs them."""

from __future__ import annotations

import getpass
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner, Result

from waystation.cli import app
from waystation.core.audit import AuditEvent
from waystation.core.schema import health_schema
from waystation.store import SqlStore, open_store
from waystation.store.audit import AuditFilter
from waystation.store.tables import audit_log, audit_scopes, meta


def waystation(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def opened(db_url: str) -> SqlStore:
    return open_store(db_url, health_schema())


def fill(db_url: str, n: int = 4) -> None:
    store = opened(db_url)
    try:
        for i in range(1, n + 1):
            store.audit(
                AuditEvent("auth.login", actor_user_id=f"u-{i}", details={"username": f"nurse{i}"})
            )
    finally:
        store.close()


def tamper(db_url: str, *statements: sa.Executable) -> None:
    store = opened(db_url)
    try:
        with store.db.write() as conn:
            for statement in statements:
                conn.execute(statement)
    finally:
        store.close()


def test_hole_9_cli_admin_actions_are_recorded_with_the_os_user(db_url: str) -> None:
    added = waystation(
        "users",
        "add",
        "nurse1",
        "--role",
        "health_worker",
        "--scope",
        "facility:f-1",
        "--password",
        "first-pw",
        "--db",
        db_url,
    )
    assert added.exit_code == 0, added.output
    updated = waystation(
        "users",
        "add",
        "nurse1",
        "--role",
        "admin",
        "--password",
        "second-pw",
        "--db",
        db_url,
        "--update",
    )
    assert updated.exit_code == 0, updated.output
    store = opened(db_url)
    try:
        user = store.find_user(username="nurse1")
        assert user is not None
        assert store.add_device("d-lost", user.id, "tablet", "refresh-hash", refresh_expires_at=0)
        revoked = waystation("devices", "revoke", "d-lost", "--wipe", "--db", db_url)
        assert revoked.exit_code == 0, revoked.output
        entries = store.list_audit(AuditFilter(user_id="cli"), limit=100).entries
    finally:
        store.close()
    assert [e["action"] for e in entries] == ["user.add", "user.update", "device.revoke"]
    me = getpass.getuser()
    add, update, revoke = entries
    assert add["target"] == update["target"] == f"user:{user.id}"
    assert add["details"] == {
        "os_user": me,
        "username": "nurse1",
        "role": "health_worker",
        "scopes": ["facility:f-1"],
    }
    assert update["details"] == {
        "os_user": me,
        "username": "nurse1",
        "role": "admin",
        "scopes": [],
        "password_changed": True,
        "sessions_ended": True,
        "before": {"role": "health_worker", "scopes": ["facility:f-1"]},
    }
    assert revoke["target"] == "device:d-lost"
    assert revoke["details"] == {"os_user": me, "wipe": True, "owner": user.id}
    assert "pw" not in str([e["details"] for e in entries])  # no password, no hash


def test_hole_9_audit_verify_exits_1_naming_the_first_bad_entry(db_url: str) -> None:
    fill(db_url)
    intact = waystation("audit", "verify", "--db", db_url)
    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output and "4 entries" in intact.output
    head = waystation("audit", "head", "--db", db_url)
    assert head.exit_code == 0
    assert head.output.strip().startswith("4:")
    tamper(
        db_url,
        sa.update(audit_log)
        .where(audit_log.c.id == 2)
        .values(details='{"username":"someone-else"}'),
    )
    broken = waystation("audit", "verify", "--db", db_url)
    assert broken.exit_code == 1
    assert "entry 2" in broken.output
    assert waystation("audit", "verify", "--db", db_url, "--head", "nonsense").exit_code == 2


def test_hole_9_audit_verify_against_a_kept_head_catches_a_rewritten_tail(db_url: str) -> None:
    fill(db_url)
    kept = waystation("audit", "head", "--db", db_url).output.strip()
    store = opened(db_url)
    second = store.list_audit(AuditFilter(), limit=2).entries[1]["hash"]
    store.close()
    tamper(
        db_url,
        sa.delete(audit_scopes).where(audit_scopes.c.audit_id > 2),
        sa.delete(audit_log).where(audit_log.c.id > 2),
        sa.update(meta).where(meta.c.key == "audit_head").values(value=f"2:{second}"),
    )
    assert waystation("audit", "verify", "--db", db_url).exit_code == 0  # consistent in itself
    against = waystation("audit", "verify", "--db", db_url, "--head", kept)
    assert against.exit_code == 1
    assert "entry 4" in against.output


def test_audit_list_filters_by_user_name_device_scope_action_and_time(db_url: str) -> None:
    store = opened(db_url)
    try:
        nurse = store.add_user("nurse1", "hash", "health_worker", ["facility:f-1"])
        store.audit(
            AuditEvent(
                "sync.pull",
                nurse.id,
                "d-tab",
                "10.0.0.5",
                details={"count": 3},
                scopes=("facility:f-1", "patient:p-1"),
            )
        )
        store.audit(AuditEvent("sync.push", nurse.id, "d-tab", "10.0.0.5", details={"ops": 1}))
        store.audit(
            AuditEvent("sync.pull", "u-other", "d-other", "10.0.0.6", scopes=("patient:p-2",))
        )
    finally:
        store.close()
    listed = waystation("audit", "list", "--db", db_url, "--user", "nurse1")
    assert listed.exit_code == 0, listed.output
    assert "sync.pull" in listed.output and "sync.push" in listed.output
    assert "nurse1" in listed.output and "patient:p-1" in listed.output
    assert "d-other" not in listed.output
    by_scope = waystation("audit", "list", "--db", db_url, "--scope", "patient:p-2")
    assert "d-other" in by_scope.output and "d-tab" not in by_scope.output
    by_action = waystation(
        "audit", "list", "--db", db_url, "--action", "sync.push", "--device", "d-tab"
    )
    assert "sync.push" in by_action.output and "sync.pull" not in by_action.output
    later = waystation("audit", "list", "--db", db_url, "--since", "2999-01-01T00:00:00Z")
    assert later.exit_code == 0 and "sync.p" not in later.output
    assert waystation("audit", "list", "--db", db_url, "--user", "nobody").exit_code == 2
    assert waystation("audit", "list", "--db", db_url, "--since", "yesterday").exit_code == 2


def test_every_audit_command_has_help_and_is_in_the_operations_guide() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for command, options in {
        "list": ("--db", "--user", "--device", "--scope", "--action", "--since", "--until"),
        "verify": ("--db", "--head"),
        "head": ("--db",),
    }.items():
        result = waystation("audit", command, "--help")
        assert result.exit_code == 0, result.output
        for option in options:
            assert option in result.output, (command, option)
        assert f"waystation audit {command}" in guide
