"""Scores for a risk map: ranking (ROC/PR AUC), probability quality (Brier, ECE) and the
planner's question "search the riskiest tenth or fifth of the cells: what share of the mines
do we find?" (top-k capture).

Every function takes labels in {0, 1} only: callers drop unlabelled cells first, so that an
unlabelled cell can never count as a negative.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

N_BINS_DEFAULT = 10


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and scores {p.shape} differ in shape")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("metrics take labels 0/1 only: drop unlabelled cells first")
    return y.astype(np.int8), p


def top_k_capture(
    y: np.ndarray, p: np.ndarray, share: float, weights: np.ndarray | None = None
) -> float:
    """Share of positives among the ceil(share * n) highest-risk cells.

    Ties at the cut are split pro rata (a tied block counts by the fraction of it that fits),
    so the figure does not depend on the order rows happen to be in. With ``weights`` (e.g.
    events per cell) positives count by their weight: the share of events captured.
    """
    y, p = _check(y, p)
    if weights is not None:
        y = y * np.asarray(weights, dtype=np.float64)
    n_pos = float(y.sum())
    if n_pos == 0 or y.size == 0:
        return math.nan
    k = math.ceil(share * y.size)
    order = np.argsort(-p, kind="stable")
    ps = p[order]
    cut = ps[k - 1]
    above = ps > cut
    tied = ps == cut
    found = float(y[order][above].sum())
    n_tied = int(tied.sum())
    room = k - int(above.sum())
    found += float(y[order][tied].sum()) * room / n_tied
    return found / n_pos


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS_DEFAULT) -> float:
    """ECE with equal-width bins on [0, 1]: sum over bins of (bin share) x |mean p - rate|."""
    y, p = _check(y, p)
    if y.size == 0:
        return math.nan
    bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.mean() * abs(float(p[m].mean()) - float(y[m].mean()))
    return total


def reliability_curve(
    y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS_DEFAULT
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty bin: mean predicted risk, observed rate, count (for the reliability plot)."""
    y, p = _check(y, p)
    bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    mp, rate, cnt = [], [], []
    for b in range(n_bins):
        m = bins == b
        if m.any():
            mp.append(float(p[m].mean()))
            rate.append(float(y[m].mean()))
            cnt.append(int(m.sum()))
    return np.array(mp), np.array(rate), np.array(cnt)


def score(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """All metrics for one set of cells; AUCs are None when only one class is present."""
    y, p = _check(y, p)
    two = y.size > 0 and 0 < int(y.sum()) < y.size
    out: dict[str, Any] = {
        "n": int(y.size),
        "positives": int(y.sum()),
        "roc_auc": float(roc_auc_score(y, p)) if two else None,
        "pr_auc": float(average_precision_score(y, p)) if two else None,
        "brier": float(brier_score_loss(y, p, labels=[0, 1])) if y.size else None,
        "ece": expected_calibration_error(y, p) if y.size else None,
        "top10_capture": top_k_capture(y, p, 0.10) if int(y.sum()) else None,
        "top20_capture": top_k_capture(y, p, 0.20) if int(y.sum()) else None,
    }
    return out
