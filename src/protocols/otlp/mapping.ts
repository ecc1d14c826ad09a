/**
 * Which OTLP metrics become which hashwatt samples: a documented, replaceable table. Labels are
 * the data point's attributes, then the resource's (a point attribute shadows a resource one).
 *
 * Names and units from the OpenTelemetry semantic conventions for hardware (docs/hardware/*.md):
 * `hw.power` (gauge, W), `hw.energy` (counter, J), `hw.temperature` (gauge, Cel), `hw.fan.speed`
 * (gauge, rpm), `hw.gpu.utilization` (gauge, unit `1`: a ratio 0..1, per `hw.gpu.task`),
 * `hw.gpu.memory.usage` (By); components are told apart by `hw.id`, typed by `hw.type`, and
 * belong to the host named by the resource (`host.name`). Metrics named after a hashwatt metric
 * (`power_w`, `chip_temp_c`, ...) map as themselves, with `index` and `kind` attributes.
 *
 * Device id: the resource names the prefix (`host.name`, else `service.instance.id`), the point the
 * component (`hw.id`, `gpu` as "gpuN", `device`): "gpu-node-07/gpu3". Without a component the
 * resource alone names the device; a point `device` alone is also a device.
 */
import type { DeviceRule, MetricRule } from '../mapping.ts';

export interface OtlpMetricEntry {
  readonly rules: readonly MetricRule[];
  /** A device rule for this metric only (host-level readings such as a temperature sensor). */
  readonly device?: DeviceRule;
}

export interface OtlpMapping {
  readonly device: DeviceRule;
  readonly metrics: Readonly<Record<string, OtlpMetricEntry>>;
  /** Metrics named after a hashwatt metric map as themselves; the index from this attribute. */
  readonly ownNames?: { readonly indexFrom: string };
  readonly limits: { readonly maxAttributes: number; readonly maxAttributeLength: number };
}

const HOST_LEVEL: DeviceRule = {
  device: ['{host.name}', '{service.instance.id}'],
  kindFrom: ['kind', 'hashwatt.kind'],
};

export const DEFAULT_OTLP_MAPPING: OtlpMapping = {
  device: {
    device: [
      '{host.name}/{hw.id}',
      '{host.name}/gpu{gpu}',
      '{host.name}/{device}',
      '{service.instance.id}/{hw.id}',
      '{service.instance.id}/gpu{gpu}',
      '{service.instance.id}/{device}',
      '{device}',
      '{host.name}',
      '{service.instance.id}',
    ],
    // `hw.type` = "gpu" is a hashwatt kind; other hardware types are not, and leave it unset.
    kindFrom: ['kind', 'hashwatt.kind', 'hw.type'],
    modelFrom: 'hw.model',
  },
  metrics: {
    'hw.power': { rules: [{ metric: 'power_w' }] },
    'hw.energy': { rules: [{ metric: 'energy_j_total' }] },
    'hw.gpu.utilization': {
      rules: [
        { metric: 'gpu_util_pct', where: { 'hw.gpu.task': 'general' }, scale: 100 },
        { metric: 'gpu_util_pct', where: { 'hw.gpu.task': '' }, scale: 100 },
      ],
    },
    'hw.gpu.memory.usage': { rules: [{ metric: 'gpu_mem_used_bytes' }] },
    'hw.temperature': { rules: [{ metric: 'temp_c', combine: 'max' }], device: HOST_LEVEL },
    'hw.fan.speed': {
      rules: [
        { metric: 'fan_speed_rpm', indexFrom: 'hw.id' },
        { metric: 'fan_rpm', combine: 'mean' },
      ],
      device: HOST_LEVEL,
    },
  },
  ownNames: { indexFrom: 'index' },
  limits: { maxAttributes: 128, maxAttributeLength: 4096 },
};
