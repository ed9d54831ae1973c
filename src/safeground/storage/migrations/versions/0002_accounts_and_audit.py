"""accounts, API tokens, web sessions and the audit log

These tables are deliberately not registered in gpkg_contents: password hashes and the audit
log are not layers a GIS user should see.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import safeground.storage.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("created_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("disabled_at", safeground.storage.types.Timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("username"),
    )
    op.create_table(
        "api_token",
        sa.Column("token_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("created_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("revoked_at", safeground.storage.types.Timestamp(), nullable=True),
        sa.ForeignKeyConstraint(["username"], ["account.username"]),
        sa.PrimaryKeyConstraint("token_id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_token_username"), ["username"], unique=False)

    op.create_table(
        "web_session",
        sa.Column("session_hash", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("created_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("expires_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.ForeignKeyConstraint(["username"], ["account.username"]),
        sa.PrimaryKeyConstraint("session_hash"),
    )
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_session_username"), ["username"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("audit_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("detail", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("client", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("audit_id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_login", ["action", "username", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_login")
    op.drop_table("audit_log")
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_session_username"))
    op.drop_table("web_session")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_username"))
    op.drop_table("api_token")
    op.drop_table("account")
