"""OGC API - Features under ``/ogc``: Part 1 Core with GeoJSON and an OpenAPI 3.0 document, and
Part 2 (coordinate reference systems by reference), so that QGIS, ArcGIS and GDAL add the
register's layers as live layers. Collections are the map layers the caller's role may see.

Coordinates are stored in WGS84 longitude/latitude (CRS84). ``crs`` and ``bbox-crs`` take CRS84,
EPSG:4326 (latitude first, as EPSG defines it), EPSG:3857, and the UTM zones the register's
admin areas cover. A bad parameter is a 400 answer naming it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlencode

import numpy as np
import orjson
import pyproj
import shapely
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from shapely.geometry.base import BaseGeometry

from safeground.domain.access import Principal
from safeground.service import layers
from safeground.service.layers import Feature, Layer
from safeground.storage.store import Store
from safeground.web.deps import (
    BASIC_CHALLENGE,
    MAX_ID,
    OGC_PREFIX,
    CurrentPrincipal,
    current_principal,
    get_register,
    security_schemes,
)

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
GEOJSON = "application/geo+json"
JSON = "application/json"
OPENAPI_30 = "application/vnd.oai.openapi+json;version=3.0"
MAX_LIMIT = 10_000
ITEMS_PARAMETERS = {"limit", "offset", "bbox", "bbox-crs", "datetime", "crs", "f", *layers.FILTERS}

# The credentials /ogc accepts (web.deps.current_principal), as OpenAPI security schemes.
SECURITY_SCHEMES: dict[str, dict[str, Any]] = security_schemes()
CREDENTIALS: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]
ANONYMOUS_TOO = [*CREDENTIALS, {}]  # `{}`: a request without credentials is answered too


class _OgcRoute(APIRoute):
    """OGC API answers a malformed parameter with 400 (the rest of the API uses 422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def ogc_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                problems = [
                    f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in error.errors()
                ]
                return JSONResponse({"detail": "; ".join(problems)}, status_code=400)

        return ogc_handler


router = APIRouter(prefix=OGC_PREFIX, tags=["OGC API - Features"], route_class=_OgcRoute)


def _bad(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def _url(request: Request, path: str, **params: Any) -> str:
    base = str(request.base_url).rstrip("/") + OGC_PREFIX + path
    query = {k: v for k, v in params.items() if v is not None}
    return f"{base}?{urlencode(query)}" if query else base


# -- coordinate reference systems ---------------------------------------------------------------


def supported_crs(store: Store) -> list[str]:
    """CRS84 first (the storage CRS), then EPSG:4326, EPSG:3857, the admin areas' UTM zones."""
    admin = layers.extent(store, layers.LAYERS["admin_area"], Principal.anonymous()).bbox
    zones = _utm_zones(admin) if admin else []
    return [CRS84, f"{EPSG}4326", f"{EPSG}3857", *(f"{EPSG}{code}" for code in zones)]


def _utm_zones(bbox: layers.Bbox) -> list[int]:
    """EPSG codes of the WGS84 UTM zones a lon/lat box touches."""
    minx, miny, maxx, maxy = bbox
    first = max(1, math.floor((minx + 180) / 6) + 1)
    last = min(60, math.floor((maxx + 180) / 6) + 1)
    hemispheres = ([32600] if maxy >= 0 else []) + ([32700] if miny < 0 else [])
    return [base + zone for base in hemispheres for zone in range(first, last + 1)]


def _crs_parameter(value: str | None, supported: list[str], name: str) -> str:
    if value is None:
        return CRS84
    uri = value.strip("<>[]")
    if uri.upper().startswith("EPSG:"):
        uri = EPSG + uri[5:]
    if uri not in supported:
        raise _bad(f"{name}: {value!r} is not supported; supported: {', '.join(supported)}")
    return uri


@cache
def _transformer(source: str, target: str) -> pyproj.Transformer:
    """In each CRS's own axis order (EPSG:4326 is latitude, longitude)."""
    return pyproj.Transformer.from_crs(_pyproj_crs(source), _pyproj_crs(target))


def _pyproj_crs(uri: str) -> str:
    return "OGC:CRS84" if uri == CRS84 else "EPSG:" + uri.removeprefix(EPSG)


def _geometries_json(
    geometries: list[BaseGeometry | None], crs: str
) -> list[orjson.Fragment | None]:
    """A page's geometries as GeoJSON text, reprojected and written by GEOS for the whole page at
    once (shapely's per-geometry ``mapping`` and Python's JSON encoder cost most of a page)."""
    array = np.empty(len(geometries), dtype=object)
    array[:] = geometries
    if crs != CRS84:
        transformer = _transformer(CRS84, crs)
        array = shapely.transform(
            array, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )
    return [None if text is None else orjson.Fragment(text) for text in shapely.to_geojson(array)]


class _GeoJSONResponse(JSONResponse):
    """Features encoded by orjson, which embeds the geometries' GeoJSON text as it is."""

    media_type = GEOJSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# -- resources ----------------------------------------------------------------------------------


@router.get("", summary="Landing page")
def landing(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "title": "Safeground mine action register",
            "description": "The register's map layers as OGC API - Features collections.",
            "links": [
                {"rel": "self", "type": JSON, "title": "This page", "href": _url(request, "")},
                {
                    "rel": "service-desc",
                    "type": OPENAPI_30,
                    "title": "The API definition (OpenAPI 3.0)",
                    "href": _url(request, "/api"),
                },
                {
                    "rel": "conformance",
                    "type": JSON,
                    "title": "Conformance classes",
                    "href": _url(request, "/conformance"),
                },
                {
                    "rel": "data",
                    "type": JSON,
                    "title": "Collections",
                    "href": _url(request, "/collections"),
                },
            ],
        }
    )


@router.get("/conformance", summary="Conformance classes implemented")
def conformance() -> JSONResponse:
    return JSONResponse({"conformsTo": CONFORMANCE})


@router.get("/api", summary="OpenAPI 3.0 definition of this OGC API")
def api_definition() -> JSONResponse:
    return JSONResponse(_api_document(), headers={"Content-Type": OPENAPI_30})


@cache
def _api_document() -> dict[str, Any]:
    """Built at the first request: the routes do not change while the server runs."""
    result: dict[str, Any] = _nullable_30(_document("3.0.3"))
    return result


def openapi_paths() -> dict[str, Any]:
    """The paths of /ogc as ``/ogc/api`` describes them (credentials, answers, the public
    collections' own paths), in OpenAPI 3.1 for the application's ``/api/openapi.json``."""
    paths: dict[str, Any] = _document("3.1.0")["paths"]
    return paths


def _document(openapi_version: str) -> dict[str, Any]:
    document = get_openapi(
        title="Safeground OGC API - Features",
        version="1.0.0",
        openapi_version=openapi_version,
        description="Without credentials, the public layers only (admin_area); an account's API "
        "token (bearer, or HTTP Basic with the token as password) or a browser session reads "
        "the layers its role may.",
        routes=router.routes,
    )
    _declare_security(document)
    return document


def _declare_security(document: dict[str, Any]) -> None:
    """Say which credentials each operation takes (``SECURITY_SCHEMES``) and what it answers
    without them or with the wrong ones. Operations that do not look at the caller take none.
    The listing answers anyone (with the collections the caller may read); a collection's own
    paths need credentials, except the public collections', which get paths of their own
    (``/ogc/collections/admin_area/items``: OpenAPI matches a concrete path before a templated
    one) answering without them too."""
    document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    document["security"] = ANONYMOUS_TOO
    paths: dict[str, dict[str, Any]] = document["paths"]
    public: dict[str, dict[str, Any]] = {}
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        operations = paths[route.path_format]
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)  # /ogc answers 400 (_OgcRoute)
            if not any(d.call is current_principal for d in route.dependant.dependencies):
                operation["security"] = []
                continue
            operation["responses"].update(_CREDENTIAL_RESPONSES)
            if any(p["in"] == "query" for p in operation.get("parameters", [])):
                operation["responses"]["400"] = _BAD_PARAMETER
            if "{collection_id}" not in route.path_format:
                operation["security"] = ANONYMOUS_TOO
                operation["description"] = _joined(
                    operation.get("description"),
                    "Answered without credentials too: the collections the caller may read.",
                )
                continue
            operation["security"] = CREDENTIALS
            operation["responses"].update(_COLLECTION_RESPONSES)
            operation["description"] = _joined(
                operation.get("description"),
                "Collections other than "
                + ", ".join(layer.id for layer in layers.LAYERS.values() if layer.public)
                + " need credentials (401 without them, 403 for a role that may not read the "
                "collection); the public collections have paths of their own, which need none.",
            )
        for layer in layers.LAYERS.values():
            if layer.public:
                path = route.path_format.replace("{collection_id}", layer.id)
                if path != route.path_format:
                    public[path] = {
                        method: _public_operation(operation, layer)
                        for method, operation in operations.items()
                    }
    paths.update(public)
    schemas = document["components"].get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # only the 422s named them
        schemas.pop(name, None)
    if not schemas:
        document["components"].pop("schemas", None)


