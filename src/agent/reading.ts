/**
 * The readings the site agent sends: the wire shape of docs/ingest.md, core metrics and `extras`,
 * checked against the catalog before they leave. A value the service would refuse (out of range,
 * not finite, an exporter's placeholder, an index the catalog does not list) is dropped from the
 * reading here and counted, so one odd sensor never costs the whole reading its other values.
 */
import {
  CORE_METRICS,
  type CoreMetricName,
  type DeviceKind,
  type DeviceStatus,
  EXTRA_METRICS,
  type ExtraMetricName,
  extraColumn,
  MODEL_NAME_MAX,
  nameProblem,
} from '../catalog/index.ts';

/** A metric of `extras`: a number, or index → number for hashboards, fans and error classes. */
export type ExtraValue = number | Readonly<Record<string, number>>;

export type CoreMetrics = { -readonly [K in CoreMetricName]?: number };

/** One reading as the agent sends it. `ts` is epoch milliseconds of the agent's clock. */
export interface AgentReading extends CoreMetrics {
  device: string;
  kind: DeviceKind;
  ts: number;
  model?: string;
  status?: DeviceStatus;
  extras?: Partial<Record<ExtraMetricName, ExtraValue>>;
}

/** Why a value was left out of a reading. */
export interface DroppedValue {
  field: string;
  reason: 'not_finite' | 'out_of_range' | 'sentinel' | 'unknown_index';
}

const CORE = new Map<string, (typeof CORE_METRICS)[number]>(CORE_METRICS.map((m) => [m.name, m]));
const EXTRA = new Map<string, (typeof EXTRA_METRICS)[number]>(EXTRA_METRICS.map((m) => [m.name, m]));

/**
 * Exporters' "no data" placeholders (docs/ingest.md): DCGM's int32 and int64 blanks and its fp64
 * blanks. Anything this large is no measurement any metric of the catalog could hold.
 */
export function isSentinel(value: number): boolean {
  if (value >= 2147483632 && value <= 2147483647) return true; // 0x7ffffff0..0x7fffffff
  if (value >= 2 ** 47 && value <= 2 ** 47 + 15) return true;
  return value >= 9.2e18; // every int64 blank near 2^63
}

function check(value: number, min: number, max: number): DroppedValue['reason'] | null {
  if (!Number.isFinite(value)) return 'not_finite';
  if (isSentinel(value)) return 'sentinel';
  if (value < min || value > max) return 'out_of_range';
  return null;
}

/**
 * The reading with every value the service would refuse removed, and the list of what was removed.
 * `-1` W (stock firmware's "unknown") is out of range like any negative power.
 */
export function finalizeReading(reading: AgentReading): { reading: AgentReading; dropped: DroppedValue[] } {
  const dropped: DroppedValue[] = [];
  const out: AgentReading = { device: reading.device, kind: reading.kind, ts: reading.ts };
  if (reading.model !== undefined) {
    const model = reading.model.trim().slice(0, MODEL_NAME_MAX);
    if (model !== '' && nameProblem(model, MODEL_NAME_MAX) === undefined) out.model = model;
  }
  for (const [name, def] of CORE) {
    const value = reading[name as CoreMetricName];
    if (value === undefined) continue;
    const reason = check(value, def.min, def.max);
    if (reason) dropped.push({ field: name, reason });
    else out[name as CoreMetricName] = value;
  }
  if (reading.status !== undefined) out.status = reading.status;
  if (reading.extras) {
    const extras: Partial<Record<ExtraMetricName, ExtraValue>> = {};
    for (const [name, value] of Object.entries(reading.extras) as [ExtraMetricName, ExtraValue][]) {
      const def = EXTRA.get(name);
      if (!def || value === undefined) continue;
      if (typeof value === 'number') {
        const column = extraColumn(name, undefined);
        if ('code' in column) {
          dropped.push({ field: `extras.${name}`, reason: 'unknown_index' });
          continue;
        }
        const reason = check(value, def.min, def.max);
        if (reason) dropped.push({ field: `extras.${name}`, reason });
        else extras[name] = value;
        continue;
      }
      const kept: Record<string, number> = {};
      let any = false;
      for (const [index, v] of Object.entries(value)) {
        const column = extraColumn(name, index);
        if ('code' in column) {
          dropped.push({ field: `extras.${name}.${index}`, reason: 'unknown_index' });
          continue;
        }
        const reason = check(v, def.min, def.max);
        if (reason) dropped.push({ field: `extras.${name}.${index}`, reason });
        else {
          kept[index] = v;
          any = true;
        }
      }
      if (any) extras[name] = kept;
    }
    if (Object.keys(extras).length > 0) out.extras = extras;
  }
  return { reading: out, dropped };
}

/** Whether a reading carries anything the service would store (a metric, extras or a status). */
export function hasMetric(reading: AgentReading): boolean {
  if (reading.status !== undefined || reading.extras !== undefined) return true;
  for (const name of CORE.keys()) if (reading[name as CoreMetricName] !== undefined) return true;
  return false;
}
