"""Reading and checking a table of cells for risk modelling.

A table is one row per cell: covariate columns, optionally a label, a group (for example the
municipality) and a position (a WKT ``geometry`` column or x/y columns). Everything the model
and the validation need is checked here once, so that a bad column fails early with its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

GEOMETRY_DEFAULT = "geometry"
# Pairs tried, in order, when the table has no geometry column.
XY_CANDIDATES: tuple[tuple[str, str], ...] = (
    ("x", "y"),
    ("lon", "lat"),
    ("longitude", "latitude"),
    ("LONGITUD_X", "LATITUD_Y"),
)


class RiskDataError(ValueError):
    """A table cannot be used as given; the message names the column and what is wrong."""


@dataclass(frozen=True)
class TableSpec:
    """Which columns play which role; everything else numeric is a covariate."""

    label: str | None = None
    unlabelled: float = -1
    group: str | None = None
    geometry: str | None = GEOMETRY_DEFAULT
    xy: tuple[str, str] | None = None
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class Projection:
    """Local azimuthal equidistant projection to kilometres, so distances mean something.

    Coordinates in degrees (WGS84) are projected around a fixed origin that is stored with the
    model; coordinates already metric (outside the degree range) are taken as metres.
    """

    geographic: bool
    lon0: float = 0.0
    lat0: float = 0.0

    @staticmethod
    def infer(x: np.ndarray, y: np.ndarray) -> Projection:
        """Degrees if every finite coordinate fits in [-180, 180] x [-90, 90]."""
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            return Projection(geographic=False)
        xs, ys = x[ok], y[ok]
        geographic = bool(np.abs(xs).max() <= 180 and np.abs(ys).max() <= 90)
        if not geographic:
            return Projection(geographic=False)
        return Projection(True, float(np.mean(xs)), float(np.mean(ys)))

    def to_km(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n, 2) array of kilometres."""
        if not self.geographic:
            return np.column_stack([x, y]).astype(np.float64) / 1000.0
        tr = Transformer.from_crs(
            "EPSG:4326",
            f"+proj=aeqd +lat_0={self.lat0} +lon_0={self.lon0} +units=m +ellps=WGS84",
            always_xy=True,
        )
        px, py = tr.transform(np.asarray(x, np.float64), np.asarray(y, np.float64))
        return np.column_stack([px, py]) / 1000.0


