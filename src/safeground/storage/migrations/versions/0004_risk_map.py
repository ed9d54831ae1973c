"""risk maps attached (path and SHA-256 of the file the web map draws)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 19:30:00
"""

import sqlalchemy as sa
from alembic import op

import safeground.storage.types
from safeground.storage import gpkg

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DESCRIPTION = "Risk maps attached: GeoTIFF path, SHA-256, model version and date"


def upgrade() -> None:
    op.create_table(
        "risk_map",
        sa.Column("map_sha256", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("map_date", sa.Date(), nullable=False),
        sa.Column("attached_by", sa.Text(), nullable=False),
        sa.Column("attached_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("map_sha256"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        gpkg.register_layer(bind, "risk_map", None, DESCRIPTION)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("DELETE FROM gpkg_contents WHERE table_name = 'risk_map'")
    op.drop_table("risk_map")
