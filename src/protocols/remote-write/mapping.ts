/**
 * Which Prometheus series become which hashwatt samples: a documented, replaceable table. The
 * default knows NVIDIA's dcgm-exporter, Braiins OS's own `/metrics` (bosminer, port 8081) and
 * hashwatt's own `hashwatt_<metric>` names. Series matching none are counted as unmapped.
 *
 * Sources checked (names and units):
 * - DCGM: dcgm-exporter etc/default-counters.csv and etc/dcp-metrics-included.csv (NVIDIA): units
 *   W, %, °C, MiB (FB_USED/FB_FREE), mJ (TOTAL_ENERGY_CONSUMPTION, a counter), MHz; XID_ERRORS is
 *   "value of the last XID error", a gauge. ECC and NVLink *_TOTAL fields are commented out in the
 *   default CSV (enabled by operators), CLOCK_THROTTLE_REASONS is in no default CSV (a bitmask;
 *   newer DCGM names it CLOCKS_EVENT_REASONS). Labels: `gpu`, `UUID`, `device`, `modelName`,
 *   `Hostname`.
 * - Braiins OS+: its "Monitoring with Prometheus and Grafana" documentation (metric list with
 *   labels) and Braiins' farm-monitor Grafana dashboards: `miner_power{type=wall|psu|estimated|
 *   limit}`, `temperature{hashboard,location=chip|pcb}`, `chip_temperature_celsius{hashboard}`,
 *   `fan_rpm_feedback{idx}`, `hashboard_nominal_hashrate_gigahashes_per_second{hashboard}`,
 *   `hashboard_shares{hashboard,type=valid|invalid|duplicate}` (a counter of shares: hashrate is
 *   rate × 2^32, which a stateless decoder cannot give per sample — see hashboard_shares_total),
 *   `stratum_accepted_shares_counter` / `stratum_rejected_shares_counter` (one series per pool).
 */
import type { DeviceRule, MetricRule } from '../mapping.ts';

export interface RemoteWriteRule extends MetricRule {
  /**
   * The DCGM field's value type, whose "blank" sentinels are filtered (reported as `dcgm_blank`):
   * int64 blanks are 0x7ffffffffffffff0..ff (all 2^63 once a float64), fp64 blanks 2^47..2^47+15.
   * int32 blanks 0x7ffffff0..ff are filtered for every DCGM field.
   */
  readonly dcgm?: 'int64' | 'fp64';
}

/** A set of metric names that share one way of naming the device. */
export interface SeriesFamily {
  readonly name: string;
  readonly device: DeviceRule;
  /** Metric name → rules; every rule whose `where` matches produces a sample. */
  readonly metrics: Readonly<Record<string, readonly RemoteWriteRule[]>>;
}

export interface RemoteWriteMapping {
  readonly families: readonly SeriesFamily[];
  /**
   * hashwatt's own names: `<prefix><metric>` where <metric> is a known hashwatt metric name, with
   * the device, kind, model and index in labels: hashwatt_power_w{device="..",kind="asic"}.
   */
  readonly own?: { readonly prefix: string; readonly device: DeviceRule; readonly indexFrom: string };
  /** Bounds per series: a series past them is skipped and reported, never decoded further. */
  readonly limits: {
    readonly maxLabels: number;
    readonly maxLabelNameLength: number;
    readonly maxLabelValueLength: number;
  };
}

const MIB = 1048576;

const dcgm = (
  metric: string,
  type: 'int64' | 'fp64',
  extra: Partial<RemoteWriteRule> = {},
): RemoteWriteRule[] => [{ metric, dcgm: type, ...extra }];

