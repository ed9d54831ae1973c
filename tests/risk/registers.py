"""A tiny hand-built register for the map tests: one district, its evidence, two settlements."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import rasterio
from shapely.geometry import Point, box

from safeground.service.register import Register, Submission

USER = "test.analyst"
ON = date(2022, 3, 1)
# A 6 km x 5 km district near Aghdam (lon/lat).
DISTRICT = box(46.90, 39.95, 46.97, 39.995)
SHA = box(46.915, 39.960, 46.925, 39.968)
CHA = box(46.940, 39.975, 46.948, 39.982)
CLEARED = box(46.9405, 39.9755, 46.9440, 39.9790)


def presence_points(seed: int = 1) -> list[Point]:
    """Ten points around the two hazards, where evidence was met."""
    rng = np.random.default_rng(seed)
    out = []
    for area in (SHA, CHA):
        cx, cy = area.centroid.x, area.centroid.y
        for _ in range(5):
            out.append(Point(cx + rng.normal(0, 0.004), cy + rng.normal(0, 0.003)))
    return out


def turned_around(map_path: Path, out: Path, model_version: str) -> Path:
    """A second risk map from ``map_path``: same grid, risk 1 - r, another model version; a
    cheap map whose tiles differ wherever the risk is not 0.5."""
    with rasterio.open(map_path) as src:
        profile, tags, risk = src.profile, src.tags(), src.read(1)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(1 - risk, 1)
        dst.update_tags(**{**tags, "model_version": model_version})
    return out


def build(register: Register) -> dict[str, str]:
    """File the district, settlements, hazards, cleared land, accidents and items."""

    def one(record_type: str, **values: object) -> str:
        return register.file(USER, [Submission(record_type, dict(values), ON)]).record_ids[0]

    ids = {
        "district": one("admin_area", name="Test District", level=2, geometry=DISTRICT.wkt),
        "sha": one(
            "hazardous_area",
            name="SHA 1",
            classification="sha",
            evidence=["front_line"],
            geometry=SHA.wkt,
        ),
        "cha": one(
            "hazardous_area",
            name="CHA 1",
            classification="cha",
            evidence=["detonation"],
            geometry=CHA.wkt,
        ),
    }
    one("place", name="Village A", geometry=Point(46.905, 39.990).wkt)
    one("place", name="Village B", geometry=Point(46.960, 39.955).wkt)
    ids["activity"] = one(
        "activity",
        hazard_id=ids["cha"],
        activity_type="clearance",
        outcome="progress",
        processed=[{"land_type": "cleared", "geometry": CLEARED.wkt, "method": "manual"}],
    )
    for i, p in enumerate(presence_points()):
        if i % 2:
            one("accident", accident_type="mine", accident_date=ON, geometry=p.wkt)
        else:
            one("eo_item", category="ap_mine", found_date=ON, geometry=p.wkt)
    one("eo_item", category="stockpile", found_date=ON, geometry=Point(46.95, 39.96).wkt)
    ids["task"] = one("task", hazard_id=ids["sha"], activity_type="ts", geometry=SHA.wkt)
    return ids
