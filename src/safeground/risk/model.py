"""Safeground's risk model: LightGBM on raw covariates plus spatial context, calibrated on
inner group folds.

Why this shape:
- Neighbourhood means of the covariates carry most of the signal that transfers to a new
  municipality (see docs/risk.md for the measured gain).
- Strong regularisation (small leaves, many samples per leaf, column and row subsampling,
  L2) because only about twenty municipalities exist to learn from.
- The distance to the nearest known positive outside the cell's own group is constrained to
  lower the risk as it grows (monotone), which is the only direction that makes sense.
- Probabilities are calibrated (Platt by default, isotonic as an option) on out-of-fold scores
  of inner group folds of the training data only: never on the cells being evaluated.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold

from safeground.risk.factors import top_factors
from safeground.risk.features import (
    DISTANCE_FEATURE,
    ContextLayout,
    block_ids,
    cell_size_km,
    context_block,
    distance_to_positive,
)
from safeground.risk.persist import load_model, save_model
from safeground.risk.table import Projection, RiskDataError, RiskTable, TableSpec

FORMAT = "safeground-risk-model/1"
GroupMode = Literal["column", "blocks", "none"]


@dataclass(frozen=True)
class ModelConfig:
    """Settings fixed in advance; none is tuned on the cells being evaluated."""

    # Half-widths, in grid cells, of the square windows averaged around each cell (3 -> 7x7).
    windows: tuple[int, ...] = (3, 7)
    distance_to_positive: bool = True
    block_km: float = 10.0
    inner_folds: int = 5
    n_estimators: int = 300
    learning_rate: float = 0.03
    num_leaves: int = 15
    min_child_samples: int = 40
    subsample: float = 0.8
    colsample_bytree: float = 0.5
    reg_lambda: float = 5.0
    n_seeds: int = 1
    calibration: Literal["platt", "isotonic"] = "platt"
    seed: int = 0
    # 0 = automatic: one thread below 20,000 training rows (there OpenMP threads cost more than
    # they bring, and slow down sharply when another process holds a core), every core above.
    n_jobs: int = 0

    def threads(self, n_rows: int) -> int:
        if self.n_jobs > 0:
            return self.n_jobs
        return 1 if n_rows < 20_000 else max(1, os.cpu_count() or 1)

    def lgb_params(self, seed: int, n_rows: int = 0) -> dict[str, Any]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.threads(n_rows),
            "verbosity": -1,
        }


@dataclass
class Calibrator:
    """Maps the ensemble's log-odds to a probability, keeping the ranking strict."""

    method: str
    platt: LogisticRegression | None = None
    isotonic: IsotonicRegression | None = None

    @staticmethod
    def fit(method: str, scores: np.ndarray, y: np.ndarray) -> Calibrator:
        if method == "isotonic":
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(scores, y)
            return Calibrator(method, isotonic=iso)
        lr = LogisticRegression(C=1e6, max_iter=1000)
        lr.fit(scores.reshape(-1, 1), y)
        return Calibrator("platt", platt=lr)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        if self.isotonic is not None:
            p = np.asarray(self.isotonic.predict(scores), dtype=np.float64)
            # Isotonic steps tie many cells; a vanishing logistic term restores the model's
            # order (ranking metrics and top-k lists depend on it) without moving calibration.
            p = (1 - 1e-6) * p + 1e-6 / (1 + np.exp(-scores))
            return np.clip(p, 0.0, 1.0)
        assert self.platt is not None
        return np.asarray(self.platt.predict_proba(scores.reshape(-1, 1))[:, 1], dtype=np.float64)


@dataclass
class SpatialInputs:
    """Per-table work shared by every fold: projected positions and context features."""

    xy: np.ndarray | None
    base: np.ndarray
    cell_km: float = 1.0
    halfwidths: tuple[int, ...] = ()


def prepare_inputs(
    table: RiskTable, config: ModelConfig, projection: Projection | None
) -> SpatialInputs:
    """Project positions, measure the grid spacing and compute neighbourhood means once."""
    xy = table_xy(table, projection)
    cell = cell_size_km(xy) if xy is not None else 1.0
    hw = tuple(config.windows) if xy is not None else ()
    return SpatialInputs(xy, context_block(xy, table.matrix(), cell, hw), cell, hw)


def table_xy(table: RiskTable, projection: Projection | None) -> np.ndarray | None:
    if projection is None or table.x is None or table.y is None:
        return None
    return projection.to_km(table.x, table.y)


