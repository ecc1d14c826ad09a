import { type Kysely, sql } from 'kysely';
import type { Database } from './schema.ts';

/**
 * The database role dashboards read with (Grafana's Postgres datasource logs in as a member of it;
 * deploy/postgres/init/ creates both). It may read the telemetry and the sites' public columns,
 * never token hashes or the named tokens.
 */
export const READER_ROLE = 'hashwatt_reader';

/** Tables the reader may select from whole: telemetry, devices, alerts (partitions are read through their parent). */
export const READER_TABLES = [
  'readings',
  'readings_extra',
  'rollup_site_1m',
  'rollup_site_1h',
  'rollup_device_1h',
  'device_latest',
  'devices',
  'alerts',
] as const;

/** Columns of `sites` the reader may select: all but `token_hash` (and nothing that is a secret). */
export const READER_SITE_COLUMNS = [
  'id',
  'name',
  'kind',
  'capacity_w',
  'region',
  'timezone',
  'metadata',
  'thresholds',
  'created_at',
  'updated_at',
] as const;

/** The login role older init scripts granted to directly (`GRAFANA_DB_USER`'s default). */
export const LEGACY_LOGIN_ROLE = 'grafana_reader';

/**
 * Gives the reader role exactly its grants: everything else revoked, so a grant made by an older
 * version is taken back. Older init scripts granted `SELECT ON ALL TABLES` and default privileges
 * (which extend it to every new table, api_tokens included) straight to the login role: those are
 * revoked from it, and it is made a member of the reader role instead (created when missing).
 * Run at every start, after migrations: idempotent, and it covers tables new migrations add.
 * Returns whether a reader role exists afterwards (it does not on PGlite, or where no dashboard
 * reads the database).
 */
export async function applyReaderGrants(
  db: Kysely<Database>,
  legacyLoginRoles: readonly string[] = [LEGACY_LOGIN_ROLE],
): Promise<boolean> {
  const { rows } = await sql<{ rolname: string }>`
    SELECT rolname FROM pg_roles WHERE rolname = ANY(${`{${[READER_ROLE, ...legacyLoginRoles].map((r) => `"${r}"`).join(',')}}`}::text[])`.execute(
    db,
  );
  const present = new Set(rows.map((r) => r.rolname));
  const legacy = legacyLoginRoles.filter((r) => present.has(r));
  if (!present.has(READER_ROLE) && legacy.length === 0) return false;
  const role = sql.id(READER_ROLE);
  await db.transaction().execute(async (trx) => {
    // Replicas starting together would otherwise update the same catalog rows at once.
    await sql`SELECT pg_advisory_xact_lock(7215002)`.execute(trx);
    if (!present.has(READER_ROLE)) await sql`CREATE ROLE ${role} NOLOGIN`.execute(trx);
    for (const name of legacy) {
      const login = sql.id(name);
      await sql`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${login}`.execute(trx);
      await sql`ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM ${login}`.execute(trx);
      await sql`GRANT ${role} TO ${login}`.execute(trx);
    }
    await sql`ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM ${role}`.execute(trx);
    await sql`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${role}`.execute(trx);
    await sql`GRANT USAGE ON SCHEMA public TO ${role}`.execute(trx);
    for (const table of READER_TABLES) await sql`GRANT SELECT ON ${sql.table(table)} TO ${role}`.execute(trx);
    await sql`GRANT SELECT (${sql.join(READER_SITE_COLUMNS.map((c) => sql.id(c)))}) ON sites TO ${role}`.execute(
      trx,
    );
  });
  return true;
}
