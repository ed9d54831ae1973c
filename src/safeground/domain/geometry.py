"""Geometry rules: parsing, validation, geodesic areas and tolerance checks.

Geometries are kept in WGS84 longitude/latitude (EPSG:4326) as the primer requires. An edge is a
straight line in longitude/latitude, as GIS software draws it; a geodesic between the same two
vertices bows away from it (about 1 cm over 850 m at 40°N), so that a vertex added on an
edge would change a geodesic area by several m². Areas are therefore geodesic on the WGS84
ellipsoid of the polygon densified to about 10 m, where the difference is far below a m².
Distances for tolerances are measured in a local azimuthal equidistant projection centred on
the hazard, which is exact enough at the scale of a minefield.
Nothing here repairs a geometry: a problem is reported, never fixed silently.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.errors import GEOSException
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from safeground.domain.errors import Problem

WGS84 = "EPSG:4326"
GEOD = Geod(ellps="WGS84")
DENSIFY_DEGREES = 1e-4  # about 11 m of latitude


def parse_geometry(value: Any) -> BaseGeometry:
    """Accept a shapely geometry, WKT, hex WKB, WKB bytes or a GeoJSON mapping/string.

    Anything unreadable raises ValueError, which validation reports against the field.
    """
    try:
        return _parse_geometry(value)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, GEOSException) as error:
        reason = str(error) or type(error).__name__
        raise ValueError(f"not a geometry (WKT, WKB or GeoJSON): {reason}") from None


def _parse_geometry(value: Any) -> BaseGeometry:
    if isinstance(value, BaseGeometry):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return shapely.from_wkb(bytes(value))
    if isinstance(value, dict):
        return shape(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            return shape(json.loads(text))
        if text and all(c in "0123456789abcdefABCDEF" for c in text[:18]) and len(text) % 2 == 0:
            return shapely.from_wkb(bytes.fromhex(text))  # GEOS reads hex text slower
        return shapely.from_wkt(text)
    raise TypeError(f"cannot read a geometry from {type(value).__name__}")


def geometry_problems(geom: BaseGeometry, expected: tuple[str, ...]) -> list[str]:
    """Why ``geom`` may not enter the register, or an empty list."""
    problems = []
    if geom.geom_type not in expected:
        problems.append(f"expected {' or '.join(expected)}, got {geom.geom_type}")
    if geom.is_empty:
        problems.append("geometry is empty")
        return problems
    if shapely.has_z(geom):
        problems.append("3D coordinates are not accepted; give longitude and latitude only")
    # GEOS crashes the process on some operations with an empty part (segmentize does).
    parts = getattr(geom, "geoms", ())  # a multi-part geometry's
    empty_parts = [i + 1 for i, part in enumerate(parts) if part.is_empty]
    if empty_parts:
        numbers = ", ".join(str(n) for n in empty_parts)
        which = f"part {numbers} is" if len(empty_parts) == 1 else f"parts {numbers} are"
        them = "it" if len(empty_parts) == 1 else "them"
        problems.append(f"{which} empty in the {geom.geom_type}: remove {them}")
        return problems
    minx, miny, maxx, maxy = geom.bounds
    if not (
        -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90
    ):
        problems.append(
            f"coordinates ({minx:.6g}, {miny:.6g}) .. ({maxx:.6g}, {maxy:.6g}) are not WGS84 "
            "longitude/latitude: reproject to EPSG:4326 first (wrong CRS?)"
        )
    elif not geom.is_valid:
        problems.append(f"invalid geometry: {shapely.is_valid_reason(geom)}")
    return problems


def geometries_acceptable(geoms: Any, expected: tuple[str, ...]) -> Any:
    """For each geometry of an array, whether ``geometry_problems`` finds nothing.

    The same checks in vectorised calls, for bulk imports; the reasons come from
    ``geometry_problems`` for the few geometries that fail.
    """
    geoms = np.asarray(geoms, dtype=object)
    kinds = [shapely.GeometryType[name.upper()] for name in expected]
    ok = np.isin(shapely.get_type_id(geoms), kinds) & ~shapely.is_empty(geoms)
    ok &= ~shapely.has_z(geoms)
    parts, owner = shapely.get_parts(geoms[ok], return_index=True)
    ok[np.flatnonzero(ok)[owner[shapely.is_empty(parts)]]] = False
    with np.errstate(invalid="ignore"):
        minx, miny, maxx, maxy = shapely.bounds(geoms).T
        ok &= (minx >= -180) & (maxx <= 180) & (maxx >= -180) & (minx <= 180)
        ok &= (miny >= -90) & (maxy <= 90) & (maxy >= -90) & (miny <= 90)
    ok[ok] = shapely.is_valid(geoms[ok])
    return ok


def geodesic_area(geom: BaseGeometry | None) -> float:
    """Area in m² on the WGS84 ellipsoid; 0 for points, lines and empty geometries."""
    if (
        geom is None
        or geom.is_empty
        or geom.geom_type
        not in (
            "Polygon",
            "MultiPolygon",
            "GeometryCollection",
        )
    ):
        return 0.0
    dense = shapely.segmentize(geom, DENSIFY_DEGREES)
    total = 0.0
    for polygon in shapely.get_parts(dense):
        if polygon.geom_type != "Polygon":
            total += geodesic_area(polygon)
            continue
        rings = [polygon.exterior, *polygon.interiors]
        for i, ring in enumerate(rings):
            xy = shapely.get_coordinates(ring)
            area, _ = GEOD.polygon_area_perimeter(xy[:, 0], xy[:, 1])
            total += abs(area) if i == 0 else -abs(area)
    return total


_AREAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)


def geodesic_areas(geoms: Any) -> Any:
    """``geodesic_area`` of each geometry of a sequence (None allowed), as a float array.

    The same figures, added up in the same order, so equal to the one-by-one areas: the
    densifying and the splitting into rings are vectorised shapely calls for all geometries at
    once, leaving one pyproj call per ring (pyproj has no call for many polygons). Geometry
    collections, rare, go through ``geodesic_area`` one by one.
    """
    values = np.empty(len(geoms), dtype=object)
    values[:] = list(geoms)
    out = np.zeros(len(values))
    kinds = shapely.get_type_id(values)  # -1 for None
    present = ~shapely.is_missing(values)
    present[present] = ~shapely.is_empty(values[present])
    for i in np.flatnonzero(present & (kinds == shapely.GeometryType.GEOMETRYCOLLECTION)):
        out[i] = geodesic_area(values[i])
    areal = np.flatnonzero(present & np.isin(kinds, _AREAL))
    if not len(areal):
        return out
    dense = shapely.segmentize(values[areal], DENSIFY_DEGREES)
    polygons, owner = shapely.get_parts(dense, return_index=True)
    rings, ring_polygon = shapely.get_rings(polygons, return_index=True)
    xy = shapely.get_coordinates(rings)
    ends = np.cumsum(shapely.get_num_coordinates(rings)).tolist()
    # A polygon's rings come exterior first.
    first = np.ones(len(rings), dtype=bool)
    first[1:] = ring_polygon[1:] != ring_polygon[:-1]
    x, y = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
    owners = owner.tolist()
    totals = [0.0] * len(areal)
    start = 0
    for end, exterior, polygon in zip(ends, first.tolist(), ring_polygon.tolist(), strict=True):
        area, _ = GEOD.polygon_area_perimeter(x[start:end], y[start:end])
        totals[owners[polygon]] += abs(area) if exterior else -abs(area)
        start = end
    out[areal] = totals
    return out


@lru_cache(maxsize=256)
def _local_transformer(lon: float, lat: float) -> Transformer:
    crs = CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
    return Transformer.from_crs(WGS84, crs, always_xy=True)


def to_local_metres(geoms: list[BaseGeometry], centre: BaseGeometry) -> list[BaseGeometry]:
    """Project to a metric plane centred near ``centre``.

    The centre is rounded to half a degree so that transformers are reused; 50 km from its
    centre an azimuthal equidistant projection distorts distances by about 10 ppm.
    """
    c = centre.centroid
    transformer = _local_transformer(round(c.x * 2) / 2, round(c.y * 2) / 2)
    return [
        shapely.transform(
            shapely.segmentize(g, DENSIFY_DEGREES), lambda xy: _apply(transformer, xy)
        )
        for g in geoms
    ]


def _apply(transformer: Transformer, xy: Any) -> Any:
    import numpy as np

    x, y = transformer.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


def metres_outside(inner: BaseGeometry, outer: BaseGeometry) -> float:
    """Largest distance (m) by which ``inner`` leaves ``outer``; 0 when it lies inside."""
    if outer.covers(inner):
        return 0.0
    inner_m, outer_m = to_local_metres([inner, outer], outer)
    outside = inner_m.difference(outer_m)
    if outside.is_empty:
        return 0.0
    # The farthest point lies on the outside part's boundary; sample it every metre.
    points = shapely.points(shapely.get_coordinates(shapely.segmentize(outside, 1.0)))
    return float(shapely.distance(outer_m, points).max())


def overlap_depth(a: BaseGeometry, b: BaseGeometry) -> float:
    """How far (m) the overlap of two polygons reaches inward: 0 when they only touch.

    Twice the largest inscribed-circle radius of the intersection, so a sliver along a shared
    edge (GPS jitter) measures its width, not its length.
    """
    a_m, b_m = to_local_metres([a, b], a)
    common = a_m.intersection(b_m)
    if common.is_empty or common.area == 0:
        return 0.0
    parts = getattr(common, "geoms", [common])
    widths = [
        2 * shapely.maximum_inscribed_circle(p, tolerance=0.01).length
        for p in parts
        if p.geom_type == "Polygon" and p.area > 0
    ]
    return max(widths, default=0.0)


def problem(field: str, reason: str) -> Problem:
    return Problem(field=field, reason=reason)
