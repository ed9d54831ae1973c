"""The temporal protocol on a real cut: Antioquia's events 1990-2008, fit to 2005."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safeground.risk.temporal import read_events, temporal_test

DATA = Path(__file__).resolve().parents[2] / "src" / "safeground" / "demo" / "data"
ANTIOQUIA = (-77.2, 5.4, -73.8, 8.9)  # lon/lat box around the department


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    files = [DATA / "colombia-mine-events" / f"{y}.json" for y in range(1990, 2009)]
    return read_events(files, bbox=ANTIOQUIA)


def _run(events: pd.DataFrame):
    return temporal_test(events, 2005, cell_m=10_000, lead=5, background=2000)


def test_no_later_event_is_used_in_fitting(events: pd.DataFrame) -> None:
    assert events["kind"].isin([1, 2, 4, 6, 8]).all()  # caches, seizures, factories left out
    result = _run(events)
    assert result.fit_years == (1990, 2005) and result.test_years == (2006, 2008)
    assert result.history_years == (1990, 2000)
    later = events["year"] > 2005
    assert result.test_events == int(later.sum()) > 100
    assert result.fit_events == int((~later).sum())

    # Move every later event elsewhere: the fitted model and its scores must not change...
    rng = np.random.default_rng(7)
    moved = events.copy()
    moved.loc[later, "lon"] = rng.uniform(ANTIOQUIA[0], ANTIOQUIA[2], later.sum())
    moved.loc[later, "lat"] = rng.uniform(ANTIOQUIA[1], ANTIOQUIA[3], later.sum())
    other = _run(moved)
    assert other.model.version == result.model.version
    for name, scores in result.scores.items():
        assert np.array_equal(other.scores[name], scores)
    # ... while the metrics, computed on the later events, do.
    assert other.metrics != result.metrics
    # Events of the fit years do shape the model (the check above can fail).
    early = events.copy()
    early.loc[events["year"] == 2003, "lon"] += 0.3
    assert _run(early).model.version != result.model.version


def test_metrics_are_shares_and_both_models_run(events: pd.DataFrame) -> None:
    result = _run(events)
    assert set(result.metrics) == {"presence_only_maxent", "kde_past_events"}
    for m in result.metrics.values():
        assert 0.5 < m["roc_auc_vs_background"] <= 1.0
        assert 0.0 <= m["top10_event_capture"] <= m["top20_event_capture"] <= 1.0
    doc = result.to_json()
    assert doc["cells"] == result.cells and doc["model_version"].startswith("maxent-")


def test_a_fit_year_without_history_is_refused(events: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="history"):
        temporal_test(events, 1993, lead=5)
