"""Each write advances the generation of the views it changed, and only those, with where it
changed them (``storage.generations``), in its own transaction; on both backends."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from alembic import command
from alembic.config import Config
from shapely.geometry import Point, Polygon, box
from sqlalchemy import Column, Table, column, delete, inspect, select, table
from sqlalchemy.sql import visitors

from safeground.domain.access import Principal, Role
from safeground.domain.reports import Operation
from safeground.io.dump import dump, restore
from safeground.service import projection, tiles
from safeground.service.layers import FILTERS, LAYERS, EnvelopeCache, Query, items
from safeground.service.projection import UNSHOWN
from safeground.service.rebuild import rebuild_all
from safeground.service.register import Register, Submission
from safeground.service.tiles import TileAddress, TileCache
from safeground.storage import generations, migrations
from safeground.storage import store as store_module
from safeground.storage.generations import (
    TRACKED_VIEWS,
    ChangeLog,
    ViewChanges,
    meets,
    outside,
)
from safeground.storage.schema import view_change, view_generation
from tests.helpers import add, keep_one_score, update
from tests.web.layer_data import DISTRICT, build, hazard_box

Boxes = list[list[float]] | None


def generations_of(register: Register) -> dict[str, int]:
    with register.store.read() as conn:
        return register.store.generations(conn).views


def logged(register: Register, since: dict[str, int]) -> dict[str, list[Boxes]]:
    """The views advanced since ``since``: each generation's boxes (None: anywhere)."""
    store = register.store
    found = {}
    with store.read() as conn:
        for view, now in store.generations(conn).views.items():
            if now > since[view]:
                rows = store.view_changes(conn, view, since[view], now)
                found[view] = [rows[g] for g in range(since[view] + 1, now + 1)]
    return found


def boxes_of(*shapes) -> list[list[float]]:
    return [list(shapely.bounds(s)) for s in shapes]


def same_boxes(found: Boxes, *shapes) -> bool:
    return found is not None and sorted(map(tuple, found)) == sorted(map(tuple, boxes_of(*shapes)))


def retire(register: Register, record_type: str, record_id: str) -> None:
    register.file(
        "im",
        [
            Submission(
                record_type,
                {},
                date(2022, 6, 1),
                record_id=record_id,
                operation=Operation.RETIRE,
                reason="duplicate",
            )
        ],
    )


@pytest.fixture
def mapped(register):
    return register, build(register)


