"""Spatially honest validation: whole groups or whole spatial blocks are held out.

Random row-wise folds flatter a risk model: neighbouring cells share their covariates and
their mines, so a random test cell almost always has a training twin next door. Here the test
cells of a fold are a municipality (leave one group out) or a set of square blocks (blocked
spatial folds), and every choice inside Safeground's model is made on inner folds of the
training cells only.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from safeground.risk.baselines import BASELINES, PRESENCE_ONLY, FoldData, Learner
from safeground.risk.features import block_ids
from safeground.risk.metrics import score
from safeground.risk.model import ModelConfig, SpatialInputs, fit_model, prepare_inputs
from safeground.risk.table import Projection, RiskDataError, RiskTable

Protocol = Literal["group", "blocks"]
SAFEGROUND = "safeground"
METRICS = ("roc_auc", "pr_auc", "brier", "ece", "top10_capture", "top20_capture")


@dataclass(frozen=True)
class Fold:
    name: str
    test: np.ndarray  # mask over all rows, labelled or not


def group_folds(groups: np.ndarray) -> list[Fold]:
    """Leave one group out, groups in sorted order."""
    return [Fold(str(g), groups == g) for g in sorted(np.unique(groups))]


def blocked_folds(
    xy: np.ndarray, labelled: np.ndarray, *, n_folds: int = 5, block_km: float = 10.0, seed: int = 0
) -> tuple[list[Fold], np.ndarray]:
    """Square blocks dealt to ``n_folds`` folds; each block lies in one fold only.

    Blocks are taken in a seeded random order and each goes to the fold with the fewest
    labelled cells so far, so folds are balanced without looking at the labels' values.
    """
    blocks = block_ids(xy, block_km)
    uniq, inv = np.unique(blocks, return_inverse=True)
    n_folds = max(2, min(n_folds, len(uniq)))
    weight = np.bincount(inv, weights=labelled.astype(float), minlength=len(uniq))
    order = np.random.default_rng(seed).permutation(len(uniq))
    load = np.zeros(n_folds)
    fold_of_block = np.zeros(len(uniq), dtype=int)
    for b in order:
        f = int(np.argmin(load))
        fold_of_block[b] = f
        load[f] += weight[b]
    fold_of_row = fold_of_block[inv]
    folds = [Fold(f"blocks-{k + 1}", fold_of_row == k) for k in range(n_folds)]
    return folds, blocks


@dataclass
class Evaluation:
    """Per-fold and pooled (out-of-fold) metrics per model, plus the predictions."""

    protocol: str
    folds: list[str]
    models: list[str]
    per_fold: dict[str, list[dict[str, Any]]]
    overall: dict[str, dict[str, Any]]
    fold_mean: dict[str, dict[str, Any]]
    oof: dict[str, np.ndarray] = field(repr=False)
    fold_of_row: np.ndarray = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "settings": self.settings,
            "folds": self.folds,
            "overall": self.overall,
            "fold_mean": self.fold_mean,
            "per_fold": self.per_fold,
        }


def _mean_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in METRICS:
        vals = [r[m] for r in rows if r.get(m) is not None and not math.isnan(r[m])]
        out[m] = float(np.mean(vals)) if vals else None
        out[f"{m}_folds"] = len(vals)
    return out


def safeground_learner(
    config: ModelConfig, inputs: SpatialInputs, projection: Projection | None, group_mode: str
) -> Learner:
    """Wrap the model as a learner that reuses the table's context features across folds."""

    def run(table: RiskTable, train_mask: np.ndarray, fold: FoldData) -> np.ndarray:
        model = fit_model(
            table,
            config,
            train_mask=train_mask,
            cv_groups=fold.groups,
            group_mode="column" if group_mode == "column" else "blocks",
            inputs=inputs,
            projection=projection,
        )
        return model.predict_features(model.features(table, inputs))

    return run


