"""reference indexes hold only the rows that name a record

A record's references (an item's hazard, a person's team) are mostly empty in imported data;
an index entry for every empty one cost each bulk insert its upkeep and bought no lookup, since
the register only ever looks a reference up by the record it names. Both SQLite and PostgreSQL
use a partial index ``WHERE ref IS NOT NULL`` for ``ref = ...`` and ``ref IN (...)``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Record table → its reference columns with an index (as in 0001).
REFERENCES = {
    "accident": ("admin_area_id", "hazard_id"),
    "activity": ("hazard_id", "organisation_id", "task_id"),
    "admin_area": ("parent_id",),
    "certification": ("course_id", "person_id"),
    "dog": ("handler_id", "organisation_id", "team_id"),
    "eo_item": ("activity_id", "admin_area_id", "hazard_id", "organisation_id"),
    "eore_session": ("admin_area_id", "organisation_id"),
    "hazardous_area": ("admin_area_id", "organisation_id"),
    "machine": ("organisation_id", "team_id"),
    "organisation": ("parent_id",),
    "person": ("organisation_id", "team_id"),
    "place": ("admin_area_id",),
    "qm_visit": ("activity_id", "hazard_id", "organisation_id", "team_id"),
    "task": ("hazard_id", "organisation_id"),
    "team": ("organisation_id",),
    "training_course": ("provider_id",),
    "victim": ("accident_id",),
}


def _recreate(partial: bool) -> None:
    for table, columns in REFERENCES.items():
        for column in columns:
            name = f"ix_{table}_{column}"
            named = sa.text(f"{column} IS NOT NULL") if partial else None
            op.drop_index(name, table_name=table)
            op.create_index(name, table, [column], sqlite_where=named, postgresql_where=named)


def upgrade() -> None:
    _recreate(partial=True)


def downgrade() -> None:
    _recreate(partial=False)
