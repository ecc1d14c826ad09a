import { type core, z } from 'zod';
import {
  CORE_METRICS,
  type CoreMetricName,
  DEVICE_KINDS,
  DEVICE_NAME_MAX,
  DEVICE_STATUSES,
  type DeviceKind,
  extraColumn,
  MODEL_NAME_MAX,
  nameProblem,
} from '../catalog/index.ts';
import { type ExtraValues, READING_METRICS, type ReadingMetrics } from '../storage/schema.ts';

/** Largest clock lead accepted: agents' clocks drift, but a reading from the future is a bug. */
export const MAX_FUTURE_MS = 5 * 60_000;

/**
 * Exporters' "no value" placeholders, as JSON numbers arrive (doubles). DCGM fills unsupported
 * fields with its blank values: 0x7ffffff0…0x7ffffff3 (int32: blank, not found, not supported, no
 * permission), 0x7ffffffffffffff0… (int64; every one is 2^63 as a double, e.g. the
 * 9223372036854775794 seen in the wild) and 2^47…2^47+3 (float64). A value is only ever called a
 * sentinel when it is one of these exactly; any other value outside a metric's range is simply
 * out of range (1e30 TH/s is absurd, not a placeholder). `-1` W is handled in describeIssue.
 */
const DCGM_BLANKS: ReadonlySet<number> = new Set([
  ...[0, 1, 2, 3].map((k) => 0x7ffffff0 + k),
  2 ** 63,
  ...[0, 1, 2, 3].map((k) => 2 ** 47 + k),
]);
// Fields checked one by one in parseRfc3339: the shape alone would let 2026-11-31 or 24:00 through,
// and Date.parse turns them into another instant instead of refusing them.
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;
// Epoch milliseconds before 2001-09-09 are almost certainly epoch seconds sent by mistake.
const MIN_EPOCH_MS = 1e12;

// Postgres `real` columns refuse magnitudes under float4's smallest normal (an error that would
// sink the whole batch); such a value is 0 for any sensor, so it is stored as 0.
const FLOAT4_MIN_NORMAL = 1.1754944e-38;
const flushTiny = (v: number) => (Math.abs(v) < FLOAT4_MIN_NORMAL ? 0 : v);

interface MetricRange {
  min: number;
  max: number;
  /** Stored in a `real` column: tiny magnitudes are flushed to 0. */
  real: boolean;
}
function range(min: number, max: number, real = false): MetricRange {
  // A `real` column holds float4: a bound past its range would let a value through that Postgres
  // stores as ±Infinity (or refuses, sinking the batch) instead of refusing it as out_of_range.
  if (real && !(Number.isFinite(Math.fround(min)) && Number.isFinite(Math.fround(max)))) {
    throw new Error(`a real column's range must lie within float4: [${min}, ${max}]`);
  }
  return { min, max, real };
}
/** Accepted range of each numeric metric: read by the schema and by the fast path alike. */
const METRIC_RANGES = Object.fromEntries(
  CORE_METRICS.map((m) => [m.name, range(m.min, m.max, m.precision === 'float4')]),
) as Record<CoreMetricName, MetricRange>;

const measure = ({ min, max, real }: MetricRange) =>
  real
    ? z.number().min(min).max(max).transform(flushTiny).optional()
    : z.number().min(min).max(max).optional();
export const LABEL_MAX = { device: DEVICE_NAME_MAX, model: MODEL_NAME_MAX } as const;
// Control characters and unpaired surrogates: Postgres refuses NUL, and a lone surrogate would be
// stored as U+FFFD under a name the agent never sent.
const label = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\p{Cc}]+$/u, 'must not contain control characters')
    .refine((s) => s.isWellFormed(), 'must be well-formed Unicode (no lone surrogates)');

/** One optional number per catalog metric, in the catalog's order. */
const METRIC_FIELDS = Object.fromEntries(
  CORE_METRICS.map((m) => [m.name, measure(METRIC_RANGES[m.name])]),
) as Record<CoreMetricName, ReturnType<typeof measure>>;

