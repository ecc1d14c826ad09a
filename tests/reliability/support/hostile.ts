import { isUtf8 } from 'node:buffer';
import http from 'node:http';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { compressSync } from 'snappy';
import WebSocket from 'ws';
import { readingKey } from '../../../simulators/index.ts';
import {
  CORE_METRICS,
  type DeviceKind,
  EXTRA_COLUMNS,
  EXTRA_METRICS,
  findMetric,
} from '../../../src/catalog/index.ts';
import { type ValidReading, validateReading } from '../../../src/ingest/reading.ts';
import { encodeWriteRequest, type FixtureSeries } from '../../../src/protocols/testing/prometheus-proto.ts';
import { READING_METRICS } from '../../../src/storage/schema.ts';

/**
 * Hostile input for the ingest API: arbitraries for bodies and frames, and an oracle that says what
 * the service must answer and store for each. The oracle is written from the public contract
 * (README, error codes) plus `validateReading`, the reading contract itself.
 */

const DAY_MS = 86_400_000;
const RETENTION_DAYS = 30;
const MAX_WIRE_BYTES = 4 * 1024 * 1024;
const MAX_DECODED_BYTES = 32 * 1024 * 1024;
const MAX_READINGS = 10_000;

/** Device names that are valid but unusual: unicode, invisible, right-to-left, at the length limit. */
const DEVICE_NAMES = [
  'rig-1',
  'rig-2',
  'hall-a/r01/s21-001',
  '矿机-七号',
  'ñandú⚡',
  'gpu\u200b-zero-width',
  'דוד-3',
  'e\u0301clair',
  '🙂'.repeat(64),
  'x'.repeat(128),
  ' spaced name ',
  'quote"and\\backslash',
  "it's",
  '<script>',
  "'; DROP TABLE readings; --",
  // Lone surrogates: legal JSON escapes, not Unicode; the contract's device pattern allows them.
  'rig-\ud800',
  '\udfff-rig',
];

/** Models: ordinary, at the limit, and with characters a database may not take. */
const MODEL_NAMES = [
  'S21 XP',
  'H100 SXM',
  'm'.repeat(64),
  'nul\u0000inside',
  'tab\tand\nnewline',
  'ünïcødé 矿机',
  '\ud800',
];

/** Strings a sloppy or malicious agent puts where numbers belong, and numbers that are not readings. */
const NUMBERISH = [
  'NaN',
  'Infinity',
  '-Infinity',
  '1e999',
  '0x10',
  ' 42 ',
  '',
  '3500',
  '-0',
  '٣٥٠٠',
  '1_000',
];

/** In-range values: plausible ones mostly, and any double of the range (edges, tiny, subnormal) too. */
const inRange = (min: number, max: number) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: Math.ceil(min), max: Math.min(max, 1e9) }) },
    {
      weight: 3,
      arbitrary: fc
        .double({ min, max: Math.min(max, 1e6), noNaN: true, noDefaultInfinity: true })
        .map((v) => Math.round(v * 100) / 100 || 0),
    },
    { weight: 2, arbitrary: fc.double({ min, max, noNaN: true }) },
  );

const metricArb = {
  power_w: inRange(0, 1e10),
  hashrate_ths: inRange(0, 1e9),
  expected_hashrate_ths: inRange(0, 1e9),
  temp_c: inRange(-80, 250),
  fan_rpm: inRange(0, 1e6),
  gpu_util_pct: inRange(0, 100),
  gpu_mem_used_bytes: inRange(0, 2 ** 53),
  available_power_w: inRange(0, 1e10),
};
type MetricName = keyof typeof metricArb;
const METRICS = Object.keys(metricArb) as MetricName[];

/** RFC 3339 renderings of one instant, in the variants the contract allows. */
function rfc3339(ms: number, variant: number, fraction: number): string {
  const iso = new Date(ms).toISOString(); // 2026-11-24T05:45:53.901Z
  const base = iso.slice(0, 19);
  const frac =
    fraction === 0
      ? ''
      : `.${iso.slice(20, 23)}${'0'.repeat(Math.max(0, fraction - 3))}`.slice(0, fraction + 1);
  switch (variant) {
    case 0:
      return `${base}${frac}Z`;
    case 1:
      return `${base.replace('T', 't')}${frac}z`;
    case 2:
      return `${base.replace('T', ' ')}${frac}Z`;
    default: {
      // The same instant at +02:00.
      const shifted = new Date(ms + 2 * 3_600_000).toISOString().slice(0, 19);
      return `${shifted}${frac}+02:00`;
    }
  }
}

/**
 * A reading that should be accepted: in-range metrics, a timestamp inside the window (epoch ms or
 * RFC 3339), a device from a pool of awkward but valid names. `tsBase` makes every run's keys new.
 */
export function validReadingArb(tsBase: () => number): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record(
      {
        device: fc.oneof(
          { weight: 6, arbitrary: fc.constantFrom(...DEVICE_NAMES) },
          // New devices, so registration (and its model) is exercised all along.
          { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 24 }) },
          { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }) },
        ),
        kind: fc.constantFrom('asic', 'gpu', 'meter', 'pdu', 'other'),
        model: fc.oneof(
          fc.constantFrom(...MODEL_NAMES),
          fc.string({ minLength: 1, maxLength: 64 }),
          fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
        ),
        offsetMs: fc.integer({ min: 0, max: 50 }),
        tsForm: fc.constantFrom('epoch', 'rfc3339'),
        tsVariant: fc.integer({ min: 0, max: 3 }),
        fraction: fc.constantFrom(0, 3, 6, 9),
        metrics: fc.subarray(METRICS, { minLength: 1 }),
        values: fc.record(metricArb),
        status: fc.constantFrom('ok', 'curtailed', 'idle', 'error', 'offline'),
      },
      { requiredKeys: ['device', 'offsetMs', 'tsForm', 'tsVariant', 'fraction', 'metrics', 'values'] },
    )
    .map((r) => {
      const ms = tsBase() + r.offsetMs;
      const reading: Record<string, unknown> = {
        device: r.device,
        ts: r.tsForm === 'epoch' ? ms : rfc3339(ms, r.tsVariant, r.fraction),
      };
      if (r.kind !== undefined) reading.kind = r.kind;
      if (r.model !== undefined) reading.model = r.model;
      for (const m of r.metrics) reading[m] = r.values[m];
      if (r.status !== undefined) reading.status = r.status;
      return reading;
    });
}

/** One way to break a reading. */
function breakReading(reading: Record<string, unknown>, nowMs: number): fc.Arbitrary<unknown> {
  const field = fc.constantFrom(...METRICS, 'device', 'kind', 'model', 'ts', 'status');
  const junk = fc.oneof(
    fc.constantFrom<unknown>(...NUMBERISH),
    fc.constantFrom<unknown>(null, true, false, [], {}, [1], { value: 1 }),
    fc.constantFrom<unknown>(
      -1,
      -0.001,
      1e308,
      -1e308,
      2 ** 63, // a GPU exporter's "no value" (9223372036854775794 as a double)
      2 ** 64,
      1e21,
      Number.MAX_SAFE_INTEGER,
    ),
    fc.string(),
    fc.integer(),
    fc.double(),
  );
  return fc.oneof(
    // A wrong value in a known field.
    fc.tuple(field, junk).map(([f, v]) => ({ ...reading, [f]: v })),
    // A field missing.
    fc.constantFrom('device', 'ts').map((f) => {
      const copy = { ...reading };
      delete copy[f];
      return copy;
    }),
    // No metric at all.
    fc.constant({ device: reading.device, kind: reading.kind, ts: reading.ts }),
    // Unknown fields, including the ones prototype pollution would use.
    fc
      .tuple(
        fc.constantFrom('power_kw', 'Power_W', '__proto__', 'constructor', 'site', 'site_id', 'id', ''),
        fc.jsonValue(),
      )
      .map(([f, v]) =>
        JSON.parse(
          `{${JSON.stringify(f)}:${JSON.stringify(v) ?? 'null'},${JSON.stringify(reading).slice(1)}`,
        ),
      ),
    // Device names that are not names: empty, too long, control characters.
    fc
      .constantFrom(
        '',
        'y'.repeat(129),
        'a\u0000b',
        'line\nbreak',
        'tab\there',
        'del\u007f',
        'nel\u0085',
        '\u001b[31mred',
      )
      .map((device) => ({ ...reading, device })),
    // Timestamps outside the window or not timestamps: seconds, fractions, future, too old, impossible dates.
    fc
      .constantFrom<unknown>(
        Math.floor(nowMs / 1000),
        nowMs + 0.5,
        nowMs + 3_600_000,
        nowMs - 40 * DAY_MS,
        new Date(nowMs + 3_600_000).toISOString(),
        new Date(nowMs - 40 * DAY_MS).toISOString(),
        '2026-13-01T00:00:00Z',
        '2026-11-24T25:00:00Z',
        '2026-11-24',
        '2026-11-24T05:45:53',
        '2026-11-24T05:45:53.1234567890Z',
        'yesterday',
        '',
        -1,
        0,
      )
      .map((ts) => ({ ...reading, ts })),
    // Deep nesting where a number belongs.
    fc.integer({ min: 10, max: 2_000 }).map((depth) => ({ ...reading, power_w: nest(depth) })),
    // Not an object at all.
    fc.oneof(fc.jsonValue(), fc.constantFrom<unknown>(null, 'reading', 42, [reading])),
  );
}

function nest(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** A batch mixing valid and broken readings. */
export function readingsArb(tsBase: () => number, nowMs: () => number): fc.Arbitrary<unknown[]> {
  const valid = validReadingArb(tsBase);
  const broken = valid.chain((r) => breakReading(r, nowMs()));
  return fc.array(fc.oneof({ weight: 3, arbitrary: valid }, { weight: 2, arbitrary: broken }), {
    minLength: 0,
    maxLength: 25,
  });
}

/** A request as it goes on the wire. */
export interface WireRequest {
  label: string;
  body: Buffer;
  contentType: string | undefined;
  contentEncoding: string | undefined;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8');

/** Text edits that turn JSON into not-quite-JSON. */
function mangle(text: string): fc.Arbitrary<[string, string]> {
  return fc.oneof(
    fc.nat(text.length).map((n): [string, string] => ['truncated', text.slice(0, n)]),
    fc
      .tuple(
        fc.nat(text.length),
        fc.constantFrom(',', '}', ']', '"', '\\', ':', 'NaN', 'undefined', '/*c*/', "'", '\u0000'),
      )
      .map(([n, s]): [string, string] => ['inserted', text.slice(0, n) + s + text.slice(n)]),
    fc.constant<[string, string]>(['bom', `\ufeff${text}`]),
    fc.constant<[string, string]>(['trailing comma', text.replace(/]}$/, ',]}')]),
    fc.constant<[string, string]>(['single quotes', text.replaceAll('"', "'")]),
  );
}

