"""risk covariates and risk scores

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 18:40:00
"""

import sqlalchemy as sa
from alembic import op

import safeground.storage.types
from safeground.storage import gpkg

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LAYERS = {
    "risk_covariate": "Covariate layers for risk maps (files kept in blob by SHA-256)",
    "risk_score": "Mean and max mapped risk of hazardous areas and tasks",
}


def upgrade() -> None:
    op.create_table(
        "risk_covariate",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("use", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("added_by", sa.Text(), nullable=False),
        sa.Column("added_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.ForeignKeyConstraint(["sha256"], ["blob.sha256"]),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "risk_score",
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("record_type", sa.Text(), nullable=False),
        sa.Column("mean_risk", sa.Double(), nullable=True),
        sa.Column("max_risk", sa.Double(), nullable=True),
        sa.Column("cells", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("map_sha256", sa.Text(), nullable=False),
        sa.Column("map_date", sa.Date(), nullable=False),
        sa.Column("attached_by", sa.Text(), nullable=False),
        sa.Column("attached_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("record_id"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name, description in LAYERS.items():
            gpkg.register_layer(bind, name, None, description)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in LAYERS:
            bind.exec_driver_sql("DELETE FROM gpkg_contents WHERE table_name = ?", (name,))
    op.drop_table("risk_score")
    op.drop_table("risk_covariate")
