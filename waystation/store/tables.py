"""Table definitions (SQLAlchemy Core), shared by the queries and the first migration.

Times are integer Unix milliseconds (portable, cheap to compare, percentile-friendly);
JSON documents are TEXT written with orjson, identical on both engines.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Small named integers allocated under a row lock: "seq" (the change sequence) and
# "purged_seq" (the highest seq whose tombstone was collected).
counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

# Server identity and settings that must survive restarts: signing key, last HLC, node id.
meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("collection", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("conflict", sa.Boolean, nullable=False),
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("clocks", sa.Text, nullable=False),
    sa.Column("deleted_clock", sa.String(100)),
    # {"v": {field: version of its last change}, "d": {field: device of its last change}}
    sa.Column("field_meta", sa.Text, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("records_seq", "seq", unique=True),
)

# record -> scope index, carrying the record's seq so a pull reads only the changes of the
# caller's scopes since its cursor (index scope, seq) before the page is cut; and the
# scopes of a page's records, for the audit trail, in one range scan (index seq, ...).
record_scopes = sa.Table(
    "record_scopes",
    metadata,
    sa.Column("collection", sa.String(64), primary_key=True),
    sa.Column("record_id", sa.String(128), primary_key=True),
    sa.Column("scope", sa.String(200), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Index("record_scopes_scope_seq", "scope", "seq"),
    sa.Index("record_scopes_seq", "seq", "collection", "scope"),
)

# Unique keys of live records; the primary key is the real unique index.
unique_keys = sa.Table(
    "unique_keys",
    metadata,
    sa.Column("collection", sa.String(64), primary_key=True),
    sa.Column("key_name", sa.String(200), primary_key=True),
    sa.Column("key_value", sa.String(1000), primary_key=True),
    sa.Column("record_id", sa.String(128), nullable=False),
    sa.Index("unique_keys_record", "collection", "record_id"),
)

# Every op received, re-sends included (duplicate = true): idempotency, audit, stats.
op_log = sa.Table(
    "op_log",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("op_id", sa.String(128), nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("device_id", sa.String(64)),
    sa.Column("collection", sa.String(64)),
    sa.Column("record_id", sa.String(128)),
    sa.Column("kind", sa.String(16)),
    sa.Column("hlc", sa.String(100)),
    sa.Column("effective_hlc", sa.String(100)),
    sa.Column("base_version", sa.Integer),
    sa.Column("fields", sa.Text),
    sa.Column("created_at_client", sa.BigInteger),
    sa.Column("received_at", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_code", sa.String(32)),
    sa.Column("result", sa.Text, nullable=False),
    sa.Column("duplicate", sa.Boolean, nullable=False),
    sa.Index(
        "op_log_first_receipt",
        "op_id",
        unique=True,
        sqlite_where=sa.text("duplicate = 0"),
        postgresql_where=sa.text("duplicate = false"),
    ),
    sa.Index("op_log_device_received", "device_id", "received_at"),
    sa.Index("op_log_received", "received_at"),
    sa.Index("op_log_record", "collection", "record_id"),
)

conflicts = sa.Table(
    "conflicts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("collection", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # MANUAL_REVIEW | UNIQUE_VIOLATION
    sa.Column("op_id", sa.String(128), nullable=False),
    sa.Column("op_kind", sa.String(16), nullable=False),
    sa.Column("hlc", sa.String(100), nullable=False),
    sa.Column("base_version", sa.Integer, nullable=False),
    sa.Column("server_fields", sa.Text, nullable=False),
    sa.Column("client_fields", sa.Text, nullable=False),
    sa.Column("existing_id", sa.String(128)),
    sa.Column("device_id", sa.String(64)),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | resolved
    sa.Column("resolution", sa.String(16)),
    sa.Column("resolved_by", sa.String(64)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("resolved_at", sa.BigInteger),
    sa.Index("conflicts_status", "status", "created_at"),
    sa.Index("conflicts_record", "collection", "record_id"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(200), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # Bumped to end every session of the user and of their devices at once (password
    # change, demotion, disable): tokens carry the generation they were issued under.
    sa.Column("token_gen", sa.Integer, nullable=False, server_default="0"),
    sa.Column("disabled_at", sa.BigInteger),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("refresh_hash", sa.String(128)),
    # The refresh secret it replaced: presented again, it means a stolen token (reuse).
    sa.Column("prev_refresh_hash", sa.String(128)),
    sa.Column("refresh_expires_at", sa.BigInteger),
    sa.Column("token_gen", sa.Integer, nullable=False, server_default="0"),
    sa.Column("revoked_at", sa.BigInteger),
    sa.Column("wipe", sa.Boolean, nullable=False),
    sa.Column("last_push_at", sa.BigInteger),
    sa.Column("last_pull_at", sa.BigInteger),
    sa.Index("devices_user", "user_id"),
)

# Failed logins per account ("account:<name>") and per client address ("address:<ip>"),
# shared by every server process; written only on failures (core/throttle.py decides).
login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("first_failure_at", sa.BigInteger, nullable=False),
    sa.Column("blocked_until", sa.BigInteger, nullable=False),
)

# The audit trail (store/audit.py): one hash-chained entry per recorded action, numbered
# 1, 2, 3, ... without gaps by the appending transaction (which holds the chain's head,
# meta['audit_head'], locked), so id order is chain order. Not collected.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("actor_user_id", sa.String(64)),
    sa.Column("actor_device_id", sa.String(64)),
    sa.Column("client_address", sa.String(64)),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("target", sa.String(300)),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("audit_log_user", "actor_user_id", "id"),
    sa.Index("audit_log_device", "actor_device_id", "id"),
    sa.Index("audit_log_action", "action", "id"),
    sa.Index("audit_log_at", "at"),
)

# The scopes of the records an entry concerned ("which devices received patient:p-1's
# records" is an index lookup on (scope, audit_id)); part of the entry's hash.
# (SQLite: WITHOUT ROWID, the primary key is the table: one b-tree less to write for each
# of the thousands of scopes a pulled page may name.)
audit_scopes = sa.Table(
    "audit_scopes",
    metadata,
    sa.Column("audit_id", sa.BigInteger, primary_key=True),
    sa.Column("scope", sa.String(200), primary_key=True),
    sa.Index("audit_scopes_scope", "scope", "audit_id"),
    sqlite_with_rowid=False,
)