/** Whole bodies: valid envelopes, broken envelopes, broken JSON, odd encodings and headers. */
export function httpRequestArb(tsBase: () => number, nowMs: () => number): fc.Arbitrary<WireRequest> {
  const readings = readingsArb(tsBase, nowMs);
  const plain = (label: string, body: Buffer, contentType = 'application/json'): WireRequest => ({
    label,
    body,
    contentType,
    contentEncoding: undefined,
  });
  return fc.oneof(
    { weight: 6, arbitrary: readings.map((r) => plain('readings', json({ readings: r }))) },
    {
      weight: 1,
      arbitrary: fc.tuple(readings, fc.constantFrom('gzip', ' GZIP ')).map(
        ([r, contentEncoding]): WireRequest => ({
          label: 'gzip',
          body: gzipSync(json({ readings: r })),
          contentType: 'application/json; charset=utf-8',
          contentEncoding,
        }),
      ),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(readings, fc.oneof(fc.jsonValue(), fc.constantFrom<unknown>(null, 'x', 1, [])))
        .chain(([r, extra]) =>
          fc.constantFrom(
            plain('unknown top-level field', json({ readings: r, site_id: 1, extra })),
            plain('readings not an array', json({ readings: extra })),
            plain('not an object', json([r])),
            plain('scalar body', json(extra)),
            plain('empty body', Buffer.alloc(0)),
          ),
        ),
    },
    {
      weight: 2,
      arbitrary: readings.chain((r) =>
        mangle(JSON.stringify({ readings: r })).map(([how, text]) =>
          plain(`malformed json (${how})`, Buffer.from(text)),
        ),
      ),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 1, max: 200_000 })
        .map((depth) => plain(`nested ${depth}`, Buffer.from(`${'['.repeat(depth)}${']'.repeat(depth)}`))),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 1, max: 50_000 })
        .map((depth) =>
          plain(
            `nested readings ${depth}`,
            Buffer.from(`{"readings":${'['.repeat(depth)}${']'.repeat(depth)}}`),
          ),
        ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        plain(
          'huge number literal',
          Buffer.from(`{"readings":[{"device":"rig-1","ts":1e999,"power_w":1e999}]}`),
        ),
        plain(
          'long digit string',
          Buffer.from(
            `{"readings":[{"device":"rig-1","ts":${'9'.repeat(400)},"power_w":${'1'.repeat(400)}}]}`,
          ),
        ),
        plain('duplicate keys', Buffer.from(`{"readings":[],"readings":{"a":1}}`)),
        plain('NaN literal', Buffer.from(`{"readings":[{"device":"rig-1","ts":1,"power_w":NaN}]}`)),
        plain(
          'invalid utf-8',
          Buffer.concat([
            Buffer.from('{"readings":[{"device":"rig-'),
            Buffer.from([0xc3, 0x28, 0xff, 0xfe]),
            Buffer.from('","power_w":1,"ts":1}]}'),
          ]),
        ),
        plain('utf-16le', Buffer.from(JSON.stringify({ readings: [] }), 'utf16le')),
        plain(
          'latin1 device',
          Buffer.from(`{"readings":[{"device":"caf\u00e9","kind":"asic","ts":1,"power_w":1}]}`, 'latin1'),
        ),
        plain('text/plain', json({ readings: [] }), 'text/plain'),
        plain('charset utf-16', json({ readings: [] }), 'application/json; charset=utf-16'),
        plain('json-ish type', json({ readings: [] }), 'application/jsonx'),
        {
          label: 'no content-type',
          body: json({ readings: [] }),
          contentType: undefined,
          contentEncoding: undefined,
        },
        {
          label: 'gzip garbage',
          body: Buffer.from('not gzip at all'),
          contentType: 'application/json',
          contentEncoding: 'gzip',
        },
        {
          label: 'truncated gzip',
          body: gzipSync(json({ readings: [] })).subarray(0, 12),
          contentType: 'application/json',
          contentEncoding: 'gzip',
        },
        {
          label: 'brotli',
          body: json({ readings: [] }),
          contentType: 'application/json',
          contentEncoding: 'br',
        },
        {
          label: 'gzip bomb',
          body: gzipSync(Buffer.alloc(40 * 1024 * 1024, 0x20)),
          contentType: 'application/json',
          contentEncoding: 'gzip',
        },
        plain('too many readings', json({ readings: Array.from({ length: MAX_READINGS + 1 }, () => ({})) })),
        plain('over the wire limit', Buffer.alloc(MAX_WIRE_BYTES + 10, 0x20)),
      ),
    },
  );
}

/**
 * What the service stores for one (device, ts): per metric, the value of the first reading that
 * brought it. Idempotency is per (device, ts, metric): a later reading with another metric of the
 * same instant fills the row in; a repeated metric is a duplicate sample, its first value kept.
 */
export interface StoredReading {
  device: string;
  tsMs: number;
  /** Metric (a `readings` column, `status` included) → the value as it was sent. */
  values: Record<string, unknown>;
}

/** What the service must answer. */
export type Expected =
  | {
      status: 200;
      accepted: number;
      duplicates: number;
      acceptedSamples: number;
      duplicateSamples: number;
      rejectedIndexes: number[];
      kindRequired: number[];
    }
  | { status: number; code: string };

/** The samples of a valid reading: each metric it carries (status included), as sent. */
function samplesOf(valid: ValidReading, sent: Record<string, unknown>): [string, unknown][] {
  const samples: [string, unknown][] = [];
  for (const name of READING_METRICS) {
    if (valid[name] !== undefined && valid[name] !== null) samples.push([name, sent[name]]);
  }
  return samples;
}

/**
 * The service's state as far as the contract lets a client know it: which devices exist and, per
 * stored (device, ts), which metrics are stored and the value each was sent with.
 */
export class IngestModel {
  readonly devices = new Set<string>();
  /** readingKey(device, tsMs) → what is stored for it. */
  readonly stored = new Map<string, StoredReading>();
  /** Accepted readings that brought some metrics already stored: the fill-ins the run exercised. */
  fillIns = 0;
  /** What the last expectation would change; applied by `commit()` once the service answered as expected. */
  #pending: { devices: string[]; stored: Map<string, StoredReading>; fillIns: number } | undefined;

  /** Forgets a staged change (a new expectation is about to be computed). */
  discard(): void {
    this.#pending = undefined;
  }

