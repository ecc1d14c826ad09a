import { type Kysely, sql } from 'kysely';
import type { Database, SiteKind } from './schema.ts';

/** Per-site sums over the latest state of its devices, as one SQL aggregate returns them. */
export interface SiteAggregate {
  site_id: number;
  name: string;
  kind: SiteKind;
  capacity_w: number;
  thresholds: Record<string, unknown>;
  /** Latest contact from any device of the site (epoch ms), null when none ever reported. */
  last_received_ms: number | null;
  devices_up: number;
  devices_down: number;
  devices_stale: number;
  devices_curtailed: number;
  meters_total: number;
  meters_fresh: number;
  /** Sums over fresh meters. */
  meter_power_w: number | null;
  meter_available_w: number | null;
  meters_with_available: number;
  /** Power of fresh devices by kind. */
  asic_power_w: number;
  gpu_power_w: number;
  other_power_w: number;
  /** Over fresh, not curtailed ASICs. */
  hashrate_ths: number;
  expected_hashrate_ths: number;
  hashing_power_w: number;
  gpus_fresh: number;
  gpus_with_util: number;
  gpu_util_ratio_sum: number;
  gpus_idle: number;
}

export interface FleetQueryDefaults {
  deviceStaleAfterS: number;
  gpuIdleUtilMax: number;
}

/**
 * One pass over device_latest for every site. The CASE is classifyDevice (src/fleet/device-state.ts)
 * in SQL: a fleet of 300 000 devices is aggregated where it lives instead of shipped to Node.
 */
export async function aggregateSites(
  db: Kysely<Database>,
  nowMs: number,
  defaults: FleetQueryDefaults,
): Promise<SiteAggregate[]> {
  const now = new Date(nowMs).toISOString();
  const { rows } = await sql<SiteAggregate>`
    WITH t AS (
      SELECT id, name, kind, capacity_w, thresholds,
        ${now}::timestamptz - make_interval(secs => COALESCE((thresholds->>'device_stale_after_s')::float8,
          ${defaults.deviceStaleAfterS}::float8)) AS fresh_after,
        COALESCE((thresholds->>'gpu_idle_util_max')::float8, ${defaults.gpuIdleUtilMax}::float8) * 100 AS idle_util_pct
      FROM sites
    ), d AS (
      SELECT l.site_id, l.kind, l.power_w, l.hashrate_ths, l.expected_hashrate_ths, l.gpu_util_pct,
        l.available_power_w, l.received_at, t.idle_util_pct,
        l.received_at >= t.fresh_after AS fresh,
        CASE
          WHEN l.status = 'curtailed' THEN 'curtailed'
          WHEN l.received_at < t.fresh_after THEN 'stale'
          WHEN l.status IN ('error', 'offline') THEN 'down'
          WHEN l.kind = 'asic' AND l.hashrate_ths = 0 THEN 'down'
          ELSE 'up'
        END AS state
      FROM device_latest l JOIN t ON t.id = l.site_id
    ), a AS (
      SELECT site_id,
        (extract(epoch FROM max(received_at)) * 1000)::float8 AS last_received_ms,
        count(*) FILTER (WHERE kind IN ('asic', 'gpu', 'other') AND state = 'up')::int AS devices_up,
        count(*) FILTER (WHERE kind IN ('asic', 'gpu', 'other') AND state = 'down')::int AS devices_down,
        count(*) FILTER (WHERE kind IN ('asic', 'gpu', 'other') AND state = 'stale')::int AS devices_stale,
        count(*) FILTER (WHERE kind IN ('asic', 'gpu', 'other') AND state = 'curtailed')::int AS devices_curtailed,
        count(*) FILTER (WHERE kind = 'meter')::int AS meters_total,
        count(*) FILTER (WHERE kind = 'meter' AND fresh)::int AS meters_fresh,
        sum(power_w) FILTER (WHERE kind = 'meter' AND fresh) AS meter_power_w,
        sum(available_power_w) FILTER (WHERE kind = 'meter' AND fresh) AS meter_available_w,
        count(available_power_w) FILTER (WHERE kind = 'meter' AND fresh)::int AS meters_with_available,
        COALESCE(sum(power_w) FILTER (WHERE kind = 'asic' AND fresh), 0) AS asic_power_w,
        COALESCE(sum(power_w) FILTER (WHERE kind = 'gpu' AND fresh), 0) AS gpu_power_w,
        COALESCE(sum(power_w) FILTER (WHERE kind = 'other' AND fresh), 0) AS other_power_w,
        COALESCE(sum(hashrate_ths) FILTER (WHERE kind = 'asic' AND fresh AND state <> 'curtailed'), 0) AS hashrate_ths,
        COALESCE(sum(expected_hashrate_ths) FILTER (WHERE kind = 'asic' AND fresh AND state <> 'curtailed'), 0)
          AS expected_hashrate_ths,
        COALESCE(sum(power_w) FILTER (WHERE kind = 'asic' AND fresh AND state <> 'curtailed' AND hashrate_ths > 0), 0)
          AS hashing_power_w,
        count(*) FILTER (WHERE kind = 'gpu' AND fresh)::int AS gpus_fresh,
        count(gpu_util_pct) FILTER (WHERE kind = 'gpu' AND fresh)::int AS gpus_with_util,
        COALESCE(sum(gpu_util_pct / 100.0) FILTER (WHERE kind = 'gpu' AND fresh), 0)::float8 AS gpu_util_ratio_sum,
        count(*) FILTER (WHERE kind = 'gpu' AND fresh AND gpu_util_pct <= idle_util_pct)::int AS gpus_idle
      FROM d GROUP BY site_id
    )
    SELECT t.id AS site_id, t.name, t.kind, t.capacity_w, t.thresholds, a.last_received_ms,
      COALESCE(a.devices_up, 0) AS devices_up, COALESCE(a.devices_down, 0) AS devices_down,
      COALESCE(a.devices_stale, 0) AS devices_stale, COALESCE(a.devices_curtailed, 0) AS devices_curtailed,
      COALESCE(a.meters_total, 0) AS meters_total, COALESCE(a.meters_fresh, 0) AS meters_fresh,
      a.meter_power_w, a.meter_available_w, COALESCE(a.meters_with_available, 0) AS meters_with_available,
      COALESCE(a.asic_power_w, 0) AS asic_power_w, COALESCE(a.gpu_power_w, 0) AS gpu_power_w,
      COALESCE(a.other_power_w, 0) AS other_power_w, COALESCE(a.hashrate_ths, 0) AS hashrate_ths,
      COALESCE(a.expected_hashrate_ths, 0) AS expected_hashrate_ths,
      COALESCE(a.hashing_power_w, 0) AS hashing_power_w, COALESCE(a.gpus_fresh, 0) AS gpus_fresh,
      COALESCE(a.gpus_with_util, 0) AS gpus_with_util, COALESCE(a.gpu_util_ratio_sum, 0) AS gpu_util_ratio_sum,
      COALESCE(a.gpus_idle, 0) AS gpus_idle
    FROM t LEFT JOIN a ON a.site_id = t.id
    ORDER BY t.id`.execute(db);
  return rows;
}
