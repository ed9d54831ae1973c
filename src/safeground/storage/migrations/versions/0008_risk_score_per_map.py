"""risk scores kept per risk map: primary key (record_id, map_sha256)

``risk_score`` kept one row per record, from the map attached last over it, so the map page
coloured hazardous areas with that map's scores whichever map was chosen. Each row already
names the map it came from (``map_sha256``), so every row is kept, under that map; the scores
an earlier map had for records a later map covered were replaced then and cannot be recovered
here: attaching that map again scores it anew.

Downgrading keeps the newest row of each record (what the table held before).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import safeground.storage.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = (
    "record_id",
    "record_type",
    "mean_risk",
    "max_risk",
    "cells",
    "model_version",
    "map_sha256",
    "map_date",
    "attached_by",
    "attached_at",
)
DESCRIPTION = {
    "upgrade": "Mean and max mapped risk of hazardous areas and tasks, per risk map (map_sha256)",
    "downgrade": "Mean and max mapped risk of hazardous areas and tasks",
}
# Rows of a record that a later map (or one of the same instant with a smaller SHA-256) also
# scored: those the table did not keep before this revision.
NOT_NEWEST = """
    DELETE FROM risk_score WHERE EXISTS (
        SELECT 1 FROM risk_score AS newer
        WHERE newer.record_id = risk_score.record_id
          AND (newer.attached_at > risk_score.attached_at
               OR (newer.attached_at = risk_score.attached_at
                   AND newer.map_sha256 < risk_score.map_sha256)))
"""


def _rebuild_sqlite(primary_key: tuple[str, ...]) -> None:
    """SQLite cannot change a primary key: the table is copied into one with the new key
    (its GeoPackage entry in gpkg_contents goes by name, and is kept)."""
    op.create_table(
        "risk_score_0008",
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
        sa.PrimaryKeyConstraint(*primary_key),
    )
    columns = ", ".join(COLUMNS)
    op.execute(f"INSERT INTO risk_score_0008 ({columns}) SELECT {columns} FROM risk_score")
    op.drop_table("risk_score")
    op.rename_table("risk_score_0008", "risk_score")


def _describe(bind: sa.Connection, direction: str) -> None:
    bind.exec_driver_sql(
        "UPDATE gpkg_contents SET description = ? WHERE table_name = 'risk_score'",
        (DESCRIPTION[direction],),
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _rebuild_sqlite(("record_id", "map_sha256"))
        _describe(bind, "upgrade")
    else:
        op.drop_constraint("risk_score_pkey", "risk_score", type_="primary")
        op.create_primary_key("risk_score_pkey", "risk_score", ["record_id", "map_sha256"])


def downgrade() -> None:
    bind = op.get_bind()
    op.execute(NOT_NEWEST)
    if bind.dialect.name == "sqlite":
        _rebuild_sqlite(("record_id",))
        _describe(bind, "downgrade")
    else:
        op.drop_constraint("risk_score_pkey", "risk_score", type_="primary")
        op.create_primary_key("risk_score_pkey", "risk_score", ["record_id"])
