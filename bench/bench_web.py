"""Benchmark: the web application under load, against pygeoapi serving the same data (issue 4).

Serves a register of (default) 100k hazardous areas with Safeground (uvicorn, its own process,
loopback) and then with pygeoapi (the peer to beat, in its own virtual environment under
bench/.web so that its pins never touch Safeground's), and loads each from a second process with
wrk: 50 connections, each sending its next request as soon as the last is answered, over a
fixed mix of requests. Prints p50/p95/p99 latency and the ratio to pygeoapi.

Mixes:
  items  OGC API items pages (limit 50) with boxes the size of a map view at zooms 8, 11 and 14,
         the same requests to both servers. Each Safeground process keeps the features it has
         read (up to features_kept per layer), so after the first pass the default mix of 20
         views per zoom (about 4,300 features) is answered from memory but for the views'
         generations; --views 200 reads about 31,600 (SAFEGROUND_FEATURES_KEPT below that
         shows pages whose features are not kept);
  map    Safeground only: the items mix interleaved with vector tiles at zooms 6 (the national
         view), 8, 11 and 14. Tiles are cached in memory once drawn, so under load most tile
         requests are hits; their cold cost is printed first, one request at a time.
Goal (issue 4): p95 ≤ 100 ms at 50 clients, on the GeoPackage store and on PostGIS.

    python bench/bench_web.py [--hazards N] [--register FILE.gpkg]        # GeoPackage
    python bench/bench_web.py --postgis URL --hazards N                      # PostGIS too
    python bench/bench_web.py --single-client N [--register FILE.gpkg]       # one client
    python bench/bench_web.py ... --views 200                                # a wider items mix

--single-client N sends N items requests of the same mix one at a time to one server process
(no wrk, no pygeoapi), after a first pass over the mix, and prints their latency and the
server's CPU time per request (from /proc), and that of the first pass, against the CPU time
of encoding the same answers with Python's json module alone, as a yardstick of how much of a
request is more than writing its answer.

The GeoPackage register is the one bench_register.py keeps (--keep); it is built once if
missing (100k areas take 10-15 minutes) and reused. With --postgis, a register is filled by the
same generator in a fresh schema of that database (or give one with --postgis-register), and
both servers read it there. Debian packages (wrk, GDAL's Python bindings for pygeoapi's OGR
provider) are installed with apt-get when missing; pygeoapi is installed from PyPI into
bench/.web/pygeoapi-venv.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from sqlalchemy import make_url

from safeground.service import accounts
from safeground.service.layers import FEATURES_KEPT, LAYERS, Envelopes
from safeground.service.register import Register
from safeground.storage.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_register import fill, fresh_schema

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".web"
PEER_VENV = WORK / "pygeoapi-venv"
PEER_VERSION = "0.21.0"
# Azerbaijan's bounding box, as in bench_register.py.
LON0, LAT0, LON1, LAT1 = 44.8, 38.4, 50.4, 41.9
# Half-widths (degrees) of a 1280 × 800 px map view at zooms 8, 11 and 14.
VIEWS = {8: 3.5, 11: 0.44, 14: 0.055}
TILE_ZOOMS = (8, 11, 14)
PAGE = 50
# Runs: clients that send their next request at once (saturation), and clients that pause a
# random 0-1 s between requests, like people panning a map (about 100 requests/s offered).
PAUSES = {0: "no pause (saturating)", 1000: "0-1 s pauses (map users)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hazards", type=int, default=100_000)
    parser.add_argument("--register", help="a GeoPackage kept by bench_register.py --keep")
    parser.add_argument("--postgis", help="a PostGIS URL: also fill a register there and run on it")
    parser.add_argument(
        "--postgis-register", help="an existing register on PostGIS (URL with its search_path)"
    )
    parser.add_argument("--postgis-only", action="store_true", help="skip the GeoPackage run")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=int, default=20, help="seconds of each measured run")
    parser.add_argument("--workers", type=int, default=2, help="server processes (both servers)")
    parser.add_argument(
        "--views", type=int, default=20, help="map views per zoom in the items mix (default 20)"
    )
    parser.add_argument(
        "--single-client", type=int, metavar="N", help="N items requests one at a time, CPU cost"
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.single_client:
        gpkg = Path(args.register or WORK / f"register-{args.hazards}.gpkg")
        location = args.postgis_register or str(gpkg)
        single_client(location, bench_token(location), args.single_client, args.views)
        return
    debian_packages({"wrk": "wrk", "python3-gdal": "/usr/lib/python3/dist-packages/osgeo"})
    peer_environment()
    gpkg = Path(args.register or WORK / f"register-{args.hazards}.gpkg")
    if not gpkg.exists() and not args.postgis_only:
        build(gpkg, args.hazards)
    token = bench_token(str(gpkg)) if not args.postgis_only else ""
    print(
        f"{args.clients} clients (wrk connections, closed loop), {args.duration} s a run after a "
        f"5 s warm-up, {args.workers} server processes each; 2 CPU cores shared with the "
        "servers, wrk and other work on the machine, so figures are noisy"
    )
    stores = []
    if not args.postgis_only:
        stores.append(("GeoPackage", str(gpkg), {"kind": "gpkg", "path": str(gpkg)}, token))
    if args.postgis or args.postgis_register:
        location = args.postgis_register or postgis_register(args.postgis, args.hazards)
        stores.append(("PostGIS", location, {"kind": "postgis", "url": location}, ""))
    for label, location, peer_source, known_token in stores:
        print(f"\n== {label}: {location.split('@')[-1]}", flush=True)
        measure(args, location, peer_source, known_token or bench_token(location))


def measure(args: argparse.Namespace, location: str, peer_source: dict, token: str) -> None:
    rng = np.random.default_rng(11)
    items = items_paths(rng, args.views)
    tiles = tile_paths(rng)
    print(
        f"items mix: {len(items)} pages, which read about {features_touched(location, items):,} "
        f"distinct features; each server process keeps up to {FEATURES_KEPT:,} once read"
    )
    headers = {"Authorization": f"Bearer {token}"}
    ogc_items = ["/ogc" + p for p in items]
    mixed = [p for pair in zip(ogc_items, tiles[: len(items)], strict=False) for p in pair]
    mixed += tiles[len(items) :]
    with serve_safeground(location, args.workers) as base:
        cold = [timed_get(base + p, headers) for p in tiles]
        print(
            f"tiles drawn cold, one at a time ({len(tiles)} tiles, zooms 6-14): "
            f"p50 {percentile(cold, 50):,.0f} ms, p95 {percentile(cold, 95):,.0f} ms, "
            f"max {max(cold):,.0f} ms; zoom 6 ({len(national_tiles())} tiles): "
            f"max {max(cold[: len(national_tiles())]):,.0f} ms"
        )
        counts = [matched(base + p, headers) for p in ogc_items]
        ours = {}
        for pause in PAUSES:
            ours[pause] = load(base, ogc_items, headers, args, pause)
            report(f"Safeground items, {PAUSES[pause]}", ours[pause])
            report(
                f"Safeground map (items + tiles), {PAUSES[pause]}",
                load(base, mixed, headers, args, pause),
            )
    with serve_pygeoapi(peer_source, args.workers) as base:
        their_counts = [matched(base + p, {}) for p in items]
        theirs = {}
        for pause in PAUSES:
            theirs[pause] = load(base, items, {}, args, pause)
            report(f"pygeoapi items, {PAUSES[pause]}", theirs[pause])
    for pause in PAUSES:
        a, b = ours[pause], theirs[pause]
        print(
            f"ratio Safeground / pygeoapi, same items requests, {PAUSES[pause]}: "
            f"p50 {a['p50'] / b['p50']:.2f}×, p95 {a['p95'] / b['p95']:.2f}×, "
            f"p99 {a['p99'] / b['p99']:.2f}×, throughput {a['rps'] / b['rps']:.2f}×"
        )
    same = sum(a == b for a, b in zip(counts, their_counts, strict=True))
    print(f"check: {same} of {len(counts)} pages hold as many features on both servers")


def single_client(location: str, token: str, requests: int, views: int) -> None:
    """Items requests one at a time to one server process: latency and its CPU time each."""
    distinct = ["/ogc" + p for p in items_paths(np.random.default_rng(11), views)]
    paths = [distinct[i % len(distinct)] for i in range(requests)]
    headers = {"Authorization": f"Bearer {token}"}
    server = serve_safeground(location, 1)  # one worker: uvicorn serves in its own process
    with server as base:
        pid = server.process.pid
        timed_get(base + "/ogc", headers)  # connections, the first compilations
        cpu_before = process_cpu_seconds(pid)
        for path in distinct:  # the first pass reads the features it keeps
            timed_get(base + path, headers)
        first_pass_cpu = 1000 * (process_cpu_seconds(pid) - cpu_before) / len(distinct)
        cpu_before = process_cpu_seconds(pid)
        latencies = []
        answers = []
        for path in paths:
            started = time.perf_counter()
            with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers)) as r:
                answers.append(json.load(r))
            latencies.append(1000 * (time.perf_counter() - started))
        server_cpu = 1000 * (process_cpu_seconds(pid) - cpu_before) / requests
    started_cpu = time.process_time()
    size = sum(len(json.dumps(a, ensure_ascii=False, separators=(",", ":"))) for a in answers)
    encoding_cpu = 1000 * (time.process_time() - started_cpu) / requests
    features = sum(len(a["features"]) for a in answers) / requests
    print(
        f"{requests} items requests one at a time ({location.split('@')[-1]}), "
        f"{features:.0f} features and {size / requests / 1000:.0f} kB an answer on average: "
        f"latency p50 {percentile(latencies, 50):.1f} ms, p95 {percentile(latencies, 95):.1f} ms; "
        f"server CPU {server_cpu:.2f} ms a request (the first pass over the {len(distinct)} "
        f"pages, reading their features: {first_pass_cpu:.2f} ms); json.dumps of the same "
        f"answers alone {encoding_cpu:.2f} ms a request; ratio {server_cpu / encoding_cpu:.1f}×"
    )


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def items_paths(rng: np.random.Generator, views: int = 20) -> list[str]:
    """Items pages for ``views`` map views at each zoom, in a fixed order."""
    paths = []
    for _ in range(views):
        for zoom, half in VIEWS.items():
            lon, lat = rng.uniform(LON0, LON1), rng.uniform(LAT0, LAT1)
            box = (lon - half, lat - half * 0.6, lon + half, lat + half * 0.6)
            bbox = ",".join(f"{v:.5f}" for v in box)
            paths.append(f"/collections/hazardous_area/items?bbox={bbox}&limit={PAGE}&z={zoom}")
    return [re.sub(r"&z=\d+", "", p) for p in paths]


def features_touched(location: str, paths: list[str]) -> int:
    """Distinct features the pages read, about: their own and those near their boxes' edges."""
    store = open_store(location)
    layer = LAYERS["hazardous_area"]
    touched: set[int] = set()
    with store.read() as conn:
        envelopes = Envelopes.load(conn, store, layer)
    store.engine.dispose()
    for path in paths:
        minx, miny, maxx, maxy = (float(v) for v in path.split("bbox=")[1].split("&")[0].split(","))
        meeting, near_edge = envelopes.meeting((minx, miny, maxx, maxy))
        touched.update(near_edge.tolist())
        touched.update(np.sort(meeting)[:PAGE].tolist())
    return len(touched)


