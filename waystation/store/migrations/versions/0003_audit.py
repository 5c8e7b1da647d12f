"""audit trail: hash-chained audit_log, its audit_scopes, the chain's head, and an index
of record_scopes by seq (the scopes of a pulled page in one range scan)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HEAD = "0:" + "0" * 64  # no entries yet; store/audit.py, ChainHead


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor_user_id", sa.String(length=64), nullable=True),
        sa.Column("actor_device_id", sa.String(length=64), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("audit_log_action", ["action", "id"], unique=False)
        batch_op.create_index("audit_log_at", ["at"], unique=False)
        batch_op.create_index("audit_log_device", ["actor_device_id", "id"], unique=False)
        batch_op.create_index("audit_log_user", ["actor_user_id", "id"], unique=False)

    op.create_table(
        "audit_scopes",
        sa.Column("audit_id", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("audit_id", "scope"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("audit_scopes", schema=None) as batch_op:
        batch_op.create_index("audit_scopes_scope", ["scope", "audit_id"], unique=False)

    with op.batch_alter_table("record_scopes", schema=None) as batch_op:
        batch_op.create_index("record_scopes_seq", ["seq", "collection", "scope"], unique=False)

    # The chain's head: the row every append locks (count and hash of the last entry).
    op.bulk_insert(
        sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text)),
        [{"key": "audit_head", "value": GENESIS_HEAD}],
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.execute(sa.text("DELETE FROM meta WHERE key = 'audit_head'"))
    with op.batch_alter_table("record_scopes", schema=None) as batch_op:
        batch_op.drop_index("record_scopes_seq")

    with op.batch_alter_table("audit_scopes", schema=None) as batch_op:
        batch_op.drop_index("audit_scopes_scope")

    op.drop_table("audit_scopes")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("audit_log_user")
        batch_op.drop_index("audit_log_device")
        batch_op.drop_index("audit_log_at")
        batch_op.drop_index("audit_log_action")

    op.drop_table("audit_log")