/** The wire shape of one reading. Field names carry their units and are part of the public contract. */
export const ReadingSchema = z.strictObject({
  device: label(LABEL_MAX.device),
  kind: z.enum(DEVICE_KINDS).optional(),
  model: label(LABEL_MAX.model).optional(),
  ts: z.union([z.string(), z.number()]),
  ...METRIC_FIELDS,
  status: z.enum(DEVICE_STATUSES).optional(),
  // Checked by checkExtras, which names the metric and index at fault.
  extras: z.unknown().optional(),
});
export type Reading = z.infer<typeof ReadingSchema>;

/** A reading that passed validation, not yet tied to a stored device. */
export interface ValidReading extends Partial<ReadingMetrics> {
  /** Position in the sender's batch, so results can name it. */
  index: number;
  device: string;
  kind: DeviceKind | undefined;
  model: string | undefined;
  /** Reading time, integer epoch microseconds (what is stored). */
  tsUs: number;
  /** Extra metrics by `readings_extra` column, when the reading carries any. */
  extras?: ExtraValues;
}

/** Why one reading of a batch was not stored. */
export interface Rejection {
  index: number;
  field: string;
  code: string;
  message: string;
}

export interface ValidationWindow {
  nowMs: number;
  /** Readings older than this fall outside raw retention. */
  oldestMs: number;
}

type Check = { ok: true; value: number } | { ok: false; code: string; message: string };

const invalidTimestamp = (message: string): Check => ({ ok: false, code: 'invalid_timestamp', message });

/** Days in a month (1–12) of the proleptic Gregorian calendar: day 0 of the next month is its last. */
function daysInMonth(year: number, month: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month, 0);
  return date.getUTCDate();
}

/**
 * Strict RFC 3339 to integer epoch microseconds: every field must name a real instant (no day 31
 * of a 30-day month, no hour 24, no leap second, which epoch time cannot hold) rather than be rolled
 * over into another one. Readings are stored to the microsecond (Postgres timestamptz), so digits
 * past the microsecond must be zeros: a finer instant would be stored as another one, so it is refused.
 */
export function parseRfc3339(text: string): Check {
  const m = RFC3339.exec(text);
  if (!m) return invalidTimestamp('expected an RFC 3339 timestamp');
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = m[7] ?? '';
  if (month < 1 || month > 12) return invalidTimestamp(`month ${m[2]} does not exist`);
  if (day < 1 || day > daysInMonth(year, month))
    return invalidTimestamp(`${m[1]}-${m[2]} has no day ${m[3]}`);
  if (hour > 23 || minute > 59) return invalidTimestamp(`${m[4]}:${m[5]} is not a time of day`);
  if (second > 59) return invalidTimestamp('seconds must be 00–59 (leap seconds cannot be stored)');
  if (/[1-9]/.test(fraction.slice(6)))
    return invalidTimestamp('more precise than a microsecond, which is what is stored');
  let offsetMinutes = 0;
  if (m[8] === undefined) {
    const offsetHours = Number(m[10]);
    const offsetMins = Number(m[11]);
    if (offsetHours > 23 || offsetMins > 59)
      return invalidTimestamp(`offset ${m[9]}${m[10]}:${m[11]} is not valid`);
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMins);
  }
  const date = new Date(0);
  // setUTCFullYear, not Date.UTC: the latter reads years 0–99 as 1900–1999.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  const micros = Number(fraction.slice(0, 6).padEnd(6, '0'));
  return { ok: true, value: (date.getTime() - offsetMinutes * 60_000) * 1000 + micros };
}

/**
 * Parses a wire timestamp (RFC 3339 or integer epoch ms) to integer epoch microseconds and checks
 * it lies in the accepted window.
 */
