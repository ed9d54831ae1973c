"""Migration 0008: risk scores kept per risk map, the scores already kept staying under the map
they came from (each row names it), on both backends; and back again."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from safeground.storage import migrations
from safeground.storage.schema import risk_score
from safeground.storage.store import Store, open_store

EARLIER, LATER = "a" * 64, "b" * 64
ATTACHED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _alembic(store: Store, revision: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with store.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def _score(record_id: str, map_sha256: str, mean: float) -> dict[str, object]:
    later = map_sha256 == LATER
    return {
        "record_id": record_id,
        "record_type": "hazardous_area",
        "mean_risk": mean,
        "max_risk": mean + 0.1,
        "cells": 4,
        "model_version": f"maxent-{map_sha256[0]}",
        "map_sha256": map_sha256,
        "map_date": date(2026, 10, 1),
        "attached_by": "planner",
        "attached_at": ATTACHED + timedelta(hours=1 if later else 0),
    }


def _kept(store: Store) -> set[tuple[str, str, float]]:
    with store.read() as conn:
        rows = conn.execute(select(risk_score)).all()
    return {(r.record_id, r.map_sha256, r.mean_risk) for r in rows}


def test_scores_stay_under_their_map_and_each_map_keeps_its_own(store_location: str) -> None:
    store = open_store(store_location)
    _alembic(store, "0007")
    # One row per record before: the earlier map's where the later one did not cover the area.
    with store.begin() as conn:
        conn.execute(
            risk_score.insert(), [_score("HA-1", EARLIER, 0.2), _score("HA-2", LATER, 0.7)]
        )
    store.migrate()
    assert _kept(store) == {("HA-1", EARLIER, 0.2), ("HA-2", LATER, 0.7)}

    with store.begin() as conn:  # the later map over the first area too, and the earlier's
        conn.execute(
            risk_score.insert(), [_score("HA-1", LATER, 0.9), _score("HA-2", EARLIER, 0.1)]
        )
    with pytest.raises(IntegrityError), store.begin() as conn:  # but once per record and map
        conn.execute(risk_score.insert(), [_score("HA-1", LATER, 0.5)])
    assert len(_kept(store)) == 4
    if store.dialect == "sqlite":  # still a GeoPackage attribute table, described anew
        with store.read() as conn:
            described = conn.execute(
                text("SELECT data_type, description FROM gpkg_contents WHERE table_name = :t"),
                {"t": "risk_score"},
            ).one()
        assert described.data_type == "attributes" and "per risk map" in described.description

    # Back to one row per record: the newest over each, as the table held before.
    _alembic(store, "0007", down=True)
    assert _kept(store) == {("HA-1", LATER, 0.9), ("HA-2", LATER, 0.7)}
    store.migrate()
    assert _kept(store) == {("HA-1", LATER, 0.9), ("HA-2", LATER, 0.7)}
    store.engine.dispose()
