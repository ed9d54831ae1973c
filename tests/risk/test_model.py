"""The model: deterministic, calibrated output in [0, 1], explanations, save/load, features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from safeground.risk import ModelConfig, RiskModel, RiskTable, fit_model
from safeground.risk.features import distance_to_positive, window_means


def test_fit_predict_deterministic(cut_table: RiskTable, fast_config: ModelConfig) -> None:
    a = fit_model(cut_table, fast_config).predict(cut_table)
    b = fit_model(cut_table, fast_config).predict(cut_table)
    assert np.array_equal(a, b)
    assert a.shape == (cut_table.n,)
    assert ((a >= 0) & (a <= 1)).all()


def test_explain_and_importance(cut_table: RiskTable, fast_config: ModelConfig) -> None:
    model = fit_model(cut_table, fast_config)
    feats = model.features(cut_table)
    contrib = model.contributions(feats)
    # TreeSHAP contributions add up to the raw score (log-odds).
    assert np.allclose(contrib.sum(axis=1), model.raw_score(feats), atol=1e-6)
    ex = model.explain(feats, top=3)
    assert list(ex.columns) == [
        "factor_1",
        "factor_1_effect",
        "factor_2",
        "factor_2_effect",
        "factor_3",
        "factor_3_effect",
    ]
    assert set(ex["factor_1"]) <= set(model.covariates) | {model.feature_names[-1]}
    assert (ex["factor_1_effect"].abs() >= ex["factor_2_effect"].abs() - 1e-9).all()
    imp = model.importance()
    assert imp.sum() == pytest.approx(1.0)
    assert set(imp.index) <= set(model.covariates) | {model.feature_names[-1]}


def test_save_load_round_trip(
    cut_table: RiskTable, fast_config: ModelConfig, tmp_path: Path
) -> None:
    model = fit_model(cut_table, fast_config)
    path = tmp_path / "m.model"
    model.save(path)
    again = RiskModel.load(path)
    assert np.array_equal(model.predict(cut_table), again.predict(cut_table))
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(Exception):  # noqa: B017 - any unpickling error will do
        RiskModel.load(bad)


def test_isotonic_keeps_ranking(cut_table: RiskTable, fast_config: ModelConfig) -> None:
    from dataclasses import replace

    model = fit_model(cut_table, replace(fast_config, calibration="isotonic"))
    feats = model.features(cut_table)
    raw, p = model.raw_score(feats), model.predict_features(feats)
    order = np.argsort(raw)
    assert (np.diff(p[order]) >= 0).all()
    assert ((p >= 0) & (p <= 1)).all()


def test_window_means_by_hand_and_chunk_invariant() -> None:
    xs, ys = np.meshgrid(np.arange(30.0), np.arange(20.0))
    xy = np.column_stack([xs.ravel(), ys.ravel()])
    vals = np.column_stack([xy[:, 0], np.where(xy[:, 1] == 5, np.nan, 1.0)])
    (m1,) = window_means(xy, vals, 1.0, (1,))
    i = 10 * 30 + 10  # cell (10, 10): 3x3 mean of x is 10
    assert m1[i, 0] == pytest.approx(10.0)
    corner = 0  # cell (0, 0): only 4 cells in its window, x in {0, 1}
    assert m1[corner, 0] == pytest.approx(0.5)
    assert m1[5 * 30 + 3, 1] == pytest.approx(1.0)  # NaNs skipped, not counted
    left = xy[:, 0] < 16  # a chunk with a one-cell halo beyond x = 14
    (m_left,) = window_means(xy[left], vals[left], 1.0, (1,))
    core = xy[left][:, 0] < 15
    assert np.allclose(m_left[core], m1[left][core], rtol=0, atol=1e-12, equal_nan=True)


def test_distance_to_positive_skips_own_group() -> None:
    xy = np.array([[0.0, 0.0], [5.0, 0.0]])
    pos = np.array([[0.0, 1.0], [10.0, 0.0]])
    d = distance_to_positive(xy, np.array(["a", "b"]), pos, np.array(["a", "b"]))
    assert d.tolist() == pytest.approx([10.0, np.hypot(5.0, 1.0)])
    plain = distance_to_positive(xy, None, pos, None)
    assert plain.tolist() == pytest.approx([1.0, 5.0])
