"""Benchmark of Safeground's risk model at scale, against plain LightGBM in the same process.

(a) context features + calibrated prediction for a synthetic grid of N cells (default 10
    million), scored tile by tile, against the floor: LightGBM ``predict`` alone on a prebuilt
    feature matrix of the same size (same trees, same threads).
(b) fitting Safeground's model (inner group folds + calibration + final fit) on 100k rows,
    against one plain ``lightgbm.train`` of the same trees on the raw covariates.

(c) a risk map from a register (``risk map``): a synthetic GeoPackage register with a square
    district of about ``--map-cells`` cells of 100 m, 400 hazardous areas, 100 cleared
    polygons, 200 settlements and 600 presences; the register's features for every cell,
    MaxEnt score and top factors, and the written COG and GeoPackage grid layer, against the
    floor: the same MaxEnt scoring alone on a prebuilt feature matrix of the same cells.

Goals: (a) <= 120 s and <= 4 GiB peak on 2 cores; (b) <= 60 s. Figures are printed with their
ratio to the baseline. Run smaller with ``--cells``; the synthetic grid is 1 km cells in metres.

    .venv/bin/python bench/bench_risk.py --cells 1000000
    .venv/bin/python bench/bench_risk.py --only map --map-cells 1000000
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from safeground.risk import ModelConfig, TableSpec, fit_model, prepare_table
from safeground.risk.chunked import predict_chunked
from safeground.risk.features import context_block


class PeakRSS:
    """Peak resident memory of this process during a block, sampled every 10 ms (Linux)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(0.01)

    def __enter__(self) -> PeakRSS:
        self.peak = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


CPU_SECONDS: dict[str, float] = {}


def timed(fn: Callable[[], Any], label: str = "") -> tuple[Any, float, int]:
    """Wall time and peak memory of ``fn()``; its CPU seconds (all threads) go to CPU_SECONDS,
    so that a run slowed by other processes on the machine shows as a low CPU/wall ratio."""
    gc.collect()
    with PeakRSS() as mem:
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        CPU_SECONDS[label] = time.process_time() - c0
    return out, dt, mem.peak


def synthetic_grid(n: int, k: int, seed: int, *, labels: bool) -> pd.DataFrame:
    """A square grid of about n cells of 1 km: k smooth covariates with noise (float32) and,
    if asked, a label driven by a few of them (20% left unlabelled)."""
    side = math.ceil(math.sqrt(n))
    rng = np.random.default_rng(seed)
    idx = np.arange(n, dtype=np.int64)
    gx = (idx % side).astype(np.float64)
    gy = (idx // side).astype(np.float64)
    cols: dict[str, np.ndarray] = {"x": gx * 1000.0, "y": gy * 1000.0}
    for j in range(k):
        fx, fy = 0.01 + 0.003 * j, 0.013 + 0.002 * j
        smooth = np.sin(gx * fx + j) * np.cos(gy * fy - j)
        noise = rng.standard_normal(n).astype(np.float32)
        cols[f"c{j:02d}"] = (smooth.astype(np.float32) + 0.5 * noise).astype(np.float32)
    frame = pd.DataFrame(cols)
    if labels:
        logit = 1.2 * frame["c00"] - 0.8 * frame["c01"] + 0.5 * frame["c02"] - 1.0
        y = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(np.int8)
        y[rng.random(n) < 0.2] = -1
        frame["label"] = y
    return frame


def bench_fit(rows: int, k: int, seed: int) -> dict[str, Any]:
    frame = synthetic_grid(rows, k, seed, labels=True)
    table = prepare_table(frame, TableSpec(label="label"), require_label=True)
    config = ModelConfig(seed=seed)
    model, t_fit, m_fit = timed(lambda: fit_model(table, config), "fit")
    lab = table.labelled
    X = table.matrix()[lab]
    assert table.label is not None
    y = table.label[lab]
    params = config.lgb_params(seed, len(y))

    def plain() -> lgb.Booster:
        return lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=config.n_estimators)

    _, t_plain, _ = timed(plain, "plain")
    return {
        "rows": rows,
        "labelled": int(lab.sum()),
        "features": len(model.feature_names),
        "inner_folds": config.inner_folds,
        "safeground_fit_s": round(t_fit, 2),
        "safeground_fit_cpu_s": round(CPU_SECONDS["fit"], 2),
        "plain_lightgbm_train_s": round(t_plain, 2),
        "plain_lightgbm_train_cpu_s": round(CPU_SECONDS["plain"], 2),
        "ratio": round(t_fit / t_plain, 2),
        "peak_rss_gib": round(m_fit / 2**30, 2),
        "goal_s": 60,
        "meets_goal": t_fit <= 60,
        "_model": model,
    }


