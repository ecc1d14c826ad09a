#!/usr/bin/env bash
# Creates the read-only roles Grafana's Postgres datasource logs in with
# (grafana/provisioning/datasources/hashwatt.yaml).
#
# The official postgres image runs this once, when it initialises an empty data directory
# (/docker-entrypoint-initdb.d), as POSTGRES_USER on POSTGRES_DB — before hashwatt has created any
# table. So this only creates the roles: `hashwatt_reader` (no login), which hashwatt itself gives
# exactly its grants at every start (src/storage/reader-grants.ts: the telemetry tables and the
# sites' public columns, never token hashes or the named API tokens), and the login role Grafana
# uses, a member of it.
set -euo pipefail

reader="${GRAFANA_DB_USER:-grafana_reader}"
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD for the Grafana read-only role}"
owner="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$owner}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$owner" --dbname "$database" \
  -v reader="$reader" -v password="$GRAFANA_DB_PASSWORD" -v database="$database" <<'SQL'
-- Roles belong to the cluster: another database on it may have created this one already.
DO $$ BEGIN CREATE ROLE hashwatt_reader NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE ROLE :"reader" WITH LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT IN ROLE hashwatt_reader;
-- Every transaction it opens is read-only, and a runaway dashboard query is cut off.
ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '30s';
GRANT CONNECT ON DATABASE :"database" TO :"reader";
GRANT USAGE ON SCHEMA public TO hashwatt_reader;
SQL