def national_tiles() -> list[tuple[int, int, int]]:
    x0, y0 = tile_index(LON0, LAT1, 6)
    x1, y1 = tile_index(LON1, LAT0, 6)
    return [(6, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def tile_paths(rng: np.random.Generator) -> list[str]:
    """Every national (zoom 6) tile, then the 3 × 3 tiles around 8 view centres at 8, 11, 14."""
    addresses = national_tiles()
    for zoom in TILE_ZOOMS:
        for _ in range(8):
            x, y = tile_index(rng.uniform(LON0, LON1), rng.uniform(LAT0, LAT1), zoom)
            addresses += [(zoom, x + dx, y + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    return [f"/tiles/hazardous_area/{z}/{x}/{y}.pbf" for z, x, y in addresses]


def tile_index(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return int((lon + 180) / 360 * n), int(y)


# -- servers ------------------------------------------------------------------------------------


class serve:
    """A server process on a free loopback port, stopped on exit."""

    def __init__(self, command: list[str], env: dict[str, str], ready_path: str):
        self.port = free_port()
        self.command = [*command, "--host", "127.0.0.1", "--port", str(self.port)]
        self.env = {**os.environ, **env}
        self.ready_path = ready_path

    def __enter__(self) -> str:
        # A server's log (pygeoapi logs GDAL's warning about GeoPackage 1.4 at each request).
        self.log = (WORK / "server.log").open("a")
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=WORK, stdout=self.log, stderr=self.log
        )
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(base + self.ready_path, timeout=5)
                return base
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server did not start: {' '.join(self.command)}") from None
                time.sleep(0.5)

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def serve_safeground(location: str, workers: int) -> serve:
    command = [sys.executable, "-m", "uvicorn", "safeground.web.app:create_app", "--factory"]
    command += ["--workers", str(workers), "--log-level", "warning"]
    env = {"SAFEGROUND_STORE": location, "SAFEGROUND_SECRET_KEY": "bench"}
    return serve(command, env, "/ogc")


def serve_pygeoapi(source: dict, workers: int) -> serve:
    config = WORK / f"pygeoapi-{source['kind']}.yml"
    openapi = WORK / f"pygeoapi-{source['kind']}-openapi.yml"
    config.write_text(json.dumps(peer_config(source), indent=1))  # JSON is YAML
    python = str(PEER_VENV / "bin" / "python")
    subprocess.run(
        [
            str(PEER_VENV / "bin" / "pygeoapi"),
            "openapi",
            "generate",
            str(config),
            "-of",
            str(openapi),
        ],
        check=True,
        env={**os.environ, "PYGEOAPI_CONFIG": str(config)},
        capture_output=True,
    )
    command = [python, "-m", "uvicorn", "pygeoapi.starlette_app:APP"]
    command += ["--workers", str(workers), "--log-level", "warning"]
    env = {"PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    return serve(command, env, "/collections/hazardous_area/items?limit=1")


def peer_config(source: dict) -> dict:
    """pygeoapi's configuration: one collection, hazardous_area, from the same data."""
    if source["kind"] == "gpkg":
        # GDAL's GeoPackage driver (pygeoapi's OGR provider) uses the R-tree for boxes; its
        # SQLiteGPKG provider does not, so OGR is the stronger peer.
        provider = {
            "type": "feature",
            "name": "OGR",
            "data": {"source_type": "GPKG", "source": source["path"]},
            "id_field": "fid",
            "layer": "hazardous_area",
        }
    else:
        url = make_url(source["url"])
        search_path = re.search(r"search_path%3D([^,&]+)", source["url"])
        provider = {
            "type": "feature",
            "name": "PostgreSQL",
            "data": {
                "host": url.host,
                "port": url.port,
                "dbname": url.database,
                "user": url.username,
                "password": url.password or "",
                "search_path": [search_path.group(1) if search_path else "public", "public"],
            },
            "id_field": "fid",
            "table": "hazardous_area",
            "geom_field": "geometry",
        }
    return {
        "server": {
            "bind": {"host": "127.0.0.1", "port": 0},
            "url": "http://127.0.0.1",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "limits": {"default_items": 10, "max_items": 10000},
            "map": {"url": "http://127.0.0.1/none/{z}/{x}/{y}.png", "attribution": "none"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "bench",
                "description": "bench",
                "keywords": ["bench"],
                "terms_of_service": "none",
                "url": "http://127.0.0.1",
            },
            "license": {"name": "none", "url": "http://127.0.0.1"},
            "provider": {"name": "bench"},
            "contact": {"name": "bench"},
        },
        "resources": {
            "hazardous_area": {
                "type": "collection",
                "title": "Hazardous areas",
                "description": "Hazardous areas",
                "keywords": ["hazard"],
                "extents": {"spatial": {"bbox": [LON0, LAT0, LON1, LAT1]}},
                "providers": [provider],
            }
        },
    }


# -- load ---------------------------------------------------------------------------------------

LUA = """
local paths = {%(paths)s}
local headers = {%(headers)s}
local counter = 0
function setup(thread)
  thread:set("offset", math.random(#paths))
end
function request()
  counter = counter + 1
  return wrk.format("GET", paths[((counter + offset) %% #paths) + 1], headers)
end
function delay()
  return math.random(0, %(pause)d)
end
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%f %%f %%f %%f\\n", summary.requests,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), summary.duration))
end
"""


def load(
    base: str, paths: list[str], headers: dict[str, str], args: argparse.Namespace, pause: int
) -> dict:
    script = Path(tempfile.mkstemp(suffix=".lua", dir=WORK)[1])
    script.write_text(
        LUA
        % {
            "paths": ", ".join(json.dumps(p) for p in paths),
            "pause": pause,
            "headers": ", ".join(
                f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()
            ),
        }
    )
    try:
        wrk = ["wrk", "-t2", f"-c{args.clients}", "--timeout", "30s", "-s", str(script)]
        subprocess.run([*wrk, "-d5s", base], check=True, capture_output=True)  # warm-up
        out = subprocess.run(
            [*wrk, f"-d{args.duration}s", base], check=True, capture_output=True, text=True
        ).stdout
    finally:
        script.unlink()
    fields = next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1:]
    requests, status_errors, socket_errors = (int(v) for v in fields[:3])
    p50, p95, p99, duration_us = (float(v) for v in fields[3:])
    return {
        "requests": requests,
        "errors": status_errors + socket_errors,
        "p50": p50 / 1000,
        "p95": p95 / 1000,
        "p99": p99 / 1000,
        "rps": requests / (duration_us / 1e6),
    }


def report(label: str, result: dict) -> None:
    goal = "met" if result["p95"] <= 100 else "NOT met"
    print(
        f"{label}: p50 {result['p50']:,.1f} ms, p95 {result['p95']:,.1f} ms, p99 "
        f"{result['p99']:,.1f} ms; {result['rps']:,.0f} requests/s, {result['errors']} errors "
        f"(non-2xx or socket); p95 goal ≤ 100 ms {goal}"
    )


def timed_get(url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
        response.read()
    return 1000 * (time.perf_counter() - started)


def matched(url: str, headers: dict[str, str]) -> int:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
        return len(json.load(response)["features"])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- set-up -------------------------------------------------------------------------------------


def debian_packages(wanted: dict[str, str]) -> None:
    """apt-get install the packages whose command or path is missing."""
    missing = [
        name for name, probe in wanted.items() if not (shutil.which(probe) or Path(probe).exists())
    ]
    if missing:
        print(f"installing Debian packages: {' '.join(missing)}", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def peer_environment() -> None:
    """pygeoapi in its own virtual environment (Debian's Python, which loads GDAL's bindings)."""
    python = PEER_VENV / "bin" / "python"
    if python.exists():
        return
    print(f"installing pygeoapi {PEER_VERSION} into {PEER_VENV}", flush=True)
    subprocess.run(
        ["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(PEER_VENV)], check=True
    )
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"pygeoapi=={PEER_VERSION}", "uvicorn",
         "starlette", "psycopg2-binary", "geoalchemy2"],
        check=True,
    )  # fmt: skip


def build(path: Path, hazards: int) -> None:
    print(f"building a register of {hazards:,} areas in {path} (kept for later runs)", flush=True)
    subprocess.run(
        [sys.executable, "-u", str(ROOT / "bench" / "bench_register.py"), "--hazards",
         str(hazards), "--keep", str(path)],
        check=True,
    )  # fmt: skip


def bench_token(location: str) -> str:
    """An API token of an IM officer account (made once) for the load's requests."""
    register = Register.open(location)
    register.store.migrate()
    with register.store.begin() as conn:
        if "bench" not in {a.username for a in accounts.list_accounts(conn)}:
            accounts.add_account(conn, "bench", "im_officer", "bench-password-not-secret")
        token = accounts.create_token(conn, "bench", label="bench_web")[1]
    register.store.engine.dispose()
    return token


def postgis_register(url: str, hazards: int) -> str:
    """A register of ``hazards`` areas in a fresh schema of the database, filled by
    bench_register.py's generator; returns its location."""
    location = fresh_schema(url)
    print(
        f"filling a PostGIS register of {hazards:,} areas ({location.split('@')[-1]})", flush=True
    )
    register = Register.create(location, country="AZ")
    fill(register, hazards, np.random.default_rng(7))
    register.store.engine.dispose()
    return location


if __name__ == "__main__":
    main()
