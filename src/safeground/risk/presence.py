"""Presence-only risk: a MaxEnt model (elapid) of where evidence is met, against background.

A register records where mines were met, not where they were not, so a supervised model
would have to treat every cell without a record as clean: most of them were never visited.
Species-distribution modelling has the same problem and the usual answer: compare the
covariates at the presences with those of *background* cells drawn at random from the whole
region (a background cell may hold mines; it stands for "what the region looks like"), and
fit MaxEnt, a penalised log-linear model of that contrast. Output is the cloglog transform in
0..1: a relative likelihood of presence, good for ranking cells, not a calibrated probability.

Feature types are linear, quadratic and hinge, without products: the model is then additive
in the covariates, so each cell's score splits exactly into one contribution per covariate
(its term minus the term at the background median), which is what ``explain`` reports.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from elapid import MaxentModel
from elapid.models import maxent_cloglog_transform

from safeground.risk.factors import top_factors
from safeground.risk.persist import load_model, save_model

FORMAT = "safeground-presence-model/1"
FEATURE_TYPES = "lqh"
BACKGROUND = 10_000


class PresenceDataError(ValueError):
    """Too few presences, or features that cannot be used; the message says which."""


@dataclass
class PresenceModel:
    """A fitted MaxEnt model and what is needed to score and explain new cells."""

    features: list[str]
    maxent: MaxentModel = field(repr=False)
    fill: np.ndarray  # background medians: stand-in for missing values, reference for effects
    n_presence: int
    n_background: int
    seed: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """``maxent-`` and a digest of the fitted coefficients: same fit, same version."""
        h = hashlib.sha256()
        h.update("|".join(self.features).encode())
        h.update(np.asarray(self.maxent.beta_scores_, dtype=np.float64).tobytes())
        h.update(np.float64(self.maxent.alpha_).tobytes())
        return f"maxent-{h.hexdigest()[:12]}"

    def _matrix(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise PresenceDataError(f"feature {missing[0]!r} used by the model is missing")
        x = frame[self.features].to_numpy(dtype=np.float64)
        return np.where(np.isfinite(x), x, self.fill)

    def owners(self) -> np.ndarray:
        """(MaxEnt feature columns, covariates) 0/1 matrix: which covariate each column is of.

        elapid labels each column with its type; a type's block holds the covariates in order,
        one column each (linear, quadratic) or ``2 * (n_hinges - 1)`` each (hinge).
        """
        labels = list(self.maxent.transformer.feature_names_)
        n = len(self.features)
        out = np.zeros((len(labels), n))
        start = 0
        while start < len(labels):
            kind = labels[start]
            end = start
            while end < len(labels) and labels[end] == kind:
                end += 1
            per = (end - start) // n
            if per * n != end - start:
                raise ValueError(f"elapid {kind} block of {end - start} columns for {n} covariates")
            out[np.arange(start, end), np.repeat(np.arange(n), per)] = 1.0
            start = end
        return out

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The linear predictor (log scale) of a covariate matrix."""
        feats = self.maxent.transformer.transform(x)
        return np.asarray(feats @ self.maxent.beta_scores_, dtype=np.float64)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """cloglog score in 0..1, one per row."""
        return np.asarray(self.maxent.predict(self._matrix(frame)), dtype=np.float64)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, covariates): each covariate's term minus its term at the background median."""
        return self.score(frame, explain=True)[1]

    def score(self, frame: pd.DataFrame, explain: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """cloglog score and (if asked) per-covariate contributions, from one transform."""
        x = self._matrix(frame)
        if not len(x):  # a block with no region cell
            return np.empty(0), np.empty((0, len(self.features)))
        feats = self.maxent.transformer.transform(x)
        beta = np.asarray(self.maxent.beta_scores_, dtype=np.float64)
        engma = feats @ beta + self.maxent.alpha_
        risk = np.asarray(maxent_cloglog_transform(engma, self.maxent.entropy_), np.float64)
        if not explain:
            return risk, np.empty((len(x), 0))
        ref = self.maxent.transformer.transform(self.fill.reshape(1, -1))
        return risk, ((feats - ref) * beta) @ self.owners()

    def explain(self, frame: pd.DataFrame, top: int = 3) -> pd.DataFrame:
        """The ``top`` covariates moving each cell's score most (log scale, + raises risk)."""
        return self.factors(self.contributions(frame), top)

    def factors(self, contrib: np.ndarray, top: int = 3) -> pd.DataFrame:
        """Top factors of contributions already computed (``score(..., explain=True)``)."""
        return top_factors(contrib, self.features, top)

    def save(self, path: str | Path) -> None:
        """Pickle with a format tag. Load only model files you made or trust."""
        save_model(self, path, FORMAT)

    @staticmethod
    def load(path: str | Path) -> PresenceModel:
        return load_model(path, FORMAT, PresenceModel, "presence-only model")


def fit_presence(
    presence: pd.DataFrame, background: pd.DataFrame, *, seed: int = 0
) -> PresenceModel:
    """Fit MaxEnt on presence rows against background rows (same feature columns).

    Features constant over the background tell the model nothing and are dropped; missing
    values take the background median. Settings are elapid's defaults apart from the feature
    types (additive, see the module docstring); nothing is tuned on held-out cells.
    """
    if len(presence) < 5:
        raise PresenceDataError(
            f"{len(presence)} presence cells: a presence-only model needs at least 5"
        )
    names = [
        f
        for f in background.columns
        if np.nanstd(background[f].to_numpy(np.float64)) > 0
        or np.nanstd(presence[f].to_numpy(np.float64)) > 0
    ]
    if not names:
        raise PresenceDataError("no feature varies over the region: add covariates")
    bg = background[names].to_numpy(np.float64)
    fill = np.nanmedian(bg, axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    x = np.vstack([presence[names].to_numpy(np.float64), bg])
    x = np.where(np.isfinite(x), x, fill)
    y = np.r_[np.ones(len(presence), dtype=int), np.zeros(len(background), dtype=int)]
    maxent = MaxentModel(
        feature_types=FEATURE_TYPES, transform="cloglog", n_cpus=1, random_state=seed
    )
    maxent.fit(x, y)
    return PresenceModel(
        features=names,
        maxent=maxent,
        fill=fill,
        n_presence=len(presence),
        n_background=len(background),
        seed=seed,
        info={"feature_types": FEATURE_TYPES, "transform": "cloglog"},
    )
