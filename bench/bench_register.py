"""Benchmark: a synthetic national register (default 100k hazardous areas, 300k activities).

Prints, each against a baseline run side by side in the same process:
  1. ledger recount from polygons (geodesic, clipped, unioned) vs. the planar-area floor
     (shapely's union and area of the same groups, no clipping or geodesy);
  2. bounding-box query p95 through the register vs. GDAL (pyogrio) reading the same layer
     with the same boxes (GeoPackage only);
  3. peak memory (max RSS) of the process.
Goals (issue 2): recount ≤ 30 s on 2 cores, bbox p95 ≤ 20 ms, peak memory ≤ 2 GiB.

    python bench/bench_register.py [--hazards N] [--postgis URL]   # default: a temporary GeoPackage
    python bench/bench_register.py --keep FILE.gpkg|URL             # fill once, measure again later
The register is filled through Register.file (validation, rules, history on), in batches.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable, Sized
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from shapely.geometry import box
from sqlalchemy import create_engine, select

from safeground.service.ledger import recount
from safeground.service.register import Register, Submission
from safeground.storage.schema import processed_land, record_tables
from safeground.storage.store import open_store

# Azerbaijan's bounding box, roughly: hazards are spread over it.
LON0, LAT0, LON1, LAT1 = 44.8, 38.4, 50.4, 41.9
BATCH = 5000


def fill(register: Register, hazards: int, rng: np.random.Generator) -> float:
    """File ``hazards`` areas of ~2-20 ha and three activities each (a TS reduction and two
    clearance strips); returns seconds spent."""
    started = time.perf_counter()
    lon = rng.uniform(LON0, LON1, hazards)
    lat = rng.uniform(LAT0, LAT1, hazards)
    w = rng.uniform(0.002, 0.006, hazards)
    h = rng.uniform(0.0015, 0.004, hazards)
    for first in range(0, hazards, BATCH):
        idx = range(first, min(first + BATCH, hazards))
        shapes = [box(lon[i], lat[i], lon[i] + w[i], lat[i] + h[i]) for i in idx]
        ids = register.file(
            "bench",
            [Submission("hazardous_area", {"geometry": s.wkt}, date(2021, 3, 1)) for s in shapes],
        ).record_ids
        activities = []
        for hazard_id, shape in zip(ids, shapes, strict=True):
            x0, y0, x1, y1 = shape.bounds
            cuts = [x0, x0 + 0.4 * (x1 - x0), x0 + 0.7 * (x1 - x0), x0 + 0.9 * (x1 - x0)]
            for k, (land_type, kind) in enumerate(
                [("reduced", "ts"), ("cleared", "clearance"), ("cleared", "clearance")]
            ):
                piece = box(cuts[k], y0, cuts[k + 1], y1)
                activities.append(
                    Submission(
                        "activity",
                        {
                            "hazard_id": hazard_id,
                            "activity_type": kind,
                            "processed": [{"land_type": land_type, "geometry": piece.wkt}],
                        },
                        date(2021, 6, 1) + timedelta(days=30 * k),
                    )
                )
        register.file("bench", activities)
    return time.perf_counter() - started


def planar_floor(register: Register) -> float:
    started = time.perf_counter()
    with register.store.begin() as conn:
        rows = conn.execute(select(processed_land.c.hazard_id, processed_land.c.geometry)).all()
    groups: dict[str, list[object]] = {}
    for hazard_id, geometry in rows:
        groups.setdefault(hazard_id, []).append(geometry)
    total = sum(shapely.union_all(g).area for g in groups.values())
    assert total > 0
    return time.perf_counter() - started


def bbox_p95(register: Register, boxes: np.ndarray) -> tuple[float, int]:
    table = record_tables["hazardous_area"]
    with register.store.begin() as conn:
        return p95_of(
            lambda b: conn.execute(
                select(table.c.record_id, table.c.geometry).where(
                    register.store.bbox_clause(table, b)
                )
            ).all(),
            boxes,
        )


def gdal_bbox_p95(path: str, boxes: np.ndarray) -> tuple[float, int]:
    return p95_of(
        lambda b: pyogrio.read_dataframe(
            path, layer="hazardous_area", bbox=b, columns=["record_id"]
        ),
        boxes,
    )


def p95_of(query: Callable[[tuple[float, ...]], Sized], boxes: np.ndarray) -> tuple[float, int]:
    """95th percentile of the seconds one box's query takes, and the rows all boxes found."""
    times, found = [], 0
    for b in boxes:
        started = time.perf_counter()
        rows = query(tuple(b))
        times.append(time.perf_counter() - started)
        found += len(rows)
    return float(np.percentile(times, 95)), found


def fresh_schema(url: str) -> str:
    """A new schema in the PostGIS database, so that the bench starts from an empty register."""
    schema = f"bench_{int(time.time())}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema},public"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hazards", type=int, default=100_000)
    parser.add_argument("--postgis", help="a PostGIS URL: the bench works in a fresh schema there")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--keep",
        help="a GeoPackage or a PostGIS URL (with its search_path) to fill and keep; if it "
        "holds a register already, that register is measured without refilling",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        location = fresh_schema(args.postgis) if args.postgis else str(Path(tmp) / "bench.gpkg")
        if args.keep and open_store(args.keep).exists():
            location, register = args.keep, Register.open(args.keep)
            print(f"measuring the kept register {args.keep} (not refilled)")
        else:
            location = args.keep or location
            register = Register.create(location, country="AZ")
            fill_s = fill(register, args.hazards, rng)
            print(
                f"filed {args.hazards:,} hazardous areas and {3 * args.hazards:,} activities "
                f"through the approval workflow in {fill_s:,.1f} s "
                f"({1e6 * fill_s / (4 * args.hazards):,.0f} µs per report)"
            )
        backend = register.store.dialect
        print(f"backend: {backend}")

        floor_s = planar_floor(register)
        started = time.perf_counter()
        with register.store.begin() as conn:
            check = recount(conn)
        recount_s = time.perf_counter() - started
        print(
            f"ledger recount: {recount_s:,.1f} s (goal ≤ 30 s); planar floor {floor_s:,.1f} s; "
            f"ratio {recount_s / floor_s:,.2f}×; agrees: {check.agrees}"
        )

        # Boxes of about 5 km, where a district officer would look.
        centres = np.column_stack(
            [rng.uniform(LON0, LON1, args.queries), rng.uniform(LAT0, LAT1, args.queries)]
        )
        boxes = np.column_stack([centres - 0.03, centres + 0.03])
        p95, found = bbox_p95(register, boxes)
        line = (
            f"bbox query p95: {1000 * p95:,.2f} ms (goal ≤ 20 ms), "
            f"{found / len(boxes):,.1f} areas a box"
        )
        if backend == "sqlite":
            # GDAL also tests exact intersection, so it may return fewer areas than the box test.
            gdal_p95, _ = gdal_bbox_p95(location, boxes)
            line += f"; GDAL/pyogrio p95 {1000 * gdal_p95:,.2f} ms; ratio {p95 / gdal_p95:,.2f}×"
        print(line)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"peak memory (max RSS): {peak:,.0f} MiB in the main process, {workers:,.0f} MiB in "
            f"the largest recount worker (goal ≤ 2,048 MiB)"
        )
        register.store.engine.dispose()


if __name__ == "__main__":
    main()
