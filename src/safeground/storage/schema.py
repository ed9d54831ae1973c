"""The register's tables, derived from the domain's record models.

Each record type has a table holding its *current view* (what approved reports add up to), which
is also the GeoPackage layer a QGIS user opens. The reports themselves, the only source of truth,
live in ``report``; personal data in their own tables.
"""

from __future__ import annotations

import types
import typing
from datetime import date
from enum import Enum
from typing import Any

from pydantic import BaseModel
from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

from safeground.domain.records import RECORD_TYPES, Record
from safeground.storage.types import Geometry, JsonValue, Timestamp

metadata = MetaData()

report = Table(
    "report",
    metadata,
    Column("report_id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", Text, nullable=False, index=True),
    # Indexed for data entry's reads, which find whose each task is from its reports.
    Column("record_type", Text, nullable=False, index=True),
    Column("operation", Text, nullable=False),
    Column("date_of_information", Date, nullable=False),
    Column("changes", JsonValue, nullable=False),
    Column("author", Text, nullable=False),
    Column("reason", Text),
    Column("status", Text, nullable=False, index=True),
    Column("created_at", Timestamp, nullable=False),
    Column("submitted_at", Timestamp),
    Column("reviewed_by", Text),
    Column("reviewed_at", Timestamp),
    Column("review_reason", Text),
    Column("approval_seq", Integer, unique=True),
    Column("source", Text),
    Column("source_key", Text),
    Column("import_batch", Text),
    Index("ix_report_source", "source", "source_key"),
)

# Personal fields of a report (victims' names, phones, addresses), apart from everything else.
report_personal = Table(
    "report_personal",
    metadata,
    Column("report_id", Integer, ForeignKey("report.report_id"), primary_key=True),
    Column("changes", JsonValue, nullable=False),
)

id_sequence = Table(
    "id_sequence",
    metadata,
    Column("prefix", Text, primary_key=True),
    Column("last", Integer, nullable=False),
)

# One row per view that server processes keep in memory (map layers' tiles, envelopes and
# features; see ``storage.generations``): how many writes have changed it. Not content: never
# dumped.
view_generation = Table(
    "view_generation",
    metadata,
    Column("name", Text, primary_key=True),
    Column("generation", Integer, nullable=False),
)

# Where each recent generation of a view changed it: the lon/lat boxes of the changed features'
# old and new geometries (JSON ``[[minx, miny, maxx, maxy], ...]``), or NULL for anywhere. Only
# the last generations are kept (``generations.CHANGES_KEPT``).
view_change = Table(
    "view_change",
    metadata,
    Column("name", Text, primary_key=True),
    Column("generation", Integer, primary_key=True),
    Column("boxes", JsonValue),
)

# Which register this is: a random identity written once, when it is made (migration 0011).
# Server processes read it with the views' generations, which every register counts from 0, to
# tell another register put where one was from the one they read before. Not content: never
# dumped (a restored register keeps its own).
register_identity = Table(
    "register_identity",
    metadata,
    Column("identity", Text, primary_key=True),
)

setting = Table(
    "setting",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", JsonValue, nullable=False),
)

blob = Table(
    "blob",
    metadata,
    Column("sha256", Text, primary_key=True),
    Column("content", LargeBinary, nullable=False),
)

# Geometry type of each layer. Hazard and task polygons may be multi-part, so they are declared
# GEOMETRY rather than changing what a surveyor drew.
LAYER_GEOMETRY = {
    "admin_area": "GEOMETRY",
    "place": "POINT",
    "hazardous_area": "GEOMETRY",
    "eo_item": "POINT",
    "accident": "POINT",
    "eore_session": "POINT",
    "task": "GEOMETRY",
    "processed_land": "GEOMETRY",
}

# Columns the ledger adds to a hazardous area's current view.
HAZARD_LEDGER_COLUMNS = (
    "cancelled_m2",
    "reduced_m2",
    "cleared_m2",
    "released_m2",
    "remaining_m2",
)


