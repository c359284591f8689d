#!/usr/bin/env bash
# Start a local PostgreSQL server for the ildstudy tests and print its URL on stdout.
#
# Idempotent: installs Debian's `postgresql` package with apt-get only when no server binaries are found,
# creates a cluster only when none exists, starts it only when it is down, and creates the role and database
# `ildstudy` only when missing. Everything except the final URL goes to stderr, so callers can write
#     export ILDSTUDY_PG_URL="$(.ci/start-postgres.sh)"
#
# Settings (environment): ILDSTUDY_PG_PORT (5432), ILDSTUDY_PG_USER (ildstudy), ILDSTUDY_PG_PASSWORD (ildstudy),
# ILDSTUDY_PG_DB (ildstudy). Must run as root or as the postgres user (sudo is used when available otherwise).
set -euo pipefail

PORT="${ILDSTUDY_PG_PORT:-5432}"
DB_USER="${ILDSTUDY_PG_USER:-ildstudy}"
DB_PASSWORD="${ILDSTUDY_PG_PASSWORD:-ildstudy}"
DB_NAME="${ILDSTUDY_PG_DB:-ildstudy}"

log() { echo "start-postgres: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

as_postgres() {
    # Run a command as the postgres OS user.
    if [ "$(id -un)" = "postgres" ]; then "$@"
    elif [ "$(id -u)" -eq 0 ]; then
        if command -v runuser >/dev/null 2>&1; then runuser -u postgres -- "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
    else sudo -u postgres -- "$@"
    fi
}

server_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# 1. Install the server when missing.
if [ -z "$(server_bin)" ] || [ ! -x "$(server_bin)/pg_ctl" ]; then
    log "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >&2
    $SUDO apt-get install -y -q postgresql >&2
fi
BIN="$(server_bin)"
VERSION="$(basename "$(dirname "$BIN")")"
log "PostgreSQL $VERSION ($BIN)"

# 2. Create and start a cluster on $PORT.
SOCKET_ARGS=()
if command -v pg_lsclusters >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null 2>&1; then
    # Debian's postgresql-common tools.
    CLUSTER="$(pg_lsclusters --no-header 2>/dev/null | awk -v v="$VERSION" -v p="$PORT" '$1==v && $3==p {print $2; exit}')"
    if [ -z "$CLUSTER" ]; then
        CLUSTER="ildstudy"
        if ! pg_lsclusters --no-header | awk '{print $1" "$2}' | grep -qx "$VERSION $CLUSTER"; then
            log "creating cluster $VERSION/$CLUSTER on port $PORT"
            $SUDO pg_createcluster --port "$PORT" "$VERSION" "$CLUSTER" >&2
        fi
    fi
    STATUS="$(pg_lsclusters --no-header | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}')"
    if [ "$STATUS" != "online" ]; then
        log "starting cluster $VERSION/$CLUSTER"
        $SUDO pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
    fi
else
    # Plain initdb/pg_ctl (non-Debian layouts).
    DATA="${ILDSTUDY_PG_DATA:-/var/lib/postgresql/ildstudy-data}"
    if [ ! -f "$DATA/PG_VERSION" ]; then
        log "initdb $DATA"
        $SUDO mkdir -p "$DATA"
        $SUDO chown postgres: "$DATA"
        as_postgres "$BIN/initdb" -D "$DATA" --auth-local=peer --auth-host=scram-sha-256 >&2
    fi
    if ! as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        log "starting server in $DATA"
        as_postgres "$BIN/pg_ctl" -D "$DATA" -o "-p $PORT -k /tmp" -l "$DATA/server.log" -w start >&2
    fi
    SOCKET_ARGS=(-h /tmp)
fi

# 3. Wait until it accepts connections.
for _ in $(seq 1 60); do
    if as_postgres "$BIN/pg_isready" -q -p "$PORT" -h localhost; then break; fi
    sleep 0.5
done
as_postgres "$BIN/pg_isready" -p "$PORT" -h localhost >&2

# 4. Role and database (both idempotent).
psql_admin() { as_postgres "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -p "$PORT" "${SOCKET_ARGS[@]}" "$@"; }
psql_admin -d postgres >&2 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${DB_USER}') THEN
    CREATE ROLE "${DB_USER}" LOGIN PASSWORD '${DB_PASSWORD}';
  ELSE
    ALTER ROLE "${DB_USER}" LOGIN PASSWORD '${DB_PASSWORD}';
  END IF;
END
\$\$;
SQL
if [ "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'")" != "1" ]; then
    log "creating database ${DB_NAME}"
    psql_admin -d postgres -c "CREATE DATABASE \"${DB_NAME}\" OWNER \"${DB_USER}\"" >&2
fi

echo "postgresql://${DB_USER}:${DB_PASSWORD}@localhost:${PORT}/${DB_NAME}"
