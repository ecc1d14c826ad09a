/**
 * The hostile-value route walk: every route the app registers gets a table of hostile path, query
 * and body values, and every one must be answered below 500 with a well-formed error envelope (a
 * push receiver: with an error in its own protocol's format, with a reason).
 * The routes come from the app itself, so a route added without a table here fails this test.
 */
import { gzipSync } from 'node:zlib';
import { compressSync } from 'snappy';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_STATUS, type ErrorCode } from '../src/errors.ts';
import { encodeWriteRequest, type FixtureSeries } from '../src/protocols/testing/prometheus-proto.ts';
import type { RunningService } from '../src/service.ts';
import {
  encodeOtlpProtobuf,
  LINE_PRECISIONS,
  lineOfSample,
  OTLP_CUMULATIVE,
  OTLP_DELTA,
  type OtlpMetric,
  otlpAttr,
  otlpMetrics,
  otlpNanos,
  otlpRequest,
  type PushProtocol,
  type PushSample,
  pbBytes,
  pbDoubleBits,
  pbTag,
  pbVarint,
  pushAnswerFault,
  rawTimeSeries,
  remoteWriteBody,
  remoteWriteSeries,
  snappyHeader,
} from './reliability/support/hostile.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { sortedJson } from './support/json.ts';
import { ADMIN_TOKEN, asicReading, type LogLine, startTestService } from './support/service.ts';

type App = RunningService['app'];

/** One request of the walk. `path` is sent as written: its percent-escapes reach the router raw. */
interface Probe {
  method: string;
  path: string;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  /** Leave out the admin token (the route's auth is probed too). */
  anonymous?: boolean;
  /** What is wrong with an accepted answer beyond its status, or undefined. */
  check?: (probe: Probe, response: Response) => Promise<string | undefined>;
  /** A push receiver answers in its protocol's format, not in hashwatt's envelope. */
  protocol?: PushProtocol;
}

/** What a route's table is given: a site of its own (so a route that alters it spoils no other). */
interface WalkSite {
  id: number;
  token: string;
  /** A name no other site has, for bodies that create one. */
  freshName(): string;
}

// Values for a path segment, written as they go on the wire.
const HOSTILE_SEGMENTS = [
  '0',
  '-1',
  '2147483648',
  '9007199254740991',
  '99999999999999999999',
  '1.0',
  '0x1',
  '1e0',
  '%201',
  '1%20',
  '+1',
  '01',
  '%00',
  '1%00',
  'abc',
  'NaN',
  'Infinity',
  '%F0%9F%98%80',
  '%ED%A0%80',
  '%FF',
  '%',
  '%ZZ',
  '%2F',
  '..',
  "1'",
  '1;DROP%20TABLE%20sites',
  'x'.repeat(5000),
];

// Values for a query parameter, percent-encoded where they need it.
const HOSTILE_QUERY_VALUES = [
  '',
  '%00',
  'a%00b',
  '%ED%A0%80',
  '%FF',
  '%',
  '%ZZ',
  '%20',
  'x'.repeat(5000),
  '-1',
  '0',
  '1e2',
  '0x10',
  '99999999999999999999',
  '2147483648',
  'NaN',
  'Infinity',
  "'",
  'false',
  'firing',
];

// JSON values substituted for one body field at a time, as raw JSON text.
const deepArrays = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
const deepObjects = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
const HOSTILE_JSON = [
  'null',
  'true',
  '0',
  '-0',
  '-1',
  '1.5',
  '1e309',
  '-1e309',
  '1e-400',
  '9007199254740993',
  '2147483648',
  '""',
  '" "',
  '"\\u0000"',
  '"a\\u0000b"',
  '"\\ud800"',
  '"x\\udfff"',
  '"ñ😀"',
  '"\\n\\t"',
  '"<script>"',
  `"' OR 1=1 --"`,
  `"${'x'.repeat(100_000)}"`,
  '[]',
  '[null]',
  '{}',
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '{"\\u0000":1}',
  '{"\\ud800":1}',
  '{"big":1e309}',
  deepArrays,
  deepObjects,
];