def test_each_write_advances_only_the_views_it_changed(mapped):
    register, data = mapped
    item = Point(47.3, 39.6)

    def after(write) -> dict[str, list[Boxes]]:
        since = generations_of(register)
        write()
        return logged(register, since)

    def item_found(day: int, hazard_id: str, wkt: str) -> dict[str, list[Boxes]]:
        """What an item found on 2022-01-``day`` in the area, at ``wkt``, logged."""
        item = {"category": "uxo", "hazard_id": hazard_id, "geometry": wkt}
        return after(lambda: add(register, "eo_item", date(2022, 1, day), **item))

    # An item found outside any hazardous area: items found only, where it is.
    since = generations_of(register)
    lone = add(register, "eo_item", date(2022, 1, 1), category="uxo", geometry=item.wkt)
    found = logged(register, since)
    assert list(found) == ["eo_item"] and same_boxes(found["eo_item"][0], item)
    # A record no layer shows: nothing.
    assert after(lambda: add(register, "organisation", date(2022, 1, 1), name="C")) == {}
    # An item in an area confirmed already, with no land processed: the area comes out as it
    # was, so only the items change.
    near = Point(47.031, 39.501)
    found = item_found(2, data.hazards[3], near.wkt)
    assert list(found) == ["eo_item"]
    # In the confirmed area with land cleared: that land comes out as it was, and stays.
    found = item_found(3, data.hazards[0], "POINT(47.0015 39.501)")
    assert list(found) == ["eo_item"]
    # In a suspected area: it becomes confirmed, so the area changes, where it is.
    found = item_found(4, data.hazards[1], "POINT(47.011 39.501)")
    assert sorted(found) == ["eo_item", "hazardous_area"]
    assert same_boxes(found["hazardous_area"][0], hazard_box(1))
    assert register.get(data.hazards[1])["classification"] == "cha"
    # An area moved: where it was and where it is.
    found = after(
        lambda: update(
            register,
            data.hazards[5],
            "hazardous_area",
            date(2022, 2, 1),
            geometry=hazard_box(20).wkt,
        )
    )
    assert list(found) == ["hazardous_area"]
    assert same_boxes(found["hazardous_area"][0], hazard_box(5), hazard_box(20))
    # Land released: the land and the area's ledger.
    piece = box(47.04, 39.5, 47.042, 39.502)

    def cleared(hazard: int, land: Polygon) -> dict[str, list[Boxes]]:
        """What clearing ``land`` in one of the areas changed, and where."""
        return after(
            lambda: add(
                register,
                "activity",
                date(2022, 3, 1),
                hazard_id=data.hazards[hazard],
                activity_type="clearance",
                organisation_id=data.org_a,
                processed=[{"land_type": "cleared", "geometry": land.wkt}],
            )
        )

    found = cleared(4, piece)
    assert sorted(found) == ["hazardous_area", "processed_land"]
    assert same_boxes(found["processed_land"][0], piece)
    assert same_boxes(found["hazardous_area"][0], hazard_box(4))
    # More land released where some was: that land only, not the land stored already.
    more = box(47.002, 39.5, 47.004, 39.503)
    found = cleared(0, more)
    assert sorted(found) == ["hazardous_area", "processed_land"]
    assert same_boxes(found["processed_land"][0], more)
    # An area redrawn over half its land: that land, credited with less, where it is.
    redrawn = box(47.041, 39.5, 47.044, 39.503)
    found = after(
        lambda: update(
            register, data.hazards[4], "hazardous_area", date(2022, 3, 5), geometry=redrawn.wkt
        )
    )
    assert sorted(found) == ["hazardous_area", "processed_land"]
    assert same_boxes(found["processed_land"][0], piece)
    assert same_boxes(found["hazardous_area"][0], hazard_box(4), redrawn)
    # Each other layer: its own view.
    for record_type, fields, shape in (
        ("accident", {"accident_type": "mine", "accident_date": "2022-03-02"}, item),
        ("task", {"hazard_id": data.hazards[6], "activity_type": "clearance"}, hazard_box(6)),
        ("admin_area", {"name": "Agdam", "level": 2}, DISTRICT),
    ):
        found = after(
            lambda t=record_type, f=fields, s=shape: add(
                register, t, date(2022, 3, 2), geometry=s.wkt, **f
            )
        )
        assert list(found) == [record_type] and same_boxes(found[record_type][0], shape)
    # A record retired: where it was.
    found = after(lambda: retire(register, "eo_item", lone))
    assert list(found) == ["eo_item"] and same_boxes(found["eo_item"][0], item)


def test_many_areas_at_once_are_taken_as_changed_without_reading_them_back(mapped, monkeypatch):
    """Beyond ``COMPARED`` areas reprojected at once (an import), each counts as changed, where
    it was and is, without its old row read and compared."""
    register, data = mapped
    monkeypatch.setattr(projection, "COMPARED", 0)
    since = generations_of(register)
    add(
        register,
        "eo_item",
        date(2022, 1, 2),
        category="uxo",
        hazard_id=data.hazards[3],
        geometry="POINT(47.031 39.501)",
    )
    found = logged(register, since)
    assert sorted(found) == ["eo_item", "hazardous_area"]
    assert same_boxes(found["hazardous_area"][0], hazard_box(3))


