"""Risk maps from the register: grid, features, outputs, Dask, covariates, attach."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from rasterio.features import geometry_mask
from rasterio.transform import from_origin
from shapely.geometry import LineString, Point
from sqlalchemy import select
from typer.testing import CliRunner

from safeground.cli.risk import risk_app
from safeground.io.dump import dump, restore
from safeground.risk.attach import attach_map
from safeground.risk.evidence import (
    EvidenceError,
    add_covariate,
    covariates,
    load_evidence,
    resolve_region,
)
from safeground.risk.grid import Grid, to_crs
from safeground.risk.presence import PresenceModel
from safeground.risk.riskmap import GRID_LAYER, build_map, fit_map_model, score_blocks
from safeground.service.register import Register
from safeground.service.risk_scores import scores_of
from safeground.storage.schema import blob, risk_covariate, risk_score
from tests.risk import registers
from tests.risk.registers import CHA, CLEARED, DISTRICT, SHA

CELL = 100.0


@pytest.fixture
def filled(register: Register) -> tuple[Register, dict[str, str]]:
    return register, registers.build(register)


def _centre_of(geom_wgs84, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    p = to_crs(geom_wgs84, grid.crs)
    return np.array([p.x]), np.array([p.y])


def test_grid_crs_and_transform() -> None:
    grid = Grid.over(DISTRICT, CELL)
    assert grid.crs.to_epsg() == 32638  # UTM 38N: Aghdam at 46.9 E
    a = grid.transform
    assert (a.a, a.e, a.b, a.d) == (CELL, -CELL, 0.0, 0.0)
    assert a.c % CELL == 0 and a.f % CELL == 0  # aligned: same cells on every run
    minx, miny, maxx, maxy = grid.region.bounds
    assert a.c <= minx < a.c + CELL and a.f >= maxy > a.f - CELL
    assert a.c + grid.width * CELL >= maxx and a.f - grid.height * CELL <= miny
    # A cell centre maps back to its own row and column.
    x, y = grid.centres(3, 4)
    row, col = grid.cell_index(x, y)
    assert (row == 3).all() and np.array_equal(col, np.arange(grid.width))
    # About 6 km x 5 km of 100 m cells, centres inside the district.
    assert 2800 < grid.inside(0, grid.height).sum() < 3200


def test_features_from_a_hand_built_register(filled) -> None:
    register, _ = filled
    label, region = resolve_region(register, "test district")
    assert label.endswith("Test District")
    grid = Grid.over(region, CELL)
    ev = load_evidence(register, grid, region)
    # Five items and five accidents; the stockpile is not evidence of contaminated land.
    assert len(ev.presences) == 10
    assert ev.feature_names == [
        "km_sha",
        "km_cha",
        "km_detonation",
        "km_released",
        "in_released",
        "km_place",
    ]
    f = ev.features(*_centre_of(SHA.centroid, grid)).iloc[0]
    assert f["km_sha"] == 0.0 and f["km_cha"] > 1.0 and f["in_released"] == 0.0
    f = ev.features(*_centre_of(CLEARED.centroid, grid)).iloc[0]
    assert f["in_released"] == 1.0 and f["km_released"] == 0.0 and f["km_cha"] == 0.0
    assert f["km_detonation"] == f["km_cha"]  # the CHA lists a detonation
    f = ev.features(*_centre_of(Point(46.905, 39.990), grid)).iloc[0]
    assert f["km_place"] == pytest.approx(0.0, abs=1e-6)
    # 1 km east of the SHA's eastmost x: about 1 km from its edge, tilted in UTM.
    sha = to_crs(SHA, grid.crs)
    x = np.array([sha.bounds[2] + 1000.0])
    y = np.array([sha.centroid.y])
    km = ev.features(x, y).iloc[0]["km_sha"]
    assert km == pytest.approx(sha.distance(Point(x[0], y[0])) / 1000.0, abs=1e-9)
    assert 0.95 < km < 1.05


def test_map_files_open_with_right_crs_and_transform(filled, tmp_path: Path) -> None:
    register, _ = filled
    label, region = resolve_region(register, "Test District")
    out = tmp_path / "risk.tif"
    result = build_map(register, label, region, CELL, out, background=2000)
    grid = Grid.over(region, CELL)
    with rasterio.open(out) as src:
        assert src.crs == grid.crs
        assert src.transform == grid.transform
        assert (src.height, src.width) == grid.shape
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.tags()["model_version"] == result.model.version
        risk = src.read(1)
    inside = grid.inside(0, grid.height)
    assert np.isfinite(risk[inside]).all() and np.isnan(risk[~inside]).all()
    assert ((risk[inside] >= 0) & (risk[inside] <= 1)).all()

    info = pyogrio.read_info(result.gpkg, layer=GRID_LAYER)
    assert info["features"] == result.cells == int(inside.sum())
    assert pyogrio.read_info(result.gpkg)["crs"] == f"EPSG:{grid.crs.to_epsg()}"
    cells = pyogrio.read_dataframe(result.gpkg, layer=GRID_LAYER)
    assert {"risk", "factor_1", "factor_1_effect", "factor_3", "model_version"} <= set(cells)
    assert (cells["model_version"] == result.model.version).all()
    assert np.allclose(
        cells["risk"], risk[cells["row"], cells["col"]], rtol=0, atol=1e-6
    )  # float32 raster
    # A cell polygon is the square of its row and column.
    first = cells.iloc[0]
    minx, _, _, maxy = first.geometry.bounds
    a = grid.transform
    assert (minx, maxy) == (a.c + first["col"] * a.a, a.f + first["row"] * a.e)
    # Presence cells sit near the hazards: the map ranks the hazards above the district.
    assert risk[inside].mean() < np.nanmean(
        risk[geometry_mask([to_crs(SHA, grid.crs)], grid.shape, grid.transform, invert=True)]
    )


def test_dask_cluster_gives_the_same_map(tmp_path: Path) -> None:
    """Scoring, not storage: the embedded register is enough (and a cluster is slow to start)."""
    from distributed import Client, LocalCluster

    register = Register.create(str(tmp_path / "r.gpkg"), country="AZ")
    registers.build(register)
    _, region = resolve_region(register, "Test District")
    grid = Grid.over(region, CELL)
    ev = load_evidence(register, grid, region)
    model = fit_map_model(ev, background=2000)
    here = list(score_blocks(ev, model, rows_per_block=8))
    assert len(here) > 4
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        remote = list(score_blocks(ev, model, rows_per_block=8, client=client))
    assert [(b.r0, b.r1) for b in remote] == [(b.r0, b.r1) for b in here]
    for a, b in zip(here, remote, strict=True):
        assert np.array_equal(a.risk, b.risk, equal_nan=True)
        assert a.cells.equals(b.cells)


def _raster(path: Path) -> None:
    """A 0.01-degree raster over the district whose value is its column number."""
    data = np.tile(np.arange(10, dtype=np.float32), (8, 1))
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=10,
        height=8,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_origin(46.895, 40.0, 0.01, 0.01),
        nodata=-9999,
    ) as dst:
        dst.write(data, 1)


def test_covariates_are_kept_and_used(filled, tmp_path: Path) -> None:
    register, _ = filled
    tif, line = tmp_path / "elevation.tif", tmp_path / "front.geojson"
    _raster(tif)
    front = LineString([(46.93, 39.95), (46.93, 39.995)])
    line.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {}, "geometry": front.__geo_interface__}
                ],
            }
        )
    )
    add_covariate(register, "elevation", tif, "analyst")
    add_covariate(register, "front_line", line, "analyst")
    again = add_covariate(register, "front_line", line, "analyst")  # replaces, same bytes
    with register.store.begin() as conn:
        rows = conn.execute(select(risk_covariate)).all()
        stored = conn.execute(select(blob.c.content).where(blob.c.sha256 == again.sha256)).scalar()
    assert sorted(r.name for r in rows) == ["elevation", "front_line"]
    assert again.sha256 == hashlib.sha256(line.read_bytes()).hexdigest()
    assert bytes(stored) == line.read_bytes()
    assert {r.kind for r in rows} == {"raster", "vector"}

    _, region = resolve_region(register, "Test District")
    grid = Grid.over(region, CELL)
    ev = load_evidence(register, grid, region)
    assert ev.feature_names[-2:] == ["front_line", "elevation"]
    on_line = ev.features(*_centre_of(Point(46.93, 39.97), grid)).iloc[0]
    assert on_line["front_line"] == pytest.approx(0.0, abs=1e-3)  # a metre: lon/lat vs UTM line
    # 46.9375 E lies in raster column 4 (46.935..46.945).
    assert ev.features(*_centre_of(Point(46.9375, 39.97), grid)).iloc[0]["elevation"] == 4.0
    outside = ev.features(*_centre_of(Point(47.5, 39.97), grid)).iloc[0]
    assert np.isnan(outside["elevation"])

    bad = tmp_path / "notes.geojson"
    bad.write_text("not a layer")
    with pytest.raises(EvidenceError, match=r"notes\.geojson"):
        add_covariate(register, "notes", bad, "analyst")
    with pytest.raises(EvidenceError, match="letters, digits"):
        add_covariate(register, "bad name", line, "analyst")


def test_attach_stores_mean_and_max(filled, tmp_path: Path) -> None:
    register, ids = filled
    label, region = resolve_region(register, ids["district"])
    out = tmp_path / "risk.tif"
    result = build_map(register, label, region, CELL, out, background=2000)
    scores = {s.record_id: s for s in attach_map(register, out, "planner")}
    assert set(scores) == {ids["sha"], ids["cha"], ids["task"]}
    with rasterio.open(out) as src:
        risk = src.read(1)
        crs, transform = src.crs, src.transform
    touched = geometry_mask(
        [to_crs(CHA, crs)], risk.shape, transform, invert=True, all_touched=True
    )
    vals = risk[touched & np.isfinite(risk)]
    cha = scores[ids["cha"]]
    assert cha.cells == vals.size
    assert cha.mean_risk == pytest.approx(float(vals.mean()), rel=1e-6)
    assert cha.max_risk == pytest.approx(float(vals.max()))
    # The task has the SHA's polygon: same figures.
    assert scores[ids["task"]].mean_risk == scores[ids["sha"]].mean_risk

    attach_map(register, out, "planner")  # again: replaced, not added
    with register.store.begin() as conn:
        rows = conn.execute(select(risk_score)).all()
    assert len(rows) == 3
    assert {r.model_version for r in rows} == {result.model.version}
    assert {r.attached_by for r in rows} == {"planner"}
    assert all(r.map_sha256 == hashlib.sha256(out.read_bytes()).hexdigest() for r in rows)


def test_each_map_keeps_its_own_scores(filled, tmp_path: Path) -> None:
    """Two maps over the same areas: a row per area and map, each with its map's figures; the
    newest over each area by default, a map's own when it is named; attaching a map again
    replaces its rows only, and makes it the newest."""
    register, ids = filled
    label, region = resolve_region(register, ids["district"])
    first = tmp_path / "first.tif"
    build_map(register, label, region, CELL, first, background=2000, grid_layer=False)
    second = registers.turned_around(first, tmp_path / "second.tif", "maxent-second")
    scored = {
        path: {s.record_id: s.mean_risk for s in attach_map(register, path, "planner")}
        for path in (first, second)
    }
    sha = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in (first, second)}
    expected = {
        (record_id, sha[path]): mean
        for path, means in scored.items()
        for record_id, mean in means.items()
    }
    assert len(expected) == 6 and set(scored[first]) == set(scored[second])
    assert scored[first][ids["cha"]] != pytest.approx(scored[second][ids["cha"]])

    def kept() -> dict[tuple[str, str], float]:
        with register.store.read() as conn:
            rows = conn.execute(select(risk_score)).all()
        return {(r.record_id, r.map_sha256): r.mean_risk for r in rows}

    def chosen(risk_map: str | None) -> dict[str, tuple[str, float]]:
        with register.store.read() as conn:
            rows = conn.execute(select(scores_of(risk_map))).all()
        return {r.record_id: (r.map_sha256, r.mean_risk) for r in rows}

    assert kept() == pytest.approx(expected)
    for path in (first, second):
        assert chosen(sha[path]) == {i: (sha[path], m) for i, m in scored[path].items()}
    assert chosen(None) == chosen(sha[second])  # the newest over each area
    assert chosen("0" * 64) == {}

    attach_map(register, first, "planner")  # again: its rows replaced, the other's kept
    assert kept() == pytest.approx(expected)
    assert chosen(None) == chosen(sha[first])


def test_presence_model_contributions_add_up(filled) -> None:
    register, _ = filled
    _, region = resolve_region(register, "Test District")
    grid = Grid.over(region, CELL)
    ev = load_evidence(register, grid, region)
    model = fit_map_model(ev, background=2000)
    x, y = grid.centres(10, 12)
    feats = ev.features(x, y)
    contrib = model.contributions(feats)
    matrix = feats[model.features].to_numpy()
    base = model.raw(np.broadcast_to(model.fill, matrix.shape).copy())
    # Additive model: the effects sum to the score's distance from the reference cell.
    assert np.allclose(contrib.sum(axis=1), model.raw(matrix) - base, atol=1e-9)


def test_cli_map_attach_and_errors(filled, tmp_path: Path, store_location: str) -> None:
    runner = CliRunner()
    out, saved = tmp_path / "m.tif", tmp_path / "m.model"
    args = ["map", "--store", store_location, "--region", "Test District", "--cell", "200"]
    res = runner.invoke(
        risk_app, [*args, "--out", str(out), "--save-model", str(saved), "--attach"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["attached"] == 3 and summary["presence_cells"] > 5
    # Reusing the saved model gives the same map.
    out2 = tmp_path / "m2.tif"
    res = runner.invoke(risk_app, [*args, "--out", str(out2), "--model", str(saved)])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as a, rasterio.open(out2) as b:
        assert np.array_equal(a.read(1), b.read(1), equal_nan=True)
    assert PresenceModel.load(saved).version == summary["model_version"]
    out3 = tmp_path / "m3.tif"
    res = runner.invoke(risk_app, [*args, "--out", str(out3), "--no-grid-layer"])
    assert res.exit_code == 0 and json.loads(res.output)["geopackage"] is None
    assert out3.exists() and not out3.with_suffix(".gpkg").exists()

    res = runner.invoke(
        risk_app,
        [
            "map",
            "--store",
            store_location,
            "--region",
            "Atlantis",
            "--cell",
            "200",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 2 and "no admin area" in res.output
    res = runner.invoke(risk_app, [*args, "--out", str(tmp_path / "m.png")])
    assert res.exit_code == 2 and ".tif" in res.output
    res = runner.invoke(risk_app, ["attach", "--store", store_location, "--map", str(out)])
    assert res.exit_code == 0 and "attached risk to 3" in res.output


def test_each_effect_belongs_to_its_own_covariate(filled) -> None:
    """Change one covariate of the reference cell: only that covariate gets an effect."""
    register, _ = filled
    _, region = resolve_region(register, "Test District")
    grid = Grid.over(region, CELL)
    ev = load_evidence(register, grid, region)
    model = fit_map_model(ev, background=2000)
    x, y = grid.centres(0, grid.height)
    spread = ev.features(x, y)[model.features]
    score, _ = model.score(spread)
    assert np.allclose(score, model.predict(spread), rtol=0, atol=1e-12)
    own = []
    for j, name in enumerate(model.features):
        probe = np.tile(model.fill, (2, 1))
        probe[:, j] = [spread[name].min(), spread[name].max()]
        contrib = model.contributions(pd.DataFrame(probe, columns=model.features))
        assert np.all(np.delete(contrib, j, axis=1) == 0.0), name
        own.append(np.abs(contrib[:, j]).max())
    assert sum(v > 0 for v in own) >= 2  # and the covariates do have effects


def test_cli_covariate_and_region_file(filled, tmp_path: Path, store_location: str) -> None:
    runner = CliRunner()
    tif = tmp_path / "dem.tif"
    _raster(tif)
    res = runner.invoke(risk_app, ["covariate", "add", "dem", str(tif), "--store", store_location])
    assert res.exit_code == 0 and "raster dem.tif (value)" in res.output, res.output
    res = runner.invoke(
        risk_app,
        ["covariate", "add", "dem", str(tif), "--use", "distance", "--store", store_location],
    )
    assert res.exit_code == 2 and "sampled per cell" in res.output
    region = tmp_path / "district.geojson"
    region.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {}, "geometry": DISTRICT.__geo_interface__}
                ],
            }
        )
    )
    out = tmp_path / "f.tif"
    res = runner.invoke(
        risk_app,
        [
            "map",
            "--store",
            store_location,
            "--region",
            str(region),
            "--cell",
            "250",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["region"] == "district.geojson" and "dem" in summary["features"]


def test_cli_temporal_on_real_files() -> None:
    files = [
        Path(__file__).resolve().parents[2]
        / "src/safeground/demo/data/colombia-mine-events"
        / f"{y}.json"
        for y in range(1990, 2001)
    ]
    res = CliRunner().invoke(
        risk_app,
        ["temporal", *map(str, files), "--last-fit-year", "1997", "--cell", "20000", "--lead", "3"],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["test_years"] == [1998, 2000] and doc["history_years_for_features_when_fitting"] == [
        1990,
        1994,
    ]
    assert set(doc["metrics"]) == {"presence_only_maxent", "kde_past_events"}


def test_cli_map_on_a_dask_scheduler(tmp_path: Path) -> None:
    """``--dask ADDRESS`` scores on the cluster and writes the same GeoTIFF as in-process."""
    from distributed import LocalCluster

    store = str(tmp_path / "r.gpkg")
    registers.build(Register.create(store, country="AZ"))
    runner = CliRunner()
    args = ["map", "--store", store, "--region", "Test District", "--cell", "200"]
    here, there = tmp_path / "here.tif", tmp_path / "there.tif"
    assert runner.invoke(risk_app, [*args, "--out", str(here)]).exit_code == 0
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        res = runner.invoke(
            risk_app,
            [
                *args,
                "--out",
                str(there),
                "--cells-per-block",
                "100",
                "--dask",
                cluster.scheduler_address,
            ],
        )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["blocks"] > 3
    with rasterio.open(here) as a, rasterio.open(there) as b:
        assert np.array_equal(a.read(1), b.read(1), equal_nan=True)


def test_dump_and_restore_keep_covariates(filled, tmp_path: Path) -> None:
    register, _ = filled
    line = tmp_path / "front.geojson"
    line.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": LineString([(46.93, 39.95), (46.93, 39.99)]).__geo_interface__,
                    }
                ],
            }
        )
    )
    add_covariate(register, "front_line", line, "analyst", "distance")
    dumped = tmp_path / "r.jsonl"
    dump(register, dumped)
    copy = Register.create(str(tmp_path / "copy.gpkg"), country="AZ")
    restore(copy, dumped)
    with copy.store.begin() as conn:
        kept = covariates(conn)
    assert [(c.name, c.use, c.content) for c in kept] == [
        ("front_line", "distance", line.read_bytes())
    ]
