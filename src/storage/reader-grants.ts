import { type Kysely, sql } from 'kysely';
import type { Database } from './schema.ts';

/**
 * The database role dashboards read with (Grafana's Postgres datasource logs in as a member of it;
 * deploy/postgres/init/ creates both). It may read the telemetry and the sites' public columns,
 * never token hashes or the named tokens.
 */
export const READER_ROLE = 'hashwatt_reader';

/** Tables the reader may select from whole: telemetry, devices, alerts (partitions are read through their parent). */
export const READER_TABLES = ['readings', 'readings_extra', 'device_latest', 'devices', 'alerts'] as const;

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

/**
 * Gives the reader role exactly its grants, when the role exists (it does not on PGlite, or where
 * no dashboard reads the database): everything else revoked, so a grant made by an older version
 * (`SELECT ON ALL TABLES`, and default privileges that extend it to new tables such as api_tokens)
 * is taken back. Run at every start, after migrations: idempotent, and it covers tables new
 * migrations add. Returns whether the role exists.
 */
export async function applyReaderGrants(db: Kysely<Database>): Promise<boolean> {
  const { rows } = await sql<{
    n: number;
  }>`SELECT count(*)::int AS n FROM pg_roles WHERE rolname = ${READER_ROLE}`.execute(db);
  if (rows[0]!.n === 0) return false;
  const role = sql.id(READER_ROLE);
  await db.transaction().execute(async (trx) => {
    // Replicas starting together would otherwise update the same catalog rows at once.
    await sql`SELECT pg_advisory_xact_lock(7215002)`.execute(trx);
    await sql`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${role}`.execute(trx);
    for (const table of READER_TABLES) await sql`GRANT SELECT ON ${sql.table(table)} TO ${role}`.execute(trx);
    await sql`GRANT SELECT (${sql.join(READER_SITE_COLUMNS.map((c) => sql.id(c)))}) ON sites TO ${role}`.execute(
      trx,
    );
  });
  return true;
}
