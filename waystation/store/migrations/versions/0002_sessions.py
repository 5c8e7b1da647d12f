"""sessions: token generations, disabled users, refresh expiry and reuse, login throttle

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 10:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_gen", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("disabled_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_gen", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("prev_refresh_hash", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("refresh_expires_at", sa.BigInteger(), nullable=True))
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failure_at", sa.BigInteger(), nullable=False),
        sa.Column("blocked_until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("refresh_expires_at")
        batch_op.drop_column("prev_refresh_hash")
        batch_op.drop_column("token_gen")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("token_gen")