def test_a_row_without_a_geometry_advances_its_view_with_no_box(mapped):
    """Nothing a cache keeps holds it, but a district filter reads hazardous areas."""
    register, _ = mapped
    since = generations_of(register)
    add(register, "hazardous_area", date(2022, 1, 1), name="Unmapped", estimated_area_m2=100.0)
    assert logged(register, since) == {"hazardous_area": [[]]}


def test_a_submission_checked_but_not_approved_advances_nothing(mapped):
    register, _ = mapped
    (draft,) = register.draft(
        "clerk",
        [
            Submission(
                "eo_item", {"category": "uxo", "geometry": "POINT(47.1 39.6)"}, date(2022, 1, 1)
            )
        ],
    )
    since = generations_of(register)
    register.submit("clerk", [draft.report_id])  # the approval's checks run, and roll back
    assert logged(register, since) == {}
    register.approve("im", [draft.report_id])
    assert list(logged(register, since)) == ["eo_item"]


def test_rebuilds_restores_and_risk_scores_advance_what_they_may_have_changed(mapped, tmp_path):
    register, data = mapped
    since = generations_of(register)
    with register.store.begin() as conn:
        rebuild_all(register, conn)
    assert logged(register, since) == {view: [None] for view in TRACKED_VIEWS}

    since = generations_of(register)
    keep_one_score(register, tmp_path, data.hazards[0])
    assert logged(register, since) == {"risk_score": [None]}

    out = tmp_path / "dump.jsonl"
    dump(register, out)
    restored = Register.create(str(tmp_path / "restored.gpkg"), country="AZ")
    fresh = generations_of(restored)
    assert set(fresh) == set(TRACKED_VIEWS) and set(fresh.values()) == {0}
    restore(restored, out)
    assert logged(restored, fresh) == {view: [None] for view in TRACKED_VIEWS}
    restored.store.engine.dispose()


def _replace(location: str, tmp_path: Path, area: str) -> str:
    """Another register where ``location``'s was, holding one hazardous area named ``area``
    at ``hazard_box(0)`` (its ID returned): on a GeoPackage, a file renamed over it; on
    PostgreSQL, its schema dropped and made again (a restore, or ``init`` in an emptied
    database)."""
    if "://" in location:
        store = store_module.open_store(location)
        with store.begin() as conn:
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        store.engine.dispose()
        made = location
    else:
        made = str(tmp_path / "other.gpkg")
    other = Register.create(made, country="AZ")
    added = add(other, "hazardous_area", date(2022, 1, 1), name=area, geometry=hazard_box(0).wkt)
    other.store.engine.dispose()
    if made != location:
        os.replace(made, location)
    return added


def test_a_register_replaced_where_it_was_is_read_afresh(store_location, tmp_path):
    """A server process keeps tiles, envelopes, features and where the views changed while
    the generations it reads say they stand. Another register put where the one it read was
    counts its generations from 0 again and can stand at the same ones: the process must read
    it, not serve what it kept of the first (nor take the first one's changes for its own)."""
    first = Register.create(store_location, country="AZ")
    add(first, "hazardous_area", date(2022, 1, 1), name="Old", geometry=hazard_box(0).wkt)
    process = store_module.open_store(store_location)  # its pool outlives the replacement
    log = ChangeLog()
    tile_cache, envelopes = TileCache(log=log), EnvelopeCache(log=log)
    layer = LAYERS["hazardous_area"]
    principal = Principal("im", Role.IM_OFFICER, None)
    address = TileAddress(12, 2582, 1558)  # holds hazard_box(0)
    far = box(47.5, 39.8, 47.504, 39.803)  # six tiles east, five north

    def names() -> tuple[list[str], list[str]]:
        """The names on the tile, and on an items page of the same box, as the process reads
        them."""
        drawn = tiles.tile(process, layer, principal, address, Query(), tile_cache)
        on_tile = mapbox_vector_tile.decode(drawn)[layer.id]["features"] if drawn else []
        query = Query(bbox=tuple(hazard_box(0).bounds), limit=10)
        page = items(process, layer, principal, query, envelopes)
        return (
            sorted(f["properties"]["name"] for f in on_tile),
            sorted(f.properties["name"] for f in page.features),
        )

    assert names() == (["Old"], ["Old"])
    add(first, "hazardous_area", date(2022, 1, 1), name="Far", geometry=far.wkt)
    assert names() == (["Old"], ["Old"])  # the tile kept: the change was far from it
    first.store.engine.dispose()
    area = _replace(store_location, tmp_path, "New")  # at generation 1, as the first was
    assert names() == (["New"], ["New"])
    second = Register.open(store_location)
    update(second, area, "hazardous_area", date(2022, 2, 1), name="Newer")  # generation 2
    second.store.engine.dispose()
    assert names() == (["Newer"], ["Newer"])
    process.engine.dispose()


