/**
 * Metrics beyond the eight core columns: what GPUs, ASICs and the facility report besides power,
 * hashrate, temperature and utilisation. The names follow the catalog's discipline: the suffix is
 * the unit (`_c`, `_w`, `_mhz`, `_j`, `_rpm`), counters end in `_total`.
 *
 * Where they are stored: one float8 column each of `readings_extra` (docs/storage.md, "Extra
 * metrics": a wide row per device and instant measured 10× smaller and 7× faster than a row per
 * sample). A metric with an index (hashboard, fan, error class) has one column per index value,
 * `<name>_<index>`, so the set of series a site can create is bounded by design: its devices (capped
 * per site) × the columns listed here. A name or index outside the catalog is refused, counted and
 * reported to the sender, never stored elsewhere and never silently dropped.
 */
import { CORE_METRICS, type DeviceKind, type MetricType, type SiteAggregation } from './metrics.ts';

export interface ExtraMetricDefinition {
  readonly name: string;
  readonly unit: string;
  readonly type: MetricType;
  readonly description: string;
  readonly kinds: readonly DeviceKind[];
  /** What the sample's `index` names, where the hardware has several of the thing. */
  readonly index?: string;
}

/** Hashboards 0–7 and fans 0–7: more than any current miner or GPU server has. */
const EIGHT = ['0', '1', '2', '3', '4', '5', '6', '7'] as const;
const ECC_CLASSES = ['sbe_volatile', 'dbe_volatile', 'sbe_aggregate', 'dbe_aggregate'] as const;
const NVLINK_CLASSES = ['crc_flit', 'crc_data', 'replay', 'recovery'] as const;
/** 2^53: the largest integer a double (and so a float8 column) holds exactly, for counters and ids. */
const EXACT_INTEGER_MAX = 2 ** 53;

