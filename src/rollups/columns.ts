/**
 * The rollup tiers' columns, derived from the metric catalog (docs/rollups.md has the measured
 * design). A site row holds, per power group and per core metric, the sum over the site's devices
 * of each device's min / max / avg / last in the bucket, and `_n`, how many devices had it: both
 * levels of the site rule (each device reduced first, then devices combined) are then readable
 * from one row. A device row holds min, max, sum, last and count, so its buckets merge exactly.
 */
import { CORE_METRICS, type DeviceKind } from '../catalog/index.ts';
import { COMPUTE_KINDS } from '../fleet/device-state.ts';

export const ROLLUP_AGGS = ['min', 'max', 'avg', 'last'] as const;
export type RollupAgg = (typeof ROLLUP_AGGS)[number];

/** Device kinds whose power is the site's drawn power when its meters are not all reporting (never PDUs). */
export const DEVICE_POWER_KINDS = COMPUTE_KINDS;
/** Power is kept per group: the meters apart (the rule chooses between them and the devices). */
export const POWER_GROUPS: readonly DeviceKind[] = ['meter', ...DEVICE_POWER_KINDS];
export type PowerGroup = DeviceKind;

/** A core metric other than power, combined over the devices of its catalog kinds. */
export interface SiteRollupMetric {
  name: string;
  kinds: readonly DeviceKind[];
}

/** Every core metric but power_w (which has its groups), as the raw site path reads them. */
export const SITE_ROLLUP_METRICS: readonly SiteRollupMetric[] = CORE_METRICS.filter(
  (m) => m.name !== 'power_w',
).map((m) => ({ name: m.name, kinds: m.kinds }));

/** The prefix of a site row's columns for a metric (power by group). */
export function sitePrefix(metric: string, group?: PowerGroup): string {
  return group ? `${group}_${metric}` : metric;
}

/** Site-minute and site-hour value columns, in DDL order. */
export const SITE_COLUMNS: readonly string[] = [
  ...POWER_GROUPS.map((g) => sitePrefix('power_w', g)),
  ...SITE_ROLLUP_METRICS.map((m) => m.name),
].flatMap((prefix) => [...ROLLUP_AGGS.map((a) => `${prefix}_${a}`), `${prefix}_n`]);

/** The mean pushed power price of the minute (`power_price_per_mwh`, an extra metric), if any. */
export const SITE_MINUTE_PRICE = 'power_price_per_mwh_avg';

/**
 * A site hour's energy by the rule of src/history/energy.ts (per minute with data, its mean drawn
 * power × 60 s), kept in the hour because its minutes expire first; and its cost inputs: what the
 * minutes with a pushed price cost, and the energy of those without (priced by the tariff on read).
 */
export const SITE_HOUR_ENERGY = [
  'energy_j',
  'mining_energy_j',
  'ai_energy_j',
  'other_energy_j',
  'power_minutes',
  'pushed_cost',
  'priced_minutes',
  'unpriced_energy_j',
] as const;

/** Per core metric min, max, sum, last, n: a device's bucket in a form that merges exactly. */
const DEVICE_VALUES: readonly string[] = CORE_METRICS.flatMap((m) =>
  ['min', 'max', 'sum', 'last', 'n'].map((a) => `${m.name}_${a}`),
);

/** Device-hour value columns: the device's values over the hour, then the hour's energy. */
export const DEVICE_COLUMNS: readonly string[] = [...DEVICE_VALUES, 'energy_j', 'power_minutes'];

/**
 * Staged device-minute value columns (rollup_device_1m_staged): what the minute build reduced
 * each device's minute to, kept until the hour is built from it instead of from raw.
 */
export const STAGED_COLUMNS: readonly string[] = DEVICE_VALUES;

/** The SQL type of a rollup column: counts are integers, everything else a double. */
export function columnType(column: string): 'integer' | 'double precision' {
  return column.endsWith('_n') || column.endsWith('_minutes') ? 'integer' : 'double precision';
}