export function parseTimestamp(ts: string | number, window: ValidationWindow): Check {
  let us: number;
  if (typeof ts === 'string') {
    const parsed = parseRfc3339(ts);
    if (!parsed.ok) return parsed;
    us = parsed.value;
  } else {
    if (!Number.isInteger(ts))
      return { ok: false, code: 'invalid_timestamp', message: 'epoch milliseconds must be an integer' };
    if (ts < MIN_EPOCH_MS) {
      return {
        ok: false,
        code: 'invalid_timestamp',
        message: 'expected epoch milliseconds (this looks like seconds)',
      };
    }
    us = ts * 1000;
  }
  return checkWindow(us, window);
}

/** Checks integer epoch microseconds lie in the accepted window (no later than 5 min ahead, within retention). */
export function checkWindow(us: number, window: ValidationWindow): Check {
  const ms = us / 1000;
  if (ms > window.nowMs + MAX_FUTURE_MS) {
    return {
      ok: false,
      code: 'timestamp_in_future',
      message: 'more than 5 minutes ahead of the server clock',
    };
  }
  if (ms < window.oldestMs) {
    return { ok: false, code: 'timestamp_too_old', message: 'older than the raw retention window' };
  }
  return { ok: true, value: us };
}

/**
 * Why a number is not a reading of `metric`, or undefined when it lies in [min, max]: not finite, a
 * known exporter placeholder (named as such, so the sender can tell a filtered value from a bug),
 * or out of range. Every transport's values pass through here.
 */
export function valueProblem(
  metric: string,
  value: number,
  min = Number.NEGATIVE_INFINITY,
  max = Number.POSITIVE_INFINITY,
): { code: string; message: string } | undefined {
  if (!Number.isFinite(value)) return { code: 'not_finite', message: 'numbers must be finite' };
  if (DCGM_BLANKS.has(value)) {
    return {
      code: 'sentinel_value',
      message: `${value} is an exporter's "no data" placeholder, not a reading`,
    };
  }
  if (
    value === -1 &&
    (metric === 'power_w' || metric === 'available_power_w' || metric === 'power_limit_w')
  ) {
    return { code: 'sentinel_value', message: '-1 W is stock miner firmware\'s "unknown", not a reading' };
  }
  if (value < min || value > max)
    return { code: 'out_of_range', message: `${metric} must lie in [${min}, ${max}], got ${value}` };
  return undefined;
}

type ExtrasCheck =
  | { ok: true; extras: ExtraValues | undefined }
  | { ok: false; field: string; code: string; message: string };

function storeExtra(
  extras: ExtraValues,
  metric: string,
  index: string | undefined,
  value: unknown,
  field: string,
): ExtrasCheck | undefined {
  const column = extraColumn(metric, index);
  if ('code' in column) return { ok: false, field, code: column.code, message: column.message };
  if (typeof value !== 'number')
    return { ok: false, field, code: 'invalid_type', message: 'expected a number' };
  const problem = valueProblem(metric, value, column.min, column.max);
  if (problem) return { ok: false, field, ...problem };
  extras[column.column] = value;
  return undefined;
}

/**
 * The `extras` of a JSON reading: `{ "<metric>": number }` or, for an indexed metric,
 * `{ "<metric>": { "<index>": number, … } }` (docs/ingest.md). The first bad entry rejects the
 * reading, naming it (`extras.chip_temp_c.9`): a reading is stored whole or not at all.
 */
export function checkExtras(raw: unknown): ExtrasCheck {
  if (raw === undefined) return { ok: true, extras: undefined };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return {
      ok: false,
      field: 'extras',
      code: 'invalid_type',
      message: 'extras must be an object of metric values',
    };
  const extras: ExtraValues = {};
  let n = 0;
  for (const metric in raw as Record<string, unknown>) {
    const value = (raw as Record<string, unknown>)[metric];
    const field = `extras.${metric.slice(0, 64)}`;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      for (const index in value as Record<string, unknown>) {
        const bad = storeExtra(
          extras,
          metric,
          index,
          (value as Record<string, unknown>)[index],
          `${field}.${index.slice(0, 32)}`,
        );
        if (bad) return bad;
        n++;
      }
    } else {
      const bad = storeExtra(extras, metric, undefined, value, field);
      if (bad) return bad;
      n++;
    }
  }
  return { ok: true, extras: n === 0 ? undefined : extras };
}

