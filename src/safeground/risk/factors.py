"""Top factors: the covariates that move each cell's score most, for both risk models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def top_factors(contrib: np.ndarray, names: Sequence[str], top: int = 3) -> pd.DataFrame:
    """``factor_k`` and ``factor_k_effect`` columns from a (rows, covariates) contribution matrix.

    Ranked by absolute effect (ties keep the covariates' order); effects keep their sign.
    """
    order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :top]
    labels = np.array(names, dtype=object)
    rows = np.arange(len(contrib))
    cols: dict[str, Any] = {}
    for k in range(min(top, len(labels))):
        cols[f"factor_{k + 1}"] = labels[order[:, k]]
        cols[f"factor_{k + 1}_effect"] = np.round(contrib[rows, order[:, k]], 4)
    return pd.DataFrame(cols)