def test_the_store_keeps_the_last_generations_boxes(register, monkeypatch):
    monkeypatch.setattr(store_module, "CHANGES_KEPT", 3)
    monkeypatch.setattr(store_module, "PRUNE_EVERY", 2)
    store = register.store
    for i in range(6):
        changes = ViewChanges()
        changes.add("eo_item", [Point(47 + i, 39)])
        with store.begin() as conn:
            store.after_write(conn, changes)
    with store.read() as conn:
        register_id, views = store.generations(conn)
        assert views["eo_item"] == 6
        assert sorted(store.view_changes(conn, "eo_item", 0, 6)) == [4, 5, 6]  # 1-3 pruned
        log = ChangeLog(kept=3)

        def changed(view, after, upto):
            return log.changed(conn, store, register_id, view, after, upto)

        assert changed("eo_item", 3, 6).tolist() == [
            [50, 39, 50, 39],
            [51, 39, 51, 39],
            [52, 39, 52, 39],
        ]
        assert changed("eo_item", 2, 5) is None  # 3 is gone: anywhere
        assert changed("eo_item", 1, 6) is None  # too far behind
        assert changed("eo_item", 6, 6).shape == (0, 4)
        assert changed("hazardous_area", 0, 0).shape == (0, 4)


def test_a_view_without_a_generation_row_is_refused(register):
    store = register.store
    with store.begin() as conn:
        conn.execute(delete(view_generation).where(view_generation.c.name == "task"))
    changes = ViewChanges()
    changes.add("task", [Point(47, 39)])
    refused = pytest.raises(RuntimeError, match="no view_generation row for task")
    with refused, store.begin() as conn:
        store.after_write(conn, changes)
    with store.read() as conn:
        assert not conn.execute(select(view_change)).all()  # nothing of it landed


def test_changes_gathered():
    changes = ViewChanges()
    assert not changes
    changes.add("organisation", [Point(1, 1)])  # not a view anyone follows
    changes.add("eo_item", [])  # no row
    assert not changes
    changes.add("eo_item", [None, shapely.Polygon()])  # rows without a place
    assert changes.views == ["eo_item"] and changes.boxes("eo_item") == []
    changes.add("eo_item", [Point(1, 2), Point(1, 2), box(0, 0, 3, 4)])
    assert changes.boxes("eo_item") == [[1, 2, 1, 2], [0, 0, 3, 4]]
    last = generations.BOXES_KEPT - 1
    changes.add("eo_item", [Point(i, i) for i in range(last + 1)])
    assert changes.boxes("eo_item") == [[0, 0, last, last]]  # too many: the box around all
    changes.add("task", [Point(float("inf"), 0)])
    assert changes.boxes("task") is None
    changes.add("task", [Point(1, 1)])
    assert changes.boxes("task") is None  # anywhere stays anywhere
    assert ViewChanges.everywhere(["accident"]).boxes("accident") is None


