"""Scoring grids too large for one pass: square tiles with a halo, in-process or on Dask.

Window means need the cells around a cell, so each tile is scored together with a halo of
its neighbours wide enough to hold the largest window; only the tile's own ("core") cells are
kept. Tiles are cut on a fixed lattice and scored by the same function whether they run in
this process or on a dask.distributed cluster, so both give identical output.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from safeground.risk.model import RiskModel
from safeground.risk.table import RiskDataError, coordinates, prepare_table

ROWS_PER_TILE = 250_000


@dataclass(frozen=True)
class Tile:
    """Row positions (into the input frame) of a tile's core cells and of its halo."""

    core: np.ndarray
    halo: np.ndarray


def plan_tiles(xy: np.ndarray, halo_km: float, rows_per_tile: int = ROWS_PER_TILE) -> list[Tile]:
    """Cut cells into square tiles of about ``rows_per_tile`` cells, each with its halo.

    Cells without a position form one last tile of their own (they get no context features
    anyway).
    """
    n = len(xy)
    ok = np.isfinite(xy).all(axis=1)
    idx = np.flatnonzero(ok)
    tiles: list[Tile] = []
    if idx.size:
        p = xy[idx]
        lo, hi = p.min(axis=0), p.max(axis=0)
        area = max(float(np.prod(np.maximum(hi - lo, 1e-9))), 1e-9)
        side = math.sqrt(area * rows_per_tile / max(idx.size, 1))
        side = max(side, 4 * halo_km, 1e-6)
        tx = np.floor((p[:, 0] - lo[0]) / side).astype(np.int64)
        ty = np.floor((p[:, 1] - lo[1]) / side).astype(np.int64)
        ny = int(ty.max()) + 1
        key = tx * ny + ty
        order = np.argsort(key, kind="stable")
        skey = key[order]
        starts = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]])
        ends = np.r_[starts[1:], len(skey)]
        by_key = {int(skey[s]): order[s:e] for s, e in zip(starts, ends, strict=True)}
        reach = max(1, math.ceil(halo_km / side))
        for k in sorted(by_key):
            core = by_key[k]
            cx, cy = divmod(k, ny)
            near = [
                by_key[nk]
                for dx in range(-reach, reach + 1)
                for dy in range(-reach, reach + 1)
                if (dx or dy) and 0 <= cy + dy < ny and (nk := (cx + dx) * ny + (cy + dy)) in by_key
            ]
            halo = np.empty(0, dtype=np.int64)
            if near:
                cand = np.concatenate(near)
                x0 = lo[0] + cx * side - halo_km
                x1 = lo[0] + (cx + 1) * side + halo_km
                y0 = lo[1] + cy * side - halo_km
                y1 = lo[1] + (cy + 1) * side + halo_km
                q = p[cand]
                inside = (q[:, 0] >= x0) & (q[:, 0] <= x1) & (q[:, 1] >= y0) & (q[:, 1] <= y1)
                halo = np.sort(idx[cand[inside]])
            tiles.append(Tile(core=np.sort(idx[core]), halo=halo))
    if idx.size < n:
        tiles.append(Tile(core=np.flatnonzero(~ok), halo=np.empty(0, dtype=np.int64)))
    return tiles


def score_block(
    model: RiskModel,
    block: pd.DataFrame,
    n_core: int,
    *,
    explain: int = 0,
    num_threads: int | None = None,
) -> pd.DataFrame:
    """Score the first ``n_core`` rows of ``block`` (the rest is halo): risk and factors."""
    table = prepare_table(block, model.prediction_spec(block.columns), covariates=model.covariates)
    feats = model.features(table)[:n_core]
    out = pd.DataFrame({"risk": model.predict_features(feats, num_threads=num_threads)})
    if explain:
        out = pd.concat([out, model.explain(feats, top=explain)], axis=1)
    return out


def _blocks(frame: pd.DataFrame, tiles: list[Tile]) -> Iterator[tuple[pd.DataFrame, int]]:
    for t in tiles:
        rows = np.concatenate([t.core, t.halo])
        yield frame.iloc[rows].reset_index(drop=True), len(t.core)


def _halo_km(model: RiskModel) -> float:
    widest = max(model.layout.halfwidths, default=0)
    return (widest + 1) * model.cell_km


def positions_km(model: RiskModel, frame: pd.DataFrame) -> np.ndarray:
    """Projected positions of every row, as the model will see them."""
    x, y, _, _ = coordinates(frame, model.prediction_spec(frame.columns))
    if x is None or y is None or model.projection is None:
        return np.full((len(frame), 2), np.nan)
    return model.projection.to_km(x, y)


def predict_chunked(
    model: RiskModel,
    frame: pd.DataFrame,
    *,
    rows_per_tile: int = ROWS_PER_TILE,
    client: Any | None = None,
    explain: int = 0,
    num_threads: int | None = None,
    workers: int = 1,
) -> pd.DataFrame:
    """Score ``frame`` tile by tile; rows come back in the input order.

    With ``client`` (a dask.distributed Client) tiles are scored on its workers, the model
    sent once. Without, tiles are scored in this process, ``workers`` at a time on threads
    (each LightGBM call then single-threaded), so memory stays a few tiles. Every path gives
    the same numbers.
    """
    xy = positions_km(model, frame)
    if model.projection is None and model.layout.halfwidths:
        raise RiskDataError("the model uses positions but the table has none")
    tiles = plan_tiles(xy, _halo_km(model), rows_per_tile)
    parts: list[pd.DataFrame] = []
    if client is None and workers <= 1:
        for block, n_core in _blocks(frame, tiles):
            parts.append(
                score_block(model, block, n_core, explain=explain, num_threads=num_threads)
            )
    elif client is None:
        # Threads: LightGBM, the KD-tree and most of numpy release the GIL. At most
        # ``workers`` + 1 tiles exist at once, so memory stays a few tiles.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: deque[Future[pd.DataFrame]] = deque()
            for block, n_core in _blocks(frame, tiles):
                if len(pending) > workers:
                    parts.append(pending.popleft().result())
                pending.append(
                    pool.submit(score_block, model, block, n_core, explain=explain, num_threads=1)
                )
            parts.extend(f.result() for f in pending)
    else:
        remote_model = client.scatter(model, broadcast=True)
        futures = [
            client.submit(
                score_block,
                remote_model,
                block,
                n_core,
                explain=explain,
                num_threads=num_threads,
                pure=False,
            )
            for block, n_core in _blocks(frame, tiles)
        ]
        parts = client.gather(futures)
    order = np.concatenate([t.core for t in tiles]) if tiles else np.empty(0, dtype=np.int64)
    result = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"risk": []})
    out = result.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
    return out
