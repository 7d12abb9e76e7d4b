#!/bin/sh
# First start of app-db only (docker-entrypoint-initdb.d): the application role.
# The owner (POSTGRES_USER) runs the migrations, which grant this role its rights;
# the application role can never UPDATE or DELETE the audit trail.
set -eu
: "${APP_ROLE:?}" "${APP_ROLE_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=role="$APP_ROLE" --set=password="$APP_ROLE_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SQL
