"""Spatial context features: what a cell's surroundings look like, and how far the nearest
known mine is.

Mines are laid along front lines, paths and bases, not cell by cell, so a cell's neighbourhood
says more than the cell alone. Two kinds of features are added to the raw covariates:

- neighbourhood means of every covariate within a few radii (in multiples of the grid's cell
  size). They use covariates only, never labels, so they may use every cell of the table,
  labelled or not (this is where unlabelled cells help).
- distance to the nearest known positive *outside the cell's own group* (municipality or
  spatial block). Excluding the own group makes the training rows look like the cells the model
  will score later (a new municipality has no known mines of its own yet), and it keeps a cell's
  own label out of its features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.neighbors import KDTree, NearestNeighbors

# How many nearest positives are checked before falling back to a per-group search.
_K_PROBE = 16
DISTANCE_FEATURE = "km to nearest known positive (other group)"


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


def neighbourhood_graph(xy: np.ndarray, radius_km: float) -> sparse.csr_matrix:
    """0/1 matrix of cells within ``radius_km`` of each other (self included)."""
    n = len(xy)
    ok = np.flatnonzero(np.isfinite(xy).all(axis=1))
    if ok.size == 0:
        return sparse.csr_matrix((n, n))
    nn = NearestNeighbors(radius=radius_km, algorithm="kd_tree").fit(xy[ok])
    g = nn.radius_neighbors_graph(xy[ok], mode="connectivity", sort_results=True)
    if ok.size == n:
        return g.tocsr()
    coo = g.tocoo()
    return sparse.csr_matrix((coo.data, (ok[coo.row], ok[coo.col])), shape=(n, n))


def neighbourhood_means(xy: np.ndarray, values: np.ndarray, radius_km: float) -> np.ndarray:
    """Mean of each column over the cells within ``radius_km`` (NaNs skipped)."""
    graph = neighbourhood_graph(xy, radius_km)
    present = np.isfinite(values)
    sums = graph @ np.where(present, values, 0.0)
    counts = graph @ present.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / counts
    out[counts == 0] = np.nan
    return np.asarray(out, dtype=np.float64)


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
    idx = np.flatnonzero(ok)
    k = min(_K_PROBE, len(pos_xy))
    d, ind = tree.query(xy[idx], k=k)
    other = pos_groups[ind] != groups[idx][:, None]
    has = other.any(axis=1)
    first = other.argmax(axis=1)
    out[idx[has]] = d[has, first[has]]
    # The rare cell whose k nearest positives all share its group: search per group.
    rest = idx[~has]
    for g in np.unique(groups[rest]):
        q = rest[groups[rest] == g]
        keep = pos_groups != g
        if keep.any():
            dd, _ = KDTree(pos_xy[keep]).query(xy[q], k=1)
            out[q] = dd[:, 0]
    return out


def block_ids(xy: np.ndarray, block_km: float) -> np.ndarray:
    """Square spatial blocks of side ``block_km`` on a fixed grid anchored at (0, 0)."""
    ix = np.floor(xy[:, 0] / block_km)
    iy = np.floor(xy[:, 1] / block_km)
    out = np.array([f"{a:.0f}_{b:.0f}" for a, b in zip(ix, iy, strict=True)], dtype=object)
    out[~np.isfinite(xy).all(axis=1)] = "nan"
    return out.astype(str)


@dataclass(frozen=True)
class ContextLayout:
    """Names of the feature matrix columns and the covariate each one comes from."""

    covariates: tuple[str, ...]
    radii_km: tuple[float, ...]
    distance: bool

    @property
    def names(self) -> list[str]:
        out = list(self.covariates)
        for r in self.radii_km:
            out += [f"{c} (mean within {r:.1f} km)" for c in self.covariates]
        if self.distance:
            out.append(DISTANCE_FEATURE)
        return out

    @property
    def sources(self) -> list[str]:
        """The covariate behind each feature, so explanations speak the user's columns."""
        out = list(self.covariates) * (1 + len(self.radii_km))
        if self.distance:
            out.append(DISTANCE_FEATURE)
        return out


def context_block(xy: np.ndarray | None, values: np.ndarray, radii_km: tuple[float, ...]) -> np.ndarray:
    """Raw covariates followed by their neighbourhood means at each radius."""
    parts = [values]
    for r in radii_km:
        if xy is None:
            parts.append(np.full_like(values, np.nan))
        else:
            parts.append(neighbourhood_means(xy, values, r))
    return np.hstack(parts) if len(parts) > 1 else values.copy()
