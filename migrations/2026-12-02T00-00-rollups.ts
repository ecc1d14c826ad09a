import { type Kysely, sql } from 'kysely';

// Frozen once landed: never edit, add a new migration instead. Imports nothing from src/.

/** The site tiers' value columns, the same in the minute and the hour table. */
const SITE_VALUES = sql.raw(
  [
    'meter_power_w_min double precision',
    'meter_power_w_max double precision',
    'meter_power_w_avg double precision',
    'meter_power_w_last double precision',
    'meter_power_w_n integer',
    'asic_power_w_min double precision',
    'asic_power_w_max double precision',
    'asic_power_w_avg double precision',
    'asic_power_w_last double precision',
    'asic_power_w_n integer',
    'gpu_power_w_min double precision',
    'gpu_power_w_max double precision',
    'gpu_power_w_avg double precision',
    'gpu_power_w_last double precision',
    'gpu_power_w_n integer',
    'other_power_w_min double precision',
    'other_power_w_max double precision',
    'other_power_w_avg double precision',
    'other_power_w_last double precision',
    'other_power_w_n integer',
    'hashrate_ths_min double precision',
    'hashrate_ths_max double precision',
    'hashrate_ths_avg double precision',
    'hashrate_ths_last double precision',
    'hashrate_ths_n integer',
    'expected_hashrate_ths_min double precision',
    'expected_hashrate_ths_max double precision',
    'expected_hashrate_ths_avg double precision',
    'expected_hashrate_ths_last double precision',
    'expected_hashrate_ths_n integer',
    'temp_c_min double precision',
    'temp_c_max double precision',
    'temp_c_avg double precision',
    'temp_c_last double precision',
    'temp_c_n integer',
    'fan_rpm_min double precision',
    'fan_rpm_max double precision',
    'fan_rpm_avg double precision',
    'fan_rpm_last double precision',
    'fan_rpm_n integer',
    'gpu_util_pct_min double precision',
    'gpu_util_pct_max double precision',
    'gpu_util_pct_avg double precision',
    'gpu_util_pct_last double precision',
    'gpu_util_pct_n integer',
    'gpu_mem_used_bytes_min double precision',
    'gpu_mem_used_bytes_max double precision',
    'gpu_mem_used_bytes_avg double precision',
    'gpu_mem_used_bytes_last double precision',
    'gpu_mem_used_bytes_n integer',
    'available_power_w_min double precision',
    'available_power_w_max double precision',
    'available_power_w_avg double precision',
    'available_power_w_last double precision',
    'available_power_w_n integer',
  ].join(',\n      '),
);

/**
 * Rollup tiers (docs/rollups.md): per site at 1 minute and 1 hour, per device at 1 hour, each
 * partitioned by its bucket so retention drops whole partitions (the service creates them). The
 * columns follow src/rollups/columns.ts at the time of writing; tests/rollups-schema.test.ts holds
 * the two equal. The dirty log is what ingest appends in its own transaction and the rollup job
 * claims; it has no key on purpose, so no writer ever waits on another's marks.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE rollup_site_1m (
      site_id integer NOT NULL,
      bucket timestamptz NOT NULL,
      ${SITE_VALUES},
      power_price_per_mwh_avg double precision,
      PRIMARY KEY (site_id, bucket)
    ) PARTITION BY RANGE (bucket)`.execute(db);
  await sql`
    CREATE TABLE rollup_site_1h (
      site_id integer NOT NULL,
      bucket timestamptz NOT NULL,
      ${SITE_VALUES},
      energy_j double precision,
      mining_energy_j double precision,
      ai_energy_j double precision,
      other_energy_j double precision,
      power_minutes integer,
      pushed_cost double precision,
      priced_minutes integer,
      unpriced_energy_j double precision,
      PRIMARY KEY (site_id, bucket)
    ) PARTITION BY RANGE (bucket)`.execute(db);
  await sql`
    CREATE TABLE rollup_device_1h (
      site_id integer NOT NULL,
      device_id integer NOT NULL,
      bucket timestamptz NOT NULL,
      power_w_min double precision,
      power_w_max double precision,
      power_w_sum double precision,
      power_w_last double precision,
      power_w_n integer,
      hashrate_ths_min double precision,
      hashrate_ths_max double precision,
      hashrate_ths_sum double precision,
      hashrate_ths_last double precision,
      hashrate_ths_n integer,
      expected_hashrate_ths_min double precision,
      expected_hashrate_ths_max double precision,
      expected_hashrate_ths_sum double precision,
      expected_hashrate_ths_last double precision,
      expected_hashrate_ths_n integer,
      temp_c_min double precision,
      temp_c_max double precision,
      temp_c_sum double precision,
      temp_c_last double precision,
      temp_c_n integer,
      fan_rpm_min double precision,
      fan_rpm_max double precision,
      fan_rpm_sum double precision,
      fan_rpm_last double precision,
      fan_rpm_n integer,
      gpu_util_pct_min double precision,
      gpu_util_pct_max double precision,
      gpu_util_pct_sum double precision,
      gpu_util_pct_last double precision,
      gpu_util_pct_n integer,
      gpu_mem_used_bytes_min double precision,
      gpu_mem_used_bytes_max double precision,
      gpu_mem_used_bytes_sum double precision,
      gpu_mem_used_bytes_last double precision,
      gpu_mem_used_bytes_n integer,
      available_power_w_min double precision,
      available_power_w_max double precision,
      available_power_w_sum double precision,
      available_power_w_last double precision,
      available_power_w_n integer,
      energy_j double precision,
      power_minutes integer,
      PRIMARY KEY (site_id, device_id, bucket)
    ) PARTITION BY RANGE (bucket)`.execute(db);
  // Minutes [from_ts, to_ts) of a site whose raw readings changed since they were rolled up, and how
  // many readings the writes brought (the job sizes its transactions by them).
  await sql`CREATE TABLE rollup_dirty (site_id integer NOT NULL, from_ts timestamptz NOT NULL, to_ts timestamptz NOT NULL, readings integer NOT NULL DEFAULT 0)`.execute(
    db,
  );
  // Hours whose minutes were rolled up while the hour was still open: built when it closes.
  await sql`CREATE TABLE rollup_dirty_hour (site_id integer NOT NULL, bucket timestamptz NOT NULL)`.execute(
    db,
  );
  // The upgrade: everything already stored is marked, so it is rolled up before retention may drop
  // any of it (raw partitions are dropped only once no mark remains before their end).
  await sql`
    INSERT INTO rollup_dirty (site_id, from_ts, to_ts, readings)
    SELECT site_id, date_bin('1 minute', min(lo), timestamptz 'epoch'),
           date_bin('1 minute', max(hi), timestamptz 'epoch') + interval '1 minute',
           least(sum(n), 2147483647)::int
    FROM (SELECT site_id, min(ts) AS lo, max(ts) AS hi, count(*) AS n FROM readings GROUP BY site_id
          UNION ALL
          SELECT site_id, min(ts), max(ts), 0 FROM readings_extra GROUP BY site_id) stored
    GROUP BY site_id`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'rollup_dirty_hour',
    'rollup_dirty',
    'rollup_device_1h',
    'rollup_site_1h',
    'rollup_site_1m',
  ])
    await sql`DROP TABLE IF EXISTS ${sql.table(table)}`.execute(db);
}
