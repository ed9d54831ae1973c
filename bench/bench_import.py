"""Benchmark: importing the 25 Colombian yearly files (30,866 events) as one atomic batch.

Prints, side by side in the same process:
  1. the baseline: pyogrio reading the same files and writing the same features straight to a
     GeoPackage (no mapping, no validation, no history);
  2. the import: ``import_many`` with the shipped ``colombia-mine-events`` mapping into a fresh
     GeoPackage register (every row validated, reports, approval and current views written),
     with the time spent in each phase (of this process: a forked worker prepares files too);
  3. the ratio of the two (goal of issue 2: at most 3x), and of the same import with every
     file prepared in this process (``parallel=False``: what one core does);
  4. with ``--postgis URL``, the same import into a fresh PostGIS register (a schema of its own,
     dropped afterwards), against the same GeoPackage baseline.

    python bench/bench_import.py [--repeat N] [--profile] [--postgis URL]

Data come from the copy shipped in the package (safeground/demo/data/colombia-mine-events).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyogrio
from sqlalchemy import create_engine

import safeground
import safeground.io.importer as importer
import safeground.service.register as register_module
from safeground.io.mapping import load_mapping
from safeground.service.register import Register

DATA = Path(safeground.__file__).parent / "demo" / "data" / "colombia-mine-events"
GOAL = 3.0


def files() -> list[Path]:
    found = sorted(DATA.glob("*.json"))
    if len(found) != 25:
        raise SystemExit(f"expected 25 yearly files in {DATA}, found {len(found)}")
    return found


def baseline(paths: list[Path], out: Path) -> tuple[float, float, int]:
    """Read every file with pyogrio and write all features to one GeoPackage layer.

    Returns wall-clock and CPU seconds (CPU time is disturbed less by other work on the
    machine), and the number of features.
    """
    started, cpu = time.perf_counter(), time.process_time()
    frames = [pyogrio.read_dataframe(p) for p in paths]
    frame = pd.concat(frames, ignore_index=True)
    pyogrio.write_dataframe(frame, out, layer="events", driver="GPKG")
    return time.perf_counter() - started, time.process_time() - cpu, len(frame)


def run_import(
    paths: list[Path], out: Path, store: str | None = None, parallel: bool | None = None
) -> tuple[float, float, importer.ImportReport]:
    """Import into a new register; wall-clock and CPU seconds (of this process: the worker's
    are left out) of the import alone."""
    register = Register.create(store or str(out), country="CO")
    mapping = load_mapping("colombia-mine-events")
    started, cpu = time.perf_counter(), time.process_time()
    report = importer.import_many(
        register,
        paths,
        mapping,
        "bench",
        skip_invalid=True,
        rejects=out.with_suffix(".csv"),
        parallel=parallel,
    )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    register.store.engine.dispose()
    return elapsed, cpu, report


@contextmanager
def postgis_schema(url: str) -> Iterator[str]:
    """A store URL on a new, empty schema of the server at ``url``; dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}options=-csearch_path%3D{schema},public"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


# -- where the time goes --------------------------------------------------------------------------

PHASES: dict[str, float] = defaultdict(float)
# (module, function name, label): the importer's own phases, then Register.file's.
TIMED = [
    (importer._Preparer, "prepare", "io: read, map and validate a file (worker: not timed here)"),
    (importer, "_write_rejects", "io: write rejects"),
    (importer, "_file_waiting", "io: reserve record IDs and file each file's rows"),
    (register_module.Filing, "add", "service: Filing.add (reports and new records)"),
    (register_module.Filing, "finish", "service: Filing.finish (R-trees, approval)"),
    (register_module, "_rebuild", "service: _rebuild (records filed as submissions)"),
    (register_module.checks, "missing_references", "service: checks.missing_references"),
    (register_module, "new_hazards", "service: new_hazards"),
    (register_module, "project_hazards", "service: project_hazards"),
    (register_module, "write_hazards", "service: write_hazards"),
]


def _timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            PHASES[label] += time.perf_counter() - started

    return wrapper


def instrument() -> None:
    for owner, name, label in TIMED:
        setattr(owner, name, _timed(getattr(owner, name), label))


def _runs(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best counts")
    parser.add_argument("--profile", action="store_true", help="cProfile one more import")
    parser.add_argument("--postgis", metavar="URL", help="also import into PostGIS at URL")
    args = parser.parse_args()
    paths = files()
    instrument()
    base_times, import_times, postgis_times = [], [], []
    base_cpu, import_cpu, one_process = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for run in range(args.repeat):
            seconds, cpu, features = baseline(paths, tmp / f"baseline-{run}.gpkg")
            base_times.append(seconds)
            base_cpu.append(cpu)
            PHASES.clear()
            seconds, cpu, report = run_import(paths, tmp / f"register-{run}.gpkg")
            import_times.append(seconds)
            import_cpu.append(cpu)
            if args.postgis:
                phases = dict(PHASES)
                with postgis_schema(args.postgis) as store:
                    postgis_times.append(run_import(paths, tmp / f"pg-{run}", store)[0])
                PHASES.clear()
                PHASES.update(phases)
        phases = dict(PHASES)
        for run in range(args.repeat):  # after the others: its garbage would slow their forks
            one_process.append(run_import(paths, tmp / f"one-{run}.gpkg", parallel=False)[0])
        PHASES.clear()
        PHASES.update(phases)
        print(f"{features} features in {len(paths)} files ({DATA})")
        print(report.summary().splitlines()[0])
        for line in report.summary().splitlines()[2:6]:
            print(line)
        best_base, best_import = min(base_times), min(import_times)
        print(f"baseline (pyogrio read + GeoPackage write): {best_base:7.2f} s")
        print(f"import (validation, history, views):        {best_import:7.2f} s")
        ratio = best_import / best_base
        verdict = "meets" if ratio <= GOAL else "misses"
        print(f"ratio: {ratio:.1f}x ({verdict} the goal of {GOAL:.0f}x)")
        print(f"runs (seconds): baseline {_runs(base_times)}; import {_runs(import_times)}")
        best_one = min(one_process)
        print(
            f"import with every file prepared in this process: {best_one:.2f} s, "
            f"{best_one / best_base:.1f}x (runs {_runs(one_process)})"
        )
        print(
            f"CPU time (seconds): baseline {_runs(base_cpu)}; import {_runs(import_cpu)}; "
            f"ratio of the best {min(import_cpu) / min(base_cpu):.1f}x"
        )
        if postgis_times:
            best_pg = min(postgis_times)
            print(f"import into PostGIS:                        {best_pg:7.2f} s")
            print(f"ratio (PostGIS import / GeoPackage baseline): {best_pg / best_base:.1f}x")
            print(f"runs (seconds): PostGIS import {_runs(postgis_times)}")
        print("phases of the last import, this process only (seconds; Filing holds the service):")
        for label, seconds in PHASES.items():
            print(f"  {seconds:7.2f}  {label}")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            run_import(paths, tmp / "profiled.gpkg")
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
            print(text.getvalue())


if __name__ == "__main__":
    main()