@dataclass
class RiskTable:
    """A checked table: covariates as floats, labels as -1/0/1, groups and raw coordinates."""

    frame: pd.DataFrame
    covariates: list[str]
    label: np.ndarray | None  # int8: 1, 0, or -1 for unlabelled
    groups: np.ndarray | None  # str
    x: np.ndarray | None  # raw coordinates (degrees or metres)
    y: np.ndarray | None
    geometry: pd.Series | None  # WKT strings, for maps
    spec: TableSpec = field(default_factory=TableSpec)

    @property
    def n(self) -> int:
        return len(self.frame)

    @property
    def has_coordinates(self) -> bool:
        return self.x is not None and self.y is not None

    @property
    def labelled(self) -> np.ndarray:
        """Mask of rows with a 0/1 label; unlabelled rows never enter metrics."""
        if self.label is None:
            return np.zeros(self.n, dtype=bool)
        return self.label >= 0

    def matrix(self, covariates: Sequence[str] | None = None) -> np.ndarray:
        """Covariates as a float64 matrix (NaN stays NaN: LightGBM handles it)."""
        cols = list(covariates) if covariates is not None else self.covariates
        missing = [c for c in cols if c not in self.frame.columns]
        if missing:
            raise RiskDataError(f"column {missing[0]!r} used by the model is not in the table")
        out = np.empty((self.n, len(cols)), dtype=np.float64)
        for j, c in enumerate(cols):
            col = self.frame[c]
            if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
                raise RiskDataError(f"column {c!r} is not numeric (dtype {col.dtype})")
            out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
        return out


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV as given; blank-header index columns (pandas' ``Unnamed: 0``) are kept here."""
    return pd.read_csv(path, low_memory=False)


def _is_index_column(name: str) -> bool:
    """A CSV written with its pandas index has a blank header: row numbers, not a covariate."""
    return name == "" or name.startswith("Unnamed: ")


def coordinates(
    df: pd.DataFrame, spec: TableSpec
) -> tuple[np.ndarray | None, np.ndarray | None, pd.Series | None, set[str]]:
    """Return x, y (geometry centroids or x/y columns), the WKT series, and the columns used.

    Columns that give positions are not covariates: raw coordinates would let a model learn
    places by heart, which does not carry to a new area.
    """
    used: set[str] = set()
    if spec.geometry and spec.geometry in df.columns:
        raw = df[spec.geometry].to_numpy(dtype=object)
        wkt = np.array([v if isinstance(v, str) and v.strip() else None for v in raw], dtype=object)
        try:
            geoms = shapely.from_wkt(wkt)
        except shapely.errors.GEOSException as exc:
            raise RiskDataError(f"column {spec.geometry!r} holds invalid WKT: {exc}") from exc
        cent = shapely.centroid(geoms)
        x = shapely.get_x(cent).astype(np.float64)
        y = shapely.get_y(cent).astype(np.float64)
        used.add(spec.geometry)
        return x, y, df[spec.geometry], used
    pairs = [spec.xy] if spec.xy else list(XY_CANDIDATES)
    for xc, yc in pairs:
        if xc in df.columns and yc in df.columns:
            x = pd.to_numeric(df[xc], errors="coerce").to_numpy(np.float64)
            y = pd.to_numeric(df[yc], errors="coerce").to_numpy(np.float64)
            return x, y, None, {xc, yc}
    if spec.xy:
        raise RiskDataError(f"coordinate columns {spec.xy[0]!r}/{spec.xy[1]!r} not in the table")
    return None, None, None, used


def prepare_table(
    df: pd.DataFrame,
    spec: TableSpec,
    *,
    require_label: bool = False,
    covariates: Sequence[str] | None = None,
) -> RiskTable:
    """Check roles and types; fail with the column's name rather than guess.

    With ``covariates`` given (prediction), only those columns must be present and numeric;
    otherwise every column that is not the label, the group, the geometry, an ignored or an
    index column is a covariate and must be numeric.
    """
    for role, col in (("label", spec.label), ("group", spec.group)):
        if col is not None and col not in df.columns:
            raise RiskDataError(f"{role} column {col!r} is not in the table")
    for col in spec.ignore:
        if col not in df.columns:
            raise RiskDataError(f"ignored column {col!r} is not in the table")
    x, y, geometry, used = coordinates(df, spec)

    label: np.ndarray | None = None
    if spec.label is not None:
        raw = pd.to_numeric(df[spec.label], errors="coerce")
        bad = raw.isna() & df[spec.label].notna()
        if bad.any():
            first = df[spec.label][bad].iloc[0]
            raise RiskDataError(f"label column {spec.label!r} has a non-numeric value {first!r}")
        vals = raw.to_numpy(np.float64)
        unl = np.isnan(vals) | (vals == spec.unlabelled)
        other = ~unl & (vals != 0) & (vals != 1)
        if other.any():
            raise RiskDataError(
                f"label column {spec.label!r} must hold 0, 1 or the unlabelled value "
                f"{spec.unlabelled:g}; found {vals[other][0]:g}"
            )
        label = np.where(unl, -1, vals).astype(np.int8)
        if require_label:
            classes = np.unique(label[label >= 0])
            if classes.size < 2:
                found = "no labelled rows" if classes.size == 0 else f"only class {classes[0]}"
                raise RiskDataError(
                    f"label column {spec.label!r} has {found}: need both 0 and 1 to fit"
                )
    elif require_label:
        raise RiskDataError("a label column is required")

    groups: np.ndarray | None = None
    if spec.group is not None:
        groups = df[spec.group].astype("string").fillna("<missing>").to_numpy(dtype=str)

    if covariates is None:
        reserved = {spec.label, spec.group, *spec.ignore, *used}
        cols = [c for c in df.columns if c not in reserved and not _is_index_column(str(c))]
        for c in cols:
            series = df[c]
            if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
                sample = series.dropna()
                example = f" (e.g. {sample.iloc[0]!r})" if len(sample) else ""
                raise RiskDataError(
                    f"column {c!r} is not numeric{example}: pass it as --group, --ignore it, "
                    "or encode it as numbers"
                )
        if not cols:
            raise RiskDataError("the table has no covariate columns")
        covariates = cols
    table = RiskTable(
        frame=df,
        covariates=list(covariates),
        label=label,
        groups=groups,
        x=x,
        y=y,
        geometry=geometry,
        spec=spec,
    )
    missing = [c for c in table.covariates if c not in df.columns]
    if missing:
        raise RiskDataError(f"column {missing[0]!r} used by the model is not in the table")
    for c in table.covariates:
        values = df[c]
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
            raise RiskDataError(f"column {c!r} is not numeric (dtype {values.dtype})")
    return table
