"""The risk layer: PNG tiles of every risk map attached, and records' risk scores.

The register names each map (``risk_map``: path and SHA-256 at attach time); the server draws
a file only while its bytes still hash to that SHA-256. A file replaced or changed since is
refused, in ``/tiles/layers.json`` and on the map page as well as for its tiles, rather than
drawn as if it were the map attached. The hash is computed again whenever the file's size or
modification time changes; the map's bounds, which the listing gives, are read with it, once.

``/tiles/risk/{z}/{x}/{y}.png`` draws the map attached last; ``/tiles/risk/{sha256}/...`` the
map of that SHA-256, so that a planner can look at an earlier one, and so that a page keeps
drawing the map its legend names when a newer one is attached meanwhile.

Tiles are cut from the COG by rio-tiler and coloured with matplotlib's viridis ramp (sequential,
readable with the common colour-vision deficiencies and in grey): risk ``r`` in 0..1 is drawn as
entry ``floor(255 r)`` of the ramp; cells without a value are transparent.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

import morecantile
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from rio_tiler.colormap import cmap
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader
from sqlalchemy import Row, select

from safeground.domain.access import Principal
from safeground.domain.errors import NotFound
from safeground.risk.attach import AttachedMap, attached_map, attached_maps, current_map
from safeground.service.risk_scores import SCORES_NEWEST_FIRST
from safeground.storage.schema import risk_score
from safeground.web.api.views import check_record_visible
from safeground.web.deps import get_register, require

PNG = "image/png"
RAMP_NAME = "viridis"
Colour = tuple[int, int, int, int]
Bounds = tuple[float, float, float, float]  # west, south, east, north
# 256 entries, index → RGBA (rio-tiler's types also allow interval ramps, which this is not).
RAMP: dict[int, Colour] = {
    int(k): (int(r), int(g), int(b), int(a))
    for k, (r, g, b, a) in cast(dict[int, Colour], cmap.get(RAMP_NAME)).items()
}
# Stops of the ramp for the legend's gradient (risk, colour).
LEGEND_STOPS = (0.0, 0.25, 0.5, 0.75, 1.0)
TILE_SIZE = 256
# Past the map's own resolution tiles are enlarged cells (nearest neighbour); MapLibre asks for
# them up to here.
MAX_ZOOM = 18
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")

router = APIRouter(tags=["risk"])
RecordReader = Annotated[Principal, Depends(require(lambda p: p.sees_records, "see risk"))]


@dataclass(frozen=True)
class RiskLayer:
    """An attached risk map and whether its file may be drawn (``problem`` says why not)."""

    attached: AttachedMap
    problem: str | None

    @property
    def title(self) -> str:
        return f"Risk (model {self.attached.model_version}, {self.attached.map_date.isoformat()})"

    def entry(self, tiles: str, verified: Verified) -> dict[str, Any]:
        """The map as ``/tiles/layers.json`` lists it, its tiles under the URL ``tiles``."""
        entry: dict[str, Any] = {
            "title": self.title,
            "model_version": self.attached.model_version,
            "map_date": self.attached.map_date.isoformat(),
            "map_sha256": self.attached.sha256,
            "attached_at": self.attached.attached_at.isoformat(),
            "available": self.problem is None,
            "legend": [{"risk": v, "colour": _hex(RAMP[int(255 * v)])} for v in LEGEND_STOPS],
        }
        if self.problem is not None:
            return {**entry, "problem": self.problem}
        return {
            **entry,
            "tiles": [f"{tiles}/{{z}}/{{x}}/{{y}}.png"],
            "tile_size": TILE_SIZE,
            "minzoom": 0,
            "maxzoom": MAX_ZOOM,
            "bounds": verified.bounds(self.attached.path),
        }


def _hex(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour[:3])


@dataclass
class _Known:
    """A file as hashed: its size and modification time then, its SHA-256, and its bounds once
    read."""

    size: int
    mtime_ns: int
    sha256: str
    bounds: Bounds | None = None


class Verified:
    """SHA-256 of files, each remembered with the size and modification time it was hashed at
    and hashed again when either changes, and with the map's bounds, read at most once for
    that hash: the listing would otherwise open every map on every page load. Holds the
    ``capacity`` files used last: the listing checks every attached map, so a register with
    more maps than that hashes some each time."""

    def __init__(self, capacity: int = 256) -> None:
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def sha256(self, path: Path) -> str:
        return self._current(path).sha256

    def bounds(self, path: Path) -> Bounds:
        """The map's bounds in lon/lat, as rio-tiler reads them."""
        known = self._current(path)
        if known.bounds is None:
            with Reader(str(path)) as src:
                known.bounds = src.get_geographic_bounds(WEB_MERCATOR.rasterio_geographic_crs)
        return known.bounds

    def _current(self, path: Path) -> _Known:
        """The file as remembered, or hashed again if its size or modification time changed."""
        stat = path.stat()
        key, size, mtime = str(path), stat.st_size, stat.st_mtime_ns
        with self._lock:
            known = self._known.get(key)
            if known is not None and (known.size, known.mtime_ns) == (size, mtime):
                self._known.move_to_end(key)
                return known
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        found = _Known(size, mtime, digest.hexdigest())
        with self._lock:
            self._known[key] = found
            self._known.move_to_end(key)
            while len(self._known) > self._capacity:
                self._known.popitem(last=False)
        return found


