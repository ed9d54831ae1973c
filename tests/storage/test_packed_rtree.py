"""A bulk insert into a GeoPackage layer whose R-tree is empty writes the tree packed, straight
into SQLite's R-tree tables (``gpkg.write_packed_rtree``). Everything here is checked against
SQLite itself: its ``rtreecheck``, the entries its own R-tree stores for the same boxes, its
triggers working on the packed tree afterwards, and GDAL reading the layer with a bbox filter.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import StaticPool

import safeground.service.register as register_module
from safeground.io.importer import import_file
from safeground.service.register import Register
from safeground.storage import gpkg
from safeground.storage.types import encode_geometries
from tests.io.conftest import ACCIDENTS, counts, mapping

PER_NODE = 51  # cells in a node of 1,228 bytes, the size on the default 4,096-byte pages
WINDOW = "SELECT id FROM {} WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ? ORDER BY id"


def geopackage(page_size: int = 4096) -> Engine:
    """An in-memory GeoPackage with an empty layer ``pts``, opened as the store opens one."""
    engine = create_engine("sqlite://", poolclass=StaticPool)

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA page_size = {page_size}")  # before the first table
        gpkg.register_functions(dbapi_connection)

    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    with engine.begin() as conn:
        gpkg.create_core(conn)
        conn.exec_driver_sql("CREATE TABLE pts (fid INTEGER PRIMARY KEY, geometry BLOB)")
        gpkg.register_layer(conn, "pts", "GEOMETRY", "")
    return engine


def insert_in_bulk(conn: Connection, geometries: list[Any], first_fid: int = 1) -> None:
    """Insert features as ``rows.insert_columns`` does: through ``rtree_filled_in_bulk``."""
    fids = list(range(first_fid, first_fid + len(geometries)))
    with gpkg.rtree_filled_in_bulk(conn, "pts", fids, geometries):
        if geometries:
            rows = list(zip(fids, encode_geometries(geometries, "sqlite"), strict=True))
            conn.exec_driver_sql("INSERT INTO pts VALUES (?, ?)", rows)


def tree(conn: Connection, name: str = "rtree_pts_geometry") -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {name} ORDER BY id")]


def sqlite_tree(conn: Connection, geometries: list[Any], first_fid: int = 1) -> None:
    """The reference: SQLite's own R-tree ``ref``, filled one entry at a time."""
    conn.exec_driver_sql("DROP TABLE IF EXISTS ref")
    conn.exec_driver_sql("CREATE VIRTUAL TABLE ref USING rtree(id, minx, maxx, miny, maxy)")
    entries = [
        (fid, *(geom.bounds[i] for i in (0, 2, 1, 3)))
        for fid, geom in enumerate(geometries, start=first_fid)
        if geom is not None and not geom.is_empty
    ]
    if entries:
        conn.exec_driver_sql("INSERT INTO ref VALUES (?, ?, ?, ?, ?)", entries)


def check(conn: Connection, windows: list[tuple[float, float, float, float]]) -> None:
    """The layer's tree passes rtreecheck, holds what SQLite's own holds, and answers windows
    with exactly the entries whose stored boxes meet them."""
    assert conn.exec_driver_sql("SELECT rtreecheck('rtree_pts_geometry')").scalar() == "ok"
    lengths = conn.exec_driver_sql("SELECT DISTINCT length(data) FROM rtree_pts_geometry_node")
    assert len(lengths.all()) == 1  # SQLite learns the node size from the root's
    stored = tree(conn)
    assert stored == tree(conn, "ref")
    ids = np.array([row[0] for row in stored], dtype=np.int64)
    boxes = np.array([row[1:] for row in stored], dtype=np.float64).reshape(-1, 4)
    for minx, miny, maxx, maxy in windows:
        meets = (
            (boxes[:, 0] <= maxx)
            & (boxes[:, 1] >= minx)
            & (boxes[:, 2] <= maxy)
            & (boxes[:, 3] >= miny)
        )
        found = conn.exec_driver_sql(WINDOW.format("rtree_pts_geometry"), (maxx, minx, maxy, miny))
        assert [row[0] for row in found] == ids[meets].tolist()


