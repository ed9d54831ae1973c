"""A regular grid of square cells over a region, in a metric CRS, cut into row blocks.

Cells are squares of ``cell_m`` metres in the UTM zone of the region's centre (distances and
areas within a few percent over a zone, and a CRS every GIS knows). The grid is aligned to
multiples of the cell size, so the same region and cell give the same cells on every run. A
cell belongs to the region when its centre lies inside the region's polygon; only those cells
are scored. Row blocks let country-scale grids be built a block at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from rasterio.features import geometry_mask
from rasterio.transform import Affine
from shapely.geometry.base import BaseGeometry

Geoms = TypeVar("Geoms", BaseGeometry, np.ndarray)

# Beyond this many cells, a grid must be scored block by block (it always is) and the caller is
# told how many cells it asked for before any work starts.
MAX_CELLS = 200_000_000


class GridError(ValueError):
    """A grid that cannot be built as asked (empty region, too many cells...)."""


def utm_crs(region_wgs84: BaseGeometry) -> CRS:
    """The WGS84 UTM zone of the region's centre."""
    c = region_wgs84.centroid
    found = query_utm_crs_info(
        datum_name="WGS 84",
        area_of_interest=AreaOfInterest(c.x, c.y, c.x, c.y),
    )
    if not found:
        raise GridError(f"no UTM zone for the point {c.x:.4f}, {c.y:.4f}")
    return CRS.from_epsg(int(found[0].code))


def to_crs(geom: Geoms, crs: CRS) -> Geoms:
    """Project a WGS84 lon/lat geometry (or an array of them) to ``crs``."""
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


@dataclass(frozen=True)
class Grid:
    """Cells of ``cell_m`` metres: ``height`` rows from the top, ``width`` columns."""

    crs: CRS
    transform: Affine
    width: int
    height: int
    cell_m: float
    region: BaseGeometry  # in ``crs``

    @staticmethod
    def over(region_wgs84: BaseGeometry, cell_m: float, crs: CRS | None = None) -> Grid:
        if cell_m <= 0:
            raise GridError(f"cell size must be positive, got {cell_m}")
        if region_wgs84.is_empty:
            raise GridError("the region is empty")
        crs = crs or utm_crs(region_wgs84)
        region = to_crs(region_wgs84, crs)
        minx, miny, maxx, maxy = region.bounds
        x0 = math.floor(minx / cell_m) * cell_m
        y1 = math.ceil(maxy / cell_m) * cell_m
        width = max(1, math.ceil((maxx - x0) / cell_m))
        height = max(1, math.ceil((y1 - miny) / cell_m))
        if width * height > MAX_CELLS:
            raise GridError(
                f"{width} x {height} cells of {cell_m:g} m is more than {MAX_CELLS:,}: "
                "choose a larger cell or a smaller region"
            )
        transform = Affine(cell_m, 0.0, x0, 0.0, -cell_m, y1)
        return Grid(crs, transform, width, height, cell_m, region)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def rows_for(self, cells: int) -> int:
        """Rows in a block of about ``cells`` cells (at least one row)."""
        return max(1, cells // self.width)

    def row_blocks(self, rows_per_block: int) -> Iterator[tuple[int, int]]:
        """(first row, end row) of consecutive blocks of whole rows."""
        step = max(1, rows_per_block)
        for r0 in range(0, self.height, step):
            yield r0, min(self.height, r0 + step)

    def block_transform(self, r0: int) -> Affine:
        return self.transform @ Affine.translation(0, r0)

    def inside(self, r0: int, r1: int) -> np.ndarray:
        """(r1 - r0, width) mask of the block's cells whose centre is in the region."""
        return geometry_mask(
            [self.region],
            out_shape=(r1 - r0, self.width),
            transform=self.block_transform(r0),
            invert=True,
            all_touched=False,
        )

    def centres(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """x and y of every cell centre of rows r0..r1, row-major, in the grid's CRS."""
        rows, cols = np.divmod(np.arange((r1 - r0) * self.width), self.width)
        return self.centres_of(rows + r0, cols)

    def centres_of(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x and y of the centres of the cells at (rows, cols)."""
        a = self.transform
        return a.c + (cols + 0.5) * a.a, a.f + (rows + 0.5) * a.e

    def cell_index(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the cell holding each point (may fall outside the grid)."""
        a = self.transform
        col = np.floor((x - a.c) / a.a).astype(np.int64)
        row = np.floor((y - a.f) / a.e).astype(np.int64)
        return row, col
