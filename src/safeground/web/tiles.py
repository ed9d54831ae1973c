"""Vector tiles of the map layers under ``/tiles`` (Mapbox Vector Tile, one source-layer named
after the layer), filtered like the OGC items and by the caller's role."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from safeground.domain.errors import NotFound
from safeground.risk.attach import attached_map
from safeground.service import layers, tiles
from safeground.storage.store import Store
from safeground.web import risk
from safeground.web.deps import CurrentPrincipal, get_register

MVT = "application/vnd.mapbox-vector-tile"

router = APIRouter(prefix="/tiles", tags=["vector tiles"])


@router.get("/layers.json", summary="The tile layers the caller's role may see")
def layer_list(request: Request, principal: CurrentPrincipal) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "layers": [
                {
                    "id": layer.id,
                    "title": layer.title,
                    "geometry_type": layer.geometry_type,
                    "tiles": [f"{base}/tiles/{layer.id}/{{z}}/{{x}}/{{y}}.pbf"],
                    "source_layer": layer.id,
                    "properties": [*layer.tile_names, tiles.FEATURE_COUNT],
                    "filters": [*layer.filters, "since", "until"],
                    "minzoom": 0,
                    "maxzoom": tiles.DETAIL_ZOOM,
                }
                for layer in layers.visible_layers(principal)
            ]
            + risk.layer_entries(request, principal),
            "generalisation": (
                f"Below zoom {tiles.DETAIL_ZOOM}, a feature smaller than 1/{tiles.CELLS} of a "
                "tile in both directions is drawn as that cell (one per cell, the most "
                "important; feature_count says how many it stands for)."
            ),
        }
    )


@router.get(
    "/{layer_id}/{z}/{x}/{y}.pbf",
    summary="One vector tile (204 when empty)",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, 204: {"description": "No feature in the tile"}},
)
def vector_tile(
    request: Request,
    layer_id: str,
    z: int,
    x: int,
    y: int,
    principal: CurrentPrincipal,
    admin_area: Annotated[str | None, Query(description="Admin area IDs, comma-separated")] = None,
    operator: Annotated[str | None, Query(description="Organisation IDs, comma-separated")] = None,
    status: Annotated[str | None, Query(description="Statuses, comma-separated")] = None,
    since: Annotated[str | None, Query(description="ISO date: features from this day")] = None,
    until: Annotated[str | None, Query(description="ISO date: features up to this day")] = None,
    risk_map: Annotated[
        str | None,
        Query(
            description="SHA-256 of an attached risk map: the hazardous areas' risk_mean from "
            "its scores (by default, from the map attached last)"
        ),
    ] = None,
) -> Response:
    layer = layers.layer_for(principal, layer_id)
    store = get_register(request).store
    if risk_map is not None:
        _check_risk_map(store, layer, risk_map)
    try:
        address = tiles.TileAddress(z, x, y)
        query = layers.Query(
            interval=_interval(since, until),
            filters=layers.parse_filters(
                {"admin_area": admin_area, "operator": operator, "status": status}
            ),
            risk_map=risk_map,
        )
        data = tiles.tile(store, layer, principal, address, query, _cache(request))
    except ValueError as error:
        raise HTTPException(status_code=400, detail=str(error)) from None
    headers: dict[str, Any] = {"Vary": "Cookie, Authorization"}
    if data is None:
        return Response(status_code=204, headers=headers)
    return Response(data, media_type=MVT, headers=headers)


def _check_risk_map(store: Store, layer: layers.Layer, risk_map: str) -> None:
    """A risk map named for a layer with risk properties, and attached: a typing error would
    otherwise leave every area unscored, as if the map covered none of them."""
    if not layer.joined_tile_properties:
        raise HTTPException(400, f"the {layer.id} layer carries no risk: risk_map does not apply")
    with store.read_statement() as conn:
        if attached_map(conn, risk_map) is None:
            raise NotFound(f"no risk map with SHA-256 {risk_map} is attached")


def _cache(request: Request) -> tiles.TileCache:
    """The application's tile cache (made by ``create_app``)."""
    cache: tiles.TileCache = request.app.state.tile_cache
    return cache


def _interval(since: str | None, until: str | None) -> layers.Interval | None:
    if not since and not until:
        return None
    start = layers.parse_instant(since, "since") if since else None
    end = layers.parse_instant(until, "until") if until else None
    if start and end and end < start:
        raise ValueError(f"until {end} is before since {start}")
    return layers.Interval(start, end)