export const DCGM_FAMILY: SeriesFamily = {
  name: 'dcgm',
  // Hostname is set by dcgm-exporter (the node name); behind some setups only Prometheus'
  // `instance` names the host.
  device: { device: ['{Hostname}/gpu{gpu}', '{instance}/gpu{gpu}'], kind: 'gpu', modelFrom: 'modelName' },
  metrics: {
    DCGM_FI_DEV_POWER_USAGE: dcgm('power_w', 'fp64'),
    DCGM_FI_DEV_GPU_UTIL: dcgm('gpu_util_pct', 'int64'),
    DCGM_FI_DEV_GPU_TEMP: dcgm('temp_c', 'int64'),
    DCGM_FI_DEV_MEMORY_TEMP: dcgm('gpu_mem_temp_c', 'int64'),
    DCGM_FI_DEV_FB_USED: dcgm('gpu_mem_used_bytes', 'int64', { scale: MIB }),
    DCGM_FI_DEV_FB_FREE: dcgm('gpu_mem_free_bytes', 'int64', { scale: MIB }),
    DCGM_FI_DEV_XID_ERRORS: dcgm('gpu_xid_last', 'int64'),
    DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: dcgm('energy_j_total', 'int64', { divideBy: 1000 }),
    DCGM_FI_DEV_SM_CLOCK: dcgm('gpu_sm_clock_mhz', 'int64'),
    DCGM_FI_DEV_MEM_CLOCK: dcgm('gpu_mem_clock_mhz', 'int64'),
    DCGM_FI_DEV_ECC_SBE_VOL_TOTAL: dcgm('gpu_ecc_errors_total', 'int64', { index: 'sbe_volatile' }),
    DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: dcgm('gpu_ecc_errors_total', 'int64', { index: 'dbe_volatile' }),
    DCGM_FI_DEV_ECC_SBE_AGG_TOTAL: dcgm('gpu_ecc_errors_total', 'int64', { index: 'sbe_aggregate' }),
    DCGM_FI_DEV_ECC_DBE_AGG_TOTAL: dcgm('gpu_ecc_errors_total', 'int64', { index: 'dbe_aggregate' }),
    DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: dcgm('gpu_nvlink_errors_total', 'int64', {
      index: 'crc_flit',
    }),
    DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL: dcgm('gpu_nvlink_errors_total', 'int64', {
      index: 'crc_data',
    }),
    DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: dcgm('gpu_nvlink_errors_total', 'int64', {
      index: 'replay',
    }),
    DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL: dcgm('gpu_nvlink_errors_total', 'int64', {
      index: 'recovery',
    }),
    DCGM_FI_DEV_CLOCK_THROTTLE_REASONS: dcgm('gpu_throttle_reasons', 'int64'),
    DCGM_FI_DEV_CLOCKS_EVENT_REASONS: dcgm('gpu_throttle_reasons', 'int64'),
  },
};

export const BRAIINS_FAMILY: SeriesFamily = {
  name: 'braiins',
  // bosminer labels nothing with the miner's name: Prometheus' `instance` (ip:8081) is the device.
  device: { device: ['{instance}'], kind: 'asic', modelFrom: 'model' },
  metrics: {
    miner_power: [
      // The wall meter beats the PSU reading, which beats the firmware's estimate.
      { metric: 'power_w', where: { type: 'wall' }, priority: 2 },
      { metric: 'power_w', where: { type: 'psu' }, priority: 1 },
      { metric: 'power_w', where: { type: 'estimated' } },
      { metric: 'power_w', where: { type: 'estimate' } },
      { metric: 'power_limit_w', where: { type: 'limit' } },
    ],
    miner_power_target_w: [{ metric: 'power_limit_w', where: { type: 'configured' }, priority: 1 }],
    chip_temperature_celsius: [
      { metric: 'chip_temp_c', indexFrom: 'hashboard', combine: 'max' },
      { metric: 'temp_c', combine: 'max' },
    ],
    temperature: [
      { metric: 'chip_temp_c', where: { location: 'chip' }, indexFrom: 'hashboard', combine: 'max' },
      { metric: 'board_temp_c', where: { location: 'pcb' }, indexFrom: 'hashboard', combine: 'max' },
      { metric: 'temp_c', combine: 'max' },
    ],
    pcb_temperature_celsius: [{ metric: 'board_temp_c', indexFrom: 'hashboard', combine: 'max' }],
    fan_rpm_feedback: [
      { metric: 'fan_speed_rpm', indexFrom: 'idx' },
      { metric: 'fan_rpm', combine: 'mean' },
    ],
    hashboard_nominal_hashrate_gigahashes_per_second: [
      { metric: 'expected_hashrate_ths', divideBy: 1000, combine: 'sum' },
    ],
    hashboard_shares: [
      { metric: 'hashboard_shares_total', where: { type: 'valid' }, indexFrom: 'hashboard' },
      // Older bosminer has no `type` label: all its shares are the valid ones.
      { metric: 'hashboard_shares_total', where: { type: '' }, indexFrom: 'hashboard' },
      { metric: 'hardware_errors_total', where: { type: 'invalid' }, indexFrom: 'hashboard' },
    ],
    stratum_accepted_shares_counter: [{ metric: 'shares_accepted_total', combine: 'sum' }],
    stratum_rejected_shares_counter: [{ metric: 'shares_rejected_total', combine: 'sum' }],
  },
};

export const DEFAULT_REMOTE_WRITE_MAPPING: RemoteWriteMapping = {
  families: [DCGM_FAMILY, BRAIINS_FAMILY],
  own: {
    prefix: 'hashwatt_',
    device: { device: ['{device}'], kindFrom: 'kind', modelFrom: 'model' },
    indexFrom: 'index',
  },
  // Prometheus itself sets no limit by default; real DCGM series carry about 10 labels. These
  // bound the work and memory one series can cost.
  limits: { maxLabels: 64, maxLabelNameLength: 256, maxLabelValueLength: 4096 },
};