function fieldOf(issue: core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return issue.keys[0] ?? '';
  return issue.path.map(String).join('.') || '(reading)';
}

/** Turns zod's first issue into the contract's rejection, recognising known sentinel values. */
function describeIssue(issue: core.$ZodIssue, raw: unknown): Omit<Rejection, 'index'> {
  const field = fieldOf(issue);
  const value = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)[field] : undefined;
  if (typeof value === 'number') {
    const problem = valueProblem(field, value);
    if (problem && problem.code !== 'out_of_range') return { field, ...problem };
  }
  if (value === undefined && issue.path.length === 1 && issue.code !== 'unrecognized_keys') {
    return { field, code: 'required', message: `${field} is required` };
  }
  switch (issue.code) {
    case 'unrecognized_keys':
      return { field, code: 'unknown_field', message: `unknown field "${field}"` };
    case 'invalid_type':
    case 'invalid_union':
      return { field, code: 'invalid_type', message: issue.message };
    case 'too_small':
    case 'too_big':
      return { field, code: 'out_of_range', message: issue.message };
    case 'invalid_value':
      return { field, code: 'invalid_value', message: issue.message };
    default:
      return { field, code: 'invalid', message: issue.message };
  }
}

const KINDS: ReadonlySet<unknown> = new Set(DEVICE_KINDS);
const STATUSES: ReadonlySet<unknown> = new Set(DEVICE_STATUSES);

/** What `label()` accepts: 1…max UTF-16 units, no control character (\p{Cc}), well-formed. */
function isLabel(value: unknown, max: number): value is string {
  return typeof value === 'string' && nameProblem(value, max) === undefined;
}

/**
 * ReadingSchema's answer for the common case, without zod: a plain object whose every field is
 * known and within range. It accepts only what the schema accepts and returns what the schema
 * would (src/ingest/reading.test.ts holds it to that with generated input); anything else,
 * including every rejection, goes through the schema for the exact reason. Zod's generic walk
 * was the largest share of the service's CPU per reading (docs/performance.md).
 */
export function parsePlainReading(raw: unknown): Reading | undefined {
  if (typeof raw !== 'object' || raw === null || Object.getPrototypeOf(raw) !== Object.prototype) return;
  const fields = raw as Record<string, unknown>;
  let hasDevice = false;
  let hasTs = false;
  // Set only when a value must change (a float4 flush): otherwise the sender's own object is the
  // answer, since every key is known and every value valid, and this runs per reading.
  let flushed: Record<string, unknown> | undefined;
  for (const key in fields) {
    const value = fields[key];
    switch (key) {
      case 'device':
        if (!isLabel(value, LABEL_MAX.device)) return;
        hasDevice = true;
        break;
      case 'model':
        if (!isLabel(value, LABEL_MAX.model)) return;
        break;
      case 'kind':
        if (!KINDS.has(value)) return;
        break;
      case 'status':
        if (!STATUSES.has(value)) return;
        break;
      case 'extras':
        // Checked by checkExtras in validateReading, on both paths.
        break;
      case 'ts':
        if (typeof value !== 'string' && !(typeof value === 'number' && Number.isFinite(value))) return;
        hasTs = true;
        break;
      default: {
        if (!Object.hasOwn(METRIC_RANGES, key)) return;
        const r = METRIC_RANGES[key as keyof typeof METRIC_RANGES];
        if (typeof value !== 'number' || !(value >= r.min && value <= r.max)) return;
        if (r.real && !Object.is(flushTiny(value), value)) {
          flushed ??= { ...fields };
          flushed[key] = flushTiny(value);
        }
      }
    }
  }
  return hasDevice && hasTs ? ((flushed ?? fields) as Reading) : undefined;
}

