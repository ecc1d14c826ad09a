/**
 * Metrics beyond the eight core columns, as the standard-protocol mappings (src/protocols/) produce
 * them. The names follow the catalog's discipline: the suffix is the unit (`_c`, `_w`, `_mhz`, `_j`,
 * `_rpm`, `_ths`), counters end in `_total`. They have no storage yet: ranges, precision and where
 * each is stored come with the extra-metric storage of the standard-protocols work.
 */
import { CORE_METRICS, type DeviceKind, type MetricType } from './metrics.ts';

export interface ExtraMetricDefinition {
  readonly name: string;
  readonly unit: string;
  readonly type: MetricType;
  readonly description: string;
  readonly kinds: readonly DeviceKind[];
  /** What the sample's `index` names, where the hardware has several of the thing. */
  readonly index?: string;
}

export const EXTRA_METRICS = [
  // GPU
  {
    name: 'gpu_xid_last',
    unit: 'xid',
    type: 'gauge',
    description: 'the code of the last XID error the driver reported (DCGM_FI_DEV_XID_ERRORS); 0 = none',
    kinds: ['gpu'],
  },
  {
    name: 'gpu_ecc_errors_total',
    unit: 'errors',
    type: 'counter',
    description: 'ECC errors; index: sbe_volatile | dbe_volatile | sbe_aggregate | dbe_aggregate',
    kinds: ['gpu'],
    index: 'ECC error class',
  },
  {
    name: 'gpu_throttle_reasons',
    unit: 'bitmask',
    type: 'gauge',
    description: 'NVML clock throttle (clocks event) reasons bitmask; 0 = not throttled',
    kinds: ['gpu'],
  },
  {
    name: 'energy_j_total',
    unit: 'J',
    type: 'counter',
    description: 'energy consumed since the device (driver) started, in joules',
    kinds: ['gpu', 'asic', 'meter', 'pdu', 'other'],
  },
  {
    name: 'gpu_sm_clock_mhz',
    unit: 'MHz',
    type: 'gauge',
    description: 'streaming multiprocessor clock',
    kinds: ['gpu'],
  },
  {
    name: 'gpu_mem_clock_mhz',
    unit: 'MHz',
    type: 'gauge',
    description: 'memory clock',
    kinds: ['gpu'],
  },
  {
    name: 'gpu_mem_temp_c',
    unit: '°C',
    type: 'gauge',
    description: 'GPU memory (HBM) temperature',
    kinds: ['gpu'],
  },
  {
    name: 'gpu_nvlink_errors_total',
    unit: 'errors',
    type: 'counter',
    description: 'NVLink errors; index: crc_flit | crc_data | replay | recovery',
    kinds: ['gpu'],
    index: 'NVLink error class',
  },
  {
    name: 'gpu_mem_free_bytes',
    unit: 'bytes',
    type: 'gauge',
    description: 'GPU framebuffer memory free',
    kinds: ['gpu'],
  },
  // ASIC
  {
    name: 'chip_temp_c',
    unit: '°C',
    type: 'gauge',
    description: 'hottest chip temperature of a hashboard',
    kinds: ['asic'],
    index: 'hashboard',
  },
  {
    name: 'board_temp_c',
    unit: '°C',
    type: 'gauge',
    description: 'hottest PCB (board sensor) temperature of a hashboard',
    kinds: ['asic'],
    index: 'hashboard',
  },
  {
    name: 'fan_speed_rpm',
    unit: 'rpm',
    type: 'gauge',
    description: 'speed of one fan',
    kinds: ['asic', 'gpu', 'other'],
    index: 'fan',
  },
  {
    name: 'shares_accepted_total',
    unit: 'shares',
    type: 'counter',
    description: 'shares the pool(s) accepted, summed over pools',
    kinds: ['asic'],
  },
  {
    name: 'shares_rejected_total',
    unit: 'shares',
    type: 'counter',
    description: 'shares the pool(s) rejected, summed over pools',
    kinds: ['asic'],
  },
  {
    name: 'hashboard_shares_total',
    unit: 'shares',
    type: 'counter',
    description: 'valid shares a hashboard found (Braiins OS: hashrate = rate × 2^32 hashes)',
    kinds: ['asic'],
    index: 'hashboard',
  },
  {
    name: 'hardware_errors_total',
    unit: 'errors',
    type: 'counter',
    description: 'hardware errors: shares that failed validation on the miner (invalid nonces)',
    kinds: ['asic'],
    index: 'hashboard',
  },
  {
    name: 'power_limit_w',
    unit: 'W',
    type: 'gauge',
    description: 'the power limit (target) the device is configured to',
    kinds: ['asic', 'gpu'],
  },
  // Facility
  {
    name: 'inlet_temp_c',
    unit: '°C',
    type: 'gauge',
    description: 'air or coolant temperature at the inlet',
    kinds: ['asic', 'gpu', 'meter', 'pdu', 'other'],
  },
  {
    name: 'outlet_temp_c',
    unit: '°C',
    type: 'gauge',
    description: 'air or coolant temperature at the outlet (exhaust)',
    kinds: ['asic', 'gpu', 'meter', 'pdu', 'other'],
  },
  {
    name: 'cooling_power_w',
    unit: 'W',
    type: 'gauge',
    description: 'power drawn by cooling (dry coolers, pumps, fans of the facility)',
    kinds: ['meter', 'other'],
  },
  {
    name: 'power_price_per_mwh',
    unit: 'currency/MWh',
    type: 'gauge',
    description: "the power price in force, in the site's currency per megawatt-hour",
    kinds: ['meter'],
  },
] as const satisfies readonly ExtraMetricDefinition[];

export type ExtraMetricName = (typeof EXTRA_METRICS)[number]['name'];

const KNOWN: ReadonlySet<string> = new Set<string>([
  ...CORE_METRICS.map((m) => m.name),
  ...EXTRA_METRICS.map((m) => m.name),
]);

/** True for a core catalog name or an extra metric name: the vocabulary a mapping may produce. */
export function isKnownMetricName(name: string): boolean {
  return KNOWN.has(name);
}