def nodes(conn: Connection) -> int:
    return conn.exec_driver_sql("SELECT count(*) FROM rtree_pts_geometry_node").scalar_one()


@st.composite
def layers(draw: Any, size: int) -> tuple[list[Any], list[tuple[float, float, float, float]]]:
    """``size`` features (boxes, points, segments, repeats, a few without geometry) at
    coordinates that are mostly not 32-bit floats, and windows to look them up with."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    centre = draw(st.sampled_from([(0.0, 0.0), (-74.1, 4.6), (46.9, 39.9), (1e5, -3e4)]))
    spread = draw(st.sampled_from([1e-4, 1.0, 30.0]))
    x = centre[0] + rng.uniform(-spread, spread, size)
    y = centre[1] + rng.uniform(-spread, spread, size)
    if draw(st.booleans()):  # some on a grid of exact floats, on cell edges
        grid = rng.random(size) < 0.3
        x[grid], y[grid] = np.round(x[grid]), np.round(y[grid])
    kind = rng.choice(4, size, p=draw(st.sampled_from([(1, 0, 0, 0), (0.4, 0.4, 0.1, 0.1)])))
    width = rng.exponential(spread / 20, size) * (kind == 1)
    height = rng.exponential(spread / 20, size) * (kind == 1) + (kind == 2) * spread / 50
    geometries: list[Any] = list(shapely.box(x, y, x + width, y + height))
    for i in np.flatnonzero(kind != 1):
        geometries[i] = (
            shapely.Point(x[i], y[i])
            if kind[i] == 0
            else shapely.LineString([(x[i], y[i]), (x[i], y[i] + height[i])])
        )
    repeats = rng.random(size) < draw(st.sampled_from([0.0, 0.2, 0.9]))
    for i in np.flatnonzero(repeats)[1:]:
        geometries[i] = geometries[np.flatnonzero(repeats)[0]]
    for i in np.flatnonzero(rng.random(size) < 0.02):
        geometries[i] = None if i % 2 else shapely.Point()
    indexed = [geom for geom in geometries if geom is not None and not geom.is_empty]
    windows = []
    for _ in range(draw(st.integers(5, 25))):
        if indexed and draw(st.booleans()):  # a window on the edges of a feature's box
            minx, miny, maxx, maxy = indexed[rng.integers(len(indexed))].bounds
            grow = draw(st.sampled_from([0.0, 1e-9, spread / 10]))
            windows.append((minx - grow, miny - grow, maxx + grow, maxy + grow))
        else:
            a, b = np.sort(rng.uniform(-1.5 * spread, 1.5 * spread, (2, 2)), axis=0)
            windows.append((centre[0] + a[0], centre[1] + a[1], centre[0] + b[0], centre[1] + b[1]))
    windows.append((-np.inf, -np.inf, np.inf, np.inf))
    return geometries, windows


def packed(entries: int, per_node: int = PER_NODE) -> tuple[int, int]:
    """Nodes and depth of a packed tree: the root, and levels of nodes as full as can be."""
    count, depth = 1, 0
    while entries > per_node:
        entries = -(-entries // per_node)
        count, depth = count + entries, depth + 1
    return count, depth


def check_packed(conn: Connection, per_node: int = PER_NODE) -> None:
    count, depth = packed(len(tree(conn)), per_node)
    assert nodes(conn) == count
    root = conn.exec_driver_sql("SELECT data FROM rtree_pts_geometry_node WHERE nodeno = 1")
    assert int.from_bytes(root.scalar_one()[:2], "big") == depth


def packed_layer(geometries: list[Any], windows: list[Any]) -> None:
    engine = geopackage()
    with engine.begin() as conn:
        insert_in_bulk(conn, geometries)
        sqlite_tree(conn, geometries)
        check(conn, windows)
        check_packed(conn)
    engine.dispose()


# At and around the bulk threshold and the sizes where a level is added (51 cells a node).
@pytest.mark.parametrize("size", [0, 1, gpkg.BULK_INDEX_ROWS, 51, 52])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_packed_tree_holds_what_sqlite_stores_and_answers_windows_exactly(size, data):
    packed_layer(*data.draw(layers(size)))


@pytest.mark.parametrize("size", [PER_NODE**2, PER_NODE**2 + 1, 20_000])
@settings(max_examples=4, deadline=None)
@given(data=st.data())
def test_a_large_packed_tree_holds_what_sqlite_stores_and_answers_windows_exactly(size, data):
    packed_layer(*data.draw(layers(size)))


@pytest.mark.parametrize("page_size", [512, 1024, 65536])
def test_the_node_size_follows_the_page_size(page_size):
    rng = np.random.default_rng(page_size)
    geometries = list(shapely.points(rng.uniform(-10, 10, (3000, 2))))
    windows = [(-11.0, -11.0, 11.0, 11.0), (-1.0, -2.0, 0.5, 3.0), (2.0, 2.0, 2.5, 2.5)]
    engine = geopackage(page_size)
    with engine.begin() as conn:
        size = conn.exec_driver_sql("SELECT length(data) FROM rtree_pts_geometry_node").scalar()
        assert size == min(page_size - 64, 4 + 24 * PER_NODE)
        insert_in_bulk(conn, geometries)
        sqlite_tree(conn, geometries)
        check(conn, windows)
        check_packed(conn, (size - 4) // 24)
    engine.dispose()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=200))
def test_coordinates_are_rounded_outwards_as_sqlite_rounds_them(values):
    doubles = np.array(values)
    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE VIRTUAL TABLE ref USING rtree(id, minx, maxx, miny, maxy)")
        conn.executemany(
            "INSERT INTO ref VALUES (?, ?, ?, ?, ?)",
            [(i, v, v, v, v) for i, v in enumerate(values)],
        )
        stored = np.array(conn.execute("SELECT minx, maxx FROM ref ORDER BY id").fetchall())
    with np.errstate(over="ignore"):  # beyond the range of 32-bit floats: infinite, as in C
        down, up = gpkg._rounded(doubles, down=True), gpkg._rounded(doubles, down=False)
    assert down.astype(np.float64).tolist() == stored[:, 0].tolist()
    assert up.astype(np.float64).tolist() == stored[:, 1].tolist()
    # Outwards within the range of 32-bit floats: SQLite rounds tinier numbers to 0 on both
    # sides, and larger ones to infinity.
    normal = (np.abs(doubles) > 1e-37) & (np.abs(doubles) < 1e38)
    assert (down[normal] <= doubles[normal]).all() and (up[normal] >= doubles[normal]).all()


def test_triggers_keep_a_packed_tree_right():
    rng = np.random.default_rng(7)
    count = PER_NODE**2 + 1  # three levels
    geometries: list[Any] = list(shapely.points(rng.uniform(-80, -60, (count, 2))))
    engine = geopackage()
    everything = [(-np.inf, -np.inf, np.inf, np.inf)]
    with engine.begin() as conn:
        insert_in_bulk(conn, geometries)
        check_packed(conn)

        def rows(fids: Any, geoms: list[Any]) -> list[tuple[int, Any]]:
            return list(
                zip(np.asarray(fids).tolist(), encode_geometries(geoms, "sqlite"), strict=True)
            )

        # Changed fids, with a geometry (trigger update3) and without (update4).
        conn.exec_driver_sql("DELETE FROM pts WHERE fid IN (1, 3)")
        conn.exec_driver_sql("UPDATE pts SET fid = 1 WHERE fid = 2")
        conn.exec_driver_sql("UPDATE pts SET fid = 3, geometry = NULL WHERE fid = 4")
        geometries[:4] = [geometries[1], None, None, None]
        added = list(shapely.box(*rng.uniform(-5, 5, (2, 200)), *rng.uniform(5, 6, (2, 200))))
        for fid, blob in rows(range(count + 1, count + 201), added):  # one by one: the trigger
            conn.exec_driver_sql("INSERT INTO pts VALUES (?, ?)", (fid, blob))
        geometries += added
        moved = rng.choice(len(geometries), 400, replace=False)
        new = list(shapely.points(rng.uniform(10, 20, (400, 2))))
        conn.exec_driver_sql(
            "UPDATE pts SET geometry = ? WHERE fid = ?",
            [(blob, fid) for fid, blob in rows(moved + 1, new)],
        )
        for i, geom in zip(moved, new, strict=True):
            geometries[i] = geom
        emptied = rng.choice(len(geometries), 60, replace=False)
        conn.exec_driver_sql(
            "UPDATE pts SET geometry = NULL WHERE fid = ?", [(int(i) + 1,) for i in emptied]
        )
        for i in emptied:
            geometries[i] = None
        removed = rng.choice(len(geometries), 1500, replace=False)
        conn.exec_driver_sql("DELETE FROM pts WHERE fid = ?", [(int(i) + 1,) for i in removed])
        for i in removed:
            geometries[i] = None
        sqlite_tree(conn, geometries)
        windows = [*everything, (10.0, 10.0, 12.0, 13.0), (-70.0, -70.0, -65.0, -65.0)]
        check(conn, windows)
        conn.exec_driver_sql("DELETE FROM pts")
        sqlite_tree(conn, [])
        check(conn, everything)
        # Emptied by SQLite, the tree is a lone root again: the next bulk insert packs it.
        again: list[Any] = list(shapely.points(rng.uniform(0, 1, (500, 2))))
        insert_in_bulk(conn, again, first_fid=10_000)
        sqlite_tree(conn, again, first_fid=10_000)
        check(conn, [*everything, (0.2, 0.2, 0.3, 0.4)])
        check_packed(conn)
    engine.dispose()


def test_a_layer_with_an_infinite_coordinate_is_indexed_by_sqlite(monkeypatch):
    geometries: list[Any] = [shapely.Point(i, i) for i in range(60)]
    geometries[3] = shapely.Point(np.inf, 1)
    monkeypatch.setattr(gpkg, "write_packed_rtree", None)  # not called
    engine = geopackage()
    with engine.begin() as conn:
        insert_in_bulk(conn, geometries)
        sqlite_tree(conn, geometries)
        check(conn, [(-np.inf, -np.inf, np.inf, np.inf), (2.0, 0.0, 10.0, 5.0)])
    engine.dispose()


# A register's layers, filled by imports.


def accidents_csv(path: Path, count: int, seed: int) -> Path:
    """Accident points near Aghdam (the ACCIDENTS mapping), none the same as another."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["lon", "lat", "kind", "year", "place"])
        for i, (lon, lat) in enumerate(rng.uniform((45.1, 38.6), (47.9, 40.9), (count, 2))):
            writer.writerow([lon, lat, 1 + i % 2, 2020, f"P{seed}-{i}"])
    return path


