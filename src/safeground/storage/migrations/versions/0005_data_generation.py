"""the data generation: a counter of writes to the register's views

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 21:00:00
"""

import sqlalchemy as sa
from alembic import op

from safeground.storage import gpkg

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DESCRIPTION = "How many writes the register's views have had (server caches compare it)"


def upgrade() -> None:
    table = op.create_table(
        "data_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        gpkg.register_layer(bind, "data_generation", None, DESCRIPTION)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("DELETE FROM gpkg_contents WHERE table_name = 'data_generation'")
    op.drop_table("data_generation")