// Whole bodies.
const HOSTILE_BODIES: (string | Uint8Array)[] = [
  '',
  ' ',
  'null',
  '[]',
  '"x"',
  '1',
  '{',
  '{"a":',
  'NaN',
  '{"__proto__":1}',
  '{"__proto__":{"polluted":true}}',
  Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
  Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]),
  `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
  `{"pad":"${'x'.repeat(2 * 1024 * 1024)}"}`,
];

const UNKNOWN_PARAM = 'unexpected_param';

/** Every hostile value in the one path parameter `:name` of `template`. */
function pathProbes(
  method: string,
  template: string,
  name: string,
  extra: Omit<Probe, 'method' | 'path'> = {},
) {
  return HOSTILE_SEGMENTS.map((segment) => ({
    method,
    path: template.replace(`:${name}`, segment),
    ...extra,
  }));
}

/** Every hostile value in each named query parameter, an unknown one, repeats and a bare key. */
function queryProbes(
  method: string,
  path: string,
  names: string[],
  extra: Omit<Probe, 'method' | 'path'> = {},
) {
  const probes: Probe[] = [];
  for (const name of [...names, UNKNOWN_PARAM]) {
    for (const value of HOSTILE_QUERY_VALUES)
      probes.push({ method, path: `${path}?${name}=${value}`, ...extra });
    probes.push({ method, path: `${path}?${name}=1&${name}=2`, ...extra });
    probes.push({ method, path: `${path}?${name}`, ...extra });
  }
  return probes;
}

const SENTINEL = '\u0001hostile\u0001';

/** `base` as JSON text with the field at `field` (dotted; digits index arrays) replaced by raw JSON. */
function withRawField(base: unknown, field: string, raw: string): string {
  const copy = structuredClone(base) as Record<string, unknown>;
  const keys = field.split('.');
  let at: Record<string, unknown> = copy;
  for (const key of keys.slice(0, -1)) {
    at[key] ??= {};
    at = at[key] as Record<string, unknown>;
  }
  at[keys.at(-1)!] = SENTINEL;
  return JSON.stringify(copy).replace(JSON.stringify(SENTINEL), raw);
}

/** Every hostile whole body, then every hostile JSON value in each field of a valid body. */
function bodyProbes(
  method: string,
  path: string,
  base: () => unknown,
  fields: string[],
  headers: Record<string, string> = {},
) {
  const probes: Probe[] = HOSTILE_BODIES.map((body) => ({ method, path, body, headers }));
  for (const field of fields) {
    for (const raw of HOSTILE_JSON)
      probes.push({ method, path, body: withRawField(base(), field, raw), headers });
  }
  probes.push({ method, path, body: JSON.stringify(base()), headers: { 'content-type': 'text/plain' } });
  return probes;
}

/** An accepted site body must come back (from the row as stored) exactly as it was sent. */
async function storedAsSent(probe: Probe, response: Response): Promise<string | undefined> {
  if (response.status >= 300 || typeof probe.body !== 'string') return undefined;
  const sent = JSON.parse(probe.body) as Record<string, unknown>;
  const { site } = (await response.json()) as {
    site: Record<string, unknown> & { threshold_overrides: Record<string, unknown> };
  };
  for (const [field, value] of Object.entries(sent)) {
    if (field === 'thresholds') {
      for (const [name, threshold] of Object.entries(value as Record<string, unknown>)) {
        const stored = site.threshold_overrides[name];
        if (threshold === null ? stored !== undefined : stored !== threshold) {
          return `threshold ${name} sent ${JSON.stringify(threshold)}, stored ${JSON.stringify(stored)}`;
        }
      }
    } else if (sortedJson(site[field]) !== sortedJson(value)) {
      return `${field} sent ${sortedJson(value).slice(0, 200)}, stored ${sortedJson(site[field]).slice(0, 200)}`;
    }
  }
  return undefined;
}

const SITE_FIELDS = [
  'name',
  'kind',
  'capacity_kw',
  'region',
  'timezone',
  'metadata',
  'metadata.x',
  'metadata.x.y',
];
const PATCH_FIELDS = [
  ...SITE_FIELDS,
  'thresholds',
  'thresholds.site_down_after_s',
  'thresholds.surplus_min_ratio',
];
const ALERT_QUERY = ['state', 'limit'];

/*
 * The push receivers (src/receivers/): each answers in its own protocol's format, so their tables
 * carry `protocol` and their answers are checked by pushAnswerFault, not as envelopes.
 */

/** A whole second a minute ago: inside the accepted window. */
const WALK_T = Math.floor(Date.now() / 1000) * 1000 - 60_000;
const WALK_SAMPLES: PushSample[] = [
  { device: 'walk-gpu', kind: 'gpu', metric: 'power_w', tsMs: WALK_T, value: 301.5 },
  { device: 'walk-gpu', kind: 'gpu', metric: 'chip_temp_c', index: '1', tsMs: WALK_T, value: 70.25 },
];

// Header values, as a Request may carry them (byte strings without CR, LF or NUL).
const HOSTILE_HEADER_VALUES = ['', ' ', '\u00ff', 'x'.repeat(5000), ';', ',', '*/*', 'a=b; c', '"quoted"'];

/** A deterministic pseudo-random byte string (no test should depend on Math.random). */
function noise(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const rwSeries = (labels: Record<string, string>, value = 1, timestamp = WALK_T): FixtureSeries => ({
  labels: { __name__: 'hashwatt_power_w', device: 'walk-bad', kind: 'gpu', ...labels },
  samples: [{ value, timestamp }],
});
const rwRaw = Buffer.from(encodeWriteRequest(remoteWriteSeries(WALK_SAMPLES)));
const manyLabels = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`l${i}`, `${i}`]));

const REMOTE_WRITE_BODIES: Uint8Array[] = [
  remoteWriteBody(remoteWriteSeries(WALK_SAMPLES)),
  Buffer.alloc(0),
  Buffer.from('not snappy'),
  snappyHeader(0xffff_ffff, [0]),
  snappyHeader(1 << 20, [0]),
  snappyHeader(0),
  Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
  noise(4096, 1),
  compressSync(rwRaw.subarray(0, rwRaw.length >> 1)),
  compressSync(Buffer.concat([rwRaw, Buffer.from([0x0f])])),
  compressSync(Buffer.from([0x0b, 0x0c])),
  compressSync(Buffer.from(pbBytes(1, pbBytes(1, [...pbTag(1, 2), 2, 0xc3, 0x28])))),
  compressSync(Buffer.from(pbBytes(1, [...pbTag(2, 2), ...pbVarint(2 ** 31)]))),
  compressSync(
    Buffer.from(
      rawTimeSeries({ __name__: 'hashwatt_power_w', device: 'x', kind: 'gpu' }, [[...pbTag(1, 0), 1]]),
    ),
  ),
  compressSync(
    Buffer.from(
      rawTimeSeries({ __name__: 'hashwatt_power_w', device: 'x', kind: 'gpu' }, [
        [...pbTag(1, 1), ...pbDoubleBits(0x7ff00000, 2)],
      ]),
    ),
  ),
  compressSync(noise(64 * 1024, 2)),
  compressSync(Buffer.alloc(1 << 20, 0)),
  remoteWriteBody([rwSeries(manyLabels(200))]),
  remoteWriteBody([rwSeries({ note: 'v'.repeat(100_000) })]),
  remoteWriteBody([rwSeries({ ['n'.repeat(5000)]: 'x' })]),
  remoteWriteBody([rwSeries({ __name__: '' })]),
  remoteWriteBody([rwSeries({ __name__: 'hashwatt_' })]),
  remoteWriteBody([rwSeries({ __name__: 'hashwatt___proto__' })]),
  remoteWriteBody([rwSeries({ kind: '__proto__' })]),
  remoteWriteBody([rwSeries({ device: '\u0000' })]),
  remoteWriteBody([rwSeries({ device: '🙂'.repeat(3000) })]),
  ...[Number.NaN, Number.POSITIVE_INFINITY, -1, -0, 1e308, 5e-324, 2 ** 63].map((v) =>
    remoteWriteBody([rwSeries({}, v)]),
  ),
  ...[8.64e15, -8.64e15, 0, -1, Date.now() + 3_600_000, 2 ** 62].map((ts) =>
    remoteWriteBody([rwSeries({}, 1, ts)]),
  ),
  remoteWriteBody(
    Array.from({ length: 5000 }, (_, i) => ({ labels: { __name__: `unmapped_${i}` }, samples: [] })),
  ),
];

const WALK_LINE = lineOfSample(WALK_SAMPLES[0]!, LINE_PRECISIONS.find((p) => p.v2 === 'ms')!);
const LINE_BODIES: (string | Uint8Array)[] = [
  WALK_LINE,
  '',
  '\n\n\n',
  '# only a comment',
  'm',
  'm,',
  'm,t',
  'm,t=',
  'm,t=v',
  'm f',
  'm f=',
  'm f=1 x',
  'm f=1 1 2',
  'hashwatt,device=d=e,kind=gpu power_w=1',
  'hashwatt,device=d\\,kind=gpu power_w=1',
  'hashwatt,device=d,kind=gpu power_w="1"',
  'hashwatt,device=d,kind=gpu power_w=t',
  'hashwatt,device=d,kind=gpu power_w=1e999',
  'hashwatt,device=d,kind=gpu power_w=NaN',
  'hashwatt,device=d,kind=gpu power_w=-Inf',
  'hashwatt,device=d,kind=gpu power_w=9223372036854775808i',
  'hashwatt,device=d,kind=gpu power_w=-9223372036854775809i',
  'hashwatt,device=d,kind=gpu power_w=18446744073709551616u',
  'hashwatt,device=d,kind=gpu power_w=-1u',
  'hashwatt,device=d,kind=gpu power_w=1 99999999999999999999999999',
  'hashwatt,device=d,kind=gpu power_w=1 -99999999999999999999999999',
  'hashwatt,device=d,kind=gpu power_w=1 1.5',
  'hashwatt,device=d,kind=gpu __proto__=1',
  'hashwatt,device=__proto__,kind=__proto__ power_w=1',
  'hashwatt,device=d,kind=gpu,index=__proto__ chip_temp_c=1',
  'hashwatt,device=d,kind=gpu s="unterminated\nhashwatt,device=d,kind=gpu power_w=1',
  `hashwatt,device=d,kind=gpu${Array.from({ length: 1000 }, (_, i) => `,t${i}=${i}`).join('')} power_w=1`,
  `hashwatt,device=d,kind=gpu ${Array.from({ length: 5000 }, (_, i) => `f${i}=${i}`).join(',')}`,
  `hashwatt,device=${'d'.repeat(100_000)},kind=gpu power_w=1`,
  `m s="${'\\'.repeat(100_000)}"`,
  '\\'.repeat(100_000),
  '"'.repeat(100_000),
  `${'m f=1\n'.repeat(100_000)}`,
  'hashwatt,device=nul\u0000,kind=gpu power_w=1',
  Buffer.from([0x6d, 0x20, 0x66, 0x3d, 0x31, 0xff, 0xfe]),
  Buffer.from('\ufeffm f=1'),
  'm f=1\r\n\r\n\r',
];

const otlpPoint = (extra: Record<string, unknown>) => ({
  attributes: [otlpAttr('device', 'walk-bad'), otlpAttr('kind', 'gpu')],
  timeUnixNano: otlpNanos(WALK_T),
  asDouble: 1,
  ...extra,
});
const otlpWith = (metric: Record<string, unknown>) =>
  JSON.stringify({ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'power_w', ...metric }] }] }] });
const otlpValid = otlpRequest(otlpMetrics(WALK_SAMPLES));
const otlpRaw = Buffer.from(encodeOtlpProtobuf(otlpValid));
const aggregatePoint = { ...otlpPoint({}), count: '2', sum: 3 };
const OTLP_UNSTORED: OtlpMetric[] = [
  {
    name: 'power_w',
    histogram: {
      dataPoints: [{ ...aggregatePoint, bucketCounts: ['1', '1'], explicitBounds: [1] }],
      aggregationTemporality: OTLP_CUMULATIVE,
    },
  },
  { name: 'power_w', summary: { dataPoints: [aggregatePoint] } },
  { name: 'energy_j_total', sum: { dataPoints: [otlpPoint({})], aggregationTemporality: OTLP_DELTA } },
];

const OTLP_JSON_BODIES: string[] = [
  JSON.stringify(otlpValid),
  '{}',
  '{"resourceMetrics":[]}',
  '{"resourceMetrics":5}',
  '{"resourceMetrics":[5,"x",null,[]]}',
  '{"resourceMetrics":[{"scopeMetrics":{"metrics":[]}}]}',
  otlpWith({ gauge: { dataPoints: 7 } }),
  otlpWith({ gauge: { dataPoints: [otlpPoint({ asDouble: { value: 1 } })] } }),
  otlpWith({ gauge: { dataPoints: [otlpPoint({ timeUnixNano: { n: 1 } })] } }),
  otlpWith({ gauge: { dataPoints: [otlpPoint({ timeUnixNano: '99999999999999999999999' })] } }),
  otlpWith({ gauge: { dataPoints: [otlpPoint({ timeUnixNano: -1 })] } }),
  otlpWith({ gauge: { dataPoints: [otlpPoint({ asDouble: 'NaN' })] } }),
  otlpWith({ gauge: { dataPoints: [otlpPoint({ asDouble: undefined, asInt: '99999999999999999999' })] } }),
  otlpWith({ gauge: { dataPoints: [otlpPoint({ asDouble: undefined, asInt: 1e308 })] } }),
  otlpWith({ gauge: { dataPoints: [otlpPoint({ flags: -1 })] } }),
  otlpWith({
    gauge: {
      dataPoints: [
        otlpPoint({ attributes: Array.from({ length: 10_000 }, (_, i) => otlpAttr(`a${i}`, 'x')) }),
      ],
    },
  }),
  otlpWith({ gauge: { dataPoints: [otlpPoint({ attributes: [otlpAttr('device', 'd'.repeat(100_000))] })] } }),
  otlpWith({
    gauge: { dataPoints: [otlpPoint({ attributes: [{ key: '__proto__', value: { stringValue: 'x' } }] })] },
  }),
  otlpWith({
    gauge: {
      dataPoints: [otlpPoint({ attributes: [{ key: 'device', value: { kvlistValue: { values: [] } } }] })],
    },
  }),
  otlpWith({
    gauge: { dataPoints: [otlpPoint({ attributes: [{ key: 'device', value: { intValue: '1e5' } }] })] },
  }),
  otlpWith({ sum: { dataPoints: [otlpPoint({})], aggregationTemporality: '2' } }),
  JSON.stringify(otlpRequest(OTLP_UNSTORED)),
  '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"power_w","gauge":{"dataPoints":[{"attributes":[{"key":"device","value":{"stringValue":"\\ud800"}},{"key":"kind","value":{"stringValue":"gpu"}}],"timeUnixNano":"1","asDouble":1}]}}]}]}]}',
  `{"resourceMetrics":${'['.repeat(10_000)}${']'.repeat(10_000)}}`,
];

const OTLP_PROTOBUF_BODIES: Uint8Array[] = [
  otlpRaw,
  Buffer.alloc(0),
  otlpRaw.subarray(0, otlpRaw.length - 1),
  otlpRaw.subarray(0, 1),
  Buffer.concat([otlpRaw, Buffer.from([0x0f])]),
  Buffer.concat([otlpRaw, Buffer.from([0x0b])]),
  Buffer.from([...pbTag(1, 2), ...pbVarint(2 ** 32 - 1)]),
  Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
  Buffer.from(pbBytes(1, pbBytes(2, pbBytes(2, [...pbTag(1, 2), 2, 0xc3, 0x28])))),
  Buffer.from(pbBytes(1, pbBytes(2, pbBytes(2, [...pbTag(5, 0), 1])))),
  Buffer.from(pbBytes(1, pbBytes(2, pbBytes(2, [...pbTag(5, 2), ...pbBytes(1, [...pbTag(3, 0), 1])])))),
  encodeOtlpProtobuf(otlpRequest(OTLP_UNSTORED)),
  noise(4096, 3),
  Buffer.alloc(64 * 1024, 0),
];

const WRONG_TOKENS = (scheme: string) => [
  `${scheme} hw_\u00ff`,
  `${scheme} `,
  `${scheme}`,
  'Basic !!!',
  'Basic Og==',
  `${scheme} a b`,
];

/** A receiver's table: auth, query, each header, whole bodies (hashwatt's hostile ones and its protocol's). */
function receiverProbes(options: {
  protocol: PushProtocol;
  path: string;
  token: string;
  scheme: string;
  headers: Record<string, string>;
  valid: string | Uint8Array;
  query: string[];
  bodies: readonly (string | Uint8Array)[];
}): Probe[] {
  const { protocol, path, valid } = options;
  const headers = { ...options.headers, authorization: `${options.scheme} ${options.token}` };
  const probe = (extra: Omit<Probe, 'method' | 'protocol'>): Probe => ({
    method: 'POST',
    protocol,
    ...extra,
  });
  const [bare, query = ''] = path.split('?');
  const probes: Probe[] = [
    probe({ path, body: valid, headers: options.headers, anonymous: true }),
    ...WRONG_TOKENS(options.scheme).map((authorization) =>
      probe({ path, body: valid, headers: { ...options.headers, authorization } }),
    ),
    // The admin token is no site's token.
    probe({ path, body: valid, headers: options.headers }),
    ...queryProbes('POST', bare!, options.query, { body: valid, headers }).map((p) => ({
      ...p,
      path: query === '' ? p.path : `${p.path}&${query}`,
      protocol,
    })),
  ];
  for (const name of new Set([...Object.keys(options.headers), 'content-encoding'])) {
    for (const value of HOSTILE_HEADER_VALUES)
      probes.push(probe({ path, body: valid, headers: { ...headers, [name]: value } }));
  }
  probes.push(probe({ path, body: gzipSync(valid), headers: { ...headers, 'content-encoding': 'gzip' } }));
  for (const body of [...HOSTILE_BODIES, ...options.bodies]) probes.push(probe({ path, body, headers }));
  for (const body of [
    Buffer.from('not gzip'),
    gzipSync(valid).subarray(0, 12),
    gzipSync(Buffer.alloc(40 * 1024 * 1024)),
  ])
    probes.push(probe({ path, body, headers: { ...headers, 'content-encoding': 'gzip' } }));
  return probes;
}

const RW_HEADERS = {
  'content-type': 'application/x-protobuf',
  'content-encoding': 'snappy',
  'x-prometheus-remote-write-version': '0.1.0',
};

/** The unmapped-names answer must have the documented shape, for the site asked about. */
async function unmappedShape(probe: Probe, response: Response): Promise<string | undefined> {
  if (response.status !== 200) return undefined;
  const body = (await response.json()) as { site_id?: unknown; total?: unknown; names?: unknown };
  const id = Number(/\/sites\/(\d+)\//.exec(probe.path)?.[1]);
  if (body.site_id !== id || typeof body.total !== 'number' || !Array.isArray(body.names))
    return `not { site_id, total, names }: ${JSON.stringify(body).slice(0, 200)}`;
  return undefined;
}

/** A valid silence body: one of the walk site's alerts for an hour. */
function walkSilence(siteId: number) {
  return {
    site: siteId,
    alertname: 'SiteDown',
    ends_at: new Date(Date.now() + 3_600_000).toISOString(),
    comment: 'walk',
  };
}

/** An accepted silence must come back with its scope and comment as sent. */
async function silenceAsSent(probe: Probe, response: Response): Promise<string | undefined> {
  if (response.status >= 300 || typeof probe.body !== 'string') return undefined;
  const sent = JSON.parse(probe.body) as { site: number | null; alertname: string | null; comment: string };
  const { silence } = (await response.json()) as {
    silence: { site: { id: number } | null; alertname: string | null; comment: string; state: string };
  };
  if ((silence.site?.id ?? null) !== sent.site) return `site sent ${sent.site}, stored ${silence.site?.id}`;
  if (silence.alertname !== sent.alertname)
    return `alertname sent ${sent.alertname}, stored ${silence.alertname}`;
  if (silence.comment !== sent.comment)
    return `comment sent ${JSON.stringify(sent.comment).slice(0, 80)}, stored otherwise`;
  if (silence.state !== 'active') return `created ${silence.state}`;
  return undefined;
}

/**
 * The hostile table of every route, keyed `METHOD path` as the app registers it. A route missing
 * here fails the walk; so does an entry for a route the app no longer has.
 */
const TABLE: Record<string, (site: WalkSite) => Probe[]> = {
  'GET /healthz': () => queryProbes('GET', '/healthz', []),
  'GET /readyz': () => queryProbes('GET', '/readyz', []),
  'GET /metrics': () => [
    ...queryProbes('GET', '/metrics', []),
    { method: 'GET', path: '/metrics', headers: { authorization: 'Bearer \u00ff' } },
  ],
  'POST /api/v1/sites': (site) => [
    { method: 'POST', path: '/api/v1/sites', body: '{}', anonymous: true },
    ...bodyProbes(
      'POST',
      '/api/v1/sites',
      () => ({ name: site.freshName(), kind: 'mining', capacity_kw: 1 }),
      SITE_FIELDS,
    ).map((probe) => ({ ...probe, check: storedAsSent })),
    ...queryProbes('POST', '/api/v1/sites', [], { body: '{}' }),
  ],
  'GET /api/v1/sites': () => [
    { method: 'GET', path: '/api/v1/sites', anonymous: true },
    ...queryProbes('GET', '/api/v1/sites', []),
  ],
  'GET /api/v1/sites/:id': (site) => [
    { method: 'GET', path: `/api/v1/sites/${site.id}`, anonymous: true },
    ...pathProbes('GET', '/api/v1/sites/:id', 'id'),
    ...queryProbes('GET', `/api/v1/sites/${site.id}`, []),
  ],
  'PATCH /api/v1/sites/:id': (site) => [
    { method: 'PATCH', path: `/api/v1/sites/${site.id}`, body: '{}', anonymous: true },
    ...pathProbes('PATCH', '/api/v1/sites/:id', 'id', { body: '{"region":"walk"}' }),
    ...queryProbes('PATCH', `/api/v1/sites/${site.id}`, [], { body: '{}' }),
    ...bodyProbes('PATCH', `/api/v1/sites/${site.id}`, () => ({}), PATCH_FIELDS).map((probe) => ({
      ...probe,
      check: storedAsSent,
    })),
  ],
  'POST /api/v1/sites/:id/token': (site) => [
    { method: 'POST', path: `/api/v1/sites/${site.id}/token`, anonymous: true },
    ...pathProbes('POST', '/api/v1/sites/:id/token', 'id'),
    ...queryProbes('POST', `/api/v1/sites/${site.id}/token`, []),
    ...HOSTILE_BODIES.map((body) => ({ method: 'POST', path: `/api/v1/sites/${site.id}/token`, body })),
  ],
  'DELETE /api/v1/sites/:id': (site) => [
    { method: 'DELETE', path: `/api/v1/sites/${site.id}`, anonymous: true },
    ...pathProbes('DELETE', '/api/v1/sites/:id', 'id'),
    ...pathProbes('DELETE', '/api/v1/sites/:id?purge=true', 'id'),
    ...HOSTILE_BODIES.map((body) => ({ method: 'DELETE', path: `/api/v1/sites/${site.id}`, body })),
    // Last: `purge=true` among them may delete the route's own site, which is what it is for.
    ...queryProbes('DELETE', `/api/v1/sites/${site.id}`, ['purge']),
  ],
  'GET /api/v1/alerts': () => [
    { method: 'GET', path: '/api/v1/alerts', anonymous: true },
    ...queryProbes('GET', '/api/v1/alerts', [...ALERT_QUERY, 'site']),
  ],
  'GET /api/v1/sites/:id/alerts': (site) => [
    { method: 'GET', path: `/api/v1/sites/${site.id}/alerts`, anonymous: true },
    ...pathProbes('GET', '/api/v1/sites/:id/alerts', 'id'),
    ...queryProbes('GET', `/api/v1/sites/${site.id}/alerts`, ALERT_QUERY),
  ],
  'POST /api/v1/alerts/:id/ack': (site) => [
    { method: 'POST', path: '/api/v1/alerts/1/ack', body: '{}', anonymous: true },
    // A site token reads but may not act: 403 for its own site, 404 for any other's alert.
    {
      method: 'POST',
      path: '/api/v1/alerts/999999/ack',
      body: '{}',
      anonymous: true,
      headers: { authorization: `Bearer ${site.token}` },
    },
    ...pathProbes('POST', '/api/v1/alerts/:id/ack', 'id', { body: '{}' }),
    ...queryProbes('POST', '/api/v1/alerts/999999/ack', [], { body: '{}' }),
    ...bodyProbes('POST', '/api/v1/alerts/999999/ack', () => ({ comment: 'walk' }), ['comment']),
  ],
  'DELETE /api/v1/alerts/:id/ack': (site) => [
    { method: 'DELETE', path: '/api/v1/alerts/1/ack', anonymous: true },
    {
      method: 'DELETE',
      path: '/api/v1/alerts/999999/ack',
      anonymous: true,
      headers: { authorization: `Bearer ${site.token}` },
    },
    ...pathProbes('DELETE', '/api/v1/alerts/:id/ack', 'id'),
    ...queryProbes('DELETE', '/api/v1/alerts/999999/ack', []),
    ...HOSTILE_BODIES.map((body) => ({ method: 'DELETE', path: '/api/v1/alerts/999999/ack', body })),
  ],
  'GET /api/v1/silences': (site) => [
    { method: 'GET', path: '/api/v1/silences', anonymous: true },
    ...queryProbes('GET', '/api/v1/silences', ['state', 'site', 'limit']),
    ...queryProbes('GET', '/api/v1/silences', ['site'], {
      headers: { authorization: `Bearer ${site.token}` },
    }),
  ],
  'POST /api/v1/silences': (site) => [
    { method: 'POST', path: '/api/v1/silences', body: '{}', anonymous: true },
    // A site token may not silence even its own site.
    {
      method: 'POST',
      path: '/api/v1/silences',
      body: JSON.stringify(walkSilence(site.id)),
      anonymous: true,
      headers: { authorization: `Bearer ${site.token}` },
    },
    ...bodyProbes('POST', '/api/v1/silences', () => walkSilence(site.id), [
      'site',
      'alertname',
      'ends_at',
      'comment',
    ]).map((probe) => ({ ...probe, check: silenceAsSent })),
    ...queryProbes('POST', '/api/v1/silences', [], { body: JSON.stringify(walkSilence(site.id)) }),
  ],
  'GET /api/v1/silences/:id': (site) => [
    { method: 'GET', path: '/api/v1/silences/1', anonymous: true },
    ...pathProbes('GET', '/api/v1/silences/:id', 'id'),
    ...pathProbes('GET', '/api/v1/silences/:id', 'id', {
      headers: { authorization: `Bearer ${site.token}` },
    }),
    ...queryProbes('GET', '/api/v1/silences/999999', []),
  ],
  'DELETE /api/v1/silences/:id': (site) => [
    { method: 'DELETE', path: '/api/v1/silences/1', anonymous: true },
    ...pathProbes('DELETE', '/api/v1/silences/:id', 'id'),
    ...pathProbes('DELETE', '/api/v1/silences/:id', 'id', {
      headers: { authorization: `Bearer ${site.token}` },
    }),
    ...queryProbes('DELETE', '/api/v1/silences/999999', []),
    ...HOSTILE_BODIES.map((body) => ({ method: 'DELETE', path: '/api/v1/silences/999999', body })),
  ],
  // The ingest path has its own fuzz suite (tests/reliability/hostile-input.test.ts); a smaller set here.
  'POST /api/v1/ingest': (site) => {
    const auth = { authorization: `Bearer ${site.token}`, 'content-type': 'application/json' };
    return [
      { method: 'POST', path: '/api/v1/ingest', body: '{"readings":[]}', anonymous: true },
      {
        method: 'POST',
        path: '/api/v1/ingest',
        body: '{"readings":[]}',
        anonymous: true,
        headers: { authorization: 'Bearer hw_\u00ff', 'content-type': 'application/json' },
      },
      {
        method: 'POST',
        path: '/api/v1/ingest',
        body: 'not gzip',
        headers: { ...auth, 'content-encoding': 'gzip' },
      },
      ...bodyProbes(
        'POST',
        '/api/v1/ingest',
        () => ({ readings: [asicReading('walk', Date.now())] }),
        [
          'readings',
          'readings.0',
          'readings.0.device',
          'readings.0.ts',
          'readings.0.power_w',
          'readings.0.status',
        ],
        auth,
      ),
    ];
  },
  'GET /api/v1/sites/:id/unmapped': (site) => [
    { method: 'GET', path: `/api/v1/sites/${site.id}/unmapped`, anonymous: true },
    // A site's token is no admin token.
    {
      method: 'GET',
      path: `/api/v1/sites/${site.id}/unmapped`,
      anonymous: true,
      headers: { authorization: `Bearer ${site.token}` },
    },
    { method: 'GET', path: `/api/v1/sites/${site.id}/unmapped`, check: unmappedShape },
    ...pathProbes('GET', '/api/v1/sites/:id/unmapped', 'id'),
    ...queryProbes('GET', `/api/v1/sites/${site.id}/unmapped`, []),
  ],
  'POST /api/v1/write': (site) =>
    receiverProbes({
      protocol: 'remote_write',
      path: '/api/v1/write',
      token: site.token,
      scheme: 'Bearer',
      headers: RW_HEADERS,
      valid: REMOTE_WRITE_BODIES[0]!,
      query: [],
      bodies: REMOTE_WRITE_BODIES,
    }),
  'POST /api/v2/write': (site) =>
    receiverProbes({
      protocol: 'influx',
      path: '/api/v2/write?org=o&bucket=b&precision=ms',
      token: site.token,
      scheme: 'Token',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      valid: WALK_LINE,
      query: ['org', 'bucket', 'precision'],
      bodies: LINE_BODIES,
    }),
  'POST /write': (site) => [
    ...receiverProbes({
      protocol: 'influx',
      path: '/write?db=d&precision=ms',
      token: site.token,
      scheme: 'Token',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      valid: WALK_LINE,
      query: ['db', 'precision', 'rp', 'consistency'],
      bodies: LINE_BODIES,
    }),
    // v1 clients may put the credentials in the query instead of a header.
    ...queryProbes('POST', `/write`, ['u', 'p'], { body: WALK_LINE, anonymous: true }).map((p) => ({
      ...p,
      path: `${p.path}&precision=ms`,
      protocol: 'influx' as const,
    })),
    {
      method: 'POST',
      path: `/write?u=x&p=${site.token}&precision=ms`,
      body: WALK_LINE,
      anonymous: true,
      protocol: 'influx',
    },
    {
      method: 'POST',
      path: `/write?p=${site.token}&p=other&precision=ms`,
      body: WALK_LINE,
      anonymous: true,
      protocol: 'influx',
    },
  ],
  'POST /v1/metrics': (site) => [
    ...receiverProbes({
      protocol: 'otlp',
      path: '/v1/metrics',
      token: site.token,
      scheme: 'Bearer',
      headers: { 'content-type': 'application/json' },
      valid: JSON.stringify(otlpValid),
      query: [],
      bodies: OTLP_JSON_BODIES,
    }),
    ...receiverProbes({
      protocol: 'otlp',
      path: '/v1/metrics',
      token: site.token,
      scheme: 'Bearer',
      headers: { 'content-type': 'application/x-protobuf' },
      valid: otlpRaw,
      query: [],
      bodies: OTLP_PROTOBUF_BODIES,
    }),
  ],
  'GET /api/v1/fleet': (site) => [
    { method: 'GET', path: '/api/v1/fleet', anonymous: true },
    {
      method: 'GET',
      path: '/api/v1/fleet',
      anonymous: true,
      headers: { authorization: `Bearer ${site.token}` },
    },
    ...queryProbes('GET', '/api/v1/fleet', []),
  ],
  'GET /api/v1/sites/:id/status': (site) => [
    { method: 'GET', path: `/api/v1/sites/${site.id}/status`, anonymous: true },
    ...pathProbes('GET', '/api/v1/sites/:id/status', 'id'),
    ...pathProbes('GET', '/api/v1/sites/:id/status', 'id', {
      headers: { authorization: `Bearer ${site.token}` },
    }),
    ...queryProbes('GET', `/api/v1/sites/${site.id}/status`, []),
  ],
  'GET /api/v1/sites/:id/devices': (site) => [
    { method: 'GET', path: `/api/v1/sites/${site.id}/devices`, anonymous: true },
    ...pathProbes('GET', '/api/v1/sites/:id/devices', 'id'),
    ...queryProbes('GET', `/api/v1/sites/${site.id}/devices`, ['state', 'kind', 'q', 'limit', 'cursor']),
    ...queryProbes('GET', `/api/v1/sites/${site.id}/devices`, ['q', 'cursor'], {
      headers: { authorization: `Bearer ${site.token}` },
    }),
  ],
  'GET /api/v1/sites/:id/series': (site) => [
    { method: 'GET', path: `/api/v1/sites/${site.id}/series?metric=power_w`, anonymous: true },
    ...pathProbes('GET', '/api/v1/sites/:id/series?metric=power_w', 'id'),
    ...queryProbes('GET', `/api/v1/sites/${site.id}/series`, [
      'metric',
      'index',
      'from',
      'to',
      'step',
      'agg',
    ]),
  ],
  'GET /api/v1/sites/:id/devices/:device/series': (site) => [
    { method: 'GET', path: `/api/v1/sites/${site.id}/devices/1/series?metric=power_w`, anonymous: true },
    ...pathProbes('GET', '/api/v1/sites/:id/devices/1/series?metric=power_w', 'id'),
    ...pathProbes('GET', `/api/v1/sites/${site.id}/devices/:device/series?metric=power_w`, 'device'),
    ...queryProbes('GET', `/api/v1/sites/${site.id}/devices/1/series`, [
      'metric',
      'index',
      'from',
      'to',
      'step',
      'agg',
    ]),
  ],
  'GET /api/v1/sites/:id/energy': (site) => [
    { method: 'GET', path: `/api/v1/sites/${site.id}/energy?from=0`, anonymous: true },
    ...pathProbes('GET', '/api/v1/sites/:id/energy?from=2026-12-01T00:00:00Z', 'id'),
    ...queryProbes('GET', `/api/v1/sites/${site.id}/energy`, ['from', 'to', 'bucket']),
  ],
  'POST /api/v1/tokens': (site) => [
    { method: 'POST', path: '/api/v1/tokens', body: '{}', anonymous: true },
    {
      method: 'POST',
      path: '/api/v1/tokens',
      body: '{"name":"x","role":"viewer"}',
      anonymous: true,
      headers: { authorization: `Bearer ${site.token}` },
    },
    ...bodyProbes(
      'POST',
      '/api/v1/tokens',
      () => ({ name: site.freshName(), role: 'viewer', sites: [site.id] }),
      ['name', 'role', 'sites', 'sites.0'],
    ),
    ...queryProbes('POST', '/api/v1/tokens', [], { body: '{}' }),
  ],
  'GET /api/v1/tokens': () => [
    { method: 'GET', path: '/api/v1/tokens', anonymous: true },
    ...queryProbes('GET', '/api/v1/tokens', []),
  ],
  'DELETE /api/v1/tokens/:id': () => [
    { method: 'DELETE', path: '/api/v1/tokens/1', anonymous: true },
    ...pathProbes('DELETE', '/api/v1/tokens/:id', 'id'),
    ...queryProbes('DELETE', '/api/v1/tokens/999999', []),
  ],
  // The web console (src/console/): the page, its assets and who the page's token is.
  'GET /': () => [{ method: 'GET', path: '/', anonymous: true }, ...queryProbes('GET', '/', [])],
  'GET /console/assets/:file': () => [
    ...pathProbes('GET', '/console/assets/:file', 'file', { anonymous: true }),
    ...queryProbes('GET', '/console/assets/uPlot.esm.js', [], { anonymous: true }),
  ],
  'GET /console/session': (site) => [
    { method: 'GET', path: '/console/session', anonymous: true },
    {
      method: 'GET',
      path: '/console/session',
      anonymous: true,
      headers: { authorization: `Bearer ${site.token}` },
    },
    ...queryProbes('GET', '/console/session', []),
  ],
  'GET /openapi.json': () => [
    { method: 'GET', path: '/openapi.json' },
    { method: 'GET', path: '/openapi.json?x=1', anonymous: true },
  ],
  'GET /docs': () => [{ method: 'GET', path: '/docs', anonymous: true }],
  'GET /docs/swagger-ui.css': () => [{ method: 'GET', path: '/docs/swagger-ui.css', anonymous: true }],
  'GET /docs/swagger-ui-bundle.js': () => [
    { method: 'GET', path: '/docs/swagger-ui-bundle.js', anonymous: true },
  ],
  'GET /docs/swagger-ui-standalone-preset.js': () => [
    { method: 'GET', path: '/docs/swagger-ui-standalone-preset.js', anonymous: true },
  ],
};

/** Requests no registered route answers. */
const UNROUTED: Probe[] = [
  ...['/', '/api', '/api/v1', '/api/v1/nope', '/%00', '/%ED%A0%80', `/${'x'.repeat(5000)}`].map((path) => ({
    method: 'GET',
    path,
  })),
  { method: 'PUT', path: '/api/v1/sites', body: '{}' },
  { method: 'DELETE', path: '/api/v1/sites' },
  { method: 'POST', path: '/api/v1/alerts', body: '{}' },
  { method: 'GET', path: '/api/v1/ingest' },
  { method: 'PATCH', path: '/healthz', body: '{}' },
];

/** The app as src/service.ts composes it, on a real database, with its log captured. */

/** The routes the app registers, as `METHOD path`; `ALL` entries are middleware (`app.use`). */
function registeredRoutes(app: App): string[] {
  const keys = app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`);
  return [...new Set(keys)].sort();
}