def evaluate(
    table: RiskTable,
    protocol: Protocol,
    *,
    config: ModelConfig | None = None,
    models: Sequence[str] | None = None,
    n_folds: int = 5,
    block_km: float = 10.0,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> Evaluation:
    """Run every model on the same folds; metrics on labelled test cells only."""
    config = replace(config or ModelConfig(), block_km=block_km, seed=seed)
    if table.label is None:
        raise RiskDataError("evaluation needs a label column")
    lab = table.labelled
    classes = np.unique(table.label[lab])
    if classes.size < 2:
        raise RiskDataError(
            f"label column {table.spec.label!r} has only class {classes.tolist()}: need 0 and 1"
        )
    names = list(models) if models is not None else [SAFEGROUND, *BASELINES]
    known = {**BASELINES, **PRESENCE_ONLY}
    unknown = [m for m in names if m != SAFEGROUND and m not in known]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; known: {[SAFEGROUND, *known]}")
    projection: Projection | None = None
    if table.has_coordinates:
        assert table.x is not None and table.y is not None
        projection = Projection.infer(table.x, table.y)
    inputs = prepare_inputs(table, config, projection)
    xy = inputs.xy

    if protocol == "group":
        if table.groups is None:
            raise RiskDataError("leave-one-group-out needs a group column (--group)")
        folds = group_folds(table.groups)
        groups: np.ndarray | None = table.groups
        group_mode = "column"
    else:
        if xy is None:
            raise RiskDataError(
                "blocked spatial folds need positions: a WKT geometry column or x/y columns"
            )
        folds, groups = blocked_folds(xy, lab, n_folds=n_folds, block_km=block_km, seed=seed)
        group_mode = "blocks"
    if "kde" in names and xy is None:
        names.remove("kde")

    learners: dict[str, Learner] = {
        m: (
            safeground_learner(config, inputs, projection, group_mode)
            if m == SAFEGROUND
            else known[m]
        )
        for m in names
    }
    fold_data = FoldData(xy=xy, groups=groups, seed=seed, n_jobs=config.threads(int(lab.sum())))
    oof = {m: np.full(table.n, np.nan) for m in names}
    per_fold: dict[str, list[dict[str, Any]]] = {m: [] for m in names}
    fold_of_row = np.full(table.n, -1)
    y = table.label
    for k, fold in enumerate(folds):
        fold_of_row[fold.test] = k
        train = ~fold.test
        test_lab = fold.test & lab
        trained = np.unique(y[train & lab])
        for m in names:
            if trained.size < 2:
                # Every training cell has one class: no model can be fitted on this fold.
                per_fold[m].append({"fold": fold.name, "skipped": "one class in training"})
                continue
            p = learners[m](table, train, fold_data)
            oof[m][fold.test] = p[fold.test]
            row = {"fold": fold.name, **score(y[test_lab], p[test_lab])}
            per_fold[m].append(row)
        if log:
            auc = per_fold[names[0]][-1].get("roc_auc")
            log(f"fold {k + 1}/{len(folds)} {fold.name}: {names[0]} roc_auc={auc}")
    overall: dict[str, dict[str, Any]] = {}
    for m in names:
        done = lab & np.isfinite(oof[m])
        overall[m] = score(y[done], oof[m][done])
    settings = {
        "models": names,
        "n_folds": len(folds),
        "block_km": block_km if protocol == "blocks" else None,
        "seed": seed,
        "labelled_cells": int(lab.sum()),
        "unlabelled_cells": int((~lab).sum()),
        "overall_is": "metrics on the pooled out-of-fold predictions of all labelled cells",
        "fold_mean_is": "mean over folds where the metric is defined (both classes present)",
    }
    return Evaluation(
        protocol=protocol,
        folds=[f.name for f in folds],
        models=names,
        per_fold=per_fold,
        overall=overall,
        fold_mean={m: _mean_of(per_fold[m]) for m in names},
        oof=oof,
        fold_of_row=fold_of_row,
        settings=settings,
    )


def stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
