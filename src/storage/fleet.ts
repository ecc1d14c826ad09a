import { type Kysely, type RawBuilder, sql } from 'kysely';
import {
  type Database,
  type DeviceKind,
  type DeviceStatus,
  READING_METRICS,
  type ReadingMetrics,
  type SiteKind,
} from './schema.ts';

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
 * When a device of a site was last fresh: `now` minus the site's device_stale_after_s (its override,
 * else the default). `thresholds` is the site row's thresholds column.
 */
function freshAfterSql(thresholds: RawBuilder<unknown>, nowIso: string, defaultStaleAfterS: number) {
  const staleAfterS = sql`COALESCE((${thresholds}->>'device_stale_after_s')::float8, ${defaultStaleAfterS}::float8)`;
  return sql<Date>`${nowIso}::timestamptz - make_interval(secs => ${staleAfterS})`;
}

/**
 * classifyDevice (src/fleet/device-state.ts) in SQL, over the device_latest row aliased `latest`:
 * the one SQL form of the rule, shared by the fleet aggregate and the device listing, and held to
 * the TypeScript rule by tests/fleet.test.ts.
 */
function deviceStateSql(latest: string, freshAfter: RawBuilder<unknown>) {
  const column = (name: string) => sql.ref(`${latest}.${name}`);
  return sql<GroupState>`CASE
        WHEN ${column('status')} = 'curtailed' THEN 'curtailed'
        WHEN ${column('received_at')} < ${freshAfter} THEN 'stale'
        WHEN ${column('status')} IN ('error', 'offline') THEN 'down'
        WHEN ${column('kind')} = 'asic' AND ${column('hashrate_ths')} = 0 THEN 'down'
        ELSE 'up'
      END`;
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
  const freshAfter = sql.ref('t.fresh_after');
  const { rows } = await sql<DeviceGroup>`
    WITH t AS (
      SELECT id,
        ${freshAfterSql(sql.ref('thresholds'), now, defaults.deviceStaleAfterS)} AS fresh_after,
        COALESCE((thresholds->>'gpu_idle_util_max')::float8, ${defaults.gpuIdleUtilMax}::float8) * 100 AS idle_util_pct
      FROM sites
    )
    SELECT l.site_id, l.kind,
      ${deviceStateSql('l', freshAfter)} AS state,
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

/** One device of a site with its latest state: a row of the device listing. */
export interface LatestDeviceRow extends ReadingMetrics {
  device_id: number;
  /** The agent's name for the device, unique within its site: the listing's order and cursor key. */
  external_id: string;
  kind: DeviceKind;
  model: string | null;
  /** The latest reading's own timestamp (the device's clock). */
  ts: Date;
  /** When hashwatt received it (server clock): what freshness is judged by. */
  received_at: Date;
}

export interface LatestDeviceFilter {
  state?: GroupState;
  kind?: DeviceKind;
  /** Case-insensitive substring of the device's name. */
  nameContains?: string;
  /** Only devices whose name sorts after this one (the keyset cursor). */
  afterName?: string;
  limit: number;
}

/**
 * A page of one site's devices that have a latest state, in name order (the database's collation),
 * by keyset on (site_id, external_id): the unique index serves the order and the cursor, so a page
 * costs the same at any depth and inserts never repeat or skip a device already listed. `state`
 * filters by the same SQL rule as the fleet aggregate, at `nowMs`.
 */
export async function listLatestDevices(
  db: Kysely<Database>,
  siteId: number,
  nowMs: number,
  defaults: Pick<FleetQueryDefaults, 'deviceStaleAfterS'>,
  filter: LatestDeviceFilter,
): Promise<LatestDeviceRow[]> {
  const now = new Date(nowMs).toISOString();
  const conditions = [sql`d.site_id = ${siteId}`];
  if (filter.afterName !== undefined) conditions.push(sql`d.external_id > ${filter.afterName}`);
  if (filter.kind !== undefined) conditions.push(sql`d.kind = ${filter.kind}`);
  if (filter.nameContains !== undefined)
    conditions.push(sql`strpos(lower(d.external_id), lower(${filter.nameContains})) > 0`);
  if (filter.state !== undefined) {
    const freshAfter = freshAfterSql(sql.ref('s.thresholds'), now, defaults.deviceStaleAfterS);
    conditions.push(sql`${deviceStateSql('l', freshAfter)} = ${filter.state}`);
  }
  const metrics = READING_METRICS.map((name) => sql.ref(`l.${name}`));
  const { rows } = await sql<LatestDeviceRow>`
    SELECT d.id AS device_id, d.external_id, d.kind, d.model, l.ts, l.received_at, ${sql.join(metrics)}
    FROM devices d
    JOIN device_latest l ON l.device_id = d.id
    JOIN sites s ON s.id = d.site_id
    WHERE ${sql.join(conditions, sql` AND `)}
    ORDER BY d.external_id
    LIMIT ${filter.limit}`.execute(db);
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

/** The deployment's shared fleet aggregate (migrations/2026-12-02T03-00-fleet-snapshot.ts). */
export interface StoredFleetSnapshot<T> {
  takenAtMs: number;
  durationMs: number;
  sites: T[];
}

export async function writeFleetSnapshot<T>(
  db: Kysely<Database>,
  snapshot: StoredFleetSnapshot<T>,
): Promise<void> {
  const json = JSON.stringify(snapshot.sites);
  await sql`
    INSERT INTO fleet_snapshot (id, taken_at_ms, duration_ms, sites)
    VALUES (1, ${snapshot.takenAtMs}, ${snapshot.durationMs}, ${json}::jsonb)
    ON CONFLICT (id) DO UPDATE SET taken_at_ms = EXCLUDED.taken_at_ms, duration_ms = EXCLUDED.duration_ms,
      sites = EXCLUDED.sites`.execute(db);
}

export async function readFleetSnapshot<T>(
  db: Kysely<Database>,
): Promise<StoredFleetSnapshot<T> | undefined> {
  // As text: the service parses it once, rather than the driver building objects it then copies.
  const { rows } = await sql<{ t: number; d: number; s: string }>`
    SELECT taken_at_ms AS t, duration_ms AS d, sites::text AS s FROM fleet_snapshot WHERE id = 1`.execute(db);
  const row = rows[0];
  return row ? { takenAtMs: row.t, durationMs: row.d, sites: JSON.parse(row.s) as T[] } : undefined;
}
