"""initial register schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 16:37:06.085636
"""

import sqlalchemy as sa
from alembic import op

import safeground.storage.types
from safeground.storage import gpkg

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "accident",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("accident_type", sa.Text(), nullable=True),
        sa.Column("accident_date", sa.Date(), nullable=True),
        sa.Column("date_precision", sa.Text(), nullable=True),
        sa.Column("geometry", safeground.storage.types.Geometry("POINT"), nullable=True),
        sa.Column("location_known", sa.Boolean(), nullable=True),
        sa.Column("hazard_id", sa.Text(), nullable=True),
        sa.Column("admin_area_id", sa.Text(), nullable=True),
        sa.Column("place_name", sa.Text(), nullable=True),
        sa.Column("device", sa.Text(), nullable=True),
        sa.Column("trigger", sa.Text(), nullable=True),
        sa.Column("activity_at_time", sa.Text(), nullable=True),
        sa.Column("area_type", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("accident", schema=None) as batch_op:
        batch_op.create_index("ix_accident_admin_area_id", ["admin_area_id"], unique=False)
        batch_op.create_index("ix_accident_hazard_id", ["hazard_id"], unique=False)

    op.create_table(
        "accreditation",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("subject_type", sa.Text(), nullable=True),
        sa.Column("subject_id", sa.Text(), nullable=True),
        sa.Column("activity_types", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("issued", sa.Date(), nullable=True),
        sa.Column("expires", sa.Date(), nullable=True),
        sa.Column("suspended", sa.Boolean(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    op.create_table(
        "activity",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("hazard_id", sa.Text(), nullable=True),
        sa.Column("activity_type", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("task_id", sa.Text(), nullable=True),
        sa.Column("team_ids", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("dog_ids", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("machine_ids", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("clearance_depth_cm", sa.Double(), nullable=True),
        sa.Column("processed", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("evidence_found", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.create_index("ix_activity_hazard_id", ["hazard_id"], unique=False)
        batch_op.create_index("ix_activity_organisation_id", ["organisation_id"], unique=False)
        batch_op.create_index("ix_activity_task_id", ["task_id"], unique=False)

    op.create_table(
        "admin_area",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("parent_id", sa.Text(), nullable=True),
        sa.Column("alternate_names", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("geometry", safeground.storage.types.Geometry("GEOMETRY"), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("admin_area", schema=None) as batch_op:
        batch_op.create_index("ix_admin_area_parent_id", ["parent_id"], unique=False)

    op.create_table(
        "attachment",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("target_id", sa.Text(), nullable=True),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("media_type", sa.Text(), nullable=True),
        sa.Column("sha256", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    op.create_table(
        "blob",
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "certification",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("person_id", sa.Text(), nullable=True),
        sa.Column("course_id", sa.Text(), nullable=True),
        sa.Column("qualification", sa.Text(), nullable=True),
        sa.Column("issued", sa.Date(), nullable=True),
        sa.Column("expires", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("certification", schema=None) as batch_op:
        batch_op.create_index("ix_certification_course_id", ["course_id"], unique=False)
        batch_op.create_index("ix_certification_person_id", ["person_id"], unique=False)

    op.create_table(
        "dog",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("team_id", sa.Text(), nullable=True),
        sa.Column("handler_id", sa.Text(), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("dog", schema=None) as batch_op:
        batch_op.create_index("ix_dog_handler_id", ["handler_id"], unique=False)
        batch_op.create_index("ix_dog_organisation_id", ["organisation_id"], unique=False)
        batch_op.create_index("ix_dog_team_id", ["team_id"], unique=False)

    op.create_table(
        "eo_item",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("found_date", sa.Date(), nullable=True),
        sa.Column("date_precision", sa.Text(), nullable=True),
        sa.Column("hazard_id", sa.Text(), nullable=True),
        sa.Column("activity_id", sa.Text(), nullable=True),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("geometry", safeground.storage.types.Geometry("POINT"), nullable=True),
        sa.Column("depth_cm", sa.Double(), nullable=True),
        sa.Column("condition", sa.Text(), nullable=True),
        sa.Column("disposal", sa.Text(), nullable=True),
        sa.Column("place_name", sa.Text(), nullable=True),
        sa.Column("admin_area_id", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("eo_item", schema=None) as batch_op:
        batch_op.create_index("ix_eo_item_activity_id", ["activity_id"], unique=False)
        batch_op.create_index("ix_eo_item_admin_area_id", ["admin_area_id"], unique=False)
        batch_op.create_index("ix_eo_item_hazard_id", ["hazard_id"], unique=False)
        batch_op.create_index("ix_eo_item_organisation_id", ["organisation_id"], unique=False)

    op.create_table(
        "eore_session",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("session_date", sa.Date(), nullable=True),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("place_name", sa.Text(), nullable=True),
        sa.Column("admin_area_id", sa.Text(), nullable=True),
        sa.Column("geometry", safeground.storage.types.Geometry("POINT"), nullable=True),
        sa.Column("method", sa.Text(), nullable=True),
        sa.Column("audience", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("beneficiaries", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("materials", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("eore_session", schema=None) as batch_op:
        batch_op.create_index("ix_eore_session_admin_area_id", ["admin_area_id"], unique=False)
        batch_op.create_index("ix_eore_session_organisation_id", ["organisation_id"], unique=False)

    op.create_table(
        "hazard_change",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hazard_id", sa.Text(), nullable=False),
        sa.Column("changed_on", sa.Date(), nullable=False),
        sa.Column("attribute", sa.Text(), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("fid"),
    )
    with op.batch_alter_table("hazard_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hazard_change_hazard_id"), ["hazard_id"], unique=False)

    op.create_table(
        "hazardous_area",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("classification", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("admin_area_id", sa.Text(), nullable=True),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("evidence", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("reliability", sa.Integer(), nullable=True),
        sa.Column("source_reliability", sa.Text(), nullable=True),
        sa.Column("confirmed", sa.Text(), nullable=True),
        sa.Column("contamination", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("ordnance_classification", sa.Text(), nullable=True),
        sa.Column("geometry", safeground.storage.types.Geometry("GEOMETRY"), nullable=True),
        sa.Column("benchmark", sa.Text(), nullable=True),
        sa.Column("reference_point", sa.Text(), nullable=True),
        sa.Column("estimated_area_m2", sa.Double(), nullable=True),
        sa.Column("blockages", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("beneficiaries", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("expected_returnees", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("cancelled_m2", sa.Double(), nullable=True),
        sa.Column("reduced_m2", sa.Double(), nullable=True),
        sa.Column("cleared_m2", sa.Double(), nullable=True),
        sa.Column("released_m2", sa.Double(), nullable=True),
        sa.Column("remaining_m2", sa.Double(), nullable=True),
        sa.Column("status_date", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("hazardous_area", schema=None) as batch_op:
        batch_op.create_index("ix_hazardous_area_admin_area_id", ["admin_area_id"], unique=False)
        batch_op.create_index(
            "ix_hazardous_area_organisation_id", ["organisation_id"], unique=False
        )

    op.create_table(
        "id_sequence",
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix"),
    )
    op.create_table(
        "link",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("from_id", sa.Text(), nullable=True),
        sa.Column("to_id", sa.Text(), nullable=True),
        sa.Column("relation", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    op.create_table(
        "machine",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("serial_number", sa.Text(), nullable=True),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("team_id", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("machine", schema=None) as batch_op:
        batch_op.create_index("ix_machine_organisation_id", ["organisation_id"], unique=False)
        batch_op.create_index("ix_machine_team_id", ["team_id"], unique=False)

    op.create_table(
        "organisation",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("acronym", sa.Text(), nullable=True),
        sa.Column("organisation_type", sa.Text(), nullable=True),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("parent_id", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("organisation", schema=None) as batch_op:
        batch_op.create_index("ix_organisation_parent_id", ["parent_id"], unique=False)

    op.create_table(
        "person",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("team_id", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.create_index("ix_person_organisation_id", ["organisation_id"], unique=False)
        batch_op.create_index("ix_person_team_id", ["team_id"], unique=False)

    op.create_table(
        "place",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("alternate_names", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("population", sa.Integer(), nullable=True),
        sa.Column("admin_area_id", sa.Text(), nullable=True),
        sa.Column("admin_name", sa.Text(), nullable=True),
        sa.Column("geometry", safeground.storage.types.Geometry("POINT"), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("place", schema=None) as batch_op:
        batch_op.create_index("ix_place_admin_area_id", ["admin_area_id"], unique=False)

    op.create_table(
        "processed_land",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("activity_id", sa.Text(), nullable=False),
        sa.Column("piece", sa.Integer(), nullable=False),
        sa.Column("hazard_id", sa.Text(), nullable=False),
        sa.Column("land_type", sa.Text(), nullable=False),
        sa.Column("activity_type", sa.Text(), nullable=False),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("method", sa.Text(), nullable=True),
        sa.Column("asset", sa.Text(), nullable=True),
        sa.Column("technical_asset", sa.Boolean(), nullable=True),
        sa.Column("depth_cm", sa.Double(), nullable=True),
        sa.Column("date_of_information", sa.Date(), nullable=False),
        sa.Column("area_m2", sa.Double(), nullable=False),
        sa.Column("credited_m2", sa.Double(), nullable=False),
        sa.Column("geometry", safeground.storage.types.Geometry("GEOMETRY"), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("activity_id", "piece"),
    )
    with op.batch_alter_table("processed_land", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processed_land_activity_id"), ["activity_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_processed_land_hazard_id"), ["hazard_id"], unique=False
        )

    op.create_table(
        "qm_visit",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("visit_type", sa.Text(), nullable=True),
        sa.Column("visit_date", sa.Date(), nullable=True),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("team_id", sa.Text(), nullable=True),
        sa.Column("hazard_id", sa.Text(), nullable=True),
        sa.Column("activity_id", sa.Text(), nullable=True),
        sa.Column("sampled_area_m2", sa.Double(), nullable=True),
        sa.Column("non_conformities", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("qm_visit", schema=None) as batch_op:
        batch_op.create_index("ix_qm_visit_activity_id", ["activity_id"], unique=False)
        batch_op.create_index("ix_qm_visit_hazard_id", ["hazard_id"], unique=False)
        batch_op.create_index("ix_qm_visit_organisation_id", ["organisation_id"], unique=False)
        batch_op.create_index("ix_qm_visit_team_id", ["team_id"], unique=False)

    op.create_table(
        "report",
        sa.Column("report_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("record_type", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("date_of_information", sa.Date(), nullable=False),
        sa.Column("changes", safeground.storage.types.JsonValue(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("submitted_at", safeground.storage.types.Timestamp(), nullable=True),
        sa.Column("reviewed_by", sa.Text(), nullable=True),
        sa.Column("reviewed_at", safeground.storage.types.Timestamp(), nullable=True),
        sa.Column("review_reason", sa.Text(), nullable=True),
        sa.Column("approval_seq", sa.Integer(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.Column("import_batch", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("report_id"),
        sa.UniqueConstraint("approval_seq"),
    )
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_record_id"), ["record_id"], unique=False)
        batch_op.create_index("ix_report_source", ["source", "source_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_status"), ["status"], unique=False)

    op.create_table(
        "setting",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", safeground.storage.types.JsonValue(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "task",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("hazard_id", sa.Text(), nullable=True),
        sa.Column("activity_type", sa.Text(), nullable=True),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("team_ids", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("dog_ids", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("machine_ids", safeground.storage.types.JsonValue(), nullable=True),
        sa.Column("planned_start", sa.Date(), nullable=True),
        sa.Column("planned_end", sa.Date(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("geometry", safeground.storage.types.Geometry("GEOMETRY"), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index("ix_task_hazard_id", ["hazard_id"], unique=False)
        batch_op.create_index("ix_task_organisation_id", ["organisation_id"], unique=False)

    op.create_table(
        "team",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("organisation_id", sa.Text(), nullable=True),
        sa.Column("team_type", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("team", schema=None) as batch_op:
        batch_op.create_index("ix_team_organisation_id", ["organisation_id"], unique=False)

    op.create_table(
        "training_course",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("provider_id", sa.Text(), nullable=True),
        sa.Column("place_name", sa.Text(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("participants", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("training_course", schema=None) as batch_op:
        batch_op.create_index("ix_training_course_provider_id", ["provider_id"], unique=False)

    op.create_table(
        "victim",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("accident_id", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("sex", sa.Text(), nullable=True),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("victim_status", sa.Text(), nullable=True),
        sa.Column("activity", sa.Text(), nullable=True),
        sa.Column("injuries", sa.Text(), nullable=True),
        sa.Column("follow_up_needs", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", safeground.storage.types.Timestamp(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fid"),
        sa.UniqueConstraint("record_id"),
    )
    with op.batch_alter_table("victim", schema=None) as batch_op:
        batch_op.create_index("ix_victim_accident_id", ["accident_id"], unique=False)

    op.create_table(
        "victim_personal",
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("record_id"),
    )
    op.create_table(
        "report_personal",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("changes", safeground.storage.types.JsonValue(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["report.report_id"],
        ),
        sa.PrimaryKeyConstraint("report_id"),
    )

    _spatial_setup()


# Frozen at this revision: the layers a GIS sees, their geometry type (None: attribute table).
LAYERS = {
    "admin_area": ("GEOMETRY", "Administrative areas (gazetteer)"),
    "place": ("POINT", "Settlements (gazetteer)"),
    "hazardous_area": ("GEOMETRY", "Hazardous areas (SHA/CHA) with the land-release ledger"),
    "processed_land": ("GEOMETRY", "Processed polygons: cancelled, reduced, cleared"),
    "eo_item": ("POINT", "Explosive ordnance items found"),
    "accident": ("POINT", "Accidents"),
    "eore_session": ("POINT", "Risk education sessions"),
    "task": ("GEOMETRY", "Tasks: planned work on hazardous areas"),
    "activity": (None, "Land release activities"),
    "hazard_change": (None, "Status and classification changes of hazardous areas"),
    "organisation": (None, "Organisations"),
    "victim": (None, "Victims (without personal data)"),
    "team": (None, "Teams"),
    "person": (None, "Personnel"),
    "dog": (None, "Mine detection dogs"),
    "machine": (None, "Demining machines"),
    "training_course": (None, "Training courses"),
    "certification": (None, "Certifications of personnel"),
    "accreditation": (None, "Accreditations"),
    "qm_visit": (None, "Quality management visits"),
    "link": (None, "Links between records"),
    "attachment": (None, "Attachments"),
}


def _spatial_setup() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name, (geometry_type, _) in LAYERS.items():
            if geometry_type:
                op.create_index(f"ix_{name}_geometry", name, ["geometry"], postgresql_using="gist")
        return
    gpkg.create_core(bind)
    for name, (geometry_type, description) in LAYERS.items():
        gpkg.register_layer(bind, name, geometry_type, description)


def downgrade() -> None:
    op.drop_table("report_personal")
    op.drop_table("victim_personal")
    with op.batch_alter_table("victim", schema=None) as batch_op:
        batch_op.drop_index("ix_victim_accident_id")

    op.drop_table("victim")
    with op.batch_alter_table("training_course", schema=None) as batch_op:
        batch_op.drop_index("ix_training_course_provider_id")

    op.drop_table("training_course")
    with op.batch_alter_table("team", schema=None) as batch_op:
        batch_op.drop_index("ix_team_organisation_id")

    op.drop_table("team")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_organisation_id")
        batch_op.drop_index("ix_task_hazard_id")

    op.drop_table("task")
    op.drop_table("setting")
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_status"))
        batch_op.drop_index("ix_report_source")
        batch_op.drop_index(batch_op.f("ix_report_record_id"))

    op.drop_table("report")
    with op.batch_alter_table("qm_visit", schema=None) as batch_op:
        batch_op.drop_index("ix_qm_visit_team_id")
        batch_op.drop_index("ix_qm_visit_organisation_id")
        batch_op.drop_index("ix_qm_visit_hazard_id")
        batch_op.drop_index("ix_qm_visit_activity_id")

    op.drop_table("qm_visit")
    with op.batch_alter_table("processed_land", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_land_hazard_id"))
        batch_op.drop_index(batch_op.f("ix_processed_land_activity_id"))

    op.drop_table("processed_land")
    with op.batch_alter_table("place", schema=None) as batch_op:
        batch_op.drop_index("ix_place_admin_area_id")

    op.drop_table("place")
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_index("ix_person_team_id")
        batch_op.drop_index("ix_person_organisation_id")

    op.drop_table("person")
    with op.batch_alter_table("organisation", schema=None) as batch_op:
        batch_op.drop_index("ix_organisation_parent_id")

    op.drop_table("organisation")
    with op.batch_alter_table("machine", schema=None) as batch_op:
        batch_op.drop_index("ix_machine_team_id")
        batch_op.drop_index("ix_machine_organisation_id")

    op.drop_table("machine")
    op.drop_table("link")
    op.drop_table("id_sequence")
    with op.batch_alter_table("hazardous_area", schema=None) as batch_op:
        batch_op.drop_index("ix_hazardous_area_organisation_id")
        batch_op.drop_index("ix_hazardous_area_admin_area_id")

    op.drop_table("hazardous_area")
    with op.batch_alter_table("hazard_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hazard_change_hazard_id"))

    op.drop_table("hazard_change")
    with op.batch_alter_table("eore_session", schema=None) as batch_op:
        batch_op.drop_index("ix_eore_session_organisation_id")
        batch_op.drop_index("ix_eore_session_admin_area_id")

    op.drop_table("eore_session")
    with op.batch_alter_table("eo_item", schema=None) as batch_op:
        batch_op.drop_index("ix_eo_item_organisation_id")
        batch_op.drop_index("ix_eo_item_hazard_id")
        batch_op.drop_index("ix_eo_item_admin_area_id")
        batch_op.drop_index("ix_eo_item_activity_id")

    op.drop_table("eo_item")
    with op.batch_alter_table("dog", schema=None) as batch_op:
        batch_op.drop_index("ix_dog_team_id")
        batch_op.drop_index("ix_dog_organisation_id")
        batch_op.drop_index("ix_dog_handler_id")

    op.drop_table("dog")
    with op.batch_alter_table("certification", schema=None) as batch_op:
        batch_op.drop_index("ix_certification_person_id")
        batch_op.drop_index("ix_certification_course_id")

    op.drop_table("certification")
    op.drop_table("blob")
    op.drop_table("attachment")
    with op.batch_alter_table("admin_area", schema=None) as batch_op:
        batch_op.drop_index("ix_admin_area_parent_id")

    op.drop_table("admin_area")
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_task_id")
        batch_op.drop_index("ix_activity_organisation_id")
        batch_op.drop_index("ix_activity_hazard_id")

    op.drop_table("activity")
    op.drop_table("accreditation")
    with op.batch_alter_table("accident", schema=None) as batch_op:
        batch_op.drop_index("ix_accident_hazard_id")
        batch_op.drop_index("ix_accident_admin_area_id")

    op.drop_table("accident")
