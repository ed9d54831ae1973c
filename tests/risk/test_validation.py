"""Protocols: no group or block on both sides of a fold; unlabelled cells never negatives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safeground.risk import (
    ModelConfig,
    RiskTable,
    TableSpec,
    blocked_folds,
    evaluate,
    group_folds,
    prepare_table,
)
from safeground.risk.features import block_ids, block_index
from safeground.risk.model import table_xy
from safeground.risk.table import Projection


def _xy(t: RiskTable) -> np.ndarray:
    assert t.x is not None and t.y is not None
    xy = table_xy(t, Projection.infer(t.x, t.y))
    assert xy is not None
    return xy


def test_group_folds_are_disjoint(cut_table: RiskTable) -> None:
    assert cut_table.groups is not None
    folds = group_folds(cut_table.groups)
    assert len(folds) == 4
    covered = np.zeros(cut_table.n, dtype=int)
    for f in folds:
        test_groups = set(cut_table.groups[f.test])
        train_groups = set(cut_table.groups[~f.test])
        assert len(test_groups) == 1
        assert not test_groups & train_groups
        covered += f.test
    assert (covered == 1).all()  # every cell is tested exactly once


def test_blocked_folds_are_spatially_disjoint(cut_table: RiskTable) -> None:
    xy = _xy(cut_table)
    folds, blocks = blocked_folds(xy, cut_table.labelled, n_folds=3, block_km=5.0, seed=0)
    assert len(folds) == 3
    for f in folds:
        assert not set(blocks[f.test]) & set(blocks[~f.test])
        # Each test block's cells lie inside its square; no training cell does.
        for b in set(blocks[f.test].tolist()):
            i, j = block_index(b)
            inside = (np.floor(xy[:, 0] / 5.0) == i) & (np.floor(xy[:, 1] / 5.0) == j)
            assert not (inside & ~f.test).any()
    assert sum(int(f.test.sum()) for f in folds) == cut_table.n
    # Deterministic for a seed.
    again, _ = blocked_folds(xy, cut_table.labelled, n_folds=3, block_km=5.0, seed=0)
    assert all((a.test == b.test).all() for a, b in zip(folds, again, strict=True))


def test_block_ids_fixed_grid() -> None:
    xy = np.array([[0.5, 0.5], [9.9, 0.1], [10.1, 0.1], [-0.1, 0.0]])
    ids = block_ids(xy, 10.0)
    assert [block_index(int(b)) for b in ids] == [(0, 0), (0, 0), (1, 0), (-1, 0)]


def test_unlabelled_never_negatives(cut_frame: pd.DataFrame) -> None:
    """Metrics count labelled cells only, and relabelling the unlabelled code changes nothing."""
    spec = TableSpec(label="mines_outcome", group="Municipio")
    config = ModelConfig(n_estimators=40, inner_folds=2)
    t = prepare_table(cut_frame, spec, require_label=True)
    ev = evaluate(t, "group", config=config, models=["logistic", "safeground"])
    lab = cut_frame["mines_outcome"] >= 0
    for m in ev.models:
        assert ev.overall[m]["n"] == int(lab.sum())
        assert ev.overall[m]["positives"] == int((cut_frame["mines_outcome"] == 1).sum())
        assert sum(r["n"] for r in ev.per_fold[m]) == int(lab.sum())
    # Same cells with "unlabelled" spelt 99 instead of -1: identical figures.
    other = cut_frame.assign(mines_outcome=cut_frame["mines_outcome"].replace(-1, 99))
    t2 = prepare_table(
        other,
        TableSpec(label="mines_outcome", unlabelled=99, group="Municipio"),
        require_label=True,
    )
    ev2 = evaluate(t2, "group", config=config, models=["logistic", "safeground"])
    for m in ev.models:
        assert ev2.overall[m] == ev.overall[m]
    # Unlabelled cells still get an out-of-fold prediction (for the map).
    assert np.isfinite(ev.oof["safeground"][~lab.to_numpy()]).all()


def test_blocked_evaluation_runs_every_baseline(cut_table: RiskTable) -> None:
    config = ModelConfig(n_estimators=40, inner_folds=2)
    ev = evaluate(cut_table, "blocks", config=config, n_folds=3, block_km=5.0)
    assert ev.models == ["safeground", "kde", "logistic", "random_forest", "lightgbm_default"]
    for m in ev.models:
        o = ev.overall[m]
        assert 0.0 <= o["roc_auc"] <= 1.0
        assert 0.0 <= o["ece"] <= 1.0
        assert 0.0 <= o["top10_capture"] <= o["top20_capture"] <= 1.0
        assert len(ev.per_fold[m]) == 3
    doc = ev.to_json()
    assert doc["protocol"] == "blocks" and set(doc["overall"]) == set(ev.models)


def test_group_protocol_needs_group(cut_frame: pd.DataFrame) -> None:
    t = prepare_table(
        cut_frame, TableSpec(label="mines_outcome", ignore=("Municipio",)), require_label=True
    )
    with pytest.raises(ValueError, match="group column"):
        evaluate(t, "group", models=["logistic"])
