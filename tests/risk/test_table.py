"""Table checks: roles, clear errors that name the column, coordinates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safeground.risk import RiskDataError, TableSpec, prepare_table
from safeground.risk.table import Projection


def test_reland_cut_roles(cut_frame: pd.DataFrame) -> None:
    t = prepare_table(cut_frame, TableSpec(label="mines_outcome", group="Municipio"))
    assert "Municipio" not in t.covariates
    assert "geometry" not in t.covariates
    assert "mines_outcome" not in t.covariates
    assert t.label is not None and set(np.unique(t.label)) == {-1, 0, 1}
    assert t.labelled.sum() == (cut_frame["mines_outcome"] >= 0).sum()
    # Point WKT centres agree with the table's own longitude column.
    assert t.x is not None
    assert np.allclose(t.x, cut_frame["LONGITUD_X"].to_numpy())


def test_non_numeric_covariate_is_named(cut_frame: pd.DataFrame) -> None:
    with pytest.raises(RiskDataError, match="'Municipio'"):
        prepare_table(cut_frame, TableSpec(label="mines_outcome"))
    frame = cut_frame.assign(land_use="farm")
    with pytest.raises(RiskDataError, match="'land_use' is not numeric"):
        prepare_table(frame, TableSpec(label="mines_outcome", group="Municipio"))
    ok = prepare_table(
        frame, TableSpec(label="mines_outcome", group="Municipio", ignore=("land_use",))
    )
    assert "land_use" not in ok.covariates


def test_one_class_label_is_refused(cut_frame: pd.DataFrame) -> None:
    frame = cut_frame[cut_frame["mines_outcome"] != 0]
    with pytest.raises(RiskDataError, match="'mines_outcome' has only class 1"):
        prepare_table(
            frame, TableSpec(label="mines_outcome", group="Municipio"), require_label=True
        )


def test_bad_label_value(cut_frame: pd.DataFrame) -> None:
    frame = cut_frame.copy()
    frame.loc[0, "mines_outcome"] = 7
    with pytest.raises(RiskDataError, match="'mines_outcome' must hold 0, 1"):
        prepare_table(frame, TableSpec(label="mines_outcome", group="Municipio"))


def test_custom_unlabelled_value_and_index_column() -> None:
    frame = pd.DataFrame(
        {
            "Unnamed: 0": [0, 1, 2, 3],
            "a": [1.0, 2.0, 3.0, 4.0],
            "y_lab": [1, 0, 9, 1],
            "x": [0.0, 1000.0, 2000.0, 3000.0],
            "y": [0.0, 0.0, 0.0, 0.0],
        }
    )
    t = prepare_table(frame, TableSpec(label="y_lab", unlabelled=9))
    assert t.covariates == ["a"]  # the CSV index column and x/y are not covariates
    assert t.label is not None and t.label.tolist() == [1, 0, -1, 1]
    assert t.has_coordinates


def test_missing_role_column() -> None:
    frame = pd.DataFrame({"a": [1.0], "x": [0.0], "y": [0.0]})
    with pytest.raises(RiskDataError, match="group column 'muni'"):
        prepare_table(frame, TableSpec(group="muni"))


def test_projection_degrees_to_km() -> None:
    x = np.array([-75.0, -75.0])
    y = np.array([6.0, 6.009])  # about 1 km apart
    proj = Projection.infer(x, y)
    assert proj.geographic
    xy = proj.to_km(x, y)
    assert np.hypot(*(xy[1] - xy[0])) == pytest.approx(0.995, abs=0.01)
    metric = Projection.infer(np.array([500000.0]), np.array([4400000.0]))
    assert not metric.geographic
