#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded).
#
#   scripts/chromium.sh   install the `chromium` package when /usr/bin/chromium is missing,
#                         then print the browser's path as the only line on stdout
#
# Environment: SAFEGROUND_CHROMIUM  path of another Chromium to use instead (printed as is).
set -euo pipefail

# Everything but the final path goes to stderr, so callers can do BROWSER=$(scripts/chromium.sh).
exec 3>&1 1>&2

log() { echo "chromium.sh: $*"; }
die() { log "error: $*"; exit 1; }

if [ -n "${SAFEGROUND_CHROMIUM:-}" ]; then
    [ -x "$SAFEGROUND_CHROMIUM" ] || die "SAFEGROUND_CHROMIUM=$SAFEGROUND_CHROMIUM is not executable"
    echo "$SAFEGROUND_CHROMIUM" >&3
    exit 0
fi

BROWSER=/usr/bin/chromium
if [ ! -x "$BROWSER" ]; then
    # Serialise concurrent installs (parallel test runs) on one lock.
    exec 9>/tmp/safeground-chromium.lock
    flock 9
    if [ ! -x "$BROWSER" ]; then
        [ "$(id -u)" -eq 0 ] || die "need root to install chromium (or set SAFEGROUND_CHROMIUM)"
        log "apt-get update"
        apt-get update -qq
        log "installing chromium"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium fonts-dejavu-core
        [ -x "$BROWSER" ] || die "$BROWSER still missing after installing chromium"
    fi
fi
echo "$BROWSER" >&3