@pytest.fixture
def spied(monkeypatch) -> list[int]:
    """The sizes of the trees written packed."""
    calls: list[int] = []
    real = gpkg.write_packed_rtree

    def spy(conn: Any, rtree: str, node_size: int, ids: Any, boxes: Any) -> None:
        calls.append(len(ids))
        real(conn, rtree, node_size, ids, boxes)

    monkeypatch.setattr(gpkg, "write_packed_rtree", spy)
    return calls


def check_layer(path: Path, windows: list[tuple[float, float, float, float]]) -> None:
    """The accident layer's R-tree is sound, holds each feature's envelope, and GDAL's bbox
    filter finds the features whose geometries meet the window."""
    features = pyogrio.read_dataframe(path, layer="accident", fid_as_index=True).sort_index()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT rtreecheck('rtree_accident_geometry')").fetchone() == ("ok",)
        stored = conn.execute("SELECT * FROM rtree_accident_geometry ORDER BY id").fetchall()
        reference = sqlite3.connect(":memory:")
        reference.execute("CREATE VIRTUAL TABLE ref USING rtree(id, minx, maxx, miny, maxy)")
        bounds = shapely.bounds(features.geometry.array)[:, [0, 2, 1, 3]]
        rows = [(fid, *b) for fid, b in zip(features.index.tolist(), bounds.tolist(), strict=True)]
        reference.executemany("INSERT INTO ref VALUES (?, ?, ?, ?, ?)", rows)
        assert stored == reference.execute("SELECT * FROM ref ORDER BY id").fetchall()
        reference.close()
    for window in windows:
        inside = features[features.geometry.intersects(box(*window))]
        found = pyogrio.read_dataframe(path, layer="accident", bbox=window)
        assert sorted(found.record_id) == sorted(inside.record_id)
        assert len(inside) or window[0] > 48