def test_boxes_meet_with_a_margin():
    boxes = np.array([[10.0, 10.0, 11.0, 11.0]])
    assert meets(boxes, (11.0, 11.0, 12.0, 12.0))  # touching
    assert meets(boxes, (11.00005, 10.0, 12.0, 12.0))  # within the margin
    assert not meets(boxes, (11.001, 10.0, 12.0, 12.0))
    assert not meets(np.zeros((0, 4)), (0.0, 0.0, 90.0, 90.0))
    shapes = [Point(10.5, 10.5), Point(11.00005, 10), Point(12, 12), None, shapely.Polygon()]
    assert outside(boxes, shapes).tolist() == [False, False, True, False, False]
    assert outside(np.zeros((0, 4)), shapes).tolist() == [True, True, True, False, False]


def test_every_view_a_layer_reads_has_a_generation(register):
    """A layer's tiles and features are kept only as long as the views they read say so: each
    must be followed, and a district filter may read only the views it declares."""
    assert set(generations_of(register)) == set(TRACKED_VIEWS)
    for layer in LAYERS.values():
        views = dict(layer.tile_views(FILTERS))
        assert set(views) <= set(TRACKED_VIEWS) and views[layer.view], layer.id
        for name, clause in layer.filters.items():
            read = {
                (e.table if isinstance(e, Column) else e).name
                for e in visitors.iterate(clause(layer.table, ["x"]))
                if isinstance(e, Column | Table)
            }
            assert read <= {layer.view, *layer.filter_views.get(name, ())}, (layer.id, name)
        shown = {*layer.properties, *layer.tile_names, *layer.key}
        assert not shown & UNSHOWN, layer.id  # a change to them would go unseen


def _migrate(location: str, revision: str, down: bool = False) -> None:
    store = store_module.open_store(location)
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with store.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)
    store.engine.dispose()


def test_the_migration_replaces_the_register_wide_generation(store_location):
    _migrate(store_location, "0008")
    _migrate(store_location, "head")
    store = store_module.open_store(store_location)
    with store.read() as conn:
        assert store.generations(conn).views == dict.fromkeys(TRACKED_VIEWS, 0)
        assert "data_generation" not in inspect(conn).get_table_names()
    store.engine.dispose()
    _migrate(store_location, "0008", down=True)
    store = store_module.open_store(store_location)
    with store.read() as conn:
        names = inspect(conn).get_table_names()
        assert "data_generation" in names and "view_generation" not in names
        old = table("data_generation", column("generation"))
        assert conn.execute(select(old.c.generation)).scalar_one() == 0
        if store.dialect == "sqlite":
            registered = conn.exec_driver_sql("SELECT table_name FROM gpkg_contents").scalars()
            assert {"data_generation"} <= set(registered)
    store.engine.dispose()


def test_every_register_has_an_identity_of_its_own(store_location, tmp_path):
    """Written when a register is made, and by migration 0011 for one made before it."""
    _migrate(store_location, "0010")
    _migrate(store_location, "head")
    store = store_module.open_store(store_location)
    with store.read() as conn:
        migrated = store.generations(conn).register
        if store.dialect == "sqlite":
            registered = conn.exec_driver_sql("SELECT table_name FROM gpkg_contents").scalars()
            assert "register_identity" in set(registered)
    store.engine.dispose()
    made = Register.create(str(tmp_path / "made.gpkg"), country="AZ")
    with made.store.read() as conn:
        made_id, _ = made.store.generations(conn)
        assert made.store.generation(conn, "task") == (made_id, 0)
    made.store.engine.dispose()
    assert len(migrated) == len(made_id) == 32 and migrated != made_id
    _migrate(store_location, "0010", down=True)
    store = store_module.open_store(store_location)
    with store.read() as conn:
        assert "register_identity" not in inspect(conn).get_table_names()
        if store.dialect == "sqlite":
            registered = conn.exec_driver_sql("SELECT table_name FROM gpkg_contents").scalars()
            assert "register_identity" not in set(registered)
    store.engine.dispose()
