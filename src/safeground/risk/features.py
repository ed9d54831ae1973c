"""Spatial context features: what a cell's surroundings look like, and how far the nearest
known mine is.

Mines are laid along front lines, paths and bases, not cell by cell, so a cell's neighbourhood
says more than the cell alone. Two kinds of features are added to the raw covariates:

- window means of every covariate over squares of a few cells around the cell (in units of
  the grid's cell size). They use covariates only, never labels, so they may use every cell
  of the table, labelled or not (this is where unlabelled cells help).
- distance to the nearest known positive *outside the cell's own group* (municipality or
  spatial block). Excluding the own group makes the training rows look like the cells the model
  will score later (a new municipality has no known mines of its own yet), and it keeps a cell's
  own label out of its features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d
from sklearn.neighbors import KDTree

# How many nearest positives are checked before falling back to a per-group search.
_K_PROBE = 16
_K_MAX_PROBE = 1024
# Block indices are offset to stay positive; 2**30 keeps the packed code inside int64.
_BLOCK_OFFSET = 1 << 30
DISTANCE_FEATURE = "km to nearest known positive (other group)"
# Beyond this many raster nodes for one table, window means must be computed in chunks.
MAX_RASTER_NODES = 50_000_000


def cell_size_km(xy: np.ndarray, sample: int = 20000, seed: int = 0) -> float:
    """Median distance to the nearest other cell: the grid spacing, robust to gaps."""
    ok = np.isfinite(xy).all(axis=1)
    pts = xy[ok]
    if len(pts) < 2:
        return 1.0
    rng = np.random.default_rng(seed)
    q = pts if len(pts) <= sample else pts[rng.choice(len(pts), sample, replace=False)]
    d, _ = KDTree(pts).query(q, k=2)
    nz = d[:, 1][d[:, 1] > 0]
    return float(np.median(nz)) if nz.size else 1.0


def lattice(xy: np.ndarray, cell_km: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Snap positions to a lattice of the grid spacing anchored at the projection's origin.

    A fixed anchor makes a cell's lattice node the same whichever chunk it is computed in.
    """
    ok = np.isfinite(xy).all(axis=1)
    ix = np.zeros(len(xy), dtype=np.int64)
    iy = np.zeros(len(xy), dtype=np.int64)
    ix[ok] = np.rint(xy[ok, 0] / cell_km).astype(np.int64)
    iy[ok] = np.rint(xy[ok, 1] / cell_km).astype(np.int64)
    return ix, iy, ok


def _box_mean(a: np.ndarray, h: int) -> np.ndarray:
    """Mean over the (2h+1) x (2h+1) window of the first two axes, zeros outside."""
    size = 2 * h + 1
    out = uniform_filter1d(a, size, axis=0, mode="constant", cval=0.0)
    return np.asarray(uniform_filter1d(out, size, axis=1, mode="constant", cval=0.0))


def window_means(
    xy: np.ndarray, values: np.ndarray, cell_km: float, halfwidths: tuple[int, ...]
) -> list[np.ndarray]:
    """Mean of each column over the square window of (2h+1) x (2h+1) grid cells around each
    cell, for every h (NaNs and empty cells skipped).

    Works on a raster of the lattice with separable running box filters (scipy.ndimage): linear
    in the number of cells whatever the window, which lets a country-size grid be scored in
    minutes. Means are kept to float32 precision so that chunkings agree exactly.
    """
    n, f = values.shape
    ix, iy, ok = lattice(xy, cell_km)
    if not ok.any() or not halfwidths:
        return [np.full((n, f), np.nan) for _ in halfwidths]
    out = [np.empty((n, f)) for _ in halfwidths]
    if not ok.all():
        for o in out:
            o[~ok] = np.nan
    x0, y0 = int(ix[ok].min()), int(iy[ok].min())
    w, h = int(ix[ok].max()) - x0 + 1, int(iy[ok].max()) - y0 + 1
    if w * h > max(MAX_RASTER_NODES, 8 * n):
        raise ValueError(
            f"cells spread over {w} x {h} grid nodes of {cell_km:.3g} km: too sparse for one "
            "raster; score the table in chunks (safeground.risk.chunked)"
        )
    lin = (iy[ok] - y0) * w + (ix[ok] - x0)
    vals = values[ok]
    present = np.isfinite(vals)
    # One count raster serves every column unless some values are missing.
    per_column = not present.all()
    sums = np.empty((h, w, f))
    counts = np.empty((h, w, f if per_column else 1))
    for j in range(f):
        col = np.where(present[:, j], vals[:, j], 0.0)
        sums[:, :, j] = np.bincount(lin, col, h * w).reshape(h, w)
        if per_column or j == 0:
            cnt = present[:, j].astype(np.float64) if per_column else np.ones(len(lin))
            counts[:, :, j] = np.bincount(lin, cnt, h * w).reshape(h, w)
    ry, rx = iy[ok] - y0, ix[ok] - x0
    for k, hw in enumerate(halfwidths):
        s = _box_mean(sums, hw)[ry, rx]
        c = _box_mean(counts, hw)[ry, rx]
        # Box means of counts are multiples of 1/size^2: below half of one, nothing was there.
        empty = c < 0.5 / (2 * hw + 1) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            m = s / c
        m[np.broadcast_to(empty, m.shape)] = np.nan
        # Running sums leave rounding noise (about 1e-16) that depends on the raster's extent;
        # a mean such as 0.75 could then fall either side of a tree threshold depending on how
        # the grid was tiled. Float32 precision (7 digits) removes the noise.
        out[k][ok] = m.astype(np.float32)
    return out


