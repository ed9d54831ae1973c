"""a generation per view, with where its recent changes were, instead of one for the register

Server processes keep each map layer's tiles, envelopes and features in memory. With one data
generation for the whole register, every approval (one item found in one village) dropped all
of them, in every process. Now each view a layer reads has its own generation, advanced only by
the writes that change it, and ``view_change`` says where each recent generation changed it
(the changed features' boxes), so that only the tiles there are drawn again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import safeground.storage.types
from safeground.storage import gpkg

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The views server processes follow (as ``storage.generations.TRACKED_VIEWS`` was then).
VIEWS = (
    "admin_area",
    "hazardous_area",
    "processed_land",
    "eo_item",
    "accident",
    "task",
    "risk_score",
)
DESCRIPTIONS = {
    "view_generation": "How many writes each view has had (server caches compare it)",
    "view_change": "Where each view's recent writes were (server caches redraw only there)",
}
OLD_DESCRIPTION = "How many writes the register's views have had (server caches compare it)"


def upgrade() -> None:
    generations = op.create_table(
        "view_generation",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(generations, [{"name": name, "generation": 0} for name in VIEWS])
    op.create_table(
        "view_change",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("boxes", safeground.storage.types.JsonValue(), nullable=True),
        sa.PrimaryKeyConstraint("name", "generation"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("DELETE FROM gpkg_contents WHERE table_name = 'data_generation'")
        for name, description in DESCRIPTIONS.items():
            gpkg.register_layer(bind, name, None, description)
    op.drop_table("data_generation")


def downgrade() -> None:
    table = op.create_table(
        "data_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in DESCRIPTIONS:
            bind.exec_driver_sql("DELETE FROM gpkg_contents WHERE table_name = ?", (name,))
        gpkg.register_layer(bind, "data_generation", None, OLD_DESCRIPTION)
    op.drop_table("view_change")
    op.drop_table("view_generation")
