"""Chunked scoring: same answer in one pass, tile by tile in-process, and on Dask."""

from __future__ import annotations

import numpy as np
import pandas as pd

from safeground.risk import ModelConfig, RiskModel, RiskTable, TableSpec, fit_model, prepare_table
from safeground.risk.chunked import plan_tiles, predict_chunked


def _grid(n_side: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(n_side) * 1000.0, np.arange(n_side) * 1000.0)
    x, y = xs.ravel(), ys.ravel()
    a = np.sin(x / 7000.0) + rng.normal(0, 0.3, x.size)
    b = np.cos(y / 5000.0) + rng.normal(0, 0.3, x.size)
    logit = 1.5 * a - 1.0 * b
    label = (rng.random(x.size) < 1 / (1 + np.exp(-logit))).astype(int)
    label[rng.random(x.size) < 0.2] = -1
    return pd.DataFrame({"x": x, "y": y, "a": a, "b": b, "label": label})


def _model_and_frame() -> tuple[RiskModel, pd.DataFrame, RiskTable]:
    frame = _grid()
    table = prepare_table(frame, TableSpec(label="label"), require_label=True)
    model = fit_model(table, ModelConfig(n_estimators=30, inner_folds=2, block_km=10.0))
    return model, frame, table


def test_tiles_cover_every_row_once() -> None:
    frame = _grid(25)
    xy = frame[["x", "y"]].to_numpy() / 1000.0
    tiles = plan_tiles(xy, halo_km=2.0, rows_per_tile=100)
    core = np.concatenate([t.core for t in tiles])
    assert np.array_equal(np.sort(core), np.arange(len(frame)))
    assert len(tiles) > 4
    for t in tiles:
        assert not set(t.core) & set(t.halo)


def test_chunked_equals_one_pass_and_dask() -> None:
    from distributed import Client, LocalCluster

    model, frame, table = _model_and_frame()
    one_pass = model.predict(table)
    tiled = predict_chunked(model, frame, rows_per_tile=150)
    assert np.allclose(tiled["risk"].to_numpy(), one_pass, rtol=0, atol=1e-9)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        on_dask = predict_chunked(model, frame, rows_per_tile=150, client=client)
    pd.testing.assert_frame_equal(on_dask, tiled)


def test_chunked_explain_keeps_order() -> None:
    model, frame, _ = _model_and_frame()
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    out = predict_chunked(model, shuffled, rows_per_tile=200, explain=3)
    assert len(out) == len(shuffled)
    assert {"risk", "factor_1", "factor_3_effect"} <= set(out.columns)
    ref = predict_chunked(model, frame, rows_per_tile=200)
    # Row i of the shuffled frame is row idx[i] of the original.
    idx = shuffled[["x", "y"]].merge(frame.reset_index(), on=["x", "y"], how="left")["index"]
    assert np.allclose(ref["risk"].to_numpy()[idx.to_numpy()], out["risk"].to_numpy(), atol=1e-9)