def bench_predict(
    model: Any, cells: int, k: int, seed: int, rows_per_tile: int, threads: int
) -> dict[str, Any]:
    frame = synthetic_grid(cells, k, seed + 1, labels=False)
    gc.collect()
    base_rss = PeakRSS.current()
    out, t_ours, peak_ours = timed(
        lambda: predict_chunked(model, frame, rows_per_tile=rows_per_tile, workers=threads),
        "ours",
    )
    risk = out["risk"].to_numpy()
    del out
    gc.collect()

    # Floor: the same features, prebuilt (untimed) as one matrix, then one predict.
    nfeat = len(model.feature_names)
    X = np.empty((cells, nfeat), dtype=np.float64)  # what the model is fed, for a fair floor
    step = rows_per_tile
    xy = frame[["x", "y"]].to_numpy() / 1000.0
    vals = frame[model.covariates].to_numpy(dtype=np.float64)
    side = math.ceil(math.sqrt(cells))
    rows_per_band = max(1, step // side)
    halo = max(model.layout.halfwidths, default=0) + 1
    for r0 in range(0, side, rows_per_band):
        lo = max(0, (r0 - halo) * side)
        core0, core1 = r0 * side, min(cells, (r0 + rows_per_band) * side)
        hi = min(cells, (r0 + rows_per_band + halo) * side)
        if core0 >= cells:
            break
        block = context_block(xy[lo:hi], vals[lo:hi], model.cell_km, model.layout.halfwidths)
        X[core0:core1, : block.shape[1]] = block[core0 - lo : core1 - lo]
    if model.layout.distance:
        from safeground.risk.features import block_ids, distance_to_positive

        g = block_ids(xy, model.config.block_km)
        X[:, -1] = distance_to_positive(xy, g, model.pos_xy, model.pos_groups)
    del vals
    gc.collect()
    booster = model.boosters[0]
    raw, t_floor, _ = timed(
        lambda: booster.predict(X, raw_score=True, num_threads=threads), "floor"
    )
    agree = float(np.max(np.abs(model.calibrator(np.asarray(raw, dtype=np.float64)) - risk)))
    return {
        "cells": cells,
        "features": nfeat,
        "rows_per_tile": rows_per_tile,
        "threads": threads,
        "tiles_in_parallel": threads,
        "safeground_features_and_predict_s": round(t_ours, 2),
        "safeground_cpu_s": round(CPU_SECONDS["ours"], 2),
        "floor_lightgbm_predict_prebuilt_s": round(t_floor, 2),
        "floor_cpu_s": round(CPU_SECONDS["floor"], 2),
        "ratio": round(t_ours / t_floor, 2),
        "peak_rss_gib": round(peak_ours / 2**30, 2),
        "input_table_gib": round(base_rss / 2**30, 2),
        "max_abs_diff_vs_floor": agree,
        "goal_s": 120,
        "goal_gib": 4,
        "meets_goal": t_ours <= 120 and peak_ours <= 4 * 2**30,
    }


def synthetic_register(path: str, cells: int, seed: int) -> tuple[Any, Any]:
    """A GeoPackage register with one square district of about ``cells`` cells of 100 m."""
    from datetime import date

    from shapely.geometry import Point, box

    from safeground.service.register import Register, Submission

    rng = np.random.default_rng(seed)
    side_km = math.sqrt(cells) / 10.0
    lon0, lat0 = 46.5, 39.5
    dlat = side_km / 111.0
    dlon = side_km / (111.0 * math.cos(math.radians(lat0 + dlat / 2)))
    district = box(lon0, lat0, lon0 + dlon, lat0 + dlat)
    reg = Register.create(path, country="AZ")
    on = date(2022, 1, 1)

    def file(items: list[Any]) -> list[str]:
        return list(reg.file("bench", items).record_ids)

    file([Submission("admin_area", {"name": "Bench", "level": 2, "geometry": district.wkt}, on)])
    # Hazards on a jittered lattice so that none overlaps another.
    n_side = 20
    hazards = []
    for i in range(n_side):
        for j in range(n_side):
            x = lon0 + (i + 0.5 + rng.uniform(-0.2, 0.2)) * dlon / n_side
            y = lat0 + (j + 0.5 + rng.uniform(-0.2, 0.2)) * dlat / n_side
            hazards.append(box(x - 0.002, y - 0.0015, x + 0.002, y + 0.0015))
    kinds = rng.random(len(hazards))
    ids = file(
        [
            Submission(
                "hazardous_area",
                {"classification": "cha" if k < 0.25 else "sha", "geometry": h.wkt},
                on,
            )
            for h, k in zip(hazards, kinds, strict=True)
        ]
    )
    cleared = rng.choice(len(ids), 100, replace=False)
    file(
        [
            Submission(
                "activity",
                {
                    "hazard_id": ids[k],
                    "activity_type": "clearance",
                    "processed": [
                        {
                            "land_type": "cleared",
                            "geometry": box(
                                *hazards[k].bounds[:2], *hazards[k].centroid.coords[0]
                            ).wkt,
                        }
                    ],
                },
                on,
            )
            for k in cleared
        ]
    )
    file(
        [
            Submission(
                "place",
                {
                    "name": f"P{k}",
                    "geometry": Point(
                        rng.uniform(lon0, lon0 + dlon), rng.uniform(lat0, lat0 + dlat)
                    ).wkt,
                },
                on,
            )
            for k in range(200)
        ]
    )
    near = rng.choice(len(hazards), 600)
    file(
        [
            Submission(
                "eo_item",
                {
                    "category": "ap_mine",
                    "geometry": Point(
                        hazards[k].centroid.x + rng.normal(0, 0.004),
                        hazards[k].centroid.y + rng.normal(0, 0.003),
                    ).wkt,
                },
                on,
            )
            for k in near
        ]
    )
    return reg, district


def bench_map(cells: int, seed: int) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    from safeground.risk.evidence import load_evidence
    from safeground.risk.grid import Grid
    from safeground.risk.riskmap import build_map, fit_map_model, score_blocks

    with tempfile.TemporaryDirectory() as tmp:
        reg, district = synthetic_register(str(Path(tmp) / "r.gpkg"), cells, seed)
        grid = Grid.over(district, 100.0)
        evidence = load_evidence(reg, grid, district)
        model = fit_map_model(evidence, seed=seed)
        inside = grid.inside(0, grid.height).ravel()
        x, y = grid.centres(0, grid.height)
        prebuilt = evidence.features(x[inside], y[inside])
        n = len(prebuilt)

        def floor() -> None:
            for start in range(0, n, 250_000):
                model.score(prebuilt.iloc[start : start + 250_000])

        def features_and_score() -> int:
            return sum(len(b.cells) for b in score_blocks(evidence, model))

        def whole_map() -> None:
            build_map(reg, "Bench", district, 100.0, Path(tmp) / "m.tif", model=model)

        _, t_floor, _ = timed(floor, "map floor")
        scored, t_feat, peak_feat = timed(features_and_score, "map features+score+explain")
        _, t_map, peak_map = timed(whole_map, "map whole")
    return {
        "cells_in_region": n,
        "scored": scored,
        "features": model.features,
        "floor_maxent_score_on_prebuilt_features_s": round(t_floor, 2),
        "features_score_explain_s": round(t_feat, 2),
        "ratio_features_score_explain_vs_floor": round(t_feat / t_floor, 2),
        "whole_map_with_cog_and_gpkg_s": round(t_map, 2),
        "ratio_whole_map_vs_floor": round(t_map / t_floor, 2),
        "peak_rss_gib": round(max(peak_feat, peak_map) / 2**30, 2),
        "cpu_s": {k: round(v, 1) for k, v in CPU_SECONDS.items() if k.startswith("map")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=10_000_000, help="cells to score in (a)")
    ap.add_argument("--fit-rows", type=int, default=100_000, help="rows to fit on in (b)")
    ap.add_argument("--covariates", type=int, default=20)
    ap.add_argument("--rows-per-tile", type=int, default=250_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--map-cells", type=int, default=1_000_000, help="cells of the map in (c)")
    ap.add_argument("--only", choices=["table", "map"], help="run (a)+(b) or (c) only")
    args = ap.parse_args()

    print(json.dumps({"load_average_at_start": os.getloadavg(), "cores": os.cpu_count()}))
    if args.only != "table":
        print(json.dumps({"map": bench_map(args.map_cells, args.seed)}, indent=2), flush=True)
    if args.only == "map":
        return
    fit = bench_fit(args.fit_rows, args.covariates, args.seed)
    model = fit.pop("_model")
    print(json.dumps({"fit": fit}, indent=2), flush=True)
    pred = bench_predict(
        model, args.cells, args.covariates, args.seed, args.rows_per_tile, args.threads
    )
    print(json.dumps({"predict": pred}, indent=2), flush=True)


if __name__ == "__main__":
    main()
