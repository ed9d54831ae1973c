"""Baselines that Safeground's model must beat, each run on exactly the same folds.

- ``kde``: kernel density of past positives (where mines were found before, more are found);
  positions only, from the geometry centroid or x/y columns.
- ``logistic``: standardised logistic regression on the raw covariates.
- ``random_forest`` and ``lightgbm_default``: scikit-learn's and LightGBM's defaults on the raw
  covariates.

All are fitted on the fold's labelled training rows only; every parameter is a library default
or fixed here, never chosen on the cells being evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from safeground.risk.presence import fit_presence
from safeground.risk.table import RiskTable


@dataclass
class FoldData:
    """What every learner of a fold sees: positions (km) and the fold's groups."""

    xy: np.ndarray | None
    groups: np.ndarray | None
    seed: int = 0
    n_jobs: int = 1


Learner = Callable[[RiskTable, np.ndarray, FoldData], np.ndarray]


def _train_rows(table: RiskTable, train_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    assert table.label is not None
    idx = np.flatnonzero(table.labelled & train_mask)
    return idx, table.label[idx].astype(np.int64)


def kde_baseline(table: RiskTable, train_mask: np.ndarray, fold: FoldData) -> np.ndarray:
    """Gaussian KDE of training positives (Scott's bandwidth), Platt-scaled to a probability.

    Training cells are scored with the positives of other groups only, as the held-out cells
    are, so that the scaling is learnt on comparable scores.
    """
    if fold.xy is None:
        raise ValueError("the kde baseline needs positions (geometry or x/y columns)")
    idx, y = _train_rows(table, train_mask)
    xy = fold.xy
    ok = np.isfinite(xy).all(axis=1)
    pos = idx[(y == 1) & ok[idx]]
    kde = KernelDensity(bandwidth="scott").fit(xy[pos])
    bw = float(kde.bandwidth_)
    score = np.full(table.n, np.nan)
    score[ok] = kde.score_samples(xy[ok])
    train_score = score[idx].copy()
    if fold.groups is not None:
        for g in np.unique(fold.groups[idx]):
            rows = idx[fold.groups[idx] == g]
            other = pos[fold.groups[pos] != g]
            if len(other):
                k = KernelDensity(bandwidth=bw).fit(xy[other])
                keep = ok[rows]
                train_score[np.flatnonzero(fold.groups[idx] == g)[keep]] = k.score_samples(
                    xy[rows[keep]]
                )
    floor = np.nanmin(np.r_[score, train_score]) if np.isfinite(score).any() else 0.0
    train_score = np.nan_to_num(train_score, nan=floor, neginf=floor)
    score = np.nan_to_num(score, nan=floor, neginf=floor)
    lr = LogisticRegression(max_iter=1000).fit(train_score.reshape(-1, 1), y)
    return np.asarray(lr.predict_proba(score.reshape(-1, 1))[:, 1], dtype=np.float64)


def logistic_baseline(table: RiskTable, train_mask: np.ndarray, fold: FoldData) -> np.ndarray:
    idx, y = _train_rows(table, train_mask)
    X = table.matrix()
    model = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(max_iter=2000),
    )
    model.fit(X[idx], y)
    return np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)


def random_forest_baseline(table: RiskTable, train_mask: np.ndarray, fold: FoldData) -> np.ndarray:
    idx, y = _train_rows(table, train_mask)
    X = table.matrix()
    model = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        RandomForestClassifier(random_state=fold.seed, n_jobs=fold.n_jobs),
    )
    model.fit(X[idx], y)
    proba: np.ndarray = np.asarray(model.predict_proba(X))
    return proba[:, 1].astype(np.float64)


def lightgbm_default_baseline(
    table: RiskTable, train_mask: np.ndarray, fold: FoldData
) -> np.ndarray:
    idx, y = _train_rows(table, train_mask)
    X = table.matrix()
    model = lgb.LGBMClassifier(random_state=fold.seed, n_jobs=fold.n_jobs, verbose=-1)
    model.fit(X[idx], y)
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    return proba[:, 1]


def maxent_presence_only(table: RiskTable, train_mask: np.ndarray, fold: FoldData) -> np.ndarray:
    """Presence-only MaxEnt (as ``risk map`` fits it): the training positives against every
    training cell, labelled or not, as background; the training negatives are never used.

    Its cloglog output ranks cells but is not a calibrated probability, so Brier and ECE do
    not apply to it.
    """
    idx, y = _train_rows(table, train_mask)
    frame = pd.DataFrame(table.matrix(), columns=table.covariates)
    model = fit_presence(frame.iloc[idx[y == 1]], frame[train_mask], seed=fold.seed)
    return model.predict(frame)


# Presence-only learners: run only when named (``--models safeground,maxent``), being slow.
PRESENCE_ONLY: dict[str, Learner] = {"maxent": maxent_presence_only}

BASELINES: dict[str, Learner] = {
    "kde": kde_baseline,
    "logistic": logistic_baseline,
    "random_forest": random_forest_baseline,
    "lightgbm_default": lightgbm_default_baseline,
}
