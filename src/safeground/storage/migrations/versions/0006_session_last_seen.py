"""sessions' last use, for the idle timeout

A session open at the upgrade counts as used when it was opened.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 22:00:00
"""

import sqlalchemy as sa
from alembic import op

import safeground.storage.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_seen_at", safeground.storage.types.Timestamp(), nullable=True)
        )
    op.execute("UPDATE web_session SET last_seen_at = created_at")
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.alter_column(
            "last_seen_at", existing_type=safeground.storage.types.Timestamp(), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_column("last_seen_at")