def _public_operation(operation: dict[str, Any], layer: Layer) -> dict[str, Any]:
    """A collection operation for a public layer: no credentials needed, and only the filters
    the layer takes."""
    public = copy.deepcopy(operation)
    public["operationId"] = f"{operation['operationId']}_{layer.id}"
    public["summary"] = f"{operation['summary']}: {layer.id} (public)"
    public["description"] = f"{layer.title}: answered without credentials too."
    public["parameters"] = [
        p
        for p in public.get("parameters", [])
        if p["name"] != "collection_id"
        and (p["name"] not in layers.FILTERS or p["name"] in layer.filters)
    ]
    public["security"] = ANONYMOUS_TOO
    public["responses"].pop("403", None)
    if not any(p["in"] == "path" for p in public["parameters"]):
        public["responses"].pop("404", None)  # the collection is there: no feature is asked for
    return public


_ERROR_CONTENT = {
    JSON: {
        "schema": {
            "type": "object",
            "properties": {"detail": {"type": "string"}},
            "required": ["detail"],
        }
    }
}
_BAD_PARAMETER = {
    "description": "A malformed or unknown parameter, named",
    "content": _ERROR_CONTENT,
}
_CREDENTIAL_RESPONSES: dict[str, Any] = {
    "401": {
        "description": "Credentials needed, or the credentials sent are unknown, revoked or "
        "not an API token of that user name",
        "headers": {
            "WWW-Authenticate": {
                "description": f"`{BASIC_CHALLENGE}`",
                "schema": {"type": "string"},
            }
        },
        "content": _ERROR_CONTENT,
    },
}
_COLLECTION_RESPONSES: dict[str, Any] = {
    "403": {
        "description": "The caller's role may not read this collection",
        "content": _ERROR_CONTENT,
    },
    "404": {"description": "No such collection or feature", "content": _ERROR_CONTENT},
}