def unwrap(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` to ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        else:
            return annotation


def column_type(name: str, annotation: Any, record_type: str) -> TypeEngine[Any]:
    kind = unwrap(annotation)
    if isinstance(kind, type) and issubclass(kind, BaseGeometry):
        if name == "geometry":
            return Geometry(LAYER_GEOMETRY[record_type])
        return Text()  # secondary points (benchmark, reference point) as WKT
    if typing.get_origin(kind) in (list, dict) or (
        isinstance(kind, type) and issubclass(kind, BaseModel)
    ):
        return JsonValue()
    if kind is bool:
        return Boolean()
    if kind is int:
        return Integer()
    if kind is float:
        return Double()
    if kind is date:
        return Date()
    if kind is str or (isinstance(kind, type) and issubclass(kind, Enum)):
        return Text()
    raise TypeError(f"{record_type}.{name}: no column type for {annotation!r}")


def stored_fields(model: type[Record]) -> list[str]:
    """The model's fields kept in its table (personal fields live apart)."""
    return [f for f in model.model_fields if f not in model.personal_fields]


def _record_table(model: type[Record]) -> Table:
    name = model.record_type
    columns: list[Any] = [
        Column("fid", Integer, primary_key=True, autoincrement=True),
        Column("record_id", Text, nullable=False, unique=True),
    ]
    for field_name in stored_fields(model):
        annotation = model.model_fields[field_name].annotation
        columns.append(Column(field_name, column_type(field_name, annotation, name)))
    if name == "hazardous_area":
        columns += [Column(c, Double) for c in HAZARD_LEDGER_COLUMNS]
        columns.append(Column("status_date", Date))
    columns += [
        Column("version", Integer, nullable=False),
        Column("updated_at", Timestamp, nullable=False),
        Column("last_report_id", Integer, nullable=False),
        Column("source", Text),
        Column("source_key", Text),
    ]
    table = Table(name, metadata, *columns)
    if "geometry" in table.c:
        Index(f"ix_{name}_geometry", table.c.geometry, postgresql_using="gist").ddl_if(
            dialect="postgresql"
        )
    for ref in model.references:
        if ref in table.c and not ref.endswith("_ids"):
            # Only rows that name a record: most leave a reference empty (imported items name
            # no hazard), and every empty entry cost a bulk import its share of index upkeep.
            named = table.c[ref].is_not(None)
            Index(f"ix_{name}_{ref}", table.c[ref], sqlite_where=named, postgresql_where=named)
    return table


record_tables: dict[str, Table] = {
    name: _record_table(model) for name, model in RECORD_TYPES.items()
}

victim_personal = Table(
    "victim_personal",
    metadata,
    Column("record_id", Text, primary_key=True),
    *(Column(f, Text) for f in RECORD_TYPES["victim"].personal_fields),
)

# Derived: one row per processed polygon of an approved activity, with the area it released.
processed_land = Table(
    "processed_land",
    metadata,
    Column("fid", Integer, primary_key=True, autoincrement=True),
    Column("activity_id", Text, nullable=False, index=True),
    Column("piece", Integer, nullable=False),
    Column("hazard_id", Text, nullable=False, index=True),
    Column("land_type", Text, nullable=False),
    Column("activity_type", Text, nullable=False),
    Column("organisation_id", Text),
    Column("method", Text),
    Column("asset", Text),
    Column("technical_asset", Boolean),
    Column("depth_cm", Double),
    Column("date_of_information", Date, nullable=False),
    Column("area_m2", Double, nullable=False),
    Column("credited_m2", Double, nullable=False),
    Column("geometry", Geometry(LAYER_GEOMETRY["processed_land"])),
    UniqueConstraint("activity_id", "piece"),
)
Index("ix_processed_land_geometry", processed_land.c.geometry, postgresql_using="gist").ddl_if(
    dialect="postgresql"
)

# Derived: every status and classification change of a hazardous area, dated, with its reason.
hazard_change = Table(
    "hazard_change",
    metadata,
    Column("fid", Integer, primary_key=True, autoincrement=True),
    Column("hazard_id", Text, nullable=False, index=True),
    Column("changed_on", Date, nullable=False),
    Column("attribute", Text, nullable=False),
    Column("old_value", Text),
    Column("new_value", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("cause", Text, nullable=False),
)

# Accounts of the web application. Not GeoPackage layers: QGIS users never see them.
account = Table(
    "account",
    metadata,
    Column("username", Text, primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("organisation_id", Text),
    Column("created_at", Timestamp, nullable=False),
    Column("disabled_at", Timestamp),
)

# API tokens for scripts: only a SHA-256 of the secret is kept; the secret is shown once.
api_token = Table(
    "api_token",
    metadata,
    Column("token_id", Integer, primary_key=True, autoincrement=True),
    Column("username", Text, ForeignKey("account.username"), nullable=False, index=True),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("label", Text),
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp),
)

# Server-side sessions, so that logging out or a role change takes effect at once. The cookie
# holds a random id; only its SHA-256 is kept. ``last_seen_at`` is the last use to within a
# minute (the idle timeout), written at most once a minute per session.
web_session = Table(
    "web_session",
    metadata,
    Column("session_hash", Text, primary_key=True),
    Column("username", Text, ForeignKey("account.username"), nullable=False, index=True),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
)

# Every write made through the web application or the command line, and failed logins.
audit_log = Table(
    "audit_log",
    metadata,
    Column("audit_id", Integer, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("username", Text),
    Column("action", Text, nullable=False),
    Column("target", Text),
    Column("detail", JsonValue),
    Column("client", Text),
    Index("ix_audit_log_login", "action", "username", "at"),
)

# Covariate layers for risk maps (issue 3), kept so that later maps reuse them: the file itself
# is in ``blob`` under its SHA-256, so a map names exactly which bytes it used.
risk_covariate = Table(
    "risk_covariate",
    metadata,
    Column("name", Text, primary_key=True),
    Column("kind", Text, nullable=False),  # raster | vector
    Column("use", Text, nullable=False),  # value | distance | presence
    Column("filename", Text, nullable=False),
    Column("sha256", Text, ForeignKey("blob.sha256"), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("added_by", Text, nullable=False),
    Column("added_at", Timestamp, nullable=False),
)

# Derived: mean and max mapped risk over each hazardous area and task, one row per risk map
# attached over it (``map_sha256`` names the map, as in ``risk_map``; migration 0008); a model
# output, so not a field of the record (see docs/risk.md).
risk_score = Table(
    "risk_score",
    metadata,
    Column("record_id", Text, primary_key=True),
    Column("record_type", Text, nullable=False),
    Column("mean_risk", Double),
    Column("max_risk", Double),
    Column("cells", Integer, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("map_sha256", Text, primary_key=True),
    Column("map_date", Date, nullable=False),
    Column("attached_by", Text, nullable=False),
    Column("attached_at", Timestamp, nullable=False),
)

# The risk maps attached, newest last: the file the web map draws, named by path and SHA-256,
# so that a file changed since it was attached is refused rather than shown as that map.
risk_map = Table(
    "risk_map",
    metadata,
    Column("map_sha256", Text, primary_key=True),
    Column("path", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("map_date", Date, nullable=False),
    Column("attached_by", Text, nullable=False),
    Column("attached_at", Timestamp, nullable=False),
)
