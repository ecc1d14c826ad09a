/**
 * The metric catalog: every metric hashwatt accepts, in the domain's words, owned by no transport
 * and no storage. Validation, storage, the fleet state and the exporters read it; adding a metric
 * is one entry here (plus its storage, where it is a column).
 */

export const SITE_KINDS = ['mining', 'ai', 'mixed'] as const;
export type SiteKind = (typeof SITE_KINDS)[number];

export const DEVICE_KINDS = ['asic', 'gpu', 'meter', 'pdu', 'other'] as const;
export type DeviceKind = (typeof DEVICE_KINDS)[number];

export const DEVICE_STATUSES = ['ok', 'curtailed', 'idle', 'error', 'offline'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];

/** A gauge is a value at an instant; a counter only grows, except at a device reset. */
export type MetricType = 'gauge' | 'counter';

/** How a site's value is made from its devices' values at one instant. */
export type SiteAggregation = 'sum' | 'mean';

/**
 * How the value is stored: `float8` columns keep a double exactly; `float4` columns keep about
 * seven significant digits, so a value is stored as the nearest float4 (Math.fround).
 */
export type StoredPrecision = 'float8' | 'float4';

export interface MetricDefinition {
  /** The wire and column name; its suffix is its unit. */
  readonly name: string;
  readonly unit: string;
  readonly description: string;
  readonly type: MetricType;
  /** Accepted range, inclusive; anything outside is refused with `out_of_range`. */
  readonly min: number;
  readonly max: number;
  readonly precision: StoredPrecision;
  /** The device kinds that report it; others may send it, but no site figure reads it from them. */
  readonly kinds: readonly DeviceKind[];
  readonly siteAggregation: SiteAggregation;
}

const ALL_KINDS = DEVICE_KINDS;

/**
 * The core metrics: columns of the wide `readings` row, in the order the write statements list
 * them. The order is part of the storage contract (src/storage/readings.ts binds by position).
 */
export const CORE_METRICS = [
  {
    name: 'power_w',
    unit: 'W',
    description: 'electrical power drawn (a meter: the site or feed it measures)',
    type: 'gauge',
    min: 0,
    max: 1e10,
    precision: 'float8',
    kinds: ALL_KINDS,
    siteAggregation: 'sum',
  },
  {
    name: 'hashrate_ths',
    unit: 'TH/s',
    description: 'hashrate the miner reports, in terahashes per second',
    type: 'gauge',
    min: 0,
    max: 1e9,
    precision: 'float8',
    kinds: ['asic'],
    siteAggregation: 'sum',
  },
  {
    name: 'expected_hashrate_ths',
    unit: 'TH/s',
    description: "the hashrate the miner's firmware targets (nameplate or tuned)",
    type: 'gauge',
    min: 0,
    max: 1e9,
    precision: 'float8',
    kinds: ['asic'],
    siteAggregation: 'sum',
  },
  {
    name: 'temp_c',
    unit: '°C',
    description: 'the hottest temperature the device reports (chip, board or GPU core)',
    type: 'gauge',
    min: -80,
    max: 250,
    precision: 'float4',
    kinds: ['asic', 'gpu', 'other'],
    siteAggregation: 'mean',
  },
  {
    name: 'fan_rpm',
    unit: 'rpm',
    description: 'fan speed (the mean of its fans)',
    type: 'gauge',
    min: 0,
    max: 1e6,
    precision: 'float4',
    kinds: ['asic', 'gpu', 'other'],
    siteAggregation: 'mean',
  },
  {
    name: 'gpu_util_pct',
    unit: '%',
    description: 'GPU utilisation, 0 to 100',
    type: 'gauge',
    min: 0,
    max: 100,
    precision: 'float4',
    kinds: ['gpu'],
    siteAggregation: 'mean',
  },
  {
    name: 'gpu_mem_used_bytes',
    unit: 'bytes',
    description: 'GPU memory in use',
    type: 'gauge',
    min: 0,
    max: 2 ** 53,
    precision: 'float8',
    kinds: ['gpu'],
    siteAggregation: 'sum',
  },
  {
    name: 'available_power_w',
    unit: 'W',
    description: "power the site may draw now: its contract, or the grid operator's curtailment signal",
    type: 'gauge',
    min: 0,
    max: 1e10,
    precision: 'float8',
    kinds: ['meter'],
    siteAggregation: 'sum',
  },
] as const satisfies readonly MetricDefinition[];

export type CoreMetricName = (typeof CORE_METRICS)[number]['name'];

const BY_NAME: ReadonlyMap<string, MetricDefinition> = new Map(CORE_METRICS.map((m) => [m.name, m]));

/** The definition of a metric by its wire name, or undefined for a name the catalog does not know. */
export function findMetric(name: string): MetricDefinition | undefined {
  return BY_NAME.get(name);
}

/** True when a value is inside the metric's accepted range (NaN and infinities never are). */
export function isInRange(metric: MetricDefinition, value: number): boolean {
  return value >= metric.min && value <= metric.max;
}

/** The value as its column stores it: float4 columns round to the nearest float4. */
export function toStoredPrecision(metric: MetricDefinition, value: number): number {
  return metric.precision === 'float4' ? Math.fround(value) : value;
}

/** Combines devices' values of one metric into the site's value by the catalog's rule; null for none. */
export function aggregateAcrossDevices(metric: MetricDefinition, values: readonly number[]): number | null {
  if (values.length === 0) return null;
  let sum = 0;
  for (const v of values) sum += v;
  return metric.siteAggregation === 'sum' ? sum : sum / values.length;
}