def _verified(request: Request) -> Verified:
    """The application's verified files (made by ``create_app``)."""
    verified: Verified = request.app.state.risk_verified
    return verified


def _checked(request: Request, attached: AttachedMap) -> RiskLayer:
    """The map with the reason its file may not be drawn, if there is one."""
    path = attached.path
    try:
        digest = _verified(request).sha256(path)
    except OSError as error:
        return RiskLayer(attached, f"the risk map file {path} cannot be read ({error.strerror})")
    if digest != attached.sha256:
        return RiskLayer(
            attached,
            f"the risk map file {path} has changed since it was attached (SHA-256 "
            f"{digest[:12]}…, attached {attached.sha256[:12]}…): attach it again",
        )
    return RiskLayer(attached, None)


def layer_entries(request: Request, principal: Principal) -> list[dict[str, Any]]:
    """The risk layer's entry for ``/tiles/layers.json``, for roles that see records: the map
    attached last, and under ``maps`` every map attached, newest first, each with its tiles."""
    if not principal.sees_records:
        return []
    with get_register(request).store.read() as conn:
        attached = attached_maps(conn)
    layers = [_checked(request, one) for one in attached]
    if not layers:
        return []
    verified = _verified(request)
    tiles = f"{str(request.base_url).rstrip('/')}/tiles/risk"
    maps = [layer.entry(f"{tiles}/{layer.attached.sha256}", verified) for layer in layers]
    return [{"id": "risk", "type": "raster", **layers[0].entry(tiles, verified), "maps": maps}]


TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {PNG: {}}},
    204: {"description": "The tile holds no cell of the map"},
    404: {"description": "No such risk map is attached"},
    409: {"description": "The map's file changed since it was attached"},
}


@router.get(
    "/tiles/risk/{z}/{x}/{y}.png",
    summary="One PNG tile of the risk map attached last (204 outside it)",
    response_class=Response,
    responses=TILE_RESPONSES,
)
def risk_tile(request: Request, z: int, x: int, y: int, principal: RecordReader) -> Response:
    with get_register(request).store.read() as conn:
        attached = current_map(conn)
    return _tile(request, attached, "no risk map is attached (safeground risk attach)", z, x, y)


@router.get(
    "/tiles/risk/{map_sha256}/{z}/{x}/{y}.png",
    summary="One PNG tile of the risk map attached with that SHA-256 (204 outside it)",
    response_class=Response,
    responses=TILE_RESPONSES,
)
def risk_map_tile(
    request: Request, map_sha256: str, z: int, x: int, y: int, principal: RecordReader
) -> Response:
    with get_register(request).store.read() as conn:
        attached = attached_map(conn, map_sha256)
    missing = f"no risk map with SHA-256 {map_sha256} is attached"
    return _tile(request, attached, missing, z, x, y)


def _tile(
    request: Request, attached: AttachedMap | None, missing: str, z: int, x: int, y: int
) -> Response:
    """The PNG tile of ``attached`` (``missing`` says why there is none when it is None)."""
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
        raise HTTPException(400, f"no tile {z}/{x}/{y}: zoom 0..{MAX_ZOOM}, x and y 0..2^z-1")
    if attached is None:
        raise NotFound(missing)
    layer = _checked(request, attached)
    if layer.problem is not None:
        raise HTTPException(409, layer.problem)
    headers = {"Vary": "Cookie, Authorization"}
    with Reader(str(layer.attached.path)) as src:
        try:
            image = src.tile(x, y, z, tilesize=TILE_SIZE)
        except TileOutsideBounds:
            return Response(status_code=204, headers=headers)
    if image.array.mask.all():
        return Response(status_code=204, headers=headers)
    image.array.fill_value = 0  # masked cells: cast to the ramp's bytes without NaN
    image.rescale(in_range=((0.0, 1.0),))
    return Response(image.render(img_format="PNG", colormap=RAMP), media_type=PNG, headers=headers)


@router.get("/api/records/{record_id}/risk", summary="A record's mean and max mapped risk")
def record_risk(request: Request, record_id: str, principal: RecordReader) -> dict[str, Any]:
    """Mean and max risk of a hazardous area or task from the map attached last over it, and
    under ``maps`` its scores from every map attached over it, newest first."""
    register = get_register(request)
    with register.store.read() as conn:
        over_it = select(risk_score).where(risk_score.c.record_id == record_id)
        rows = conn.execute(over_it.order_by(*SCORES_NEWEST_FIRST)).all()
    if not rows:
        raise NotFound(f"{record_id} has no risk score (no risk map attached covers it)")
    newest = rows[0]
    if newest.record_type == "task" and principal.is_organisation_scoped:
        check_record_visible(principal, register.get(record_id))
    return {
        "record_id": newest.record_id,
        "record_type": newest.record_type,
        **_score(newest),
        "maps": [_score(row) for row in rows],
    }


def _score(row: Row[Any]) -> dict[str, Any]:
    """A record's score from one map."""
    return {
        "mean_risk": row.mean_risk,
        "max_risk": row.max_risk,
        "cells": row.cells,
        "model_version": row.model_version,
        "map_date": row.map_date.isoformat(),
        "map_sha256": row.map_sha256,
        "attached_at": row.attached_at.isoformat(),
    }