def _nullable_30(node: Any) -> Any:
    """FastAPI writes OpenAPI 3.1; an optional value becomes 3.0's ``nullable``."""
    if isinstance(node, list):
        return [_nullable_30(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable_30(v) for k, v in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        node.pop("anyOf")
        node.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        node["nullable"] = True
    return node


@router.get("/collections", summary="The collections the caller's role may read")
def collections(request: Request, principal: CurrentPrincipal) -> JSONResponse:
    store = get_register(request).store
    crs = supported_crs(store)
    return JSONResponse(
        {
            "links": [
                {"rel": "self", "type": JSON, "href": _url(request, "/collections")},
            ],
            "collections": [
                _collection(request, store, layer, principal, crs)
                for layer in layers.visible_layers(principal)
            ],
            "crs": crs,
        }
    )


@router.get("/collections/{collection_id}", summary="One collection")
def collection(request: Request, collection_id: str, principal: CurrentPrincipal) -> JSONResponse:
    store = get_register(request).store
    layer = layers.layer_for(principal, collection_id)
    return JSONResponse(_collection(request, store, layer, principal, supported_crs(store)))


def _collection(
    request: Request, store: Store, layer: Layer, principal: Principal, crs: list[str]
) -> dict[str, Any]:
    extent = layers.extent(store, layer, principal)
    spatial = {"bbox": [list(extent.bbox)], "crs": CRS84} if extent.bbox else None
    temporal = None
    if extent.interval:
        temporal = {
            "interval": [[d.isoformat() + "T00:00:00Z" if d else None for d in extent.interval]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    path = f"/collections/{layer.id}"
    return {
        "id": layer.id,
        "title": layer.title,
        "description": layer.description,
        "itemType": "feature",
        "extent": {k: v for k, v in (("spatial", spatial), ("temporal", temporal)) if v},
        "crs": crs,
        "storageCrs": CRS84,
        "links": [
            {"rel": "self", "type": JSON, "href": _url(request, path)},
            {
                "rel": "items",
                "type": GEOJSON,
                "title": layer.title,
                "href": _url(request, path + "/items"),
            },
        ],
    }


@router.get("/collections/{collection_id}/items", summary="Features of a collection")
def items(
    request: Request,
    collection_id: str,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Features per page")] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_ID, description="Features to skip")] = 0,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy in bbox-crs")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs")] = None,
    datetime_: Annotated[
        str | None,
        Query(alias="datetime", description="An instant or an interval (`a/b`, `../b`, `a/..`)"),
    ] = None,
    crs: Annotated[str | None, Query(description="CRS of the answer's coordinates")] = None,
    admin_area: Annotated[str | None, Query(description="Admin area IDs, comma-separated")] = None,
    operator: Annotated[str | None, Query(description="Organisation IDs, comma-separated")] = None,
    status: Annotated[str | None, Query(description="Statuses, comma-separated")] = None,
) -> JSONResponse:
    unknown = set(request.query_params) - ITEMS_PARAMETERS
    if unknown:
        raise _bad(
            f"unknown parameter(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(ITEMS_PARAMETERS))}"
        )
    _check_format(request)
    store = get_register(request).store
    layer = layers.layer_for(principal, collection_id)
    supported = supported_crs(store) if crs or bbox_crs else [CRS84]
    out_crs = _crs_parameter(crs, supported, "crs")
    try:
        query = layers.Query(
            bbox=_lonlat_bbox(bbox, _crs_parameter(bbox_crs, supported, "bbox-crs")),
            interval=layers.parse_datetime(datetime_) if datetime_ else None,
            filters=layers.parse_filters(
                {"admin_area": admin_area, "operator": operator, "status": status}
            ),
            limit=limit,
            offset=offset,
        )
        page = layers.items(store, layer, principal, query, request.app.state.envelopes)
    except ValueError as error:
        raise _bad(str(error)) from None
    path = f"/collections/{layer.id}/items"
    params = dict(request.query_params)
    links = [
        {"rel": "self", "type": GEOJSON, "href": _url(request, path, **params)},
        {"rel": "collection", "type": JSON, "href": _url(request, f"/collections/{layer.id}")},
    ]
    if offset + len(page.features) < page.number_matched:
        following = {**params, "offset": offset + limit, "limit": limit}
        links.append({"rel": "next", "type": GEOJSON, "href": _url(request, path, **following)})
    if offset > 0:
        previous = {**params, "offset": max(0, offset - limit), "limit": limit}
        links.append({"rel": "prev", "type": GEOJSON, "href": _url(request, path, **previous)})
    body = {
        "type": "FeatureCollection",
        "features": [
            _feature_json(request, layer, feature, geometry)
            for feature, geometry in zip(
                page.features,
                _geometries_json([f.geometry for f in page.features], out_crs),
                strict=True,
            )
        ],
        "numberMatched": page.number_matched,
        "numberReturned": len(page.features),
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": links,
    }
    return _GeoJSONResponse(body, headers={"Content-Crs": f"<{out_crs}>"})


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature")
def item(
    request: Request,
    collection_id: str,
    feature_id: str,
    principal: CurrentPrincipal,
    crs: Annotated[str | None, Query(description="CRS of the answer's coordinates")] = None,
) -> JSONResponse:
    _check_format(request)
    store = get_register(request).store
    layer = layers.layer_for(principal, collection_id)
    out_crs = _crs_parameter(crs, supported_crs(store) if crs else [CRS84], "crs")
    feature = layers.item(store, layer, principal, feature_id)
    geometry = _geometries_json([feature.geometry], out_crs)[0]
    return _GeoJSONResponse(
        _feature_json(request, layer, feature, geometry, self_link=True),
        headers={"Content-Crs": f"<{out_crs}>"},
    )


def _check_format(request: Request) -> None:
    """``f`` (which OGC clients send) may ask only for JSON: there is no HTML rendition."""
    wanted = request.query_params.get("f")
    if wanted not in (None, "json", "geojson"):
        raise _bad(f"f: {wanted!r} is not offered; use json")


def _lonlat_bbox(text: str | None, bbox_crs: str) -> layers.Bbox | None:
    if text is None:
        return None
    a, b, c, d = layers.parse_bbox(text)
    if bbox_crs != CRS84:
        a, b, c, d = _transformer(bbox_crs, CRS84).transform_bounds(a, b, c, d)
    if a > c:
        raise ValueError("bbox: boxes across the antimeridian (minx > maxx) are not supported")
    if b > d:
        raise ValueError(f"bbox: {text!r}: the lower corner is above the upper one")
    return a, b, c, d


def _feature_json(
    request: Request,
    layer: Layer,
    feature: Feature,
    geometry: orjson.Fragment | None,
    self_link: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "Feature",
        "id": feature.id,
        "geometry": geometry,
        "properties": feature.properties,
    }
    if self_link:
        path = f"/collections/{layer.id}"
        body["links"] = [
            {"rel": "self", "type": GEOJSON, "href": _url(request, f"{path}/items/{feature.id}")},
            {"rel": "collection", "type": JSON, "href": _url(request, path)},
        ]
    return body


def _joined(*texts: str | None) -> str:
    return "\n\n".join(t for t in texts if t)