async function send(app: App, probe: Probe): Promise<Response> {
  const headers: Record<string, string> = {
    ...(!probe.anonymous && { authorization: `Bearer ${ADMIN_TOKEN}` }),
    ...(probe.body !== undefined && { 'content-type': 'application/json' }),
    ...probe.headers,
  };
  return app.request(`http://walk.test${probe.path}`, {
    method: probe.method,
    headers,
    ...(probe.body !== undefined && { body: probe.body }),
  });
}

/** What is wrong with an answer, or undefined: a 5xx, or a 4xx that is not the envelope. */
async function faultOf(response: Response): Promise<string | undefined> {
  if (response.status >= 500) return `status ${response.status}: ${await response.text()}`;
  if (response.status < 400) return undefined;
  const text = await response.text();
  let body: { error?: { code?: unknown; message?: unknown; field?: unknown; request_id?: unknown } };
  try {
    body = JSON.parse(text);
  } catch {
    return `status ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`;
  }
  const error = body.error;
  if (typeof error?.code !== 'string' || !(error.code in ERROR_STATUS)) return `no known error code: ${text}`;
  if (ERROR_STATUS[error.code as ErrorCode] !== response.status) return `code/status mismatch: ${text}`;
  if (typeof error.message !== 'string' || error.message === '') return `no message: ${text}`;
  if (typeof error.request_id !== 'string') return `no request_id: ${text}`;
  if (error.field !== undefined && typeof error.field !== 'string') return `field not a string: ${text}`;
  return undefined;
}

