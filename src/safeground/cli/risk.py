"""``safeground risk``: fit, predict and evaluate a land risk model on a table of cells.

Thin on purpose: parse the arguments, call safeground.risk, print. Errors in the table (a
non-numeric covariate, a label with one class, ...) end with exit code 2 and a message that
names the column.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from safeground.risk import (
    ModelConfig,
    RiskDataError,
    RiskModel,
    TableSpec,
    evaluate,
    fit_model,
    prepare_table,
    read_table,
)
from safeground.risk.chunked import predict_chunked
from safeground.risk.validation import stderr_log

risk_app = typer.Typer(
    help="Land risk: fit a model on a table of cells, predict, and validate it honestly.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

TableOpt = Annotated[Path, typer.Option("--table", help="CSV, one row per cell", exists=True)]
LabelOpt = Annotated[str, typer.Option("--label", help="label column: 1, 0, or unlabelled")]
UnlabelledOpt = Annotated[
    float, typer.Option("--unlabelled", help="label value meaning 'unlabelled' (never a negative)")
]
GroupOpt = Annotated[
    str | None, typer.Option("--group", help="group column, e.g. municipality (not a covariate)")
]
GeometryOpt = Annotated[
    str, typer.Option("--geometry", help="WKT column giving each cell's shape or centre")
]
XOpt = Annotated[str | None, typer.Option("--x", help="x/longitude column, if no geometry")]
YOpt = Annotated[str | None, typer.Option("--y", help="y/latitude column, if no geometry")]
IgnoreOpt = Annotated[
    list[str] | None, typer.Option("--ignore", help="column that is not a covariate (repeatable)")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="random seed")]


def _spec(
    label: str | None,
    unlabelled: float,
    group: str | None,
    geometry: str,
    x: str | None,
    y: str | None,
    ignore: list[str] | None,
) -> TableSpec:
    if (x is None) != (y is None):
        raise RiskDataError("give both --x and --y, or neither")
    return TableSpec(
        label=label,
        unlabelled=unlabelled,
        group=group,
        geometry=geometry,
        xy=(x, y) if x is not None and y is not None else None,
        ignore=tuple(ignore or ()),
    )


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=2)


@risk_app.command("fit")
def fit_cmd(
    table: TableOpt,
    label: LabelOpt,
    model: Annotated[Path, typer.Option("--model", help="where to write the model file")],
    unlabelled: UnlabelledOpt = -1,
    group: GroupOpt = None,
    geometry: GeometryOpt = "geometry",
    x: XOpt = None,
    y: YOpt = None,
    ignore: IgnoreOpt = None,
    seed: SeedOpt = 0,
) -> None:
    """Fit Safeground's model on the labelled cells and save it."""
    try:
        spec = _spec(label, unlabelled, group, geometry, x, y, ignore)
        t = prepare_table(read_table(table), spec, require_label=True)
        fitted = fit_model(t, ModelConfig(seed=seed))
    except (RiskDataError, ValueError) as exc:
        raise _fail(exc) from exc
    fitted.save(model)
    summary = {
        "model": str(model),
        "cells": t.n,
        "labelled": fitted.n_train,
        "positives": fitted.n_positive,
        "covariates": len(fitted.covariates),
        "features": len(fitted.feature_names),
        "groups_for_inner_folds": fitted.group_mode,
        "top_factors": {k: round(float(v), 4) for k, v in fitted.importance().head(5).items()},
    }
    typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))


@risk_app.command("predict")
def predict_cmd(
    model: Annotated[Path, typer.Option("--model", help="a model written by 'risk fit'")],
    table: TableOpt,
    out: Annotated[Path, typer.Option("--out", help="CSV to write: the input rows plus 'risk'")],
    explain: Annotated[
        bool, typer.Option("--explain", help="add the 3 factors contributing most, per row")
    ] = False,
    rows_per_tile: Annotated[
        int, typer.Option("--rows-per-tile", help="cells scored at a time (memory bound)")
    ] = 250_000,
    workers: Annotated[int, typer.Option("--workers", help="tiles scored in parallel")] = 1,
) -> None:
    """Write every input row, in the same order, with a calibrated 'risk' in [0, 1]."""
    try:
        fitted = RiskModel.load(model)
        frame = read_table(table)
        scored = predict_chunked(
            fitted,
            frame,
            rows_per_tile=rows_per_tile,
            explain=3 if explain else 0,
            workers=workers,
        )
    except (RiskDataError, ValueError) as exc:
        raise _fail(exc) from exc
    result = frame.copy()
    for col in scored.columns:
        result[col] = scored[col].to_numpy()
    # A blank header (a CSV index column) comes back blank, not as pandas' "Unnamed: 0".
    result.columns = ["" if str(c).startswith("Unnamed: ") else c for c in result.columns]
    result.to_csv(out, index=False)
    typer.echo(f"wrote {len(result)} rows to {out}")


@risk_app.command("evaluate")
def evaluate_cmd(
    table: TableOpt,
    label: LabelOpt,
    group: GroupOpt = None,
    unlabelled: UnlabelledOpt = -1,
    geometry: GeometryOpt = "geometry",
    x: XOpt = None,
    y: YOpt = None,
    ignore: IgnoreOpt = None,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="auto (group if --group, else blocks), group, blocks, or both",
        ),
    ] = "auto",
    folds: Annotated[int, typer.Option("--folds", help="blocked folds")] = 5,
    block_km: Annotated[float, typer.Option("--block-km", help="side of spatial blocks")] = 10.0,
    models: Annotated[
        str | None,
        typer.Option("--models", help="comma list; default safeground and every baseline"),
    ] = None,
    plots: Annotated[Path | None, typer.Option("--plots", help="directory for PNG plots")] = None,
    seed: SeedOpt = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress on stderr")] = False,
) -> None:
    """Spatially honest validation of Safeground's model and the baselines; JSON on stdout."""
    if protocol not in ("auto", "group", "blocks", "both"):
        raise _fail(ValueError(f"unknown protocol {protocol!r}"))
    if protocol == "auto":
        protocols = ["group"] if group else ["blocks"]
    elif protocol == "both":
        protocols = ["group", "blocks"]
    else:
        protocols = [protocol]
    names = [m.strip() for m in models.split(",")] if models else None
    try:
        spec = _spec(label, unlabelled, group, geometry, x, y, ignore)
        t = prepare_table(read_table(table), spec, require_label=True)
        config = ModelConfig(seed=seed, block_km=block_km)
        results: dict[str, Any] = {}
        runs = []
        for p in protocols:
            if not quiet:
                stderr_log(f"protocol {p}")
            ev = evaluate(
                t,
                "group" if p == "group" else "blocks",
                config=config,
                models=names,
                n_folds=folds,
                block_km=block_km,
                seed=seed,
                log=None if quiet else stderr_log,
            )
            runs.append(ev)
            results[p] = ev.to_json()
        written: list[str] = []
        if plots is not None:
            from safeground.risk.plots import evaluation_plots

            full = fit_model(t, replace(config))
            for ev in runs:
                written += [str(p) for p in evaluation_plots(t, ev, full, plots)]
    except (RiskDataError, ValueError) as exc:
        raise _fail(exc) from exc
    doc = {
        "table": str(table),
        "label": label,
        "group": group,
        "evaluations": results,
        "plots": sorted(set(written)),
    }
    typer.echo(json.dumps(_finite(doc), indent=2, ensure_ascii=False, allow_nan=False))


def _finite(obj: Any) -> Any:
    """NaN is not JSON: an undefined metric is printed as null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj
