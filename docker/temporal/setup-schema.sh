#!/bin/sh
# Create or upgrade Temporal's two databases on temporal-db (idempotent).
# Runs in the temporalio/admin-tools image; reads DB_HOST, DB_PORT, POSTGRES_USER, SQL_PASSWORD.
set -eu

: "${DB_HOST:?}" "${DB_PORT:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

echo "waiting for ${DB_HOST}:${DB_PORT}"
tries=0
until nc -z -w 2 "$DB_HOST" "$DB_PORT"; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "database not reachable" >&2; exit 1; }
  sleep 1
done

sql() {
  temporal-sql-tool --plugin postgres12 --ep "$DB_HOST" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

for db in temporal temporal_visibility; do
  case "$db" in
    temporal) versioned="$SCHEMA_DIR/temporal/versioned" ;;
    *) versioned="$SCHEMA_DIR/visibility/versioned" ;;
  esac
  sql --db "$db" create || true           # already there on every run after the first
  sql --db "$db" setup-schema -v 0.0 || true
  sql --db "$db" update-schema -d "$versioned"
done
echo "temporal schema up to date"
