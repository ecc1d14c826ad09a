/**
 * The protocol-neutral half of OTLP decoding, shared by the JSON and protobuf readers: they walk
 * ExportMetricsServiceRequest → ResourceMetrics → ScopeMetrics → Metric → data points and hand
 * each piece here, which maps it to samples and keeps the counts OTLP's partial success needs.
 */
import { isKnownMetricName } from '../../catalog/extra-metrics.ts';
import {
  CompiledDeviceRule,
  convertValue,
  indexOf,
  type LabelLookup,
  type MetricRule,
  matchesWhere,
  SampleCollector,
} from '../mapping.ts';
import { type DecodeResult, isUsInRange, ResultBuilder } from '../sample.ts';
import { DEFAULT_OTLP_MAPPING, type OtlpMapping } from './mapping.ts';

export interface OtlpDecodeResult extends DecodeResult {
  /** Data points in the request, of every metric type. */
  dataPoints: number;
  /**
   * Data points not stored because of a problem or an unsupported type (histograms, summaries,
   * delta sums): OTLP's `partial_success.rejected_data_points`. Unmapped points are accepted and
   * counted in `unmapped`, not rejected (a sender cannot fix them by resending).
   */
  rejectedDataPoints: number;
}

/** Attributes as parallel key/value arrays; every value rendered as a string. */
export interface Attributes {
  keys: string[];
  values: string[];
  /** Why the list is unusable (an over-long key or value): the point is rejected, not guessed. */
  invalid?: string;
}

export const NO_ATTRIBUTES: Attributes = { keys: [], values: [] };

interface CompiledEntry {
  rules: readonly MetricRule[];
  device: CompiledDeviceRule;
}

export interface CompiledOtlpMapping {
  readonly source: OtlpMapping;
  readonly device: CompiledDeviceRule;
  readonly byName: ReadonlyMap<string, CompiledEntry>;
}

export function compileOtlpMapping(mapping: OtlpMapping): CompiledOtlpMapping {
  const device = new CompiledDeviceRule(mapping.device);
  const byName = new Map<string, CompiledEntry>();
  for (const [name, entry] of Object.entries(mapping.metrics)) {
    byName.set(name, {
      rules: entry.rules,
      device: entry.device === undefined ? device : new CompiledDeviceRule(entry.device),
    });
  }
  return { source: mapping, device, byName };
}

export const DEFAULT_COMPILED_OTLP = compileOtlpMapping(DEFAULT_OTLP_MAPPING);

/** The kinds of OTLP metric data; only gauges and sums carry storable numbers. */
export type MetricDataKind = 'gauge' | 'sum' | 'histogram' | 'exponentialHistogram' | 'summary' | 'none';

/** OTLP AggregationTemporality: 1 = delta, 2 = cumulative. */
export const TEMPORALITY_DELTA = 1;

/** A metric ready to take points, or undefined when its points are counted and skipped. */
export interface MetricHandle {
  name: string;
  entry: CompiledEntry;
  where: string;
}

/** DataPoint flag FLAG_NO_RECORDED_VALUE: the point marks a gap, like Prometheus' stale marker. */
const FLAG_NO_RECORDED_VALUE = 1;

export class OtlpMapper {
  readonly out = new ResultBuilder();
  private readonly collector = new SampleCollector(this.out);
  private readonly mapping: CompiledOtlpMapping;
  private resource: Attributes = NO_ATTRIBUTES;
  dataPoints = 0;
  rejected = 0;

  constructor(mapping: CompiledOtlpMapping) {
    this.mapping = mapping;
  }

  get limits(): OtlpMapping['limits'] {
    return this.mapping.source.limits;
  }

  setResource(attrs: Attributes): void {
    this.resource = attrs;
  }

