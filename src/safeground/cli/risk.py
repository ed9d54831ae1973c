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

from safeground.cli.common import StoreOption, UserOption, acting_user
from safeground.domain.errors import SafegroundError
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
from safeground.risk.attach import Score, keep_scores, score_map
from safeground.risk.chunked import predict_chunked
from safeground.risk.grid import GridError
from safeground.risk.presence import PresenceDataError, PresenceModel
from safeground.risk.validation import stderr_log
from safeground.service import accounts
from safeground.service.register import Register

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


# Errors of the register-side commands: bad input, never a bug; exit code 2 as the table ones.
MAP_ERRORS = (SafegroundError, RiskDataError, PresenceDataError, GridError, ValueError, OSError)


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


def _migrated(store: str | None) -> Register:
    """The register at the newest schema, so that a write lands with its audit entry."""
    register = Register.open(store)
    register.store.migrate()
    return register


def _attach(register: Register, map_path: Path, who: str) -> list[Score]:
    """Score the map's areas first, then keep the scores with their audit entry in one
    transaction."""
    scored = score_map(register, map_path)
    with register.store.begin() as conn:
        keep_scores(register, conn, scored, who)
        accounts.audit(
            conn,
            who,
            "risk.attach",
            map_path.name,
            {
                "sha256": scored.sha256,
                "model_version": scored.model_version,
                "map_date": scored.map_date.isoformat(),
                "scored": len(scored.scores),
            },
        )
    return scored.scores


def _finite(obj: Any) -> Any:
    """NaN is not JSON: an undefined metric is printed as null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


covariate_app = typer.Typer(
    help="Covariate layers kept in the register for risk maps.", no_args_is_help=True
)
risk_app.add_typer(covariate_app, name="covariate")


@covariate_app.command("add")
def covariate_add_cmd(
    name: Annotated[str, typer.Argument(help="feature name, e.g. front_line, roads, elevation")],
    file: Annotated[Path, typer.Argument(help="raster (GeoTIFF...) or vector file", exists=True)],
    use: Annotated[
        str | None,
        typer.Option("--use", help="vectors: distance (default) or presence; rasters: value"),
    ] = None,
    store: StoreOption = None,
    user: UserOption = None,
) -> None:
    """Keep a covariate layer (its bytes and SHA-256) for every later risk map."""
    from safeground.risk.evidence import keep_covariate, read_covariate

    if use not in (None, "value", "distance", "presence"):
        raise _fail(ValueError(f"--use {use!r}: value, distance or presence"))
    who = acting_user(user)
    try:
        register = _migrated(store)
        cov = read_covariate(name, file, use)  # type: ignore[arg-type]
        with register.store.begin() as conn:
            keep_covariate(conn, cov, who)
            accounts.audit(
                conn,
                who,
                "covariate.add",
                cov.name,
                {"kind": cov.kind, "use": cov.use, "filename": cov.filename, "sha256": cov.sha256},
            )
    except MAP_ERRORS as exc:
        raise _fail(exc) from exc
    typer.echo(f"covariate {cov.name}: {cov.kind} {cov.filename} ({cov.use}), sha256 {cov.sha256}")


@risk_app.command("map")
def map_cmd(
    region: Annotated[
        str, typer.Option("--region", help="admin area record ID or name, or a polygon file")
    ],
    cell: Annotated[float, typer.Option("--cell", help="cell size in metres")],
    out: Annotated[
        Path, typer.Option("--out", help="GeoTIFF to write; the grid layer goes beside it (.gpkg)")
    ],
    model: Annotated[
        Path | None,
        typer.Option("--model", help="a presence-only model saved earlier; default: fit one"),
    ] = None,
    save_model: Annotated[
        Path | None, typer.Option("--save-model", help="also write the fitted model here")
    ] = None,
    background: Annotated[int, typer.Option("--background", help="background cells")] = 10_000,
    cells_per_block: Annotated[
        int, typer.Option("--cells-per-block", help="cells scored at a time (memory bound)")
    ] = 250_000,
    dask: Annotated[
        str | None,
        typer.Option("--dask", help="scheduler address (tcp://...) to score blocks on Dask"),
    ] = None,
    attach: Annotated[
        bool, typer.Option("--attach", help="then attach the map to hazards and tasks")
    ] = False,
    no_grid_layer: Annotated[
        bool, typer.Option("--no-grid-layer", help="write the GeoTIFF only (huge grids)")
    ] = False,
    seed: SeedOpt = 0,
    store: StoreOption = None,
    user: UserOption = None,
) -> None:
    """Risk grid over a region from the register's evidence: COG GeoTIFF + GeoPackage layer."""
    from safeground.risk.evidence import resolve_region
    from safeground.risk.riskmap import build_map

    try:
        register = _migrated(store) if attach else Register.open(store)
        label, geom = resolve_region(register, region)
        fitted = PresenceModel.load(model) if model is not None else None
        client = None
        if dask:
            from distributed import Client

            client = Client(dask)
        try:
            result = build_map(
                register,
                label,
                geom,
                cell,
                out,
                model=fitted,
                background=background,
                seed=seed,
                cells_per_block=cells_per_block,
                client=client,
                grid_layer=not no_grid_layer,
            )
        finally:
            if client is not None:
                client.close()
        if save_model is not None:
            result.model.save(save_model)
        summary = result.summary()
        if attach:
            summary["attached"] = len(_attach(register, out, acting_user(user)))
    except MAP_ERRORS as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))


@risk_app.command("attach")
def attach_cmd(
    map_file: Annotated[
        Path, typer.Option("--map", help="a GeoTIFF written by 'risk map'", exists=True)
    ],
    store: StoreOption = None,
    user: UserOption = None,
) -> None:
    """Store mean and max risk of every hazardous area and task the map covers."""
    try:
        scores = _attach(_migrated(store), map_file, acting_user(user))
    except MAP_ERRORS as exc:
        raise _fail(exc) from exc
    typer.echo(f"attached risk to {len(scores)} hazardous areas and tasks (table risk_score)")
    for s in sorted(scores, key=lambda s: -(s.max_risk or 0))[:10]:
        typer.echo(
            f"  {s.record_id:<22} mean {s.mean_risk:.3f}  max {s.max_risk:.3f}  ({s.cells} cells)"
        )


@risk_app.command("temporal")
def temporal_cmd(
    events: Annotated[
        list[Path], typer.Argument(help="yearly GeoJSON files of the Colombian events", exists=True)
    ],
    last_fit_year: Annotated[int, typer.Option("--last-fit-year", help="fit on years up to this")],
    cell: Annotated[float, typer.Option("--cell", help="cell size in metres")] = 10_000,
    lead: Annotated[int, typer.Option("--lead", help="years of presences when fitting")] = 5,
    seed: SeedOpt = 0,
) -> None:
    """Fit on earlier years' events, score later years: presence-only MaxEnt against KDE."""
    from safeground.risk.temporal import read_events, temporal_test

    try:
        result = temporal_test(
            read_events(events), last_fit_year, cell_m=cell, lead=lead, seed=seed
        )
    except MAP_ERRORS as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(_finite(result.to_json()), indent=2, ensure_ascii=False))