def distance_to_positive(
    xy: np.ndarray,
    groups: np.ndarray | None,
    pos_xy: np.ndarray,
    pos_groups: np.ndarray | None,
) -> np.ndarray:
    """km from each cell to the nearest positive of another group (any positive if no groups).

    NaN when there is no such positive or the cell has no position.
    """
    n = len(xy)
    out = np.full(n, np.nan)
    ok = np.isfinite(xy).all(axis=1)
    if len(pos_xy) == 0 or not ok.any():
        return out
    tree = KDTree(pos_xy)
    if groups is None or pos_groups is None:
        d, _ = tree.query(xy[ok], k=1)
        out[ok] = d[:, 0]
        return out
    rest = np.flatnonzero(ok)
    k = 1
    # Most cells' nearest positive is of another group; probe ever more neighbours only for
    # the cells whose nearest positives all share their group.
    while rest.size and k <= _K_MAX_PROBE:
        kk = min(k, len(pos_xy))
        d, ind = tree.query(xy[rest], k=kk)
        other = pos_groups[ind] != groups[rest][:, None]
        has = other.any(axis=1)
        first = other.argmax(axis=1)
        out[rest[has]] = d[has, first[has]]
        rest = rest[~has]
        if kk == len(pos_xy):
            return out  # no positive of another group at all for what is left
        k = _K_PROBE if k == 1 else k * 8
    for g in np.unique(groups[rest]):
        q = rest[groups[rest] == g]
        keep = pos_groups != g
        if keep.any():
            dd, _ = KDTree(pos_xy[keep]).query(xy[q], k=1)
            out[q] = dd[:, 0]
    return out


def block_ids(xy: np.ndarray, block_km: float) -> np.ndarray:
    """Square spatial blocks of side ``block_km`` on a fixed grid anchored at (0, 0).

    Returned as int64 codes (column index in the high 32 bits, row index in the low), cheap
    for millions of cells; cells without a position share the code -1.
    """
    ok = np.isfinite(xy).all(axis=1)
    out = np.full(len(xy), -1, dtype=np.int64)
    ix = np.floor(xy[ok, 0] / block_km).astype(np.int64) + _BLOCK_OFFSET
    iy = np.floor(xy[ok, 1] / block_km).astype(np.int64) + _BLOCK_OFFSET
    out[ok] = (ix << 32) | iy
    return out


def block_index(code: int) -> tuple[int, int]:
    """The (column, row) of a block code, for people and tests."""
    return (code >> 32) - _BLOCK_OFFSET, (code & 0xFFFFFFFF) - _BLOCK_OFFSET


@dataclass(frozen=True)
class ContextLayout:
    """Names of the feature matrix columns and the covariate each one comes from."""

    covariates: tuple[str, ...]
    halfwidths: tuple[int, ...]
    distance: bool

    @property
    def names(self) -> list[str]:
        out = list(self.covariates)
        for h in self.halfwidths:
            out += [f"{c} (mean of {2 * h + 1}x{2 * h + 1} cells)" for c in self.covariates]
        if self.distance:
            out.append(DISTANCE_FEATURE)
        return out

    @property
    def sources(self) -> list[str]:
        """The covariate behind each feature, so explanations speak the user's columns."""
        out = list(self.covariates) * (1 + len(self.halfwidths))
        if self.distance:
            out.append(DISTANCE_FEATURE)
        return out


def context_block(
    xy: np.ndarray | None, values: np.ndarray, cell_km: float, halfwidths: tuple[int, ...]
) -> np.ndarray:
    """Raw covariates followed by their window means at each half-width."""
    if not halfwidths:
        return values.copy()
    if xy is None:
        means = [np.full_like(values, np.nan) for _ in halfwidths]
    else:
        means = window_means(xy, values, cell_km, halfwidths)
    return np.hstack([values, *means])