@dataclass
class RiskModel:
    """A fitted model with everything needed to score a new table of the same covariates."""

    config: ModelConfig
    spec: TableSpec
    layout: ContextLayout
    projection: Projection | None
    cell_km: float
    group_mode: GroupMode
    pos_xy: np.ndarray
    pos_groups: np.ndarray | None
    boosters: list[lgb.Booster]
    calibrator: Calibrator
    n_train: int
    n_positive: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def covariates(self) -> list[str]:
        return list(self.layout.covariates)

    @property
    def feature_names(self) -> list[str]:
        return self.layout.names

    def prediction_spec(self, columns: pd.Index) -> TableSpec:
        """The fitted roles, minus a label (not needed to predict) and an absent group."""
        group = self.spec.group if self.spec.group in columns else None
        return replace(self.spec, label=None, group=group)

    def spatial_inputs(self, table: RiskTable) -> SpatialInputs:
        xy = table_xy(table, self.projection)
        hw = self.layout.halfwidths
        base = context_block(xy, table.matrix(self.covariates), self.cell_km, hw)
        return SpatialInputs(xy, base, self.cell_km, hw)

    def _groups_for(self, table: RiskTable, xy: np.ndarray | None) -> np.ndarray | None:
        if self.group_mode == "column" and table.groups is not None:
            return table.groups
        if self.group_mode == "blocks" and xy is not None:
            return block_ids(xy, self.config.block_km)
        return None

    def features(self, table: RiskTable, inputs: SpatialInputs | None = None) -> np.ndarray:
        """The model's feature matrix for ``table`` (context recomputed unless given)."""
        inputs = inputs if inputs is not None else self.spatial_inputs(table)
        if not self.layout.distance:
            return inputs.base
        assert inputs.xy is not None
        groups = self._groups_for(table, inputs.xy)
        dist = distance_to_positive(inputs.xy, groups, self.pos_xy, self.pos_groups)
        return np.column_stack([inputs.base, dist])

    def raw_score(self, features: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """Mean log-odds of the ensemble."""
        extra: dict[str, Any] = {} if num_threads is None else {"num_threads": num_threads}
        out = np.zeros(len(features))
        for b in self.boosters:
            out += np.asarray(b.predict(features, raw_score=True, **extra), dtype=np.float64)
        return out / len(self.boosters)

    def predict_features(self, features: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        return self.calibrator(self.raw_score(features, num_threads))

    def predict(self, table: RiskTable) -> np.ndarray:
        """Calibrated probability of a mine event, one per row, in the table's order."""
        return self.predict_features(self.features(table))

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Per-row log-odds contributions (LightGBM's TreeSHAP), last column the bias."""
        out = np.zeros((len(features), len(self.feature_names) + 1))
        for b in self.boosters:
            out += np.asarray(b.predict(features, pred_contrib=True), dtype=np.float64)
        return out / len(self.boosters)

    def explain(self, features: np.ndarray, top: int = 3) -> pd.DataFrame:
        """Top factors per row, contributions summed by source covariate (its neighbourhood
        means count with it), signed in log-odds: positive raises the risk."""
        contrib = self.contributions(features)[:, :-1]
        sources = pd.Index(self.layout.sources)
        uniq = list(dict.fromkeys(sources))
        agg = np.zeros((len(features), len(uniq)))
        pos = {s: i for i, s in enumerate(uniq)}
        for j, s in enumerate(sources):
            agg[:, pos[s]] += contrib[:, j]
        return top_factors(agg, uniq, top)

    def importance(self) -> pd.Series:
        """Global importance: share of total split gain, summed by source covariate."""
        gain = np.zeros(len(self.feature_names))
        for b in self.boosters:
            gain += np.asarray(b.feature_importance(importance_type="gain"), dtype=np.float64)
        s = pd.Series(gain, index=self.layout.sources).groupby(level=0, sort=False).sum()
        total = s.sum()
        return (s / total if total > 0 else s).sort_values(ascending=False)

    def save(self, path: str | Path) -> None:
        """Pickle with a format tag. Load only model files you made or trust."""
        save_model(self, path, FORMAT)

    @staticmethod
    def load(path: str | Path) -> RiskModel:
        return load_model(path, FORMAT, RiskModel, "risk model")


def _cv_groups(
    table: RiskTable, xy: np.ndarray | None, config: ModelConfig
) -> tuple[np.ndarray | None, GroupMode]:
    if table.groups is not None:
        return table.groups, "column"
    if xy is not None:
        return block_ids(xy, config.block_km), "blocks"
    return None, "none"


def _inner_splits(
    y: np.ndarray, groups: np.ndarray | None, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group folds of the training rows (stratified folds only when there is no position)."""
    if groups is not None and len(np.unique(groups)) >= 2:
        n = min(k, len(np.unique(groups)))
        return list(GroupKFold(n_splits=n).split(y, y, groups))
    n = max(2, min(k, int(np.bincount(y).min())))
    return list(StratifiedKFold(n, shuffle=True, random_state=seed).split(y, y))


def _train(
    config: ModelConfig, X: np.ndarray, y: np.ndarray, names: list[str]
) -> list[lgb.Booster]:
    mono = [-1 if n == DISTANCE_FEATURE else 0 for n in names]
    out = []
    for s in range(config.n_seeds):
        params = config.lgb_params(config.seed + s, len(y)) | {"monotone_constraints": mono}
        ds = lgb.Dataset(X, label=y, feature_name=[f"f{i}" for i in range(len(names))])
        out.append(lgb.train(params, ds, num_boost_round=config.n_estimators))
    return out


def fit_model(
    table: RiskTable,
    config: ModelConfig | None = None,
    *,
    train_mask: np.ndarray | None = None,
    cv_groups: np.ndarray | None = None,
    group_mode: GroupMode = "blocks",
    inputs: SpatialInputs | None = None,
    projection: Projection | None = None,
) -> RiskModel:
    """Fit on the labelled rows (within ``train_mask``); every row lends its covariates.

    ``cv_groups`` (with ``group_mode`` saying what they are) overrides the groups used for inner
    folds and for the out-of-group distance (validation passes its spatial blocks here);
    ``inputs`` reuses context already computed for the table.
    """
    config = config or ModelConfig()
    if table.label is None:
        raise RiskDataError("a label column is required to fit")
    lab = table.labelled if train_mask is None else table.labelled & train_mask
    idx = np.flatnonzero(lab)
    y_all = table.label.astype(np.int64)
    classes = np.unique(y_all[idx])
    if classes.size < 2:
        raise RiskDataError(
            f"label column {table.spec.label!r} has only class "
            f"{classes.tolist()} among training rows: need both 0 and 1"
        )
    if projection is None and table.has_coordinates:
        assert table.x is not None and table.y is not None
        projection = Projection.infer(table.x, table.y)
    if inputs is None:
        inputs = prepare_inputs(table, config, projection)
    xy, cell = inputs.xy, inputs.cell_km
    use_dist = config.distance_to_positive and xy is not None
    layout = ContextLayout(tuple(table.covariates), inputs.halfwidths, use_dist)
    if cv_groups is not None:
        groups: np.ndarray | None = cv_groups
        mode: GroupMode = group_mode
    else:
        groups, mode = _cv_groups(table, xy, config)

    def feats(rows: np.ndarray, pos_rows: np.ndarray) -> np.ndarray:
        if not use_dist:
            return inputs.base[rows]
        assert xy is not None
        g = groups[rows] if groups is not None else None
        pg = groups[pos_rows] if groups is not None else None
        d = distance_to_positive(xy[rows], g, xy[pos_rows], pg)
        return np.column_stack([inputs.base[rows], d])

    names = layout.names
    oof = np.full(len(idx), np.nan)
    g_idx = groups[idx] if groups is not None else None
    for tr, va in _inner_splits(y_all[idx], g_idx, config.inner_folds, config.seed):
        trn, val = idx[tr], idx[va]
        pos = trn[y_all[trn] == 1]
        boosters = _train(config, feats(trn, pos), y_all[trn], names)
        scores = np.zeros(len(val))
        for b in boosters:
            scores += np.asarray(b.predict(feats(val, pos), raw_score=True), dtype=np.float64)
        oof[va] = scores / len(boosters)
    calibrator = Calibrator.fit(config.calibration, oof, y_all[idx])

    pos_rows = idx[y_all[idx] == 1]
    boosters = _train(config, feats(idx, pos_rows), y_all[idx], names)
    return RiskModel(
        config=config,
        spec=table.spec,
        layout=layout,
        projection=projection,
        cell_km=cell,
        group_mode=mode,
        pos_xy=xy[pos_rows] if xy is not None else np.empty((0, 2)),
        pos_groups=groups[pos_rows] if groups is not None else None,
        boosters=boosters,
        calibrator=calibrator,
        n_train=len(idx),
        n_positive=len(pos_rows),
        info={"config": asdict(config), "cell_km": cell, "group_mode": mode},
    )