export const EXTRA_METRICS = [
  // GPU
  {
    name: 'gpu_xid_last',
    unit: 'xid',
    type: 'gauge',
    description: 'the code of the last XID error the driver reported (DCGM_FI_DEV_XID_ERRORS); 0 = none',
    kinds: ['gpu'],
    min: 0,
    max: 2 ** 32,
    siteAggregation: 'max',
  },
  {
    name: 'gpu_xid_errors_total',
    unit: 'errors',
    type: 'counter',
    description: 'XID errors the driver reported since the agent started counting them',
    kinds: ['gpu'],
    min: 0,
    max: EXACT_INTEGER_MAX,
    siteAggregation: 'sum',
  },
  {
    name: 'gpu_ecc_errors_total',
    unit: 'errors',
    type: 'counter',
    description: 'ECC errors; index: sbe_volatile | dbe_volatile | sbe_aggregate | dbe_aggregate',
    kinds: ['gpu'],
    index: 'ECC error class',
    indexes: ECC_CLASSES,
    min: 0,
    max: EXACT_INTEGER_MAX,
    siteAggregation: 'sum',
  },
  {
    name: 'gpu_throttle_reasons',
    unit: 'bitmask',
    type: 'gauge',
    description: 'NVML clock throttle (clocks event) reasons bitmask; 0 = not throttled',
    kinds: ['gpu'],
    min: 0,
    max: EXACT_INTEGER_MAX,
    siteAggregation: 'max',
  },
  {
    name: 'energy_j_total',
    unit: 'J',
    type: 'counter',
    description: 'energy consumed since the device (driver) started, in joules',
    kinds: ['gpu', 'asic', 'meter', 'pdu', 'other'],
    min: 0,
    max: 1e18,
    siteAggregation: 'sum',
  },
  {
    name: 'gpu_sm_clock_mhz',
    unit: 'MHz',
    type: 'gauge',
    description: 'streaming multiprocessor clock',
    kinds: ['gpu'],
    min: 0,
    max: 1e5,
    siteAggregation: 'mean',
  },
  {
    name: 'gpu_mem_clock_mhz',
    unit: 'MHz',
    type: 'gauge',
    description: 'memory clock',
    kinds: ['gpu'],
    min: 0,
    max: 1e5,
    siteAggregation: 'mean',
  },
  {
    name: 'gpu_mem_temp_c',
    unit: '°C',
    type: 'gauge',
    description: 'GPU memory (HBM) temperature',
    kinds: ['gpu'],
    min: -80,
    max: 250,
    siteAggregation: 'mean',
  },
  {
    name: 'gpu_nvlink_errors_total',
    unit: 'errors',
    type: 'counter',
    description: 'NVLink errors; index: crc_flit | crc_data | replay | recovery',
    kinds: ['gpu'],
    index: 'NVLink error class',
    indexes: NVLINK_CLASSES,
    min: 0,
    max: EXACT_INTEGER_MAX,
    siteAggregation: 'sum',
  },
  {
    name: 'gpu_mem_free_bytes',
    unit: 'bytes',
    type: 'gauge',
    description: 'GPU framebuffer memory free',
    kinds: ['gpu'],
    min: 0,
    max: EXACT_INTEGER_MAX,
    siteAggregation: 'sum',
  },
  // ASIC
  {
    name: 'chip_temp_c',
    unit: '°C',
    type: 'gauge',
    description: 'hottest chip temperature of a hashboard',
    kinds: ['asic'],
    index: 'hashboard',
    indexes: EIGHT,
    min: -80,
    max: 250,
    siteAggregation: 'mean',
  },
  {
    name: 'board_temp_c',
    unit: '°C',
    type: 'gauge',
    description: 'hottest PCB (board sensor) temperature of a hashboard',
    kinds: ['asic'],
    index: 'hashboard',
    indexes: EIGHT,
    min: -80,
    max: 250,
    siteAggregation: 'mean',
  },
  {
    name: 'fan_speed_rpm',
    unit: 'rpm',
    type: 'gauge',
    description: 'speed of one fan',
    kinds: ['asic', 'gpu', 'other'],
    index: 'fan',
    indexes: EIGHT,
    min: 0,
    max: 1e6,
    siteAggregation: 'mean',
  },
  {
    name: 'shares_accepted_total',
    unit: 'shares',
    type: 'counter',
    description: 'shares the pool(s) accepted, summed over pools',
    kinds: ['asic'],
    min: 0,
    max: EXACT_INTEGER_MAX,
    siteAggregation: 'sum',
  },
  {
    name: 'shares_rejected_total',
    unit: 'shares',
    type: 'counter',
    description: 'shares the pool(s) rejected, summed over pools',
    kinds: ['asic'],
    min: 0,
    max: EXACT_INTEGER_MAX,
    siteAggregation: 'sum',
  },
  {
    name: 'hashboard_shares_total',
    unit: 'shares',
    type: 'counter',
    description: 'valid shares a hashboard found (Braiins OS: hashrate = rate × 2^32 hashes)',
    kinds: ['asic'],
    index: 'hashboard',
    indexes: EIGHT,
    min: 0,
    max: EXACT_INTEGER_MAX,
    siteAggregation: 'sum',
  },
  {
    name: 'hardware_errors_total',
    unit: 'errors',
    type: 'counter',
    description:
      'hardware errors (nonces that failed validation on the miner): per hashboard, or without an index the whole miner',
    kinds: ['asic'],
    index: 'hashboard',
    // '' = no index: stock firmware reports one total, Braiins OS one per hashboard.
    indexes: ['', ...EIGHT],
    min: 0,
    max: EXACT_INTEGER_MAX,
    siteAggregation: 'sum',
  },
  {
    name: 'power_limit_w',
    unit: 'W',
    type: 'gauge',
    description: 'the power limit (target) the device is configured to',
    kinds: ['asic', 'gpu'],
    min: 0,
    max: 1e10,
    siteAggregation: 'sum',
  },
  // Facility
  {
    name: 'inlet_temp_c',
    unit: '°C',
    type: 'gauge',
    description: 'air or coolant temperature at the inlet',
    kinds: ['asic', 'gpu', 'meter', 'pdu', 'other'],
    min: -80,
    max: 250,
    siteAggregation: 'mean',
  },
  {
    name: 'outlet_temp_c',
    unit: '°C',
    type: 'gauge',
    description: 'air or coolant temperature at the outlet (exhaust)',
    kinds: ['asic', 'gpu', 'meter', 'pdu', 'other'],
    min: -80,
    max: 250,
    siteAggregation: 'mean',
  },
  {
    name: 'cooling_power_w',
    unit: 'W',
    type: 'gauge',
    description: 'power drawn by cooling (dry coolers, pumps, fans of the facility)',
    kinds: ['meter', 'other'],
    min: 0,
    max: 1e10,
    siteAggregation: 'sum',
  },
  {
    name: 'power_price_per_mwh',
    unit: 'currency/MWh',
    type: 'gauge',
    description:
      "the power price in force, in the site's currency per megawatt-hour (negative prices happen)",
    kinds: ['meter'],
    min: -1e6,
    max: 1e6,
    siteAggregation: 'mean',
  },
] as const satisfies readonly (ExtraMetricDefinition & {
  readonly indexes?: readonly string[];
  readonly min: number;
  readonly max: number;
  readonly siteAggregation: SiteAggregation | 'max';
})[];