WINDOWS = [(45.5, 39.0, 46.0, 39.6), (46.9, 39.9, 47.0, 40.0), (45.0, 38.5, 48.0, 41.0)]


def test_gdal_reads_a_layer_imported_packed_with_a_bbox_filter(tmp_path, spied):
    path = tmp_path / "r.gpkg"
    register = Register.create(str(path), country="AZ")
    source = accidents_csv(tmp_path / "a.csv", 3000, seed=1)
    assert import_file(register, source, mapping(ACCIDENTS), "im").imported == 3000
    register.store.engine.dispose()
    assert spied == [3000]
    with sqlite3.connect(path) as conn:
        (depth,) = conn.execute(
            "SELECT substr(data, 1, 2) FROM rtree_accident_geometry_node WHERE nodeno = 1"
        ).fetchone()
    assert depth == b"\x00\x02"  # 59 leaves, under 2 nodes, under the root
    check_layer(path, [*WINDOWS, (49.0, 41.0, 50.0, 42.0)])


def test_a_second_import_into_a_layer_inserts_into_its_tree(tmp_path, spied):
    path = tmp_path / "r.gpkg"
    register = Register.create(str(path), country="AZ")
    for seed, count in [(1, 300), (2, 2000)]:
        source = accidents_csv(tmp_path / f"{seed}.csv", count, seed)
        assert import_file(register, source, mapping(ACCIDENTS), "im").imported == count
    register.store.engine.dispose()
    assert spied == [300]  # the second, into a layer with features: SQLite's inserts
    check_layer(path, WINDOWS)


