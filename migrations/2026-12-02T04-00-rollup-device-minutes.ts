import { type Kysely, sql } from 'kysely';

// Frozen once landed: never edit, add a new migration instead. Imports nothing from src/.

/** Per core metric, the device-minute's min, max, sum, last and count (src/rollups/columns.ts). */
const METRICS = [
  'power_w',
  'hashrate_ths',
  'expected_hashrate_ths',
  'temp_c',
  'fan_rpm',
  'gpu_util_pct',
  'gpu_mem_used_bytes',
  'available_power_w',
];

/**
 * Device-minute staging (docs/rollups.md, "Staged device-minutes"): the minute build keeps each
 * device's reduced minute here until its hour is built from them, so an hour no longer rereads
 * its raw readings. Rows live about an hour; the hour build deletes them. No key: the minute
 * build deletes a range's rows before it writes them again, and reads go by (site, bucket).
 *
 * The upgrade: minutes the job built before this migration have no staged rows, and their hour
 * waits on rollup_dirty_hour (every built minute's hour is built or waits there). Those hours are
 * marked again whole, so their minutes are rebuilt with staging before the hour is built.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const values = METRICS.flatMap((m) => [
    `${m}_min double precision`,
    `${m}_max double precision`,
    `${m}_sum double precision`,
    `${m}_last double precision`,
    `${m}_n integer`,
  ]).join(',\n      ');
  await sql`
    CREATE TABLE rollup_device_1m_staged (
      site_id integer NOT NULL,
      device_id integer NOT NULL,
      bucket timestamptz NOT NULL,
      ${sql.raw(values)}
    )`.execute(db);
  await sql`CREATE INDEX rollup_device_1m_staged_site_bucket ON rollup_device_1m_staged (site_id, bucket)`.execute(
    db,
  );
  await sql`
    INSERT INTO rollup_dirty (site_id, from_ts, to_ts, readings)
    SELECT h.site_id, h.bucket, h.bucket + interval '1 hour',
      least((SELECT count(*) FROM readings r
             WHERE r.site_id = h.site_id AND r.ts >= h.bucket AND r.ts < h.bucket + interval '1 hour'), 2147483647)::int
    FROM (SELECT DISTINCT site_id, bucket FROM rollup_dirty_hour) h`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS rollup_device_1m_staged`.execute(db);
}
