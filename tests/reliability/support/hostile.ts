import { isUtf8 } from 'node:buffer';
import http from 'node:http';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import WebSocket from 'ws';
import { readingKey } from '../../../simulators/index.ts';
import { validateReading } from '../../../src/ingest/reading.ts';

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

/** A reading the service stored, as it was sent. */
export interface StoredReading {
  device: string;
  tsMs: number;
  reading: Record<string, unknown>;
}

/** What the service must answer. */
export type Expected =
  | { status: 200; accepted: number; duplicates: number; rejectedIndexes: number[]; kindRequired: number[] }
  | { status: number; code: string };

/**
 * The service's state as far as the contract lets a client know it: which devices exist and which
 * (device, ts) are stored, and what each stored reading held.
 */
export class IngestModel {
  readonly devices = new Set<string>();
  /** key → the reading stored for it (the first one accepted). */
  readonly stored = new Map<string, StoredReading>();
  /** What the last expectation would change; applied by `commit()` once the service answered as expected. */
  #pending: { devices: string[]; stored: Map<string, StoredReading> } | undefined;

  /** Forgets a staged change (a new expectation is about to be computed). */
  discard(): void {
    this.#pending = undefined;
  }

  /** The last expectation was met: the service now holds what it said. */
  commit(): void {
    if (!this.#pending) return;
    for (const d of this.#pending.devices) this.devices.add(d);
    for (const [k, v] of this.#pending.stored) this.stored.set(k, v);
    this.#pending = undefined;
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
      if (this.stored.has(key) || staged.has(key)) duplicates++;
      else {
        accepted++;
        staged.set(key, { device, tsMs, reading: raw[i] as Record<string, unknown> });
      }
    });
    this.#pending = { devices: [...registrable], stored: staged };
    return { status: 200, accepted, duplicates, rejectedIndexes, kindRequired };
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
  | { ack: number; accepted: number; duplicates: number; rejectedIndexes: number[]; kindRequired: number[] }
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