function parseReading(
  raw: unknown,
): { success: true; data: Reading } | { success: false; error: z.ZodError } {
  const plain = parsePlainReading(raw);
  return plain ? { success: true, data: plain } : ReadingSchema.safeParse(raw);
}

/**
 * A core metric's value as stored, or why it cannot be: the same ranges and float4 flush as the JSON
 * schema, for the decoders of the standard protocols.
 */
export function checkCoreValue(
  metric: CoreMetricName,
  value: number,
): { ok: true; value: number } | { ok: false; code: string; message: string } {
  const r = METRIC_RANGES[metric];
  const problem = valueProblem(metric, value, r.min, r.max);
  if (problem) return { ok: false, ...problem };
  return { ok: true, value: r.real ? flushTiny(value) : value };
}

// A Set: isCoreMetric runs per sample of every push protocol, and Object.hasOwn on the ranges was slower.
const CORE_METRIC_NAMES: ReadonlySet<string> = new Set(Object.keys(METRIC_RANGES));

/** True for the name of a core metric (a column of `readings`). */
export function isCoreMetric(name: string): name is CoreMetricName {
  return CORE_METRIC_NAMES.has(name);
}

/** Validates one wire reading; either a ValidReading or the rejection that names the field at fault. */
export function validateReading(
  raw: unknown,
  index: number,
  window: ValidationWindow,
): { ok: true; reading: ValidReading } | { ok: false; rejection: Rejection } {
  const parsed = parseReading(raw);
  if (!parsed.success)
    return { ok: false, rejection: { index, ...describeIssue(parsed.error.issues[0]!, raw) } };
  const r = parsed.data;
  const ts = parseTimestamp(r.ts, window);
  if (!ts.ok) return { ok: false, rejection: { index, field: 'ts', code: ts.code, message: ts.message } };
  const extras = checkExtras(r.extras);
  if (!extras.ok) {
    const { field, code, message } = extras;
    return { ok: false, rejection: { index, field, code, message } };
  }
  // One literal with every field: this runs per reading, and a spread would allocate twice.
  const reading: ValidReading = {
    index,
    device: r.device,
    kind: r.kind,
    model: r.model,
    tsUs: ts.value,
    power_w: r.power_w,
    hashrate_ths: r.hashrate_ths,
    expected_hashrate_ths: r.expected_hashrate_ths,
    temp_c: r.temp_c,
    fan_rpm: r.fan_rpm,
    gpu_util_pct: r.gpu_util_pct,
    gpu_mem_used_bytes: r.gpu_mem_used_bytes,
    available_power_w: r.available_power_w,
    status: r.status,
  };
  if (extras.extras !== undefined) reading.extras = extras.extras;
  if (countSamples(reading) === 0) {
    return {
      ok: false,
      rejection: {
        index,
        field: '(reading)',
        code: 'no_metric',
        message: 'a reading needs at least one metric',
      },
    };
  }
  return { ok: true, reading };
}

/** Validates a batch; one bad reading never sinks the others. */
export function validateReadings(
  raw: readonly unknown[],
  window: ValidationWindow,
): { valid: ValidReading[]; rejected: Rejection[] } {
  const valid: ValidReading[] = [];
  const rejected: Rejection[] = [];
  for (let i = 0; i < raw.length; i++) {
    const result = validateReading(raw[i], i, window);
    if (result.ok) valid.push(result.reading);
    else rejected.push(result.rejection);
  }
  return { valid, rejected };
}

/** Metric values (samples) a reading carries; status counts as one, each extra column as one. */
export function countSamples(reading: Partial<ReadingMetrics> & { extras?: ExtraValues }): number {
  let n = 0;
  for (const name of READING_METRICS) if (reading[name] !== undefined && reading[name] !== null) n++;
  if (reading.extras !== undefined) for (const _ in reading.extras) n++;
  return n;
}