  /** The last expectation was met: the service now holds what it said. */
  commit(): void {
    if (!this.#pending) return;
    this.fillIns += this.#pending.fillIns;
    for (const d of this.#pending.devices) this.devices.add(d);
    for (const [k, v] of this.#pending.stored) {
      const held = this.stored.get(k);
      if (held) Object.assign(held.values, v.values);
      else this.stored.set(k, v);
    }
    this.#pending = undefined;
  }

  /** True when the metric of (device, ts) is stored, or staged by an earlier reading of the batch. */
  #holds(staged: Map<string, StoredReading>, key: string, metric: string): boolean {
    return (
      this.stored.get(key)?.values[metric] !== undefined || staged.get(key)?.values[metric] !== undefined
    );
  }

  /** What the service must answer to a decoded envelope's readings; the state change waits for `commit()`. */
  ingest(raw: readonly unknown[], nowMs: number): Expected & { status: 200 } {
    const window = { nowMs, oldestMs: nowMs - RETENTION_DAYS * DAY_MS };
    const checked = raw.map((r, i) => validateReading(r, i, window));
    // A new device is registered when any valid reading of it in the batch says its kind.
    const registrable = new Set<string>();
    for (const c of checked) if (c.ok && c.reading.kind !== undefined) registrable.add(c.reading.device);
    const rejectedIndexes: number[] = [];
    const kindRequired: number[] = [];
    let accepted = 0;
    let duplicates = 0;
    let acceptedSamples = 0;
    let duplicateSamples = 0;
    let fillIns = 0;
    const staged = new Map<string, StoredReading>();
    checked.forEach((c, i) => {
      if (!c.ok) {
        rejectedIndexes.push(i);
        return;
      }
      const { device, tsUs } = c.reading;
      const tsMs = tsUs / 1000;
      if (!this.devices.has(device) && !registrable.has(device)) {
        rejectedIndexes.push(i);
        kindRequired.push(i);
        return;
      }
      const key = readingKey(device, tsMs);
      let fresh = 0;
      const samples = samplesOf(c.reading, raw[i] as Record<string, unknown>);
      for (const [metric, value] of samples) {
        if (this.#holds(staged, key, metric)) {
          duplicateSamples++;
          continue;
        }
        fresh++;
        let entry = staged.get(key);
        if (!entry) {
          entry = { device, tsMs, values: {} };
          staged.set(key, entry);
        }
        entry.values[metric] = value;
      }
      acceptedSamples += fresh;
      if (fresh > 0) accepted++;
      else duplicates++;
      if (fresh > 0 && fresh < samples.length) fillIns++;
    });
    this.#pending = { devices: [...registrable], stored: staged, fillIns };
    return {
      status: 200,
      accepted,
      duplicates,
      acceptedSamples,
      duplicateSamples,
      rejectedIndexes,
      kindRequired,
    };
  }

  /** The envelope rules: an object with `readings` (and `seq` on a stream) only, an array of at most 10,000. */
  envelope(value: unknown, allowed: readonly string[], nowMs: number): Expected {
    this.#pending = undefined;
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      return { status: 400, code: 'invalid_body' };
    for (const key of Object.keys(value)) {
      if (key !== 'readings' && !allowed.includes(key)) return { status: 400, code: 'invalid_body' };
    }
    const readings = (value as { readings?: unknown }).readings;
    if (!Array.isArray(readings)) return { status: 400, code: 'invalid_body' };
    if (readings.length > MAX_READINGS) return { status: 413, code: 'too_many_readings' };
    return this.ingest(readings, nowMs);
  }

  /** What `POST /api/v1/ingest` must answer to these bytes and headers. */
  http(request: WireRequest, nowMs: number): Expected {
    this.discard();
    if (!/^application\/json\s*(;|$)/i.test(request.contentType ?? ''))
      return { status: 415, code: 'unsupported_media_type' };
    const encoding = (request.contentEncoding ?? 'identity').trim().toLowerCase();
    if (encoding !== 'identity' && encoding !== 'gzip')
      return { status: 415, code: 'unsupported_media_type' };
    if (request.body.length > MAX_WIRE_BYTES) return { status: 413, code: 'payload_too_large' };
    let text = request.body;
    if (encoding === 'gzip') {
      try {
        text = gunzipSync(request.body, { maxOutputLength: MAX_DECODED_BYTES });
      } catch (error) {
        if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE')
          return { status: 413, code: 'payload_too_large' };
        return { status: 400, code: 'invalid_encoding' };
      }
    }
    // Invalid UTF-8 is refused, not decoded to U+FFFD: a replaced character would store a device
    // name the agent never sent.
    if (!isUtf8(text)) return { status: 400, code: 'invalid_encoding' };
    const parsed = parseOrUndefined(text.toString('utf8'));
    if (!parsed.ok) return { status: 400, code: 'invalid_json' };
    return this.envelope(parsed.value, [], nowMs);
  }
}

export function parseOrUndefined(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/** A WebSocket frame as it goes on the wire; `seq` is filled in when it is sent. */
export interface WireFrame {
  label: string;
  render(seq: number): { data: Buffer; binary: boolean };
}

const MAX_FRAME_BYTES = 4 * 1024 * 1024;

/** Frames: envelopes with good and bad seq, broken JSON, binary frames, invalid UTF-8, oversized. */
export function frameArb(tsBase: () => number, nowMs: () => number): fc.Arbitrary<WireFrame> {
  const readings = readingsArb(tsBase, nowMs);
  const text = (label: string, f: (seq: number) => string): WireFrame => ({
    label,
    render: (seq) => ({ data: Buffer.from(f(seq), 'utf8'), binary: false }),
  });
  return fc.oneof(
    {
      weight: 6,
      arbitrary: readings.map((r) => text('readings', (seq) => JSON.stringify({ seq, readings: r }))),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(readings, fc.constantFrom<unknown>(-1, 1.5, '7', null, 2 ** 60, [1], undefined))
        .map(([r, seq]) => text(`seq ${JSON.stringify(seq)}`, () => JSON.stringify({ seq, readings: r }))),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(readings, fc.jsonValue())
        .map(([r, extra]) => text('unknown field', (seq) => JSON.stringify({ seq, readings: r, extra }))),
    },
    {
      weight: 2,
      arbitrary: readings.chain((r) =>
        mangle(JSON.stringify({ seq: 1, readings: r })).map(([how, t]) =>
          text(`malformed json (${how})`, () => t),
        ),
      ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom<WireFrame>(
        {
          label: 'binary frame',
          render: (seq) => ({ data: Buffer.from(JSON.stringify({ seq, readings: [] })), binary: true }),
        },
        {
          label: 'invalid utf-8 text frame',
          render: (seq) => ({
            data: Buffer.concat([
              Buffer.from(`{"seq":${seq},"readings":["`),
              Buffer.from([0xc3, 0x28, 0xff]),
              Buffer.from('"]}'),
            ]),
            binary: false,
          }),
        },
        {
          label: 'oversized frame',
          render: (seq) => ({
            data: Buffer.from(`{"seq":${seq},"readings":[${' '.repeat(MAX_FRAME_BYTES)}]}`),
            binary: false,
          }),
        },
        text('nested', () => `${'['.repeat(100_000)}${']'.repeat(100_000)}`),
        text('too many readings', (seq) =>
          JSON.stringify({ seq, readings: Array.from({ length: MAX_READINGS + 1 }, () => 1) }),
        ),
        text('empty', () => ''),
      ),
    },
  );
}

/** What the stream must do with a frame: answer it, or close the connection with a code. */
export type ExpectedFrame =
  | { close: number }
  | ({ ack: number } & Omit<Extract<Expected, { status: 200 }>, 'status'>)
  /** A refused frame; `seq` is the one it must name, or any of `seqs` where the contract leaves a choice. */
  | { seq: number | null; code: string; seqs?: (number | null)[] };

export function expectFrame(
  model: IngestModel,
  frame: { data: Buffer; binary: boolean },
  nowMs: number,
): ExpectedFrame {
  model.discard();
  if (frame.data.length > MAX_FRAME_BYTES) return { close: 1009 };
  if (frame.binary) return { seq: null, code: 'invalid_body' };
  // RFC 6455: a text frame that is not UTF-8 fails the connection.
  if (!isUtf8(frame.data)) return { close: 1007 };
  const parsed = parseOrUndefined(frame.data.toString('utf8'));
  if (!parsed.ok) {
    // Malformed JSON has no seq to name; a service may still read one from a `{"seq":N` prefix.
    const leading = /^\s*\{\s*"seq"\s*:\s*(\d+)/.exec(frame.data.subarray(0, 64).toString('latin1'));
    return { seq: null, code: 'invalid_json', seqs: leading ? [null, Number(leading[1])] : [null] };
  }
  const value = parsed.value;
  const rawSeq = typeof value === 'object' && value !== null ? (value as { seq?: unknown }).seq : undefined;
  const seq = typeof rawSeq === 'number' && Number.isSafeInteger(rawSeq) && rawSeq >= 0 ? rawSeq : undefined;
  if (seq === undefined) return { seq: null, code: 'invalid_body' };
  const result = model.envelope(value, ['seq'], nowMs);
  if (result.status !== 200 || !('accepted' in result))
    return { seq, code: (result as { code: string }).code };
  return { ack: seq, ...result };
}

/*
 * Memory-hostile load: requests each within every per-request limit that are heavy together, an
 * oversized admin body, and stream clients that ignore their window. The memory bound is asserted
 * on the service's peak RSS (tests/reliability/hostile-input.test.ts).
 */

/** A gzip body of a few tens of KiB that inflates to `decodedBytes`, valid JSON all the way. */
export function inflatingBody(decodedBytes: number): Buffer {
  const head = '{"readings":[';
  const tail = ']}';
  return gzipSync(
    Buffer.concat([
      Buffer.from(head),
      Buffer.alloc(decodedBytes - head.length - tail.length, 0x20),
      Buffer.from(tail),
    ]),
    { level: 9 },
  );
}

/** What a raw request got: a status, or the network error that ended it (a refusal mid-upload). */
export type RawAnswer = { status: number } | { error: string };

/** Sends `body` (or `bytes` of filler streamed in 1 MiB chunks) and reports the answer without reading it whole. */
export function rawRequest(
  url: string,
  options: { method: string; headers: Record<string, string>; body?: Buffer; bytes?: number },
): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const length = options.body?.length ?? options.bytes ?? 0;
    const req = http.request(url, {
      method: options.method,
      headers: { ...options.headers, 'content-length': String(length) },
      agent: false,
      timeout: 60_000,
    });
    let settled = false;
    const settle = (answer: RawAnswer) => {
      if (settled) return;
      settled = true;
      resolve(answer);
    };
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error: NodeJS.ErrnoException) => settle({ error: error.code ?? error.message }));
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => settle({ status: res.statusCode ?? 0 }));
      res.on('error', () => settle({ status: res.statusCode ?? 0 }));
    });
    if (options.body) {
      req.end(options.body);
      return;
    }
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    let left = length;
    const write = () => {
      while (left > 0 && !settled) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!req.write(piece)) {
          req.once('drain', write);
          return;
        }
      }
      if (left <= 0) req.end();
    };
    write();
  });
}

/** What stream clients that ignored their window got back. */
export interface BlastResult {
  frames: number;
  acked: number;
  /** Frames refused whole with a retry hint (nothing of them stored). */
  refused: number;
  /** Other error codes, and close codes as `close N`. */
  other: Map<string, number>;
}

/**
 * `connections` stream clients, each sending `frames` frames of `readingsPerFrame` readings at once,
 * never waiting for an ack, then waiting for every answer.
 */
export async function blastStream(options: {
  url: string;
  token: string;
  connections: number;
  frames: number;
  readingsPerFrame: number;
  tsBase: number;
  devicePrefix: string;
}): Promise<BlastResult> {
  const result: BlastResult = { frames: 0, acked: 0, refused: 0, other: new Map() };
  const bump = (k: string) => result.other.set(k, (result.other.get(k) ?? 0) + 1);
  await Promise.all(
    Array.from({ length: options.connections }, async (_, c) => {
      const ws = new WebSocket(`${options.url.replace(/^http/, 'ws')}/api/v1/stream`, {
        headers: { authorization: `Bearer ${options.token}` },
      });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      let answered = 0;
      const done = new Promise<void>((resolve) => {
        ws.on('message', (data) => {
          const reply = JSON.parse(String(data)) as {
            ack?: number;
            retry_after_ms?: number;
            error?: { code: string };
          };
          if (reply.ack !== undefined) result.acked++;
          else if (reply.retry_after_ms !== undefined) result.refused++;
          else bump(reply.error?.code ?? 'unknown');
          if (++answered === options.frames) resolve();
        });
        ws.on('close', (code) => {
          if (answered < options.frames) bump(`close ${code}`);
          resolve();
        });
        ws.on('error', () => {});
      });
      for (let seq = 0; seq < options.frames; seq++) {
        const readings = Array.from({ length: options.readingsPerFrame }, (_, i) => ({
          device: `${options.devicePrefix}-${c}-${i}`,
          kind: 'asic',
          ts: options.tsBase + seq * 1000,
          power_w: 3400,
          hashrate_ths: 200,
          status: 'ok',
        }));
        ws.send(JSON.stringify({ seq, readings }));
        result.frames++;
      }
      await done;
      ws.close();
    }),
  );
  return result;
}

