"""PNG figures for a validation run: reliability, global importance, risk map.

Matplotlib's Agg backend only, so plots work on servers and in CI without a display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shapely
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon

from safeground.risk.metrics import reliability_curve
from safeground.risk.model import RiskModel
from safeground.risk.table import RiskTable
from safeground.risk.validation import Evaluation


def reliability_plot(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str
) -> Path:
    """Observed rate against predicted risk per bin, one line per model (labelled cells)."""
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, (y, p) in curves.items():
        mp, rate, _ = reliability_curve(y, p)
        ax.plot(mp, rate, marker="o", linewidth=1.5, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted risk (bin mean)")
    ax.set_ylabel("observed share of positive cells")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def importance_plot(importance: pd.Series, path: Path, top: int = 20) -> Path:
    """Horizontal bars of the largest shares of split gain, by source covariate."""
    s = importance.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(s) + 1.2))
    ax.barh([str(i)[:60] for i in s.index], s.to_numpy(), color="#b2182b")
    ax.set_xlabel("share of total split gain (covariate with its window means)")
    ax.set_title("Global feature importance")
    return _save(fig, path)


def risk_map(
    geometry: pd.Series | None,
    x: np.ndarray | None,
    y: np.ndarray | None,
    risk: np.ndarray,
    path: Path,
    *,
    positives: np.ndarray | None = None,
    title: str = "Predicted risk",
) -> Path:
    """Cells coloured by risk: polygons drawn as they are, points as squares of the grid step.

    Known positives (if given) are outlined, so a reader can see where the model was right.
    """
    fig, ax = plt.subplots(figsize=(8, 8))
    cmap = plt.get_cmap("YlOrRd")
    finite = np.isfinite(risk)
    geoms = None
    if geometry is not None:
        raw = geometry.to_numpy(dtype=object)
        wkt = np.array([v if isinstance(v, str) and v.strip() else None for v in raw], dtype=object)
        geoms = shapely.from_wkt(wkt)
    polygonal = geoms is not None and bool(
        np.isin(shapely.get_type_id(geoms[~shapely.is_missing(geoms)]), [3, 6]).any()
    )
    if polygonal and geoms is not None:
        patches, values = [], []
        for g, r in zip(geoms, risk, strict=True):
            if g is None or not np.isfinite(r):
                continue
            parts = getattr(g, "geoms", [g])
            for part in parts:
                if part.geom_type == "Polygon":
                    patches.append(MplPolygon(np.asarray(part.exterior.coords), closed=True))
                    values.append(r)
        coll = PatchCollection(patches, cmap=cmap, linewidths=0)
        coll.set_array(np.asarray(values))
        coll.set_clim(0, 1)
        ax.add_collection(coll)
        ax.autoscale_view()
        mappable: ScalarMappable = coll
    else:
        if geoms is not None:
            cent = shapely.centroid(geoms)
            x, y = shapely.get_x(cent), shapely.get_y(cent)
        if x is None or y is None:
            raise ValueError("a risk map needs a geometry column or x/y columns")
        ok = finite & np.isfinite(x) & np.isfinite(y)
        # Marker area so that the cells roughly tile the figure, whatever their number.
        size = float(np.clip((420.0 / max(np.sqrt(ok.sum()), 1.0)) ** 2, 1.0, 400.0))
        mappable = ax.scatter(
            x[ok], y[ok], c=risk[ok], cmap=cmap, vmin=0, vmax=1, s=size, marker="s", linewidths=0
        )
        if positives is not None:
            pm = ok & positives
            ax.scatter(
                x[pm],
                y[pm],
                s=size * 0.25,
                marker="s",
                facecolors="none",
                edgecolors="black",
                linewidths=0.4,
                label="known positive",
            )
            ax.legend(loc="lower right", fontsize=8)
        ax.set_aspect("equal")
    fig.colorbar(mappable, ax=ax, shrink=0.7, label="risk (calibrated probability)")
    ax.set_title(title)
    ax.set_xlabel("x / longitude")
    ax.set_ylabel("y / latitude")
    return _save(fig, path)


def evaluation_plots(
    table: RiskTable, evaluation: Evaluation, model: RiskModel, out_dir: Path
) -> list[Path]:
    """Reliability and map from the out-of-fold predictions; importance from ``model`` (fitted
    on all labelled cells, which is what a user would deploy)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lab = table.labelled
    assert table.label is not None
    curves = {}
    for m in evaluation.models:
        done = lab & np.isfinite(evaluation.oof[m])
        curves[m] = (table.label[done].astype(np.int8), evaluation.oof[m][done])
    tag = evaluation.protocol
    paths = [
        reliability_plot(
            curves, out_dir / f"reliability_{tag}.png", f"Reliability, out-of-fold ({tag})"
        ),
        importance_plot(model.importance(), out_dir / "importance.png"),
    ]
    main = evaluation.models[0]
    paths.append(
        risk_map(
            table.geometry,
            table.x,
            table.y,
            evaluation.oof[main],
            out_dir / f"risk_map_{tag}.png",
            positives=table.label == 1,
            title=f"Out-of-fold risk, {main} ({tag}); outlined: known positives",
        )
    )
    return paths


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
