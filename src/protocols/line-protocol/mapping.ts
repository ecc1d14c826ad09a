/**
 * Which line-protocol measurements and fields become which hashwatt samples: a documented,
 * replaceable table. Tags are the labels device templates and rule filters read.
 *
 * Sources checked (field names, units, tags): Telegraf's plugin READMEs.
 * - `nvidia_smi`: tags `name` (GPU model), `index`, `uuid`, `pstate`, `compute_mode` (+ Telegraf's
 *   global `host`); fields `power_draw` (W, float), `utilization_gpu` (%), `temperature_gpu` (°C),
 *   `memory_used` / `memory_free` / `memory_total` (MiB), `fan_speed` (%, not rpm: no hashwatt
 *   metric, left unmapped), `clocks_current_sm` / `clocks_current_memory` (MHz),
 *   `driver_version` / `cuda_version` (strings, ignored).
 * - `ipmi_sensor` (schema v1 and v2): tags `name` (sensor, lower-cased with `_`), `unit` (`watts`,
 *   `degrees_c`, `rpm`, `percent`, ...), `host`, `server` (remote BMC); field `value` (float),
 *   v1 also `status` (1 = ok).
 * - `modbus`: measurement `modbus`, tags `name` (the configured device), `slave_id`, `type`; field
 *   names are the register names the operator configures: name them after hashwatt metrics
 *   (`power_w`, `inlet_temp_c`, ...) and they map as themselves.
 * - `hashwatt`: hashwatt's own measurement, `hashwatt,device=..,kind=..[,model=..][,index=..]
 *   power_w=..,temp_c=..`: every field must be a hashwatt metric name.
 */
import type { DeviceRule, MetricRule } from '../mapping.ts';

export interface MeasurementRule {
  readonly device: DeviceRule;
  /** Field key → rules; every rule whose filters match the point's tags produces a sample. */
  readonly fields?: Readonly<Record<string, readonly MetricRule[]>>;
  /**
   * Fields named after a hashwatt metric map as themselves (`index` from this tag, if given).
   * 'strict': any other field is a problem (`unknown_metric`); 'lenient': it is unmapped.
   */
  readonly metricFields?: { readonly mode: 'strict' | 'lenient'; readonly indexFrom?: string };
  /** Fields that are not metrics (versions, labels): neither mapped nor counted. */
  readonly ignoreFields?: readonly string[];
}

export interface LineProtocolMapping {
  readonly measurements: Readonly<Record<string, MeasurementRule>>;
}

const MIB = 1048576;

export const NVIDIA_SMI: MeasurementRule = {
  device: { device: ['{host}/gpu{index}', 'gpu{index}'], kind: 'gpu', modelFrom: 'name' },
  fields: {
    power_draw: [{ metric: 'power_w' }],
    utilization_gpu: [{ metric: 'gpu_util_pct' }],
    temperature_gpu: [{ metric: 'temp_c' }],
    memory_used: [{ metric: 'gpu_mem_used_bytes', scale: MIB }],
    memory_free: [{ metric: 'gpu_mem_free_bytes', scale: MIB }],
    clocks_current_sm: [{ metric: 'gpu_sm_clock_mhz' }],
    clocks_current_memory: [{ metric: 'gpu_mem_clock_mhz' }],
  },
  ignoreFields: ['driver_version', 'cuda_version', 'vbios_version', 'serial'],
};

export const IPMI_SENSOR: MeasurementRule = {
  device: { device: ['{server}', '{host}'], kind: 'other' },
  fields: {
    value: [
      // One reading of the whole server's input power beats the sum of its power supplies.
      {
        metric: 'power_w',
        where: { unit: 'watts' },
        match: { name: /total|consumption|sys_?power|pwr_?cons/i },
        priority: 2,
      },
      {
        metric: 'power_w',
        where: { unit: 'watts' },
        match: { name: /^(ps|psu|power_supply)_?\d/i },
        priority: 1,
        combine: 'sum',
      },
      {
        metric: 'inlet_temp_c',
        where: { unit: 'degrees_c' },
        match: { name: /inlet|ambient|intake/i },
        combine: 'max',
      },
      {
        metric: 'outlet_temp_c',
        where: { unit: 'degrees_c' },
        match: { name: /exhaust|outlet/i },
        combine: 'max',
      },
      { metric: 'temp_c', where: { unit: 'degrees_c' }, combine: 'max' },
      // `Fan1A`/`Fan1B` (a redundant pair) both land on fan 1: the faster one is kept.
      {
        metric: 'fan_speed_rpm',
        where: { unit: 'rpm' },
        indexFrom: 'name',
        indexPattern: /(\d+)/,
        combine: 'max',
      },
      { metric: 'fan_rpm', where: { unit: 'rpm' }, combine: 'mean' },
    ],
  },
  ignoreFields: ['status'],
};

export const MODBUS: MeasurementRule = {
  device: { device: ['{name}/{slave_id}', '{name}'], kind: 'meter' },
  metricFields: { mode: 'lenient' },
};

export const HASHWATT_MEASUREMENT: MeasurementRule = {
  device: { device: ['{device}'], kindFrom: 'kind', modelFrom: 'model' },
  metricFields: { mode: 'strict', indexFrom: 'index' },
};

export const DEFAULT_LINE_PROTOCOL_MAPPING: LineProtocolMapping = {
  measurements: {
    nvidia_smi: NVIDIA_SMI,
    ipmi_sensor: IPMI_SENSOR,
    modbus: MODBUS,
    hashwatt: HASHWATT_MEASUREMENT,
  },
};