/*
 * Push protocols (Prometheus remote_write, InfluxDB line protocol, OTLP/HTTP): encoders written from
 * the protocols' own definitions (protobufjs over their .proto messages, the line protocol grammar),
 * hostile bodies built from valid ones, the answer each protocol must give, and a ledger of the
 * samples the service must hold afterwards. tests/receivers-malformed.test.ts and
 * tests/route-walk.test.ts use the encoders and the answer check too.
 */

/** Protobuf by hand, for bodies no encoder would produce (wrong wire types, invalid UTF-8). */
export function pbVarint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

export function pbTag(field: number, wire: number): number[] {
  return pbVarint((field << 3) | wire);
}

/** A length-delimited field (wire type 2): a sub-message, string or bytes. */
export function pbBytes(field: number, bytes: readonly number[] | Uint8Array): number[] {
  return [...pbTag(field, 2), ...pbVarint(bytes.length), ...bytes];
}

export function pbString(field: number, text: string): number[] {
  return pbBytes(field, [...Buffer.from(text, 'utf8')]);
}

/** A little-endian IEEE double as its 8 bytes, NaN payloads kept (the staleness marker is one). */
export function pbDoubleBits(hi: number, lo: number): number[] {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(lo >>> 0, 0);
  b.writeUInt32LE(hi >>> 0, 4);
  return [...b];
}

/** Snappy block-format bytes declaring `length` uncompressed bytes (the header alone, or with `rest`). */
export function snappyHeader(length: number, rest: readonly number[] = []): Buffer {
  return Buffer.from([...pbVarint(length), ...rest]);
}

/**
 * OTLP metrics messages (opentelemetry-proto: collector/metrics/v1, metrics/v1, common/v1,
 * resource/v1; google/rpc/status.proto), field numbers as published. protobufjs turns the
 * snake_case names into the lowerCamelCase of the OTLP JSON mapping, so one object encodes both ways.
 * AggregationTemporality is an enum there: an int32 has the same wire form.
 */
const OTLP_PROTO = `
syntax = "proto3";
package otlp;
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message ExportMetricsServiceResponse { ExportMetricsPartialSuccess partial_success = 1; }
message ExportMetricsPartialSuccess { int64 rejected_data_points = 1; string error_message = 2; }
message Status { int32 code = 1; string message = 2; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; string schema_url = 3; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message InstrumentationScope { string name = 1; string version = 2; }
message ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2; string schema_url = 3; }
message Metric {
  string name = 1;
  string description = 2;
  string unit = 3;
  oneof data {
    Gauge gauge = 5;
    Sum sum = 7;
    Histogram histogram = 9;
    ExponentialHistogram exponential_histogram = 10;
    Summary summary = 11;
  }
}
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum { repeated NumberDataPoint data_points = 1; int32 aggregation_temporality = 2; bool is_monotonic = 3; }
message Histogram { repeated HistogramDataPoint data_points = 1; int32 aggregation_temporality = 2; }
message ExponentialHistogram { repeated ExponentialHistogramDataPoint data_points = 1; int32 aggregation_temporality = 2; }
message Summary { repeated SummaryDataPoint data_points = 1; }
message NumberDataPoint {
  repeated KeyValue attributes = 7;
  fixed64 start_time_unix_nano = 2;
  fixed64 time_unix_nano = 3;
  oneof value { double as_double = 4; sfixed64 as_int = 6; }
  uint32 flags = 8;
}
message HistogramDataPoint {
  repeated KeyValue attributes = 9;
  fixed64 time_unix_nano = 3;
  fixed64 count = 4;
  double sum = 5;
  repeated fixed64 bucket_counts = 6;
  repeated double explicit_bounds = 7;
}
message ExponentialHistogramDataPoint {
  repeated KeyValue attributes = 1;
  fixed64 time_unix_nano = 3;
  fixed64 count = 4;
  double sum = 5;
  sint32 scale = 6;
  fixed64 zero_count = 7;
}
message SummaryDataPoint { repeated KeyValue attributes = 7; fixed64 time_unix_nano = 3; fixed64 count = 4; double sum = 5; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
`;

const otlpRoot = protobuf.parse(OTLP_PROTO).root;
const OtlpExportRequest = otlpRoot.lookupType('otlp.ExportMetricsServiceRequest');
const OtlpExportResponse = otlpRoot.lookupType('otlp.ExportMetricsServiceResponse');
const RpcStatus = otlpRoot.lookupType('otlp.Status');

export interface OtlpKeyValue {
  key: string;
  value: { stringValue?: string; intValue?: string; boolValue?: boolean; doubleValue?: number };
}

export interface OtlpNumberPoint {
  attributes?: OtlpKeyValue[];
  timeUnixNano?: string;
  /** A number, or the JSON mapping's "NaN", "Infinity", "-Infinity". */
  asDouble?: number | string;
  /** int64 as a decimal string, as the JSON mapping writes it. */
  asInt?: string;
  flags?: number;
}

interface OtlpAggregatePoint {
  attributes?: OtlpKeyValue[];
  timeUnixNano: string;
  count: string;
  sum: number;
}

export interface OtlpMetric {
  name: string;
  unit?: string;
  gauge?: { dataPoints: OtlpNumberPoint[] };
  sum?: { dataPoints: OtlpNumberPoint[]; aggregationTemporality: number; isMonotonic?: boolean };
  histogram?: {
    dataPoints: (OtlpAggregatePoint & { bucketCounts: string[]; explicitBounds: number[] })[];
    aggregationTemporality: number;
  };
  exponentialHistogram?: {
    dataPoints: (OtlpAggregatePoint & { scale: number; zeroCount: string })[];
    aggregationTemporality: number;
  };
  summary?: { dataPoints: OtlpAggregatePoint[] };
}

/** An ExportMetricsServiceRequest in the OTLP JSON mapping's shape. */
export interface OtlpRequest {
  resourceMetrics: {
    resource?: { attributes: OtlpKeyValue[] };
    scopeMetrics: { scope?: { name: string }; metrics: OtlpMetric[] }[];
  }[];
}

/** OTLP aggregation temporality: 1 delta, 2 cumulative. */
export const OTLP_DELTA = 1;
export const OTLP_CUMULATIVE = 2;

export const otlpAttr = (key: string, value: string): OtlpKeyValue => ({
  key,
  value: { stringValue: value },
});

/** Milliseconds since the epoch as OTLP's uint64 nanoseconds, a decimal string. */
export const otlpNanos = (ms: number): string => String(BigInt(ms) * 1_000_000n);

/** One resource and one scope holding `metrics`: the shape every exporter sends. */
export function otlpRequest(metrics: OtlpMetric[], resource: OtlpKeyValue[] = []): OtlpRequest {
  return {
    resourceMetrics: [
      { resource: { attributes: resource }, scopeMetrics: [{ scope: { name: 'hashwatt-test' }, metrics }] },
    ],
  };
}

/** The request as OTLP/HTTP protobuf bytes, encoded by protobufjs from the published messages. */
export function encodeOtlpProtobuf(request: OtlpRequest): Uint8Array {
  return OtlpExportRequest.encode(OtlpExportRequest.fromObject(request)).finish();
}

/** A google.rpc.Status read from protobuf bytes. */
export function decodeRpcStatus(bytes: Uint8Array): { code: number; message: string } {
  const status = RpcStatus.toObject(RpcStatus.decode(bytes), { defaults: true }) as {
    code: number;
    message: string;
  };
  return { code: status.code, message: status.message };
}

/** An ExportMetricsServiceResponse read from protobuf bytes: rejected points 0 for a full success. */
export function decodeOtlpExportResponse(bytes: Uint8Array): {
  rejectedDataPoints: number;
  errorMessage: string;
} {
  const response = OtlpExportResponse.toObject(OtlpExportResponse.decode(bytes), {
    longs: String,
    defaults: false,
  }) as { partialSuccess?: { rejectedDataPoints?: string; errorMessage?: string } };
  return {
    rejectedDataPoints: Number(response.partialSuccess?.rejectedDataPoints ?? 0),
    errorMessage: response.partialSuccess?.errorMessage ?? '',
  };
}

/** A tag key or value as line protocol writes it: `,`, `=` and space escaped (no backslashes in ours). */
export function lineTag(text: string): string {
  return text.replace(/[,= ]/g, (c) => `\\${c}`);
}

export type PushProtocol = 'remote_write' | 'influx' | 'otlp';

/** The Authorization scheme each protocol's clients send the site token with. */
export const PUSH_AUTH: Readonly<Record<PushProtocol, string>> = {
  remote_write: 'Bearer',
  influx: 'Token',
  otlp: 'Bearer',
};

/** InfluxDB's error codes for the statuses the line-protocol receiver answers. */
const INFLUX_CODES: Readonly<Record<number, string>> = {
  400: 'invalid',
  401: 'unauthorized',
  413: 'request too large',
  415: 'unsupported media type',
  422: 'unprocessable entity',
  429: 'too many requests',
};

/**
 * google.rpc.Code for the statuses OTLP/HTTP answers, as the receiver contract gives them
 * (429 and 503 are UNAVAILABLE, the code gRPC maps both to).
 */
const GRPC_CODES: Readonly<Record<number, number>> = { 400: 3, 401: 16, 413: 3, 415: 3, 429: 14 };

/** The encoding an OTLP request asked for, by its Content-Type, as the answer must use it. */
export function otlpEncodingOf(contentType: string | undefined): 'protobuf' | 'json' {
  const media = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return media === 'application/x-protobuf' ? 'protobuf' : 'json';
}

