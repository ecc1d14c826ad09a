import { type Kysely, sql } from 'kysely';
import type { Database, DeviceKind, DeviceStatus, SiteKind } from './schema.ts';

/** A site as the fleet aggregate needs it. */
export interface FleetSite {
  site_id: number;
  name: string;
  kind: SiteKind;
  capacity_w: number;
  thresholds: Record<string, unknown>;
}

export type GroupState = 'up' | 'down' | 'stale' | 'curtailed';

/** Sums over the devices of one site that share a kind, a state and freshness. */
export interface DeviceGroup {
  site_id: number;
  kind: DeviceKind;
  state: GroupState;
  /** Heard from within the site's device_stale_after_s (a curtailed device may be silent). */
  fresh: boolean;
  devices: number;
  last_received_ms: number;
  power_w: number;
  hashrate_ths: number;
  expected_hashrate_ths: number;
  /** Power of the group's devices that report a hashrate above zero. */
  hashing_power_w: number;
  with_util: number;
  util_ratio_sum: number;
  /** Devices at or under the site's gpu_idle_util_max. */
  util_idle: number;
  available_power_w: number | null;
  with_available: number;
}

export interface FleetQueryDefaults {
  deviceStaleAfterS: number;
  gpuIdleUtilMax: number;
}

export async function listFleetSites(db: Kysely<Database>): Promise<FleetSite[]> {
  const rows = await db
    .selectFrom('sites')
    .select(['id as site_id', 'name', 'kind', 'capacity_w', 'thresholds'])
    .orderBy('id')
    .execute();
  return rows;
}

/**
 * One pass over device_latest, grouped by (site, kind, state, fresh): a few thousand groups for a
 * fleet of 300 000 devices, aggregated where they live instead of shipped to Node. The CASE is
 * classifyDevice (src/fleet/device-state.ts) in SQL; tests/fleet.test.ts holds the two to agreement.
 */
export async function aggregateDeviceGroups(
  db: Kysely<Database>,
  nowMs: number,
  defaults: FleetQueryDefaults,
): Promise<DeviceGroup[]> {
  const now = new Date(nowMs).toISOString();
  const { rows } = await sql<DeviceGroup>`
    WITH t AS (
      SELECT id,
        ${now}::timestamptz - make_interval(secs => COALESCE((thresholds->>'device_stale_after_s')::float8,
          ${defaults.deviceStaleAfterS}::float8)) AS fresh_after,
        COALESCE((thresholds->>'gpu_idle_util_max')::float8, ${defaults.gpuIdleUtilMax}::float8) * 100 AS idle_util_pct
      FROM sites
    )
    SELECT l.site_id, l.kind,
      CASE
        WHEN l.status = 'curtailed' THEN 'curtailed'
        WHEN l.received_at < t.fresh_after THEN 'stale'
        WHEN l.status IN ('error', 'offline') THEN 'down'
        WHEN l.kind = 'asic' AND l.hashrate_ths = 0 THEN 'down'
        ELSE 'up'
      END AS state,
      l.received_at >= t.fresh_after AS fresh,
      count(*)::int AS devices,
      (extract(epoch FROM max(l.received_at)) * 1000)::float8 AS last_received_ms,
      COALESCE(sum(l.power_w), 0)::float8 AS power_w,
      COALESCE(sum(l.hashrate_ths), 0)::float8 AS hashrate_ths,
      COALESCE(sum(l.expected_hashrate_ths), 0)::float8 AS expected_hashrate_ths,
      COALESCE(sum(l.power_w) FILTER (WHERE l.hashrate_ths > 0), 0)::float8 AS hashing_power_w,
      count(l.gpu_util_pct)::int AS with_util,
      COALESCE(sum(l.gpu_util_pct / 100.0), 0)::float8 AS util_ratio_sum,
      count(*) FILTER (WHERE l.gpu_util_pct <= t.idle_util_pct)::int AS util_idle,
      sum(l.available_power_w)::float8 AS available_power_w,
      count(l.available_power_w)::int AS with_available
    FROM device_latest l JOIN t ON t.id = l.site_id
    GROUP BY 1, 2, 3, 4`.execute(db);
  return rows;
}

/** One device's latest state, named for per-device metrics. */
export interface DeviceLatestView {
  site: string;
  device: string;
  kind: DeviceKind;
  status: DeviceStatus | null;
  power_w: number | null;
  hashrate_ths: number | null;
  gpu_util_pct: number | null;
  temp_c: number | null;
  received_at: Date;
}

/** The latest state of every device of the sites that have at most `maxDevices` devices. */
export async function listDevicesOfSmallSites(
  db: Kysely<Database>,
  maxDevices: number,
): Promise<DeviceLatestView[]> {
  const { rows } = await sql<DeviceLatestView>`
    SELECT s.name AS site, d.external_id AS device, l.kind, l.status, l.power_w, l.hashrate_ths,
      l.gpu_util_pct, l.temp_c, l.received_at
    FROM device_latest l
    JOIN devices d ON d.id = l.device_id
    JOIN sites s ON s.id = l.site_id
    WHERE l.site_id IN (SELECT site_id FROM devices GROUP BY site_id HAVING count(*) <= ${maxDevices})
    ORDER BY s.name, d.external_id`.execute(db);
  return rows;
}
