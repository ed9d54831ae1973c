"""the register's identity, read by server processes with the views' generations

Server processes keep map tiles, envelopes and features while the generations of the views
they read stay put. Every register counts its generations from 0, so another register put
where one was (a file copied or renamed over it, a schema emptied and made again) could stand
at the generations a process last read, and be served what the process kept of the first.
A random identity, written once here (for a new register, when it is made), tells them apart.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 12:00:00
"""

import uuid

import sqlalchemy as sa
from alembic import op

from safeground.storage import gpkg

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DESCRIPTION = "Which register this is, at random (server caches compare it)"


def upgrade() -> None:
    table = op.create_table(
        "register_identity",
        sa.Column("identity", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("identity"),
    )
    op.bulk_insert(table, [{"identity": uuid.uuid4().hex}])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        gpkg.register_layer(bind, "register_identity", None, DESCRIPTION)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("DELETE FROM gpkg_contents WHERE table_name = 'register_identity'")
    op.drop_table("register_identity")