/** The Content-Type a probe goes out with (send's default for a body, unless the probe sets one). */
function contentTypeOf(probe: Probe): string | undefined {
  return probe.headers?.['content-type'] ?? (probe.body === undefined ? undefined : 'application/json');
}

/** The envelope check for hashwatt's own routes, the protocol's format for a push receiver. */
async function faultOfProbe(probe: Probe, response: Response): Promise<string | undefined> {
  if (probe.protocol === undefined) return faultOf(response);
  return pushAnswerFault(probe.protocol, contentTypeOf(probe), {
    status: response.status,
    headers: response.headers,
    body: new Uint8Array(await response.arrayBuffer()),
  });
}

describe('hostile-value walk of every registered route', () => {
  let db: TestDatabase;
  let service: RunningService;
  let composed: { app: App };
  const log: LogLine[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    // The app exactly as the service wires it, with its log kept for the unhandled-error check.
    service = await startTestService(db, { log });
    composed = { app: service.app };
  });
  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('has a hostile table for every route the app registers, and none for a route it does not', () => {
    const routes = registeredRoutes(composed.app);
    expect(
      routes.filter((route) => !(route in TABLE)),
      'routes with no hostile table',
    ).toEqual([]);
    expect(
      Object.keys(TABLE).filter((route) => !routes.includes(route)),
      'tables of no route',
    ).toEqual([]);
  });

  it('answers every hostile request below 500 with a well-formed error envelope', async () => {
    const { app } = composed;
    let names = 0;
    let sent = 0;
    const faults: string[] = [];
    for (const [index, route] of registeredRoutes(app).entries()) {
      const build = TABLE[route];
      if (!build) continue;
      const created = await app.request('http://walk.test/api/v1/sites', {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `walk-route-${index}`, kind: 'mixed', capacity_kw: 10 }),
      });
      expect(created.status).toBe(201);
      const { site, token } = (await created.json()) as { site: { id: number }; token: string };
      const walkSite: WalkSite = { id: site.id, token, freshName: () => `walk-${index}-${names++}` };
      for (const probe of build(walkSite)) {
        const response = await send(app, probe);
        const fault = (await faultOfProbe(probe, response.clone())) ?? (await probe.check?.(probe, response));
        sent += 1;
        if (fault)
          faults.push(
            `${probe.method} ${probe.path.slice(0, 120)} ${String(probe.body ?? '').slice(0, 80)} → ${fault}`,
          );
      }
    }
    // Paths and methods no route has: the not-found answer is an envelope too.
    for (const probe of UNROUTED) {
      const fault = await faultOf(await send(app, probe));
      sent += 1;
      if (fault) faults.push(`${probe.method} ${probe.path.slice(0, 120)} → ${fault}`);
    }
    expect(faults).toEqual([]);
    expect(log.filter((line) => line.msg === 'unhandled error')).toEqual([]);
    // Nothing reached Object.prototype through a `__proto__` or `constructor` key.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(sent).toBeGreaterThan(1000);
  });
});
