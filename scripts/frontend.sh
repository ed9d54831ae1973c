#!/usr/bin/env bash
# Browser libraries for the web application, from the npm registry (no CDN, nothing at run time).
#
# Installs frontend/package-lock.json exactly (`npm ci`) when node_modules is missing or older
# than the lock file, then copies the files the pages load into
# src/safeground/web/static/vendor/ (git-ignored), served at /static/vendor/. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "frontend.sh: $*" >&2; }

FRONT=frontend
MODULES=$FRONT/node_modules
STAMP=$MODULES/.safeground-installed
VENDOR=src/safeground/web/static/vendor

if ! command -v npm >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || { log "error: npm is missing and installing it needs root"; exit 1; }
    log "installing npm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm
fi

if [ ! -f "$STAMP" ] || [ "$FRONT/package-lock.json" -nt "$STAMP" ]; then
    log "npm ci"
    (cd "$FRONT" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$STAMP"
fi

# Source file in node_modules -> destination under static/vendor.
FILES=(
    "maplibre-gl/dist/maplibre-gl.mjs maplibre-gl/maplibre-gl.mjs"
    "maplibre-gl/dist/maplibre-gl-worker.mjs maplibre-gl/maplibre-gl-worker.mjs"
    "maplibre-gl/dist/maplibre-gl.css maplibre-gl/maplibre-gl.css"
    "maplibre-gl/LICENSE.txt maplibre-gl/LICENSE.txt"
    "terra-draw/dist/terra-draw.module.js terra-draw/terra-draw.module.js"
    "terra-draw-maplibre-gl-adapter/dist/terra-draw-maplibre-gl-adapter.module.js terra-draw-maplibre-gl-adapter/terra-draw-maplibre-gl-adapter.module.js"
    "chart.js/dist/chart.umd.min.js chart.js/chart.umd.min.js"
    "chart.js/LICENSE.md chart.js/LICENSE.md"
    "pmtiles/dist/esm/index.js pmtiles/pmtiles.js"
    "fflate/esm/browser.js fflate/fflate.js"
    "fflate/LICENSE fflate/LICENSE"
)
for pair in "${FILES[@]}"; do
    read -r src dst <<<"$pair"
    [ -f "$MODULES/$src" ] || { log "error: $MODULES/$src missing after npm ci"; exit 1; }
    if [ ! -f "$VENDOR/$dst" ] || [ "$MODULES/$src" -nt "$VENDOR/$dst" ]; then
        mkdir -p "$(dirname "$VENDOR/$dst")"
        cp "$MODULES/$src" "$VENDOR/$dst"
    fi
done