/** What a push receiver answered, whole. */
export interface PushAnswer {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

function parseJsonObject(body: Uint8Array): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(Buffer.from(body).toString('utf8')) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

const isReason = (v: unknown): v is string => typeof v === 'string' && v.trim() !== '';

/**
 * What is wrong with a push receiver's answer, or undefined: a 5xx, an error not in the protocol's
 * own format (remote_write text, InfluxDB's {"code","message"}, a google.rpc.Status in the
 * request's encoding), an error without a reason, or a success body the protocol would not send.
 */
export function pushAnswerFault(
  protocol: PushProtocol,
  requestContentType: string | undefined,
  answer: PushAnswer,
): string | undefined {
  const { status, headers, body } = answer;
  const text = Buffer.from(body).toString('utf8');
  const type = headers.get('content-type') ?? '';
  const said = `${status} ${type} ${text.slice(0, 200)}`;
  if (status >= 500) return `a ${status}: ${said}`;
  switch (protocol) {
    case 'remote_write':
      if (status < 400) return status === 204 && body.length === 0 ? undefined : `not a bare 204: ${said}`;
      if (!/^text\/plain/i.test(type)) return `error not text/plain: ${said}`;
      return isReason(text) ? undefined : `error without a reason: ${said}`;
    case 'influx': {
      if (status < 400) return status === 204 && body.length === 0 ? undefined : `not a bare 204: ${said}`;
      const error = /^application\/json/i.test(type) ? parseJsonObject(body) : undefined;
      if (!error) return `error not InfluxDB's JSON: ${said}`;
      if (Object.keys(error).sort().join() !== 'code,message') return `not {"code","message"}: ${said}`;
      if (error.code !== INFLUX_CODES[status]) return `code ${String(error.code)} for ${status}: ${said}`;
      return isReason(error.message) ? undefined : `error without a reason: ${said}`;
    }
    case 'otlp': {
      const encoding = otlpEncodingOf(requestContentType);
      const wantType = encoding === 'protobuf' ? /^application\/x-protobuf/i : /^application\/json/i;
      if (!wantType.test(type)) return `answer not in the request's encoding (${encoding}): ${said}`;
      if (status < 400) {
        if (status !== 200) return `success other than 200: ${said}`;
        if (encoding === 'protobuf') {
          try {
            const r = decodeOtlpExportResponse(body);
            return r.rejectedDataPoints > 0 && !isReason(r.errorMessage)
              ? `rejected points without a reason: ${said}`
              : undefined;
          } catch (error) {
            return `not an ExportMetricsServiceResponse (${(error as Error).message}): ${said}`;
          }
        }
        const response = parseJsonObject(body);
        if (!response) return `not a JSON ExportMetricsServiceResponse: ${said}`;
        if (Object.keys(response).length === 0) return undefined;
        const partial = response.partialSuccess as Record<string, unknown> | undefined;
        if (Object.keys(response).join() !== 'partialSuccess' || typeof partial !== 'object')
          return `unexpected response fields: ${said}`;
        if (typeof partial.rejectedDataPoints !== 'string' || !/^\d+$/.test(partial.rejectedDataPoints))
          return `rejectedDataPoints not an int64 string: ${said}`;
        return isReason(partial.errorMessage) ? undefined : `partial success without a reason: ${said}`;
      }
      let rpc: { code: unknown; message: unknown } | undefined;
      if (encoding === 'protobuf') {
        try {
          rpc = decodeRpcStatus(body);
        } catch (error) {
          return `not a google.rpc.Status (${(error as Error).message}): ${said}`;
        }
      } else rpc = parseJsonObject(body) as { code: unknown; message: unknown } | undefined;
      if (!rpc) return `error not a JSON google.rpc.Status: ${said}`;
      if (rpc.code !== GRPC_CODES[status]) return `Status code ${String(rpc.code)} for ${status}: ${said}`;
      return isReason(rpc.message) ? undefined : `Status without a message: ${said}`;
    }
  }
}

/** One sample of a push request, in hashwatt's terms: what must be stored once it is acknowledged. */
export interface PushSample {
  device: string;
  kind: DeviceKind;
  metric: string;
  index?: string;
  tsMs: number;
  value: number;
}

/** The column of `readings` or `readings_extra` a sample lands in. */
export function sampleColumn(sample: { metric: string; index?: string }): string {
  return sample.index === undefined ? sample.metric : `${sample.metric}_${sample.index}`;
}

const FLOAT4_COLUMNS: ReadonlySet<string> = new Set(
  CORE_METRICS.filter((m) => m.precision === 'float4').map((m) => m.name),
);
const FLOAT4_MIN_NORMAL = 1.1754944e-38;

/** True when `stored` is what a column holds for `sent`: doubles exactly, `real` columns as float4. */
export function storedAsSent(column: string, sent: number, stored: number): boolean {
  if (!FLOAT4_COLUMNS.has(column)) return stored === sent;
  // The contract stores magnitudes under float4's smallest normal as 0 (a real column refuses them).
  const want = Math.abs(sent) < FLOAT4_MIN_NORMAL ? 0 : Math.fround(sent);
  return Math.fround(stored) === want;
}

/** A stored sample, keyed by (device, ts in µs, column). */
export interface StoredSample {
  device: string;
  tsUs: number;
  column: string;
  value: number;
}

export const storedSampleKey = (s: { device: string; tsUs: number; column: string }): string =>
  `${s.device}\u0000${s.tsUs}\u0000${s.column}`;

/** The numeric columns of `readings` and of `readings_extra`, as protocols fill them. */
export const CORE_SAMPLE_COLUMNS: readonly string[] = CORE_METRICS.map((m) => m.name);
export const EXTRA_SAMPLE_COLUMNS: readonly string[] = EXTRA_COLUMNS.map((c) => c.column);

/** Every non-null numeric column of stored rows as samples; `rows` carry `device` and `ts_us`. */
export function samplesOfRows(
  rows: readonly Record<string, unknown>[],
  columns: readonly string[],
): StoredSample[] {
  const out: StoredSample[] = [];
  for (const row of rows) {
    for (const column of columns) {
      const value = row[column];
      if (value === null || value === undefined) continue;
      out.push({ device: String(row.device), tsUs: Number(row.ts_us), column, value: Number(value) });
    }
  }
  return out;
}

/**
 * The samples the service acknowledged over the push protocols: per (device, ts, column) the first
 * value sent, since a later one is a duplicate sample and never replaces what was stored.
 */
export class PushLedger {
  readonly samples = new Map<string, StoredSample>();
  duplicates = 0;

  accept(samples: readonly PushSample[]): void {
    for (const s of samples) {
      const entry = { device: s.device, tsUs: s.tsMs * 1000, column: sampleColumn(s), value: s.value };
      const key = storedSampleKey(entry);
      if (this.samples.has(key)) this.duplicates++;
      else this.samples.set(key, entry);
    }
  }

  /** What differs between the ledger and what is stored: missing, altered and unexpected samples. */
  compare(stored: readonly StoredSample[]): string[] {
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const s of stored) {
      const key = storedSampleKey(s);
      seen.add(key);
      const want = this.samples.get(key);
      if (!want) problems.push(`stored but never acknowledged: ${JSON.stringify(s)}`);
      else if (!storedAsSent(s.column, want.value, s.value))
        problems.push(`${JSON.stringify(key)}: sent ${want.value}, stored ${s.value}`);
    }
    for (const [key, want] of this.samples)
      if (!seen.has(key)) problems.push(`acknowledged but not stored: ${JSON.stringify(want)}`);
    return problems;
  }
}

const KIND_CYCLE: readonly DeviceKind[] = ['asic', 'gpu', 'meter', 'pdu', 'other'];

/** Devices of the push fuzz, each with its kind: names line protocol must escape, unicode, long. */
export const PUSH_DEVICES: readonly { device: string; kind: DeviceKind }[] = [
  'push-1',
  'push-2',
  'hall-c/r02/s19-044',
  'gpu node,7',
  'ñandú=2',
  '矿机-九号',
  `long-${'p'.repeat(100)}`,
  '🙂-gpu',
].map((device, i) => ({ device, kind: KIND_CYCLE[i % KIND_CYCLE.length]! }));

/** The device every bad item names: it holds no good sample, so no bad item collides with one. */
export const BAD_DEVICE: { device: string; kind: DeviceKind } = { device: 'push-bad', kind: 'asic' };

interface PushMetric {
  metric: string;
  indexes?: readonly string[];
  min: number;
  max: number;
  counter: boolean;
}

/** Metrics the fuzz sends by hashwatt's own names: core (float8 and real) and extra, indexed or not. */
const PUSH_METRICS: readonly PushMetric[] = [
  ...['power_w', 'available_power_w', 'hashrate_ths', 'temp_c', 'gpu_util_pct'].map((name) => {
    const m = findMetric(name)!;
    return { metric: name, min: m.min, max: m.max, counter: false };
  }),
  ...(
    [
      ['chip_temp_c', ['0', '3', '7']],
      ['energy_j_total', undefined],
      ['gpu_xid_last', undefined],
      ['hashboard_shares_total', ['0', '1']],
      ['fan_speed_rpm', ['2']],
    ] as const
  ).map(([name, indexes]) => {
    const m = EXTRA_METRICS.find((e) => e.name === name)!;
    return {
      metric: name,
      min: m.min,
      max: m.max,
      counter: m.type === 'counter',
      ...(indexes === undefined ? {} : { indexes }),
    };
  }),
];

/** Exporters' "no value" placeholders, refused whatever the metric (src/ingest/reading.ts). */
const PLACEHOLDERS: ReadonlySet<number> = new Set([
  ...[0, 1, 2, 3].map((k) => 0x7ffffff0 + k),
  2 ** 63,
  ...[0, 1, 2, 3].map((k) => 2 ** 47 + k),
]);

const pushValueArb = (min: number, max: number): fc.Arbitrary<number> =>
  fc
    .oneof(
      fc.integer({ min: Math.ceil(Math.max(min, -1e9)), max: Math.floor(Math.min(max, 1e9)) }),
      fc.double({ min, max, noNaN: true, noDefaultInfinity: true }),
    )
    .filter((v) => !PLACEHOLDERS.has(v));

/**
 * A valid sample: a device of the pool, a metric with an in-range value, an instant of this run
 * or of one of the five before it (so a later request fills in, or repeats, an earlier instant).
 */
function pushSampleArb(tsBase: () => number): fc.Arbitrary<PushSample> {
  return fc
    .record({
      device: fc.constantFrom(...PUSH_DEVICES),
      metric: fc.constantFrom(...PUSH_METRICS),
      indexPick: fc.nat(),
      runsBack: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(5) }),
      offsetMs: fc.nat(50),
      value: fc.double({ min: 0, max: 1, noNaN: true }),
    })
    .chain((r) =>
      pushValueArb(r.metric.min, r.metric.max).map(
        (value): PushSample => ({
          device: r.device.device,
          kind: r.device.kind,
          metric: r.metric.metric,
          ...(r.metric.indexes === undefined
            ? {}
            : { index: r.metric.indexes[r.indexPick % r.metric.indexes.length]! }),
          tsMs: tsBase() - r.runsBack * 100 + r.offsetMs,
          value,
        }),
      ),
    );
}

