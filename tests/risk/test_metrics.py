"""Metrics on cases small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeground.risk.metrics import expected_calibration_error, score, top_k_capture


def test_top_k_capture_by_hand() -> None:
    # 10 cells, 3 positives; the top 10% is 1 cell (a positive), the top 20% 2 cells (1 pos).
    y = np.array([1, 0, 1, 0, 0, 0, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    assert top_k_capture(y, p, 0.10) == pytest.approx(1 / 3)
    assert top_k_capture(y, p, 0.20) == pytest.approx(1 / 3)
    assert top_k_capture(y, p, 0.30) == pytest.approx(2 / 3)
    assert top_k_capture(y, p, 1.0) == pytest.approx(1.0)


def test_top_k_capture_splits_ties_pro_rata() -> None:
    # All scores tied: the top 20% of 10 cells holds, on average, 20% of the positives.
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.full(10, 0.5)
    assert top_k_capture(y, p, 0.2) == pytest.approx(0.2)
    # The answer must not depend on row order.
    assert top_k_capture(y[::-1], p, 0.2) == pytest.approx(0.2)


def test_ece_by_hand() -> None:
    # Bin [0.2, 0.3): 2 cells, mean p 0.25, rate 0.5 -> gap 0.25;
    # bin [0.8, 0.9): 2 cells, mean p 0.8, rate 1.0 -> gap 0.2. ECE = 0.5*0.25 + 0.5*0.2.
    y = np.array([0, 1, 1, 1])
    p = np.array([0.2, 0.3 - 1e-9, 0.8, 0.8])
    assert expected_calibration_error(y, p) == pytest.approx(0.225, abs=1e-6)


def test_ece_zero_when_calibrated() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.full(4, 0.5)
    assert expected_calibration_error(y, p) == pytest.approx(0.0)


def test_score_fields_and_brier() -> None:
    y = np.array([0, 1])
    p = np.array([0.0, 1.0])
    s = score(y, p)
    assert s["roc_auc"] == 1.0
    assert s["pr_auc"] == 1.0
    assert s["brier"] == 0.0
    assert s["top10_capture"] == 1.0


def test_score_one_class_has_no_auc() -> None:
    s = score(np.array([1, 1, 1]), np.array([0.2, 0.5, 0.9]))
    assert s["roc_auc"] is None and s["pr_auc"] is None
    assert s["brier"] == pytest.approx(((0.8**2) + 0.25 + 0.01) / 3)


def test_metrics_refuse_unlabelled() -> None:
    with pytest.raises(ValueError, match="unlabelled"):
        score(np.array([0, 1, -1]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="unlabelled"):
        top_k_capture(np.array([0, 1, -1]), np.array([0.1, 0.2, 0.3]), 0.2)


def test_top_k_capture_no_positives_is_nan() -> None:
    assert math.isnan(top_k_capture(np.zeros(5, dtype=int), np.arange(5.0), 0.2))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1)), min_size=2, max_size=60),
    st.floats(0.01, 1.0),
)
def test_capture_properties(cells: list[tuple[int, float]], share: float) -> None:
    y = np.array([c[0] for c in cells])
    p = np.array([c[1] for c in cells])
    if y.sum() == 0:
        return
    got = top_k_capture(y, p, share)
    assert 0.0 <= got <= 1.0 + 1e-12
    # Searching more land never finds fewer mines.
    assert top_k_capture(y, p, min(1.0, share + 0.1)) >= got - 1e-12
    # The perfect ranking finds at least as many.
    assert top_k_capture(y, y.astype(float), share) >= got - 1e-12
    ece = expected_calibration_error(y, p)
    assert 0.0 <= ece <= 1.0
