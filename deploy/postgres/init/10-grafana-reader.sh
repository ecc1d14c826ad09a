#!/usr/bin/env bash
# Creates the read-only role Grafana's Postgres datasource logs in with
# (grafana/provisioning/datasources/hashwatt.yaml).
#
# The official postgres image runs this once, when it initialises an empty data directory
# (/docker-entrypoint-initdb.d), as POSTGRES_USER on POSTGRES_DB — before hashwatt has created any
# table. hashwatt's migrations and daily partitions are created later by POSTGRES_USER, so the
# default privileges below are what make them readable; the GRANT on existing tables covers a rerun
# on a database that already has them.
set -euo pipefail

reader="${GRAFANA_DB_USER:-grafana_reader}"
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD for the Grafana read-only role}"
owner="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$owner}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$owner" --dbname "$database" \
  -v reader="$reader" -v password="$GRAFANA_DB_PASSWORD" -v owner="$owner" -v database="$database" <<'SQL'
CREATE ROLE :"reader" WITH LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
-- Every transaction it opens is read-only, and a runaway dashboard query is cut off.
ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '30s';
GRANT CONNECT ON DATABASE :"database" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
SQL
