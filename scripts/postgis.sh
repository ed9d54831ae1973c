#!/usr/bin/env bash
# Local PostgreSQL + PostGIS server for the test suite and the benchmarks.
#
#   scripts/postgis.sh up    install packages if needed, create and start a private cluster,
#                            create role `safeground` and database `safeground_test` (with
#                            PostGIS), then print its SQLAlchemy URL as the only line on stdout
#   scripts/postgis.sh down  stop that cluster if it runs
#
# Environment:
#   SAFEGROUND_TEST_POSTGIS_URL  if set and reachable, `up` only prints it (no local server)
#   SAFEGROUND_PGDATA            cluster directory (default: <repo>/.pgdata, git-ignored; if the
#                                `postgres` user cannot reach it, /tmp/safeground-pgdata-<uid>)
#   SAFEGROUND_PGPORT            TCP port on 127.0.0.1 (default 54329; unix socket in /tmp)
#
# The cluster is disposable: trust authentication, on 127.0.0.1 only.
set -euo pipefail

# Everything but the final URL goes to stderr, so callers can do URL=$(scripts/postgis.sh up).
exec 3>&1 1>&2

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${SAFEGROUND_PGPORT:-54329}
ROLE=safeground
DB=safeground_test
URL="postgresql+psycopg://${ROLE}@127.0.0.1:${PORT}/${DB}"
SOCKDIR=/tmp
export PGCONNECT_TIMEOUT=5

log() { echo "postgis.sh: $*"; }
die() { log "error: $*"; exit 1; }

usage() { die "usage: $0 up|down"; }
[ $# -eq 1 ] || usage
CMD=$1
case "$CMD" in up|down) ;; *) usage ;; esac

IS_ROOT=false
if [ "$(id -u)" -eq 0 ]; then IS_ROOT=true; fi

# initdb and postgres refuse to run as root: run server-side commands as the `postgres` user.
as_pg() {
    if $IS_ROOT; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Highest installed major version's bin dir (Debian puts them in /usr/lib/postgresql/N/bin).
find_pgbin() {
    local d best=""
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/pg_ctl" ] || continue
        if [ -z "$best" ] || [ "$(basename "$(dirname "$d")")" -gt "$(basename "$(dirname "$best")")" ]; then
            best=$d
        fi
    done
    echo "$best"
}

# Server-side psql as superuser `postgres`, over TCP with trust auth (works from root too).
psql_admin() {
    PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"
}

# Data dir: the repo's .pgdata unless overridden. Its parent must be reachable by `postgres`
# (the repo may sit under a private home), else fall back to a private dir under /tmp.
choose_pgdata() {
    if [ -n "${SAFEGROUND_PGDATA:-}" ]; then
        PGDATA_DIR=$SAFEGROUND_PGDATA
        return
    fi
    PGDATA_DIR=$REPO/.pgdata
    if $IS_ROOT && ! runuser -u postgres -- test -x "$REPO" 2>/dev/null; then
        PGDATA_DIR=/tmp/safeground-pgdata-$(id -u)
        log "postgres cannot reach $REPO; using $PGDATA_DIR"
    fi
}

# The server is a daemon that inherits our open descriptors: our saved stdout (fd 3), the
# lock (fd 9) and whatever the caller left open. Close them all, or `URL=$(postgis.sh up)`
# never sees EOF and every later `up` blocks on the lock held by the server.
start_server() {
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
        done
        exec >/dev/null
        # -p: the port asked for now wins over the one written at initdb time.
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -o "-p $PORT" -w -t 60 start
    )
}