/** Drops later samples of a key already in the list: one request names each (device, metric, instant) once. */
function uniqueSamples(samples: readonly PushSample[]): PushSample[] {
  const seen = new Set<string>();
  return samples.filter((s) => {
    const key = storedSampleKey({ device: s.device, tsUs: s.tsMs * 1000, column: sampleColumn(s) });
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const isCounter = (metric: string) => PUSH_METRICS.find((m) => m.metric === metric)?.counter === true;

/** A push request as it goes on the wire, with what it must be answered and what it stores. */
export interface PushRequest {
  label: string;
  protocol: PushProtocol;
  path: string;
  /** Every header but Authorization. */
  headers: Record<string, string>;
  body: Buffer;
  /** The samples stored once the answer is the expected one (none for a body refused whole). */
  good: PushSample[];
  status: number;
  /** OTLP: the data points the answer names as rejected. */
  rejectedPoints: number;
  /** remote_write: the series counted in X-Hashwatt-Unmapped-Series (undefined: none). */
  unmappedSeries?: number;
}

/* remote_write */

function ownSeries(
  s: Pick<PushSample, 'device' | 'kind' | 'metric' | 'index'>,
  samples: { value: number; timestamp: number }[],
  extraLabels: Record<string, string> = {},
): FixtureSeries {
  return {
    labels: {
      __name__: `hashwatt_${s.metric}`,
      device: s.device,
      kind: s.kind,
      ...(s.index === undefined ? {} : { index: s.index }),
      ...extraLabels,
    },
    samples,
  };
}

/** Good samples as series: one per (device, metric, index), its samples in time order. */
export function remoteWriteSeries(samples: readonly PushSample[]): FixtureSeries[] {
  const bySeries = new Map<string, { sample: PushSample; points: { value: number; timestamp: number }[] }>();
  for (const s of samples) {
    const key = `${s.device}\u0000${sampleColumn(s)}`;
    let entry = bySeries.get(key);
    if (!entry) {
      entry = { sample: s, points: [] };
      bySeries.set(key, entry);
    }
    entry.points.push({ value: s.value, timestamp: s.tsMs });
  }
  return [...bySeries.values()].map(({ sample, points }) =>
    ownSeries(
      sample,
      points.sort((a, b) => a.timestamp - b.timestamp),
    ),
  );
}

/** A remote_write body: snappy block of a WriteRequest, plus raw protobuf series appended to it. */
export function remoteWriteBody(series: FixtureSeries[], rawSeries: readonly number[][] = []): Buffer {
  return compressSync(
    Buffer.concat([Buffer.from(encodeWriteRequest(series)), Buffer.from(rawSeries.flat())]),
  );
}

/** A TimeSeries written by hand (field 1 of WriteRequest): labels, then samples given as raw bytes. */
export function rawTimeSeries(labels: Record<string, string>, samples: readonly number[][]): number[] {
  const body = [
    ...Object.entries(labels).flatMap(([name, value]) =>
      pbBytes(1, [...pbString(1, name), ...pbString(2, value)]),
    ),
    ...samples.flatMap((s) => pbBytes(2, s)),
  ];
  return pbBytes(1, body);
}

/** Series that make a remote_write request a 400 while its good series are stored. */
function remoteWriteBadSeries(nowMs: number, tsMs: number): { label: string; series: FixtureSeries }[] {
  const at = (value: number, timestamp = tsMs) => [{ value, timestamp }];
  const bad = { ...BAD_DEVICE, metric: 'power_w' };
  const many: Record<string, string> = {};
  for (let i = 0; i < 62; i++) many[`l${i}`] = String(i);
  return [
    { label: 'NaN', series: ownSeries(bad, at(Number.NaN)) },
    { label: '+Inf', series: ownSeries(bad, at(Number.POSITIVE_INFINITY)) },
    { label: '-Inf', series: ownSeries(bad, at(Number.NEGATIVE_INFINITY)) },
    { label: 'an hour ahead', series: ownSeries(bad, at(1, nowMs + 3_600_000)) },
    { label: '40 days old', series: ownSeries(bad, at(1, nowMs - 40 * DAY_MS)) },
    { label: 'before 1970', series: ownSeries(bad, at(1, -86_400_000)) },
    { label: 'past year 2255', series: ownSeries(bad, at(1, 8.64e15)) },
    { label: 'out of range', series: ownSeries({ ...bad, metric: 'temp_c' }, at(1e6)) },
    { label: '-1 W placeholder', series: ownSeries(bad, at(-1)) },
    { label: '65 labels', series: ownSeries(bad, at(1), many) },
    { label: 'label value of 4097', series: ownSeries(bad, at(1), { note: 'v'.repeat(4097) }) },
    { label: 'label name of 257', series: ownSeries(bad, at(1), { ['n'.repeat(257)]: 'x' }) },
    { label: 'unknown hashwatt_ name', series: ownSeries({ ...bad, metric: 'nope_w' }, at(1)) },
    { label: 'unknown index', series: ownSeries({ ...bad, metric: 'chip_temp_c', index: '99' }, at(1)) },
    {
      label: 'no device label',
      series: { labels: { __name__: 'hashwatt_power_w', kind: 'asic' }, samples: at(1) },
    },
    { label: 'no __name__', series: { labels: { device: BAD_DEVICE.device }, samples: at(1) } },
  ];
}

/** Bodies remote_write refuses whole (nothing stored), from a good body's series. */
function remoteWriteFatal(
  series: FixtureSeries[],
): { label: string; body: Buffer; headers?: Record<string, string>; status: number }[] {
  const raw = Buffer.from(encodeWriteRequest(series));
  // Inside the last field (the metadata), so no prefix is itself a whole WriteRequest.
  const cut = raw.subarray(0, raw.length - 5);
  const placeholder = Buffer.from('\u0001\u0002\u0003\u0004\u0005\u0006');
  const withBadUtf8 = Buffer.from(
    encodeWriteRequest([
      ...series,
      ownSeries({ ...BAD_DEVICE, metric: 'power_w' }, [{ value: 1, timestamp: 0 }], {
        note: placeholder.toString(),
      }),
    ]),
  );
  withBadUtf8.set([0xc3, 0x28, 0xff, 0xfe, 0x80, 0x80], withBadUtf8.indexOf(placeholder));
  const good = compressSync(raw);
  return [
    { label: 'not snappy', body: Buffer.from('not snappy at all'), status: 400 },
    { label: 'empty body', body: Buffer.alloc(0), status: 400 },
    { label: 'snappy declaring 4 GiB', body: snappyHeader(0xffff_ffff, [0, 0, 0]), status: 413 },
    { label: 'snappy declaring 1 MiB in 5 bytes', body: snappyHeader(1 << 20, [0]), status: 400 },
    {
      label: 'snappy length header of 6 bytes',
      body: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
      status: 400,
    },
    { label: 'snappy cut short', body: good.subarray(0, good.length - 3), status: 400 },
    { label: 'truncated WriteRequest', body: compressSync(cut), status: 400 },
    { label: 'wire type 7', body: compressSync(Buffer.concat([raw, Buffer.from([0x0f, 1])])), status: 400 },
    { label: 'invalid UTF-8 label', body: compressSync(withBadUtf8), status: 400 },
    { label: 'JSON content type', body: good, headers: { 'content-type': 'application/json' }, status: 415 },
    { label: 'gzip encoding', body: good, headers: { 'content-encoding': 'gzip' }, status: 415 },
    {
      label: 'remote_write 2.0',
      body: good,
      headers: { 'content-type': 'application/x-protobuf;proto=io.prometheus.write.v2.Request' },
      status: 415,
    },
    {
      label: 'version 2.0.0',
      body: good,
      headers: { 'x-prometheus-remote-write-version': '2.0.0' },
      status: 415,
    },
  ];
}

/** Series a valid request may carry besides its samples: unmapped, a DCGM blank, a staleness marker. */
function remoteWriteHarmless(tsMs: number): { series: FixtureSeries[]; raw: number[][]; unmapped: number } {
  const stale = rawTimeSeries({ __name__: 'hashwatt_power_w', device: BAD_DEVICE.device, kind: 'asic' }, [
    [...pbTag(1, 1), ...pbDoubleBits(0x7ff00000, 0x00000002), ...pbTag(2, 0), ...pbVarint(tsMs)],
  ]);
  return {
    series: [
      {
        labels: { __name__: 'node_load1', instance: 'node-a:9100' },
        samples: [{ value: 0.5, timestamp: tsMs }],
      },
      {
        labels: { __name__: 'DCGM_FI_DEV_GPU_TEMP', Hostname: 'push-host', gpu: '0' },
        samples: [{ value: 0x7ffffff0, timestamp: tsMs }],
      },
    ],
    raw: [stale],
    unmapped: 1,
  };
}

/* line protocol */

/** A line-protocol precision: its v2 and v1 names and how epoch milliseconds are written in it. */
export type LinePrecision = { v2: string; v1: string; digits: (ms: number) => string; wholeSeconds: boolean };
export const LINE_PRECISIONS: readonly LinePrecision[] = [
  { v2: 'ns', v1: 'n', digits: (ms) => `${ms}000000`, wholeSeconds: false },
  { v2: 'us', v1: 'u', digits: (ms) => `${ms}000`, wholeSeconds: false },
  { v2: 'ms', v1: 'ms', digits: (ms) => String(ms), wholeSeconds: false },
  { v2: 's', v1: 's', digits: (ms) => String(ms / 1000), wholeSeconds: true },
];

/** A field value as line protocol writes it: integers sometimes as `i`/`u`, floats as JS prints them. */
function lineValue(value: number, style: number): string {
  if (Number.isSafeInteger(value) && style % 3 === 1) return `${value}i`;
  if (Number.isSafeInteger(value) && value >= 0 && style % 3 === 2) return `${value}u`;
  return String(value);
}

/** One line per sample of hashwatt's own measurement. */
export function lineOfSample(s: PushSample, precision: LinePrecision, style = 0): string {
  const index = s.index === undefined ? '' : `,index=${lineTag(s.index)}`;
  return `hashwatt,device=${lineTag(s.device)},kind=${s.kind}${index} ${s.metric}=${lineValue(s.value, style)} ${precision.digits(s.tsMs)}`;
}

/** Lines that make a request a 422 (400 alone) while its good lines are stored; `last` must end the body. */
function lineBadLines(
  nowMs: number,
  tsMs: number,
  precision: LinePrecision,
): { label: string; line: string; last?: boolean }[] {
  const device = `hashwatt,device=${BAD_DEVICE.device},kind=${BAD_DEVICE.kind}`;
  // Whole seconds, so each line is bad for its own reason at every precision.
  const ts = precision.digits(Math.floor(tsMs / 1000) * 1000);
  const tags = Array.from({ length: 65 }, (_, i) => `t${i}=${i}`).join(',');
  const fields = Array.from({ length: 257 }, (_, i) => `f${i}=${i}`).join(',');
  return [
    { label: 'unescaped = in a tag', line: `hashwatt,device=push=bad,kind=asic power_w=1 ${ts}` },
    { label: 'empty tag key', line: `${device},=x power_w=1 ${ts}` },
    { label: 'tag without value', line: `${device},lonely power_w=1 ${ts}` },
    { label: 'no fields', line: `${device} ${ts}` },
    { label: 'field without value', line: `${device} power_w= ${ts}` },
    { label: 'string into a metric', line: `${device} power_w="12" ${ts}` },
    { label: 'boolean into a metric', line: `${device} power_w=true ${ts}` },
    { label: 'int64 overflow', line: `${device} power_w=9223372036854775808i ${ts}` },
    { label: 'uint64 overflow', line: `${device} power_w=18446744073709551616u ${ts}` },
    { label: 'integer past 2^53', line: `${device} power_w=9007199254740993i ${ts}` },
    { label: 'NaN literal', line: `${device} power_w=NaN ${ts}` },
    { label: 'float past double', line: `${device} power_w=1e400 ${ts}` },
    { label: '65 tags', line: `${device},${tags} power_w=1 ${ts}` },
    { label: '257 fields', line: `hashwatt,device=${BAD_DEVICE.device} ${fields} ${ts}` },
    { label: 'tag value of 4097', line: `${device},note=${'v'.repeat(4097)} power_w=1 ${ts}` },
    { label: 'bad timestamp', line: `${device} power_w=1 12ab` },
    { label: 'timestamp past int64', line: `${device} power_w=1 99999999999999999999999` },
    { label: 'trailing garbage', line: `${device} power_w=1 ${ts} extra` },
    {
      label: 'an hour ahead',
      line: `${device} power_w=1 ${precision.digits(Math.floor((nowMs + 3_600_000) / 1000) * 1000)}`,
    },
    {
      label: '40 days old',
      line: `${device} power_w=1 ${precision.digits(Math.floor((nowMs - 40 * DAY_MS) / 1000) * 1000)}`,
    },
    { label: 'out of range', line: `${device} temp_c=1000 ${ts}` },
    { label: 'unknown metric', line: `${device} nope_w=1 ${ts}` },
    { label: 'unknown index', line: `${device},index=99 chip_temp_c=50 ${ts}` },
    { label: 'no device tag', line: `hashwatt,kind=asic power_w=1 ${ts}` },
    // A string field may span lines: an unclosed one runs to the end of the body.
    { label: 'unterminated string', line: `${device} serial="abc\n${device} power_w=1 ${ts}`, last: true },
  ];
}

/** Bodies line protocol refuses whole, from a good body. */
function lineFatal(
  text: string,
): { label: string; body: Buffer; headers?: Record<string, string>; query?: string; status: number }[] {
  const bytes = Buffer.from(text);
  const at = Math.floor(bytes.length / 2);
  const gzipped = gzipSync(bytes);
  return [
    {
      label: 'invalid UTF-8',
      body: Buffer.concat([bytes.subarray(0, at), Buffer.from([0xc3, 0x28, 0xff]), bytes.subarray(at)]),
      status: 400,
    },
    { label: 'not gzip', body: bytes, headers: { 'content-encoding': 'gzip' }, status: 400 },
    {
      label: 'gzip cut short',
      body: gzipped.subarray(0, gzipped.length - 6),
      headers: { 'content-encoding': 'gzip' },
      status: 400,
    },
    { label: 'brotli', body: bytes, headers: { 'content-encoding': 'br' }, status: 415 },
    { label: 'precision m on v2', body: bytes, query: 'precision=m', status: 400 },
    { label: 'precision xs', body: bytes, query: 'precision=xs', status: 400 },
  ];
}

/* OTLP */

function otlpPoint(s: PushSample, asInt: boolean): OtlpNumberPoint {
  return {
    attributes: [
      otlpAttr('device', s.device),
      otlpAttr('kind', s.kind),
      ...(s.index === undefined ? [] : [otlpAttr('index', s.index)]),
    ],
    timeUnixNano: otlpNanos(s.tsMs),
    ...(asInt && Number.isSafeInteger(s.value) ? { asInt: String(s.value) } : { asDouble: s.value }),
  };
}

/** Good samples as metrics of hashwatt's own names: gauges, counters sometimes as cumulative sums. */
export function otlpMetrics(samples: readonly PushSample[], style = 0): OtlpMetric[] {
  const byName = new Map<string, PushSample[]>();
  for (const s of samples) byName.set(s.metric, [...(byName.get(s.metric) ?? []), s]);
  return [...byName].map(([name, points], i) => {
    const dataPoints = points.map((p, j) => otlpPoint(p, (style + i + j) % 2 === 1));
    return isCounter(name) && (style + i) % 2 === 0
      ? { name, sum: { dataPoints, aggregationTemporality: OTLP_CUMULATIVE, isMonotonic: true } }
      : { name, gauge: { dataPoints } };
  });
}

/** Metrics whose points are rejected (the count the answer must give) while the good ones are stored. */
function otlpBadMetrics(
  nowMs: number,
  tsMs: number,
): { label: string; metric: OtlpMetric; rejected: number }[] {
  const attrs = [otlpAttr('device', BAD_DEVICE.device), otlpAttr('kind', BAD_DEVICE.kind)];
  const time = otlpNanos(tsMs);
  const gauge = (name: string, point: OtlpNumberPoint): OtlpMetric => ({
    name,
    gauge: { dataPoints: [point] },
  });
  const aggregate = { attributes: attrs, timeUnixNano: time, count: '3', sum: 7.5 };
  const many = Array.from({ length: 129 }, (_, i) => otlpAttr(`a${i}`, String(i)));
  return [
    {
      label: 'histogram',
      metric: {
        name: 'power_w',
        histogram: {
          dataPoints: [
            { ...aggregate, bucketCounts: ['1', '2'], explicitBounds: [5] },
            { ...aggregate, bucketCounts: ['3', '0'], explicitBounds: [5] },
          ],
          aggregationTemporality: OTLP_CUMULATIVE,
        },
      },
      rejected: 2,
    },
    {
      label: 'exponential histogram',
      metric: {
        name: 'power_w',
        exponentialHistogram: {
          dataPoints: [{ ...aggregate, scale: 2, zeroCount: '0' }],
          aggregationTemporality: OTLP_CUMULATIVE,
        },
      },
      rejected: 1,
    },
    { label: 'summary', metric: { name: 'power_w', summary: { dataPoints: [aggregate] } }, rejected: 1 },
    {
      label: 'delta sum',
      metric: {
        name: 'energy_j_total',
        sum: {
          dataPoints: [
            { attributes: attrs, timeUnixNano: time, asDouble: 5 },
            { attributes: attrs, timeUnixNano: otlpNanos(tsMs + 1), asDouble: 6 },
          ],
          aggregationTemporality: OTLP_DELTA,
          isMonotonic: true,
        },
      },
      rejected: 2,
    },
    {
      label: 'NaN',
      metric: gauge('power_w', { attributes: attrs, timeUnixNano: time, asDouble: 'NaN' }),
      rejected: 1,
    },
    {
      label: 'Infinity',
      metric: gauge('power_w', { attributes: attrs, timeUnixNano: time, asDouble: 'Infinity' }),
      rejected: 1,
    },
    { label: 'no value', metric: gauge('power_w', { attributes: attrs, timeUnixNano: time }), rejected: 1 },
    { label: 'no time', metric: gauge('power_w', { attributes: attrs, asDouble: 1 }), rejected: 1 },
    {
      label: 'asInt past 2^53',
      metric: gauge('energy_j_total', { attributes: attrs, timeUnixNano: time, asInt: '9007199254740993' }),
      rejected: 1,
    },
    {
      label: '129 attributes',
      metric: gauge('power_w', { attributes: [...attrs, ...many], timeUnixNano: time, asDouble: 1 }),
      rejected: 1,
    },
    {
      label: 'attribute of 4097',
      metric: gauge('power_w', {
        attributes: [...attrs, otlpAttr('note', 'v'.repeat(4097))],
        timeUnixNano: time,
        asDouble: 1,
      }),
      rejected: 1,
    },
    {
      label: 'no device attribute',
      metric: gauge('power_w', { attributes: [otlpAttr('kind', 'asic')], timeUnixNano: time, asDouble: 1 }),
      rejected: 1,
    },
    {
      label: 'out of range',
      metric: gauge('temp_c', { attributes: attrs, timeUnixNano: time, asDouble: 1e6 }),
      rejected: 1,
    },
    {
      label: 'an hour ahead',
      metric: gauge('power_w', {
        attributes: attrs,
        timeUnixNano: otlpNanos(nowMs + 3_600_000),
        asDouble: 1,
      }),
      rejected: 1,
    },
    {
      label: 'unknown index',
      metric: gauge('chip_temp_c', {
        attributes: [...attrs, otlpAttr('index', '99')],
        timeUnixNano: time,
        asDouble: 50,
      }),
      rejected: 1,
    },
  ];
}

/** Metrics a valid request may carry besides its samples: unmapped, and a point marking a gap. */
function otlpHarmless(tsMs: number): OtlpMetric[] {
  const time = otlpNanos(tsMs);
  return [
    { name: 'process.cpu.utilization', gauge: { dataPoints: [{ timeUnixNano: time, asDouble: 0.25 }] } },
    {
      name: 'power_w',
      gauge: {
        dataPoints: [
          {
            attributes: [otlpAttr('device', BAD_DEVICE.device), otlpAttr('kind', 'asic')],
            timeUnixNano: time,
            asDouble: 1,
            flags: 1,
          },
        ],
      },
    },
  ];
}

/** Bodies OTLP refuses whole, from a good request. */
function otlpFatal(
  request: OtlpRequest,
  encoding: 'protobuf' | 'json',
): { label: string; body: Buffer; headers?: Record<string, string>; status: number }[] {
  const proto = Buffer.from(encodeOtlpProtobuf(request));
  const json = Buffer.from(JSON.stringify(request));
  const body = encoding === 'protobuf' ? proto : json;
  const cases: { label: string; body: Buffer; headers?: Record<string, string>; status: number }[] = [
    { label: 'not gzip', body, headers: { 'content-encoding': 'gzip' }, status: 400 },
    { label: 'brotli', body, headers: { 'content-encoding': 'br' }, status: 415 },
    { label: 'text/plain', body, headers: { 'content-type': 'text/plain' }, status: 415 },
  ];
  if (encoding === 'protobuf') {
    // One top-level field (resourceMetrics): any proper prefix overruns its length.
    cases.push(
      { label: 'truncated protobuf', body: proto.subarray(0, Math.max(1, proto.length - 7)), status: 400 },
      { label: 'wire type 7', body: Buffer.concat([proto, Buffer.from([0x0f, 1])]), status: 400 },
      {
        label: 'invalid UTF-8 metric name',
        body: Buffer.concat([
          proto,
          Buffer.from(pbBytes(1, pbBytes(2, pbBytes(2, [...pbTag(1, 2), 3, 0xc3, 0x28, 0xff])))),
        ]),
        status: 400,
      },
    );
  } else {
    cases.push(
      { label: 'JSON cut short', body: json.subarray(0, json.length - 2), status: 400 },
      { label: 'a JSON array', body: Buffer.from(`[${json.toString()}]`), status: 400 },
      {
        label: 'invalid UTF-8 JSON',
        body: Buffer.concat([
          Buffer.from('{"resourceMetrics":[],"x":"'),
          Buffer.from([0xc3, 0x28]),
          Buffer.from('"}'),
        ]),
        status: 400,
      },
    );
  }
  return cases;
}

/* the request arbitrary */

type Shape = 'valid' | 'mixed' | 'bad only' | 'fatal';

/**
 * Push requests of every protocol: valid (with unmapped and filtered items), mixed (good items and
 * bad ones, the good stored), bad only, and bodies refused whole. Bad items name BAD_DEVICE only.
 */
export function pushRequestArb(tsBase: () => number, nowMs: () => number): fc.Arbitrary<PushRequest> {
  return fc
    .record({
      protocol: fc.constantFrom('remote_write', 'influx v2', 'influx v1', 'otlp json', 'otlp protobuf'),
      shape: fc.oneof(
        { weight: 3, arbitrary: fc.constant<Shape>('valid') },
        { weight: 3, arbitrary: fc.constant<Shape>('mixed') },
        { weight: 1, arbitrary: fc.constant<Shape>('bad only') },
        { weight: 2, arbitrary: fc.constant<Shape>('fatal') },
      ),
      samples: fc.array(pushSampleArb(tsBase), { minLength: 1, maxLength: 12 }),
      badPicks: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
      pick: fc.nat(),
      harmless: fc.boolean(),
      gzip: fc.boolean(),
    })
    .map((r) => buildPushRequest(r, nowMs()));
}

function buildPushRequest(
  r: {
    protocol: string;
    shape: Shape;
    samples: PushSample[];
    badPicks: number[];
    pick: number;
    harmless: boolean;
    gzip: boolean;
  },
  nowMs: number,
): PushRequest {
  const pickOf = <T>(list: readonly T[], n: number): T => list[n % list.length]!;
  // Each bad item at most once: two equal ones would merge into one sample (one rejection).
  const picksOf = <T extends { label: string }>(list: readonly T[]): T[] => [
    ...new Map(r.badPicks.map((n) => pickOf(list, n)).map((b) => [b.label, b])).values(),
  ];
  const tsMs = r.samples[0]!.tsMs;
  if (r.protocol === 'remote_write') {
    const good = uniqueSamples(r.samples);
    const headers = {
      'content-type': 'application/x-protobuf',
      'content-encoding': 'snappy',
      'x-prometheus-remote-write-version': '0.1.0',
    };
    const series = r.shape === 'bad only' ? [] : remoteWriteSeries(good);
    const kept = r.shape === 'bad only' ? [] : good;
    if (r.shape === 'fatal') {
      const fatal = pickOf(remoteWriteFatal(series), r.pick);
      return {
        label: `remote_write ${fatal.label}`,
        protocol: 'remote_write',
        path: '/api/v1/write',
        headers: { ...headers, ...fatal.headers },
        body: fatal.body,
        good: [],
        status: fatal.status,
        rejectedPoints: 0,
      };
    }
    const bad = r.shape === 'valid' ? [] : picksOf(remoteWriteBadSeries(nowMs, tsMs));
    const harmless = r.harmless ? remoteWriteHarmless(tsMs) : { series: [], raw: [], unmapped: 0 };
    return {
      label: `remote_write ${r.shape}${bad.length ? ` (${bad.map((b) => b.label).join(', ')})` : ''}`,
      protocol: 'remote_write',
      path: '/api/v1/write',
      headers,
      body: remoteWriteBody([...series, ...bad.map((b) => b.series), ...harmless.series], harmless.raw),
      good: kept,
      status: bad.length > 0 ? 400 : 204,
      rejectedPoints: 0,
      ...(harmless.unmapped > 0 ? { unmappedSeries: harmless.unmapped } : {}),
    };
  }
  if (r.protocol.startsWith('influx')) {
    const v1 = r.protocol === 'influx v1';
    const precision = pickOf(LINE_PRECISIONS, r.pick);
    const good = uniqueSamples(
      r.samples.map((s) => (precision.wholeSeconds ? { ...s, tsMs: Math.floor(s.tsMs / 1000) * 1000 } : s)),
    );
    const goodLines =
      r.shape === 'bad only' ? [] : good.map((s, i) => lineOfSample(s, precision, r.pick + i));
    const bad =
      r.shape === 'valid' || r.shape === 'fatal' ? [] : picksOf(lineBadLines(nowMs, tsMs, precision));
    // An unterminated string swallows the rest of the body: only one, and last.
    const badLines = [...bad.filter((b) => !b.last), ...bad.filter((b) => b.last).slice(0, 1)].map(
      (b) => b.line,
    );
    const harmless = r.harmless
      ? [
          `cpu,host=push-host usage_idle=97.5 ${precision.digits(Math.floor(tsMs / 1000) * 1000)}`,
          '# a comment',
          '',
        ]
      : [];
    const text = [...harmless, ...goodLines, ...badLines].join(r.pick % 2 === 0 ? '\n' : '\r\n');
    const query = v1 ? `db=fuzz&precision=${precision.v1}` : `org=fuzz&bucket=fuzz&precision=${precision.v2}`;
    const path = v1 ? '/write' : '/api/v2/write';
    if (r.shape === 'fatal') {
      const fatal = pickOf(lineFatal(text), r.pick >> 2);
      // v1 takes `m` (minutes): only a precision neither API knows is refused by both.
      const fatalQuery = fatal.query === 'precision=m' && v1 ? 'precision=xs' : fatal.query;
      return {
        label: `influx ${v1 ? 'v1' : 'v2'} ${fatal.label}`,
        protocol: 'influx',
        path: `${path}?${fatalQuery ?? query}`,
        headers: { 'content-type': 'text/plain; charset=utf-8', ...fatal.headers },
        body: fatal.body,
        good: [],
        status: fatal.status,
        rejectedPoints: 0,
      };
    }
    const body = r.gzip ? gzipSync(text) : Buffer.from(text);
    return {
      label: `influx ${v1 ? 'v1' : 'v2'} ${precision.v2} ${r.shape}${bad.length ? ` (${bad.map((b) => b.label).join(', ')})` : ''}`,
      protocol: 'influx',
      path: `${path}?${query}`,
      headers: {
        'content-type': 'text/plain; charset=utf-8',
        ...(r.gzip ? { 'content-encoding': 'gzip' } : {}),
      },
      body,
      good: r.shape === 'bad only' ? [] : good,
      status: bad.length === 0 ? 204 : r.shape === 'bad only' ? 400 : 422,
      rejectedPoints: 0,
    };
  }
  const encoding = r.protocol === 'otlp json' ? 'json' : 'protobuf';
  const good = uniqueSamples(r.samples);
  const kept = r.shape === 'bad only' ? [] : good;
  const bad = r.shape === 'valid' || r.shape === 'fatal' ? [] : picksOf(otlpBadMetrics(nowMs, tsMs));
  const request = otlpRequest(
    [...otlpMetrics(kept, r.pick), ...bad.map((b) => b.metric), ...(r.harmless ? otlpHarmless(tsMs) : [])],
    [otlpAttr('service.name', 'push-fuzz')],
  );
  const contentType = encoding === 'json' ? 'application/json' : 'application/x-protobuf';
  if (r.shape === 'fatal') {
    const fatal = pickOf(otlpFatal(request, encoding), r.pick);
    return {
      label: `otlp ${encoding} ${fatal.label}`,
      protocol: 'otlp',
      path: '/v1/metrics',
      headers: { 'content-type': contentType, ...fatal.headers },
      body: fatal.body,
      good: [],
      status: fatal.status,
      rejectedPoints: 0,
    };
  }
  const raw =
    encoding === 'json' ? Buffer.from(JSON.stringify(request)) : Buffer.from(encodeOtlpProtobuf(request));
  return {
    label: `otlp ${encoding} ${r.shape}${bad.length ? ` (${bad.map((b) => b.label).join(', ')})` : ''}`,
    protocol: 'otlp',
    path: '/v1/metrics',
    headers: { 'content-type': contentType, ...(r.gzip ? { 'content-encoding': 'gzip' } : {}) },
    body: r.gzip ? gzipSync(raw) : raw,
    good: kept,
    status: 200,
    rejectedPoints: bad.reduce((n, b) => n + b.rejected, 0),
  };
}
