#!/usr/bin/env bash
# Run every benchmark; each prints its figures against a baseline run in the same process.
# SAFEGROUND_BENCH_POSTGIS_URL (set by `make bench`) adds the PostGIS runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HAZARDS=${SAFEGROUND_BENCH_HAZARDS:-100000}
echo "== register, embedded GeoPackage"
$PY -u bench/bench_register.py --hazards "$HAZARDS"
if [ -n "${SAFEGROUND_BENCH_POSTGIS_URL:-}" ]; then
    echo "== register, PostGIS"
    $PY -u bench/bench_register.py --hazards "$HAZARDS" --postgis "$SAFEGROUND_BENCH_POSTGIS_URL"
fi
for bench in bench/bench_import.py bench/bench_risk.py; do
    if [ -f "$bench" ]; then
        echo "== $bench"
        $PY -u "$bench"
    fi
done
echo "== web: Safeground and pygeoapi under load"
web_args=(--hazards "$HAZARDS")
if [ -n "${SAFEGROUND_BENCH_POSTGIS_URL:-}" ]; then
    web_args+=(--postgis "$SAFEGROUND_BENCH_POSTGIS_URL")
fi
$PY -u bench/bench_web.py "${web_args[@]}"