server_running() {
    [ -f "$PGDATA_DIR/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

ready_and_provisioned() {
    [ -n "$PGBIN" ] || return 1
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || return 1
    [ "$("$PGBIN/psql" -X -tA -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d "$DB" \
        -c "select 1 from pg_extension where extname = 'postgis'" 2>/dev/null)" = 1 ]
}

# --- down ------------------------------------------------------------------------------------
if [ "$CMD" = down ]; then
    PGBIN=$(find_pgbin)
    choose_pgdata
    if [ -n "$PGBIN" ] && server_running; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop
        log "stopped cluster in $PGDATA_DIR"
    else
        log "no cluster running in $PGDATA_DIR"
    fi
    exit 0
fi

# --- up: an existing server given by the caller wins -----------------------------------------
if [ -n "${SAFEGROUND_TEST_POSTGIS_URL:-}" ]; then
    # libpq does not know SQLAlchemy's "+driver" suffix.
    libpq_url=$(printf '%s' "$SAFEGROUND_TEST_POSTGIS_URL" | sed -E 's#^postgres(ql)?\+[A-Za-z0-9_]+://#postgresql://#')
    psql_bin=$(command -v psql || true)
    [ -n "$psql_bin" ] || psql_bin=$(find_pgbin)/psql
    if [ -x "$psql_bin" ] && "$psql_bin" -X -tA -d "$libpq_url" -c 'select 1' >/dev/null 2>&1; then
        ext=$("$psql_bin" -X -tA -d "$libpq_url" -c "select 1 from pg_extension where extname = 'postgis'" 2>/dev/null || true)
        [ "$ext" = 1 ] || log "warning: postgis extension not created in that database"
        echo "$SAFEGROUND_TEST_POSTGIS_URL" >&3
        exit 0
    fi
    log "SAFEGROUND_TEST_POSTGIS_URL is set but not reachable; starting a local server instead"
fi

# Fast path: our server is already up and provisioned (no lock, no apt).
PGBIN=$(find_pgbin)
if ready_and_provisioned; then
    echo "$URL" >&3
    exit 0
fi

# Serialise concurrent `up`s (e.g. parallel test workers) from here on.
exec 9>"/tmp/safeground-postgis-$PORT.lock"
flock 9

# --- packages --------------------------------------------------------------------------------
need_postgis() {
    local ver
    ver=$(basename "$(dirname "$PGBIN")")
    [ ! -f "/usr/share/postgresql/$ver/extension/postgis.control" ]
}

apt_updated=false
apt_update_once() {
    $IS_ROOT || die "need root to install packages"
    if ! $apt_updated; then
        log "apt-get update"
        apt-get update -qq
        apt_updated=true
    fi
}
apt_install() {
    apt_update_once
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

if [ -z "$PGBIN" ]; then
    apt_install postgresql
    PGBIN=$(find_pgbin)
    [ -n "$PGBIN" ] || die "pg_ctl still missing after installing postgresql"
fi
if need_postgis; then
    ver=$(basename "$(dirname "$PGBIN")")
    # Debian names it postgresql-<major>-postgis-<postgis major>; take the highest available.
    apt_update_once
    pkg=$(apt-cache pkgnames "postgresql-$ver-postgis-" | grep -E "^postgresql-$ver-postgis-[0-9]+$" | sort -V | tail -n1 || true)
    [ -n "$pkg" ] || die "no postgis package found for PostgreSQL $ver"
    apt_install "$pkg"
    if need_postgis; then die "postgis.control still missing after installing $pkg"; fi
fi

# --- cluster ---------------------------------------------------------------------------------
choose_pgdata
PGVER=$(basename "$(dirname "$PGBIN")")
if [ -f "$PGDATA_DIR/PG_VERSION" ]; then
    datver=$(cat "$PGDATA_DIR/PG_VERSION")
    [ -x "/usr/lib/postgresql/$datver/bin/pg_ctl" ] ||
        die "$PGDATA_DIR is a PostgreSQL $datver cluster but $datver is not installed; remove it"
    PGBIN=/usr/lib/postgresql/$datver/bin
else
    mkdir -p "$PGDATA_DIR"
    if $IS_ROOT; then
        chown postgres:postgres "$PGDATA_DIR"
        runuser -u postgres -- test -w "$PGDATA_DIR" ||
            die "user postgres cannot write $PGDATA_DIR (check the permissions of its parents)"
    fi
    chmod 700 "$PGDATA_DIR"
    log "initdb $PGDATA_DIR (PostgreSQL $PGVER)"
    as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=trust --no-sync >/dev/null
    # Later settings override earlier ones: append ours. Loopback only, socket in /tmp
    # (Debian's /var/run/postgresql may not exist without the packaged cluster running).
    as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null <<EOF

# --- safeground test cluster (scripts/postgis.sh) ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKDIR'
EOF
    # Trust on 127.0.0.1 only (no ::1, no other hosts); the socket keeps peer auth.
    as_pg tee "$PGDATA_DIR/pg_hba.conf" >/dev/null <<EOF
# scripts/postgis.sh: disposable test cluster, trust on 127.0.0.1 only
local   all   all                  peer
host    all   all   127.0.0.1/32   trust
EOF
fi

if ! server_running; then
    log "starting cluster in $PGDATA_DIR on 127.0.0.1:$PORT"
    start_server ||
        { tail -n 20 "$PGDATA_DIR/server.log" || true; die "server did not start (log: $PGDATA_DIR/server.log)"; }
fi
for _ in $(seq 1 60); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
    sleep 0.5
done
"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || die "server not ready on 127.0.0.1:$PORT"

# --- role, database, extension (each only if missing) ----------------------------------------
psql_admin -d postgres <<EOF
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
        CREATE ROLE $ROLE LOGIN SUPERUSER;
    END IF;
END \$\$;
EOF
if [ "$(psql_admin -d postgres -tA -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    psql_admin -d postgres -c "CREATE DATABASE $DB OWNER $ROLE"
fi
psql_admin -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS postgis"

echo "$URL" >&3
