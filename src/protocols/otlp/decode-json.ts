/**
 * OTLP/HTTP metrics, JSON encoding (the OTLP JSON mapping of ExportMetricsServiceRequest): keys
 * in lowerCamelCase, 64-bit integers (timeUnixNano, asInt, intValue) as decimal strings or
 * numbers, enums as integers, unknown keys ignored. Pure; never throws.
 */
import { fatalResult } from '../sample.ts';
import {
  type Attributes,
  type CompiledOtlpMapping,
  DEFAULT_COMPILED_OTLP,
  fatalOtlp,
  type MetricDataKind,
  NO_ATTRIBUTES,
  type OtlpDecodeResult,
  OtlpMapper,
} from './mapper.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: Json | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const arrayOf = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);

/** A body whose structure is not ExportMetricsServiceRequest's: the whole request is refused (400). */
class ShapeError extends Error {}

/** A repeated field: absent is empty; anything but an array of objects is not this message. */
function listOf(v: Json | undefined, where: string): JsonObject[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ShapeError(`${where} must be an array`);
  for (let i = 0; i < v.length; i++)
    if (!isObject(v[i])) throw new ShapeError(`${where}[${i}] must be an object`);
  return v as JsonObject[];
}
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeOtlpJson(
  body: Uint8Array | string,
  mapping: CompiledOtlpMapping = DEFAULT_COMPILED_OTLP,
): OtlpDecodeResult {
  let parsed: Json;
  try {
    parsed = JSON.parse(typeof body === 'string' ? body : utf8.decode(body)) as Json;
  } catch (e) {
    return fatalOtlp(
      fatalResult(
        'bad_json',
        `body is not JSON: ${e instanceof Error ? e.message.slice(0, 200) : 'unreadable'}`,
      ),
    );
  }
  if (!isObject(parsed))
    return fatalOtlp(fatalResult('bad_json', 'body is not an ExportMetricsServiceRequest object'));
  const m = new OtlpMapper(mapping);
  try {
    listOf(parsed.resourceMetrics, 'resourceMetrics').forEach((rm, r) => {
      if (rm.resource !== undefined && rm.resource !== null && !isObject(rm.resource))
        throw new ShapeError(`resourceMetrics[${r}].resource must be an object`);
      m.setResource(
        isObject(rm.resource)
          ? readAttributes(rm.resource.attributes, m.limits.maxAttributeLength)
          : NO_ATTRIBUTES,
      );
      listOf(rm.scopeMetrics, `resourceMetrics[${r}].scopeMetrics`).forEach((sm, s) => {
        listOf(sm.metrics, `resourceMetrics[${r}].scopeMetrics[${s}].metrics`).forEach((metric, i) => {
          readMetric(m, metric, `resourceMetrics[${r}].scopeMetrics[${s}].metrics[${i}]`);
        });
      });
    });
  } catch (e) {
    if (e instanceof ShapeError)
      return fatalOtlp(fatalResult('bad_shape', `not an ExportMetricsServiceRequest: ${e.message}`));
    throw e;
  }
  return m.finish();
}

const KINDS: readonly Exclude<MetricDataKind, 'none'>[] = [
  'gauge',
  'sum',
  'histogram',
  'exponentialHistogram',
  'summary',
];

function readMetric(m: OtlpMapper, metric: JsonObject, where: string): void {
  const name = typeof metric.name === 'string' ? metric.name : '';
  let kind: MetricDataKind = 'none';
  let data: JsonObject = {};
  for (const k of KINDS) {
    const d = metric[k];
    if (d === undefined || d === null) continue;
    if (!isObject(d)) throw new ShapeError(`${where}.${k} must be an object`);
    kind = k;
    data = d;
    break;
  }
  const points = listOf(data.dataPoints, `${where}.${kind}.dataPoints`);
  const temporality = typeof data.aggregationTemporality === 'number' ? data.aggregationTemporality : 0;
  const handle = m.beginMetric(name, kind, temporality, points.length, where);
  if (handle === undefined) return;
  points.forEach((p, i) => {
    const attrs = readAttributes(p.attributes, m.limits.maxAttributeLength, m.limits.maxAttributes + 1);
    let value: number | undefined;
    let exact = true;
    if (p.asDouble !== undefined) value = readDouble(p.asDouble);
    else if (p.asInt !== undefined) {
      const n = readInt(p.asInt);
      value = n;
      exact = n === undefined || Number.isSafeInteger(n);
    }
    const flags = typeof p.flags === 'number' ? p.flags : 0;
    m.point(handle, i, attrs, readNanosAsMicros(p.timeUnixNano), value, exact, flags);
  });
}

/** asDouble: a number, or the strings "NaN", "Infinity", "-Infinity" of the proto3 JSON mapping. */
function readDouble(v: Json): number | undefined {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return Number.NaN;
  if (v === 'Infinity') return Number.POSITIVE_INFINITY;
  if (v === '-Infinity') return Number.NEGATIVE_INFINITY;
  if (typeof v === 'string' && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(v)) return Number(v);
  return undefined;
}

function readInt(v: Json): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) ? v : undefined;
  if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) return Number(v);
  return undefined;
}

/**
 * timeUnixNano (uint64 as a decimal string, or a number) → integer microseconds, floored: the
 * last three digits are dropped from the string, so no precision is lost to a double.
 */
export function readNanosAsMicros(v: Json | undefined): number | undefined {
  if (typeof v === 'string') {
    if (!/^\d{1,20}$/.test(v)) return undefined;
    return v.length <= 3 ? 0 : Number(v.slice(0, -3));
  }
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return Math.floor(v / 1000);
  return undefined;
}

/** KeyValue list → strings; arrays, maps and bytes are no labels and are dropped. Reads at most `max`. */
function readAttributes(v: Json | undefined, maxLength: number, max = Number.POSITIVE_INFINITY): Attributes {
  const keys: string[] = [];
  const values: string[] = [];
  let invalid: string | undefined;
  for (const kv of arrayOf(v)) {
    if (keys.length >= max) break;
    if (!isObject(kv) || typeof kv.key !== 'string') continue;
    const s = anyValueToString(kv.value);
    if (s === undefined) continue;
    if (s.length > maxLength || kv.key.length > maxLength) {
      invalid ??= `attribute ${kv.key.slice(0, 64)} longer than ${maxLength}`;
      continue;
    }
    keys.push(kv.key);
    values.push(s);
  }
  return invalid === undefined ? { keys, values } : { keys, values, invalid };
}

function anyValueToString(v: Json | undefined): string | undefined {
  if (!isObject(v)) return undefined;
  if (typeof v.stringValue === 'string') return v.stringValue;
  if (v.intValue !== undefined) {
    // Rendered from the sender's digits, so a 64-bit id keeps every digit.
    return readInt(v.intValue) === undefined ? undefined : String(v.intValue);
  }
  if (typeof v.doubleValue === 'number') return String(v.doubleValue);
  if (typeof v.boolValue === 'boolean') return String(v.boolValue);
  return undefined;
}
