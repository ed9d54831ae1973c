"""``risk map``: a risk grid over a region of the register, as a COG GeoTIFF and a GeoPackage.

The grid is built and scored a block of rows at a time, so memory holds a few blocks whatever
the region; blocks run in this process or on a dask.distributed cluster, through the same
function, so both give the same map. Each cell's features depend on its centre only (no
neighbourhood), so blocks need no halo.

Unless a model file is given, a presence-only model (``presence.py``) is fitted first: the
cells holding the register's presences against a seeded random sample of the region's cells.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import rasterio.shutil
import shapely
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from safeground.risk.evidence import Evidence, load_evidence
from safeground.risk.grid import Grid
from safeground.risk.presence import BACKGROUND, PresenceModel, fit_presence
from safeground.service.register import Register

GRID_LAYER = "risk_grid"
# Cells per block: bounds memory whatever the width of the region (MaxEnt's hinge transform
# holds several float64 copies of a block's features).
CELLS_PER_BLOCK = 250_000
TOP_FACTORS = 3


@dataclass
class Block:
    """A scored block: the risk raster of rows r0..r1 and a table of its region cells."""

    r0: int
    r1: int
    risk: np.ndarray  # float32 (rows, width), NaN outside the region
    cells: pd.DataFrame  # row, col, risk, factor_k, factor_k_effect


@dataclass
class MapResult:
    tif: Path
    gpkg: Path | None
    model: PresenceModel
    region: str
    cells: int
    blocks: int
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "geotiff": str(self.tif),
            "geopackage": f"{self.gpkg} (layer {GRID_LAYER})" if self.gpkg else None,
            "region": self.region,
            "cells": self.cells,
            "blocks": self.blocks,
            "model_version": self.model.version,
            "presence_cells": self.model.n_presence,
            "background_cells": self.model.n_background,
            "features": self.model.features,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def region_cells(grid: Grid, rows_per_block: int) -> list[int]:
    """Number of region cells in each row block."""
    return [int(grid.inside(r0, r1).sum()) for r0, r1 in grid.row_blocks(rows_per_block)]


def background_cells(grid: Grid, n: int, seed: int) -> np.ndarray:
    """(n, 2) row/col of region cells drawn uniformly without replacement (seeded)."""
    rows_per_block = grid.rows_for(CELLS_PER_BLOCK)
    counts = region_cells(grid, rows_per_block)
    total = sum(counts)
    if total == 0:
        raise ValueError("no cell centre falls inside the region: use a smaller cell")
    ranks = np.sort(np.random.default_rng(seed).choice(total, min(n, total), replace=False))
    out: list[np.ndarray] = []
    start = 0
    for (r0, r1), k in zip(grid.row_blocks(rows_per_block), counts, strict=True):
        mine = ranks[(ranks >= start) & (ranks < start + k)] - start
        if mine.size:
            rr, cc = np.nonzero(grid.inside(r0, r1))
            out.append(np.column_stack([rr[mine] + r0, cc[mine]]))
        start += k
    return np.vstack(out)


def fit_map_model(
    evidence: Evidence, *, background: int = BACKGROUND, seed: int = 0
) -> PresenceModel:
    """Presence cells of the region against a random sample of its cells."""
    grid = evidence.grid
    pres = evidence.presence_cells()
    bg = background_cells(grid, background, seed)
    return fit_presence(
        evidence.features(*grid.centres_of(pres[:, 0], pres[:, 1])),
        evidence.features(*grid.centres_of(bg[:, 0], bg[:, 1])),
        seed=seed,
    )


def score_block(
    evidence: Evidence, model: PresenceModel, r0: int, r1: int, explain: int = TOP_FACTORS
) -> Block:
    """Features, risk and top factors of the region cells of rows r0..r1."""
    grid = evidence.grid
    inside = grid.inside(r0, r1).ravel()
    x, y = grid.centres(r0, r1)
    feats = evidence.features(x[inside], y[inside])
    risk, contrib = model.score(feats, explain=bool(explain))
    raster = np.full(inside.shape, np.nan, dtype=np.float32)
    raster[inside] = risk
    flat = np.flatnonzero(inside)
    cells = pd.DataFrame({"row": flat // grid.width + r0, "col": flat % grid.width, "risk": risk})
    if explain:
        cells = pd.concat([cells, model.factors(contrib, top=explain)], axis=1)
    return Block(r0, r1, raster.reshape(r1 - r0, grid.width), cells)


def score_blocks(
    evidence: Evidence,
    model: PresenceModel,
    *,
    rows_per_block: int | None = None,
    client: Any | None = None,
) -> Iterator[Block]:
    """Blocks in row order, scored here or on a Dask client (evidence and model sent once).

    Blocks are ``rows_per_block`` rows, by default as many as make about CELLS_PER_BLOCK cells.
    """
    grid = evidence.grid
    spans = list(grid.row_blocks(rows_per_block or grid.rows_for(CELLS_PER_BLOCK)))
    if client is None:
        for r0, r1 in spans:
            yield score_block(evidence, model, r0, r1)
        return
    ev, mo = client.scatter([evidence, model], broadcast=True)
    futures = [client.submit(score_block, ev, mo, r0, r1, pure=False) for r0, r1 in spans]
    for fut in futures:
        yield fut.result()
        fut.release()


def _cell_polygons(grid: Grid, cells: pd.DataFrame) -> np.ndarray:
    a = grid.transform
    x0 = a.c + cells["col"].to_numpy() * a.a
    y1 = a.f + cells["row"].to_numpy() * a.e
    return np.asarray(shapely.box(x0, y1 + a.e, x0 + a.a, y1))


def write_map(
    grid: Grid,
    blocks: Iterator[Block],
    tif: Path,
    model_version: str,
    tags: dict[str, str],
    grid_layer: bool = True,
) -> int:
    """Write the COG GeoTIFF at ``tif`` and (unless told not to) the grid layer at ``tif`` with
    suffix .gpkg; returns the number of region cells.

    The raster is written block by block to a tiled GeoTIFF, then copied to a cloud-optimised
    one (GDAL's COG driver adds the overviews); the GeoPackage is appended block by block.
    Both are written to temporary names and moved into place at the end, so a failed run
    leaves no half map.
    """
    gpkg = tif.with_suffix(".gpkg")
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": "float32",
        "nodata": np.nan,
        "crs": grid.crs,
        "transform": grid.transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    n = 0
    with tempfile.TemporaryDirectory(dir=tif.parent) as tmp:
        raw, tmp_tif, tmp_gpkg = Path(tmp) / "raw.tif", Path(tmp) / "map.tif", Path(tmp) / "g.gpkg"
        with rasterio.open(raw, "w", **profile) as dst:
            dst.update_tags(**tags, model_version=model_version)
            dst.set_band_description(1, "risk")
            for b in blocks:
                dst.write(b.risk, 1, window=Window(0, b.r0, grid.width, b.r1 - b.r0))
                n += len(b.cells)
                if grid_layer and len(b.cells):
                    frame = b.cells.assign(model_version=model_version)
                    gdf = gpd.GeoDataFrame(
                        frame, geometry=_cell_polygons(grid, b.cells), crs=grid.crs
                    )
                    # Arrow (pyarrow comes with dask[dataframe]) writes about twice as fast.
                    pyogrio.write_dataframe(
                        gdf,
                        tmp_gpkg,
                        layer=GRID_LAYER,
                        driver="GPKG",
                        append=tmp_gpkg.exists(),
                        use_arrow=True,
                    )
        rasterio.shutil.copy(
            raw,
            tmp_tif,
            driver="COG",
            COMPRESS="DEFLATE",
            BLOCKSIZE=256,
            OVERVIEW_RESAMPLING="AVERAGE",
        )
        if not n:
            raise ValueError("the region holds no cell: nothing to map")
        os.replace(tmp_tif, tif)
        if grid_layer:
            os.replace(tmp_gpkg, gpkg)
    return n


def build_map(
    register: Register,
    region_label: str,
    region_wgs84: BaseGeometry,
    cell_m: float,
    out: Path,
    *,
    model: PresenceModel | None = None,
    background: int = BACKGROUND,
    seed: int = 0,
    cells_per_block: int = CELLS_PER_BLOCK,
    client: Any | None = None,
    grid_layer: bool = True,
) -> MapResult:
    """Grid, evidence, model (fitted unless given), scored blocks, files."""
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"--out {out}: give a .tif path (the grid layer goes beside it, .gpkg)")
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    grid = Grid.over(region_wgs84, cell_m)
    evidence = load_evidence(register, grid, region_wgs84)
    seconds["read register"] = time.perf_counter() - t
    t = time.perf_counter()
    if model is None:
        model = fit_map_model(evidence, background=background, seed=seed)
    seconds["fit"] = time.perf_counter() - t
    t = time.perf_counter()
    tags = {
        "region": region_label,
        "cell_m": f"{cell_m:g}",
        "map_date": datetime.now(UTC).date().isoformat(),
        "model": "presence-only MaxEnt (elapid), cloglog output in 0..1",
        "features": ",".join(model.features),
    }
    rows_per_block = grid.rows_for(cells_per_block)
    blocks = score_blocks(evidence, model, rows_per_block=rows_per_block, client=client)
    n = write_map(grid, blocks, out, model.version, tags, grid_layer)
    seconds["score and write"] = time.perf_counter() - t
    return MapResult(
        out,
        out.with_suffix(".gpkg") if grid_layer else None,
        model,
        region_label,
        n,
        len(list(grid.row_blocks(rows_per_block))),
        seconds,
    )
