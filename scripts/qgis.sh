#!/usr/bin/env bash
# Debian's QGIS (python3-qgis, QGIS 3.22 on bookworm) for the test that adds the register's OGC API
# layers with QGIS itself (tests/web/test_qgis.py). Headless: no desktop, nothing downloaded at
# run time.
#
#   scripts/qgis.sh   install `python3-qgis` when Debian's Python cannot import qgis.core, then
#                     print that Python's path as the only line on stdout
#
# Environment: SAFEGROUND_QGIS_PYTHON  another Python that imports qgis.core (printed as is).
#
# The first install takes a few minutes: 168 packages, about 180 MiB of .deb files (2.5 min on
# the 2-core development machine with part of them already in apt's cache).
set -euo pipefail

# Everything but the final path goes to stderr, so callers can do PY=$(scripts/qgis.sh).
exec 3>&1 1>&2

log() { echo "qgis.sh: $*"; }
die() { log "error: $*"; exit 1; }

has_qgis() { "$1" -c 'import qgis.core' >/dev/null 2>&1; }

if [ -n "${SAFEGROUND_QGIS_PYTHON:-}" ]; then
    has_qgis "$SAFEGROUND_QGIS_PYTHON" || die "SAFEGROUND_QGIS_PYTHON=$SAFEGROUND_QGIS_PYTHON cannot import qgis.core"
    echo "$SAFEGROUND_QGIS_PYTHON" >&3
    exit 0
fi

PYTHON=/usr/bin/python3
export QT_QPA_PLATFORM=offscreen
if ! has_qgis "$PYTHON"; then
    # Serialise concurrent installs (parallel test runs) on one lock.
    exec 9>/tmp/safeground-qgis.lock
    flock 9
    if ! has_qgis "$PYTHON"; then
        [ "$(id -u)" -eq 0 ] || die "need root to install python3-qgis (or set SAFEGROUND_QGIS_PYTHON)"
        log "apt-get update"
        apt-get update -qq
        log "installing python3-qgis (a few minutes the first time)"
        started=$(date +%s)
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-qgis
        log "installed in $(( $(date +%s) - started )) s"
        has_qgis "$PYTHON" || die "$PYTHON still cannot import qgis.core after installing python3-qgis"
    fi
fi
echo "$PYTHON" >&3