  /**
   * Starts a metric. `points` is its data point count, used when the metric is skipped whole.
   * Returns undefined for a metric whose points are not decoded further.
   */
  beginMetric(
    name: string,
    kind: MetricDataKind,
    temporality: number,
    points: number,
    where: string,
  ): MetricHandle | undefined {
    if (kind === 'histogram' || kind === 'exponentialHistogram' || kind === 'summary') {
      this.dataPoints += points;
      this.rejected += points;
      this.out.problem(
        where,
        'unsupported_metric_type',
        `${name.slice(0, 128)}: ${kind} points are not stored (${points})`,
      );
      return undefined;
    }
    let entry = this.mapping.byName.get(name);
    if (entry === undefined && this.mapping.source.ownNames !== undefined && isKnownMetricName(name)) {
      entry = {
        rules: [{ metric: name, indexFrom: this.mapping.source.ownNames.indexFrom }],
        device: this.mapping.device,
      };
    }
    if (entry === undefined) {
      this.dataPoints += points;
      for (let i = 0; i < points; i++) this.out.noteUnmapped(name);
      if (points === 0) this.out.noteUnmapped(name);
      return undefined;
    }
    if (kind === 'sum' && temporality === TEMPORALITY_DELTA) {
      this.dataPoints += points;
      this.rejected += points;
      this.out.problem(
        where,
        'unsupported_temporality',
        `${name.slice(0, 128)}: delta sums are not stored; configure cumulative temporality (${points} points)`,
      );
      return undefined;
    }
    return { name, entry, where };
  }

  /** Maps one NumberDataPoint. `value` undefined: the point had neither asDouble nor asInt. */
  point(
    m: MetricHandle,
    index: number,
    attrs: Attributes,
    timeUs: number | undefined,
    value: number | undefined,
    exact: boolean,
    flags: number,
  ): void {
    this.dataPoints++;
    const where = `${m.where}.dataPoints[${index}]`;
    if ((flags & FLAG_NO_RECORDED_VALUE) !== 0) {
      this.out.problem(where, 'no_recorded_value', 'point flagged no recorded value, skipped');
      return;
    }
    const reject = (code: string, message: string) => {
      this.rejected++;
      this.out.problem(where, code, message);
    };
    if (attrs.keys.length > this.limits.maxAttributes) {
      reject('too_many_attributes', `more than ${this.limits.maxAttributes} attributes`);
      return;
    }
    const invalid = attrs.invalid ?? this.resource.invalid;
    if (invalid !== undefined) {
      reject('attribute_too_long', invalid);
      return;
    }
    if (value === undefined) {
      reject('missing_value', 'point has neither asDouble nor asInt');
      return;
    }
    if (!exact) {
      reject('integer_not_exact', 'asInt beyond 2^53 cannot be stored exactly');
      return;
    }
    if (!Number.isFinite(value)) {
      reject('not_finite', `value ${value} is not a finite number`);
      return;
    }
    if (timeUs === undefined || timeUs === 0) {
      reject('missing_timestamp', 'point has no timeUnixNano');
      return;
    }
    if (!isUsInRange(timeUs)) {
      reject('timestamp_out_of_range', 'timeUnixNano is out of range');
      return;
    }
    const resource = this.resource;
    const get: LabelLookup = (name) => {
      for (let i = 0; i < attrs.keys.length; i++) if (attrs.keys[i] === name) return attrs.values[i];
      for (let i = 0; i < resource.keys.length; i++) if (resource.keys[i] === name) return resource.values[i];
      return undefined;
    };
    const identity = m.entry.device.resolve(get);
    if ('missing' in identity) {
      reject(
        identity.invalid ? 'invalid_device' : 'missing_device_attribute',
        `cannot name the device: ${identity.missing}`,
      );
      return;
    }
    let matched = 0;
    for (const rule of m.entry.rules) {
      if (!matchesWhere(rule, get)) continue;
      matched++;
      const idx = indexOf(rule, get);
      const slots = this.collector.slotsFor(identity.device, rule.metric, idx);
      this.collector.add(slots, identity, rule.metric, idx, timeUs, convertValue(rule, value), rule, where);
    }
    if (matched === 0) this.out.noteUnmapped(m.name);
  }

  finish(): OtlpDecodeResult {
    this.collector.flush();
    return { ...this.out.build(), dataPoints: this.dataPoints, rejectedDataPoints: this.rejected };
  }
}

/** A fatal OTLP result: the whole request is rejected. */
export function fatalOtlp(r: DecodeResult): OtlpDecodeResult {
  return { ...r, dataPoints: 0, rejectedDataPoints: 0 };
}
