"""Temporal test of a map built from evidence alone: fit on earlier years, score later ones.

Protocol (every step uses events dated up to the last fit year only):

1. Region: the convex hull of the fit years' events, buffered by ``buffer_km``; grid of square
   cells in its UTM zone. Later events outside it count as missed.
2. Presence-only model: features from the events of the *history* years (the fit years minus
   the last ``lead`` years); presences are the cells holding events of those last ``lead``
   years; background a seeded random sample of the region's cells. So the model learns how
   past events point to the next ones.
3. Prediction: the same features from every fit year's events; each cell scored.
4. Baseline: a Gaussian kernel density of the fit years' events (Scott's bandwidth).
5. Metrics against the test years' events: ROC AUC of cells with an event against every other
   cell (the background), and the share of test events in the 10 % and 20 % of cells ranked
   riskiest.

Events are the contamination events: accidents, devices found and destroyed, unexploded
ordnance found, suspected minefields (TIPO_EVENTO 1, 2, 4, 6, 8); caches, seizures and
factories (3, 5, 7) do not mark contaminated land and are left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import Transformer
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KDTree, KernelDensity

from safeground.risk.grid import Grid
from safeground.risk.metrics import top_k_capture
from safeground.risk.presence import PresenceModel, fit_presence

CONTAMINATION_EVENTS = (1, 2, 4, 6, 8)
# Feature groups of past events: accidents, devices found, suspected minefields.
EVENT_GROUPS = {"accident": (1, 2), "found": (4, 6), "suspected": (8,)}
COUNT_RADII_KM = (5.0, 20.0)


# Colombia's extent, as in the import mapping: the one point outside (a longitude with its sign
# flipped, 2004.json row 1375) is left out here as the import rejects it.
COLOMBIA_BBOX = (-82.0, -4.3, -66.8, 13.6)


def read_events(
    paths: Sequence[Path], bbox: tuple[float, float, float, float] = COLOMBIA_BBOX
) -> pd.DataFrame:
    """lon, lat, year, kind of the contamination events in the yearly GeoJSON files."""
    frames = []
    for p in paths:
        df = pyogrio.read_dataframe(p)
        frames.append(
            pd.DataFrame(
                {
                    "lon": shapely.get_x(df.geometry.to_numpy()),
                    "lat": shapely.get_y(df.geometry.to_numpy()),
                    "year": pd.to_numeric(df["AÑO"]).to_numpy(np.int64),
                    "kind": pd.to_numeric(df["TIPO_EVENTO"]).to_numpy(np.int64),
                }
            )
        )
    events = pd.concat(frames, ignore_index=True)
    minx, miny, maxx, maxy = bbox
    ok = events["lon"].between(minx, maxx) & events["lat"].between(miny, maxy)
    return events[ok & events["kind"].isin(CONTAMINATION_EVENTS)].reset_index(drop=True)


@dataclass
class HistoryFeatures:
    """Features of points from a set of past events (positions in the grid's CRS, metres)."""

    xy: np.ndarray
    kind: np.ndarray

    def at(self, x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
        q = np.column_stack([x, y])
        cols: dict[str, np.ndarray] = {}
        for name, kinds in EVENT_GROUPS.items():
            pts = self.xy[np.isin(self.kind, kinds)]
            if len(pts):
                d, _ = KDTree(pts).query(q, k=1)
                cols[f"km_past_{name}"] = d[:, 0] / 1000.0
            else:
                cols[f"km_past_{name}"] = np.full(len(q), np.nan)
        tree = KDTree(self.xy)
        for r in COUNT_RADII_KM:
            n = tree.query_radius(q, r * 1000.0, count_only=True)
            cols[f"log_events_{r:g}km"] = np.log1p(np.asarray(n, dtype=np.float64))
        return pd.DataFrame(cols)


@dataclass
class TemporalResult:
    fit_years: tuple[int, int]
    test_years: tuple[int, int]
    history_years: tuple[int, int]
    cell_m: float
    cells: int
    fit_events: int
    presence_cells: int
    test_events: int
    test_events_outside: int
    test_cells: int
    metrics: dict[str, dict[str, float]]
    model: PresenceModel = field(repr=False)
    scores: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "fit_years": list(self.fit_years),
            "history_years_for_features_when_fitting": list(self.history_years),
            "test_years": list(self.test_years),
            "cell_m": self.cell_m,
            "cells": self.cells,
            "fit_events": self.fit_events,
            "presence_cells_when_fitting": self.presence_cells,
            "test_events": self.test_events,
            "test_events_outside_region": self.test_events_outside,
            "cells_with_test_events": self.test_cells,
            "model_version": self.model.version,
            "features": self.model.features,
            "metrics": self.metrics,
        }


def _cells_of(grid: Grid, xy: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Position in the flat list of region cells of each point (-1 outside the region)."""
    row, col = grid.cell_index(xy[:, 0], xy[:, 1])
    ok = (row >= 0) & (row < grid.height) & (col >= 0) & (col < grid.width)
    out = np.full(len(xy), -1, dtype=np.int64)
    out[ok] = index[row[ok], col[ok]]
    return out


def temporal_test(
    events: pd.DataFrame,
    last_fit_year: int,
    *,
    cell_m: float = 10_000.0,
    lead: int = 5,
    buffer_km: float = 10.0,
    background: int = 10_000,
    seed: int = 0,
) -> TemporalResult:
    """Run the protocol of the module docstring; ``events`` as from ``read_events``."""
    first, last = int(events["year"].min()), int(events["year"].max())
    if not first + lead <= last_fit_year < last:
        raise ValueError(
            f"last fit year {last_fit_year}: need {lead} years of history before it "
            f"(data from {first}) and a later year to test (data to {last})"
        )
    past = events[events["year"] <= last_fit_year]
    later = events[events["year"] > last_fit_year]
    lonlat = shapely.points(past["lon"].to_numpy(), past["lat"].to_numpy())
    hull = shapely.convex_hull(shapely.multipoints(lonlat))
    probe = Grid.over(hull.buffer(0.01), cell_m)
    hull_m = shapely.buffer(
        shapely.transform(hull, _projector("EPSG:4326", probe.crs)), buffer_km * 1000.0
    )
    region = shapely.transform(hull_m, _projector(probe.crs, "EPSG:4326"))
    grid = Grid.over(region, cell_m, crs=probe.crs)

    inside = grid.inside(0, grid.height)
    index = np.full(inside.shape, -1, dtype=np.int64)
    rr, cc = np.nonzero(inside)
    index[rr, cc] = np.arange(len(rr))
    cx, cy = grid.centres_of(rr, cc)

    to_grid = _projector("EPSG:4326", grid.crs)
    past_xy = to_grid(past[["lon", "lat"]].to_numpy())
    later_xy = to_grid(later[["lon", "lat"]].to_numpy())
    past_kind = past["kind"].to_numpy()
    past_year = past["year"].to_numpy()

    # Fit: features from the history years, presences from the last ``lead`` fit years.
    split = last_fit_year - lead
    hist = past_year <= split
    fit_history = HistoryFeatures(past_xy[hist], past_kind[hist])
    pres_cells = np.unique(_cells_of(grid, past_xy[~hist], index))
    pres_cells = pres_cells[pres_cells >= 0]
    rng = np.random.default_rng(seed)
    bg = np.sort(rng.choice(len(cx), min(background, len(cx)), replace=False))
    model = fit_presence(
        fit_history.at(cx[pres_cells], cy[pres_cells]),
        fit_history.at(cx[bg], cy[bg]),
        seed=seed,
    )

    # Predict with every fit year's events as history.
    feats = HistoryFeatures(past_xy, past_kind).at(cx, cy)
    maxent = model.predict(feats)
    kde = KernelDensity(bandwidth="scott").fit(past_xy)
    density = kde.score_samples(np.column_stack([cx, cy]))

    later_cells = _cells_of(grid, later_xy, index)
    outside = int((later_cells < 0).sum())
    counts = np.bincount(later_cells[later_cells >= 0], minlength=len(cx)).astype(np.float64)
    y = (counts > 0).astype(np.int8)
    metrics: dict[str, dict[str, float]] = {}
    scores = {"presence_only_maxent": maxent, "kde_past_events": density}
    for name, s in scores.items():
        inside_share = (len(later) - outside) / len(later) if len(later) else math.nan
        metrics[name] = {
            "roc_auc_vs_background": float(roc_auc_score(y, s))
            if 0 < y.sum() < len(y)
            else math.nan,
            # Events outside the region are missed: capture is scaled by the share inside.
            "top10_event_capture": top_k_capture(y, s, 0.10, weights=counts) * inside_share,
            "top20_event_capture": top_k_capture(y, s, 0.20, weights=counts) * inside_share,
        }
    return TemporalResult(
        fit_years=(first, last_fit_year),
        test_years=(last_fit_year + 1, last),
        history_years=(first, split),
        cell_m=cell_m,
        cells=len(cx),
        fit_events=len(past),
        presence_cells=len(pres_cells),
        test_events=len(later),
        test_events_outside=outside,
        test_cells=int(y.sum()),
        metrics=metrics,
        model=model,
        scores=scores,
    )


def _projector(src: Any, dst: Any) -> Any:
    tr = Transformer.from_crs(src, dst, always_xy=True)

    def apply(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return apply