export type ExtraMetricName = (typeof EXTRA_METRICS)[number]['name'];

/** Every core catalog name and extra metric name: the vocabulary a mapping may produce. */
export const KNOWN_METRIC_NAMES: readonly string[] = [
  ...CORE_METRICS.map((m) => m.name),
  ...EXTRA_METRICS.map((m) => m.name),
];

const KNOWN: ReadonlySet<string> = new Set<string>(KNOWN_METRIC_NAMES);

/** True for a core catalog name or an extra metric name: the vocabulary a mapping may produce. */
export function isKnownMetricName(name: string): boolean {
  return KNOWN.has(name);
}

/** One column of `readings_extra`: a metric, or one index value of an indexed metric. */
export interface ExtraColumn {
  /** `<metric>` or `<metric>_<index>`: the column name, and the key a latest-state view uses. */
  readonly column: string;
  readonly metric: ExtraMetricName;
  /** The index value, '' for none. */
  readonly index: string;
  readonly min: number;
  readonly max: number;
}

/** Every column of `readings_extra`, in the order the write statements list them. */
export const EXTRA_COLUMNS: readonly ExtraColumn[] = EXTRA_METRICS.flatMap((m) =>
  ('indexes' in m ? m.indexes : ['']).map((index) => ({
    column: index === '' ? m.name : `${m.name}_${index}`,
    metric: m.name,
    index,
    min: m.min,
    max: m.max,
  })),
);

const EXTRA_BY_NAME: ReadonlyMap<string, (typeof EXTRA_METRICS)[number]> = new Map(
  EXTRA_METRICS.map((m) => [m.name, m]),
);
const COLUMN_BY_KEY: ReadonlyMap<string, ExtraColumn> = new Map(
  EXTRA_COLUMNS.map((c) => [`${c.metric}\u0000${c.index}`, c]),
);

/** Why a metric name and index have no column. */
export type ExtraColumnProblem = {
  code: 'unknown_metric' | 'index_required' | 'unknown_index';
  message: string;
};

/**
 * The column an extra metric's sample is stored in, or why there is none: an unknown name, an
 * indexed metric sent without its index, or an index outside the catalog's list.
 */
export function extraColumn(metric: string, index: string | undefined): ExtraColumn | ExtraColumnProblem {
  const found = COLUMN_BY_KEY.get(`${metric}\u0000${index ?? ''}`);
  if (found) return found;
  const def = EXTRA_BY_NAME.get(metric);
  if (!def)
    return { code: 'unknown_metric', message: `${metric.slice(0, 64)} is not a hashwatt metric name` };
  if (!('indexes' in def)) return { code: 'unknown_index', message: `${metric} takes no index` };
  if (index === undefined || index === '')
    return { code: 'index_required', message: `${metric} needs an index (${def.index})` };
  const allowed = def.indexes.filter((i) => i !== '').join(', ');
  return {
    code: 'unknown_index',
    message: `${metric} index must be one of ${allowed}, got "${index.slice(0, 32)}"`,
  };
}
