"""Fixtures: a small real cut of RELand (four municipalities, 507 cells)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from safeground.risk import ModelConfig, RiskTable, TableSpec, prepare_table

CUT = Path(__file__).resolve().parents[1] / "data" / "reland" / "antioquia_cut.csv"
SPEC = TableSpec(label="mines_outcome", group="Municipio")
# Small and quick, but the same code paths as the default model.
FAST = ModelConfig(n_estimators=60, inner_folds=3, seed=0)


@pytest.fixture(scope="session")
def cut_path() -> Path:
    return CUT


@pytest.fixture()
def cut_frame() -> pd.DataFrame:
    return pd.read_csv(CUT)


@pytest.fixture()
def cut_table(cut_frame: pd.DataFrame) -> RiskTable:
    return prepare_table(cut_frame, SPEC, require_label=True)


@pytest.fixture()
def fast_config() -> ModelConfig:
    return FAST
