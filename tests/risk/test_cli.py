"""The ``risk`` commands through Typer's test runner, on the real RELand cut."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from safeground.cli.risk import risk_app

runner = CliRunner()


def run(*args: object) -> Result:
    """``safeground risk`` with these arguments (paths and numbers written as text)."""
    return runner.invoke(risk_app, [str(a) for a in args])


def labelled(table: Path) -> list[object]:
    """The options naming a table of the cut's columns: its label and its group."""
    return ["--table", table, "--label", "mines_outcome", "--group", "Municipio"]


def test_fit_predict_round_trip(cut_path: Path, tmp_path: Path) -> None:
    model = tmp_path / "risk.model"
    res = run("fit", *labelled(cut_path), "--model", model)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["labelled"] == 358 and summary["positives"] == 139

    # Score the rows shuffled: the output must follow the input's order, not the model's.
    frame = pd.read_csv(cut_path).sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled = tmp_path / "shuffled.csv"
    frame.to_csv(shuffled, index=True)  # with a blank-header index column, as RELand's files
    out = tmp_path / "pred.csv"
    res = run("predict", "--model", model, "--table", shuffled, "--out", out, "--explain")
    assert res.exit_code == 0, res.output
    assert out.read_text(encoding="utf-8").startswith(",")  # the blank header is kept
    pred = pd.read_csv(out)
    assert len(pred) == len(frame)
    assert (pred["geometry"] == frame["geometry"]).all()
    assert pred["risk"].between(0, 1).all()
    assert {"factor_1", "factor_2", "factor_3", "factor_1_effect"} <= set(pred.columns)

    # Same cells in the original order: same risk per cell.
    out2 = tmp_path / "pred2.csv"
    res = run(
        "predict",
        "--model",
        model,
        "--table",
        cut_path,
        "--out",
        out2,
        "--rows-per-tile",
        100,
        "--workers",
        2,
    )
    assert res.exit_code == 0, res.output
    pred2 = pd.read_csv(out2).set_index("geometry")["risk"]
    assert np.allclose(pred2.loc[pred["geometry"]].to_numpy(), pred["risk"].to_numpy(), atol=1e-9)


def test_errors_name_the_column(cut_path: Path, tmp_path: Path) -> None:
    # Municipio is text and not declared as the group.
    res = run("fit", "--table", cut_path, "--label", "mines_outcome", "--model", tmp_path / "m")
    assert res.exit_code == 2
    assert "'Municipio' is not numeric" in res.output
    one_class = tmp_path / "one.csv"
    frame = pd.read_csv(cut_path)
    frame[frame["mines_outcome"] != 1].to_csv(one_class, index=False)
    res = run("fit", *labelled(one_class), "--model", tmp_path / "m")
    assert res.exit_code == 2
    assert "'mines_outcome' has only class 0" in res.output


def test_evaluate_prints_json_and_writes_plots(cut_path: Path, tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    res = run(
        "evaluate",
        *labelled(cut_path),
        "--models",
        "safeground,kde,logistic",
        "--plots",
        plots,
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    ev = doc["evaluations"]["group"]
    assert ev["folds"] == ["ALEJANDRIA", "EL SANTUARIO", "GRANADA", "GUATAPE"]
    for m in ("safeground", "kde", "logistic"):
        for k in ("roc_auc", "pr_auc", "brier", "ece", "top10_capture", "top20_capture"):
            assert k in ev["overall"][m]
        assert len(ev["per_fold"][m]) == 4
    for name in ("reliability_group.png", "importance.png", "risk_map_group.png"):
        png = plots / name
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_evaluate_both_protocols_all_models(cut_path: Path) -> None:
    res = run(
        "evaluate",
        *labelled(cut_path),
        "--protocol",
        "both",
        "--block-km",
        5,
        "--folds",
        3,
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert set(doc["evaluations"]) == {"group", "blocks"}
    assert set(doc["evaluations"]["blocks"]["overall"]) == {
        "safeground",
        "kde",
        "logistic",
        "random_forest",
        "lightgbm_default",
    }