def _rtree_tables(path: Path) -> dict[str, list[Any]]:
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT * FROM rtree_accident_geometry_{table}").fetchall()
            for table in ("node", "rowid", "parent")
        }


def test_a_failure_after_the_packed_tree_is_written_rolls_it_back(tmp_path, monkeypatch, spied):
    path = tmp_path / "r.gpkg"
    register = Register.create(str(path), country="AZ")
    before, tables = counts(register), _rtree_tables(path)
    assert len(tables["node"]) == 1 and tables["node"][0][1] == bytes(1228)
    real = register_module.insert_new_records

    def write_then_crash(conn, records, *rest):
        real(conn, records, *rest)
        assert conn.exec_driver_sql("SELECT count(*) FROM rtree_accident_geometry").scalar()
        raise RuntimeError("disk unplugged")

    monkeypatch.setattr(register_module, "insert_new_records", write_then_crash)
    source = accidents_csv(tmp_path / "a.csv", 500, seed=3)
    with pytest.raises(RuntimeError, match="disk unplugged"):
        import_file(register, source, mapping(ACCIDENTS), "im")
    assert spied == [500]
    assert counts(register) == before
    assert _rtree_tables(path) == tables
    monkeypatch.setattr(register_module, "insert_new_records", real)
    assert import_file(register, source, mapping(ACCIDENTS), "im").imported == 500
    register.store.engine.dispose()
    assert spied == [500, 500]
    check_layer(path, WINDOWS)
