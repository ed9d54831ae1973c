"""Land risk estimation: fit, predict, explain and validate honestly, from a table or a register.

The table part (table, features, model, validation, chunked) reads only tables, so it can run
anywhere a table can be made. The map part (grid, evidence, presence, riskmap, attach) reads
the register's evidence and writes a risk grid, and the temporal test (temporal) reads the
Colombian event files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from safeground.risk.metrics import expected_calibration_error, score, top_k_capture
from safeground.risk.model import ModelConfig, RiskModel, fit_model
from safeground.risk.table import RiskDataError, RiskTable, TableSpec, prepare_table, read_table
from safeground.risk.validation import Evaluation, blocked_folds, evaluate, group_folds

__all__ = [
    "Evaluation",
    "ModelConfig",
    "RiskDataError",
    "RiskModel",
    "RiskTable",
    "TableSpec",
    "blocked_folds",
    "evaluate",
    "expected_calibration_error",
    "fit_model",
    "group_folds",
    "prepare_table",
    "read_table",
    "reland_path",
    "score",
    "top_k_capture",
]


def reland_path() -> Path:
    """The packaged RELand Antioquia cells (MIT; see data/reland/README.md)."""
    return Path(str(resources.files("safeground.risk") / "data" / "reland" / "train_all.csv"))
