import { type Kysely, sql } from 'kysely';

// Frozen once landed: never edit, add a new migration instead. Imports nothing from src/.

/**
 * Storage for the metrics beyond the core columns (src/catalog/extra-metrics.ts): one wide row per
 * device and instant, keyed and partitioned like `readings` so the same retention drops both. A
 * separate table rather than more columns of `readings`, so batches without extra metrics (the
 * JSON agents') write exactly what they wrote before. docs/storage.md has the measurements.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE readings_extra (
      site_id integer NOT NULL,
      device_id integer NOT NULL,
      ts timestamptz NOT NULL,
      gpu_xid_last double precision,
      gpu_xid_errors_total double precision,
      gpu_ecc_errors_total_sbe_volatile double precision,
      gpu_ecc_errors_total_dbe_volatile double precision,
      gpu_ecc_errors_total_sbe_aggregate double precision,
      gpu_ecc_errors_total_dbe_aggregate double precision,
      gpu_throttle_reasons double precision,
      energy_j_total double precision,
      gpu_sm_clock_mhz double precision,
      gpu_mem_clock_mhz double precision,
      gpu_mem_temp_c double precision,
      gpu_nvlink_errors_total_crc_flit double precision,
      gpu_nvlink_errors_total_crc_data double precision,
      gpu_nvlink_errors_total_replay double precision,
      gpu_nvlink_errors_total_recovery double precision,
      gpu_mem_free_bytes double precision,
      chip_temp_c_0 double precision,
      chip_temp_c_1 double precision,
      chip_temp_c_2 double precision,
      chip_temp_c_3 double precision,
      chip_temp_c_4 double precision,
      chip_temp_c_5 double precision,
      chip_temp_c_6 double precision,
      chip_temp_c_7 double precision,
      board_temp_c_0 double precision,
      board_temp_c_1 double precision,
      board_temp_c_2 double precision,
      board_temp_c_3 double precision,
      board_temp_c_4 double precision,
      board_temp_c_5 double precision,
      board_temp_c_6 double precision,
      board_temp_c_7 double precision,
      fan_speed_rpm_0 double precision,
      fan_speed_rpm_1 double precision,
      fan_speed_rpm_2 double precision,
      fan_speed_rpm_3 double precision,
      fan_speed_rpm_4 double precision,
      fan_speed_rpm_5 double precision,
      fan_speed_rpm_6 double precision,
      fan_speed_rpm_7 double precision,
      shares_accepted_total double precision,
      shares_rejected_total double precision,
      hashboard_shares_total_0 double precision,
      hashboard_shares_total_1 double precision,
      hashboard_shares_total_2 double precision,
      hashboard_shares_total_3 double precision,
      hashboard_shares_total_4 double precision,
      hashboard_shares_total_5 double precision,
      hashboard_shares_total_6 double precision,
      hashboard_shares_total_7 double precision,
      hardware_errors_total double precision,
      hardware_errors_total_0 double precision,
      hardware_errors_total_1 double precision,
      hardware_errors_total_2 double precision,
      hardware_errors_total_3 double precision,
      hardware_errors_total_4 double precision,
      hardware_errors_total_5 double precision,
      hardware_errors_total_6 double precision,
      hardware_errors_total_7 double precision,
      power_limit_w double precision,
      inlet_temp_c double precision,
      outlet_temp_c double precision,
      cooling_power_w double precision,
      power_price_per_mwh double precision,
      PRIMARY KEY (site_id, ts, device_id)
    ) PARTITION BY RANGE (ts)`.execute(db);
  // Partitions of readings_extra for the days readings already has, so a database migrated while
  // the service ran keeps accepting extra metrics for every day it accepts readings.
  const { rows } = await sql<{ name: string; bound: string }>`
    SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'readings'::regclass`.execute(db);
  for (const row of rows) {
    const name = row.name.replace(/^readings_p/, 'readings_extra_p');
    await sql`CREATE TABLE ${sql.table(name)} PARTITION OF readings_extra ${sql.raw(row.bound)}`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS readings_extra CASCADE`.execute(db);
}
