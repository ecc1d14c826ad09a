/**
 * Malformed input on the push receivers (remote_write, line protocol v1 and v2, OTLP/HTTP in both
 * encodings): each bad body gets its protocol's 400/413/415/422 (OTLP: 200 with partial success
 * for rejected points) with a reason in the protocol's own format, never a 5xx; a body refused
 * whole stores nothing; the good part of a partly bad body is stored exactly as sent, and nothing
 * else. Then random bytes and strings on every route: never a 5xx, and the service stays up.
 */
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { sql } from 'kysely';
import { compressSync } from 'snappy';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PARSE_LIMITS } from '../src/protocols/line-protocol/parse.ts';
import { DEFAULT_OTLP_MAPPING } from '../src/protocols/otlp/mapping.ts';
import { DEFAULT_REMOTE_WRITE_MAPPING } from '../src/protocols/remote-write/mapping.ts';
import { encodeWriteRequest, type FixtureSeries } from '../src/protocols/testing/prometheus-proto.ts';
import type { RunningService } from '../src/service.ts';
import {
  CORE_SAMPLE_COLUMNS,
  decodeOtlpExportResponse,
  decodeRpcStatus,
  EXTRA_SAMPLE_COLUMNS,
  encodeOtlpProtobuf,
  LINE_PRECISIONS,
  lineOfSample,
  lineTag,
  OTLP_CUMULATIVE,
  OTLP_DELTA,
  type OtlpMetric,
  type OtlpNumberPoint,
  type OtlpRequest,
  otlpAttr,
  otlpEncodingOf,
  otlpMetrics,
  otlpNanos,
  otlpRequest,
  PUSH_AUTH,
  type PushAnswer,
  PushLedger,
  type PushProtocol,
  type PushSample,
  pbBytes,
  pbDoubleBits,
  pbString,
  pbTag,
  pbVarint,
  pushAnswerFault,
  rawTimeSeries,
  remoteWriteBody,
  remoteWriteSeries,
  type StoredSample,
  samplesOfRows,
  snappyHeader,
} from './reliability/support/hostile.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import { createSite, type LogLine, startTestService } from './support/service.ts';

/** A whole second a minute ago: inside the accepted window, exact at every precision. */
const T = Math.floor(Date.now() / 1000) * 1000 - 60_000;
const DAY_MS = 86_400_000;
const MS = LINE_PRECISIONS.find((p) => p.v2 === 'ms')!;
const LIMITS = DEFAULT_REMOTE_WRITE_MAPPING.limits;

const sample = (
  device: string,
  metric: string,
  value: number,
  extra: { index?: string; tsMs?: number; kind?: PushSample['kind'] } = {},
): PushSample => ({
  device,
  kind: extra.kind ?? 'gpu',
  metric,
  ...(extra.index === undefined ? {} : { index: extra.index }),
  tsMs: extra.tsMs ?? T,
  value,
});

/** The good part every partly bad body carries: a core float8, a real, an indexed extra metric. */
const GOOD: readonly PushSample[] = [
  sample('good-1', 'power_w', 612.25),
  sample('good-1', 'temp_c', 63.5),
  sample('good-2', 'chip_temp_c', 71.125, { index: '3' }),
  sample('good-2', 'energy_j_total', 123456789.5),
];

/** A request to a receiver and what it must answer and store. */
interface Case {
  name: string;
  protocol: PushProtocol;
  path: string;
  headers: Record<string, string>;
  body: Buffer | string;
  status: number;
  /** What the reason in the answer must say (remote_write text, InfluxDB message, Status or partial-success message). */
  reason?: RegExp;
  /** OTLP 200: the rejected data points the answer must name. */
  rejectedPoints?: number;
  /** Exactly what is stored afterwards: [] for a body refused whole. */
  stored: readonly PushSample[];
}

/* remote_write */

const RW_HEADERS = {
  'content-type': 'application/x-protobuf',
  'content-encoding': 'snappy',
  'x-prometheus-remote-write-version': '0.1.0',
};

const own = (
  labels: Record<string, string>,
  samples: { value: number; timestamp: number }[] = [{ value: 1, timestamp: T }],
): FixtureSeries => ({
  labels: { __name__: 'hashwatt_power_w', device: 'bad-1', kind: 'gpu', ...labels },
  samples,
});

const rw = (
  name: string,
  body: Buffer,
  status: number,
  reason: RegExp | undefined,
  stored: readonly PushSample[],
  headers: Record<string, string> = {},
): Case => ({
  name,
  protocol: 'remote_write',
  path: '/api/v1/write',
  headers: { ...RW_HEADERS, ...headers },
  body,
  status,
  ...(reason === undefined ? {} : { reason }),
  stored,
});

/** The good series, then `bad` ones: a 400 naming the first bad one, the good series stored. */
const rwPartly = (name: string, bad: FixtureSeries[], reason: RegExp): Case =>
  rw(name, remoteWriteBody([...remoteWriteSeries(GOOD), ...bad]), 400, reason, GOOD);

const goodWriteRequest = Buffer.from(encodeWriteRequest(remoteWriteSeries(GOOD)));
const labelsOf = (n: number, prefix = 'l') =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, String(i)]));
/** A Sample written by hand: the value and timestamp fields with the given bytes. */
const rawSample = (fields: number[]) => rawTimeSeries({ ...own({}).labels, device: 'bad-wire' }, [fields]);

const withBadUtf8Label = (() => {
  const marker = '\u0001\u0002\u0003\u0004';
  const raw = Buffer.from(encodeWriteRequest([...remoteWriteSeries(GOOD), own({ note: marker })]));
  raw.set([0xc3, 0x28, 0xff, 0xfe], raw.indexOf(Buffer.from(marker)));
  return compressSync(raw);
})();

const REMOTE_WRITE_CASES: Case[] = [
  rw('all valid: 204, stored as sent', remoteWriteBody(remoteWriteSeries(GOOD)), 204, undefined, GOOD),
  rw(
    'truncated protobuf (valid snappy of a WriteRequest cut inside its last field)',
    compressSync(goodWriteRequest.subarray(0, goodWriteRequest.length - 5)),
    400,
    /bad_protobuf/,
    [],
  ),
  rw(
    'truncated protobuf (cut inside the first series)',
    compressSync(goodWriteRequest.subarray(0, 12)),
    400,
    /bad_protobuf/,
    [],
  ),
  rw('bad snappy', Buffer.from('certainly not snappy'), 400, /bad_snappy/, []),
  rw(
    'snappy cut short',
    (() => {
      const body = remoteWriteBody(remoteWriteSeries(GOOD));
      return body.subarray(0, body.length - 4);
    })(),
    400,
    /bad_snappy/,
    [],
  ),
  rw(
    'snappy declaring 4 GiB: refused before decompressing',
    snappyHeader(0xffff_ffff, [0, 1, 2]),
    413,
    /4294967295 bytes/,
    [],
  ),
  rw(
    'snappy declaring 8 MiB in 6 bytes',
    snappyHeader(8 << 20, [0]),
    400,
    /more than \d+ snappy bytes can hold/,
    [],
  ),
  rw(
    'snappy length header past 32 bits',
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f, 0]),
    400,
    /bad_snappy/,
    [],
  ),
  rw(
    'wire type 7 after the good series: the whole body refused',
    compressSync(Buffer.concat([goodWriteRequest, Buffer.from([0x0f, 0x01])])),
    400,
    /bad_protobuf/,
    [],
  ),
  rw(
    'a group (wire type 3) where a series belongs',
    compressSync(Buffer.concat([goodWriteRequest, Buffer.from([0x0b, 0x0c])])),
    400,
    /bad_protobuf/,
    [],
  ),
  rw('invalid UTF-8 in a label: the whole body refused', withBadUtf8Label, 400, /UTF-8/, []),
  rwPartly(`${LIMITS.maxLabels + 1} labels`, [own(labelsOf(LIMITS.maxLabels - 2))], /too_many_labels/),
  rwPartly(
    `a label name of ${LIMITS.maxLabelNameLength + 1}`,
    [own({ ['n'.repeat(LIMITS.maxLabelNameLength + 1)]: 'x' })],
    /too_many_labels/,
  ),
  rwPartly(
    `a label value of ${LIMITS.maxLabelValueLength + 1}`,
    [own({ note: 'v'.repeat(LIMITS.maxLabelValueLength + 1) })],
    /too_many_labels/,
  ),
  rw(
    'labels at the limits exactly are stored',
    remoteWriteBody([
      own({
        device: 'limits',
        ...labelsOf(LIMITS.maxLabels - 4),
        note: 'v'.repeat(LIMITS.maxLabelValueLength),
      }),
      own({ device: 'limits', __name__: 'hashwatt_temp_c', ['n'.repeat(LIMITS.maxLabelNameLength)]: 'x' }, [
        { value: 20.5, timestamp: T },
      ]),
    ]),
    204,
    undefined,
    [sample('limits', 'power_w', 1), sample('limits', 'temp_c', 20.5)],
  ),
  rwPartly('a NaN value', [own({}, [{ value: Number.NaN, timestamp: T }])], /not_finite/),
  rwPartly('+Inf', [own({}, [{ value: Number.POSITIVE_INFINITY, timestamp: T }])], /not_finite/),
  rwPartly('-Inf', [own({}, [{ value: Number.NEGATIVE_INFINITY, timestamp: T }])], /not_finite/),
  rw(
    "Prometheus' staleness marker is skipped, not an error",
    Buffer.from(
      compressSync(
        Buffer.concat([
          goodWriteRequest,
          Buffer.from(
            rawSample([...pbTag(1, 1), ...pbDoubleBits(0x7ff00000, 2), ...pbTag(2, 0), ...pbVarint(T)]),
          ),
        ]),
      ),
    ),
    204,
    undefined,
    GOOD,
  ),
  rwPartly(
    'a timestamp an hour ahead',
    [own({}, [{ value: 1, timestamp: Date.now() + 3_600_000 }])],
    /timestamp_in_future/,
  ),
  rwPartly(
    'a timestamp 40 days old',
    [own({}, [{ value: 1, timestamp: T - 40 * DAY_MS }])],
    /timestamp_too_old/,
  ),
  rwPartly('a timestamp before 1970', [own({}, [{ value: 1, timestamp: -1 }])], /timestamp_too_old/),
  rwPartly(
    'a timestamp past the year 2255',
    [own({}, [{ value: 1, timestamp: 8.64e15 }])],
    /timestamp_out_of_range/,
  ),
  rwPartly(
    'a value out of range',
    [own({ __name__: 'hashwatt_temp_c' }, [{ value: 1e6, timestamp: T }])],
    /out_of_range/,
  ),
  rwPartly('an unknown hashwatt_ name', [own({ __name__: 'hashwatt_power_kw' })], /unknown_metric/),
  rwPartly(
    'no device label',
    [{ labels: { __name__: 'hashwatt_power_w', kind: 'gpu' }, samples: [{ value: 1, timestamp: T }] }],
    /missing_device_label/,
  ),
  rwPartly(
    'no __name__',
    [{ labels: { device: 'x' }, samples: [{ value: 1, timestamp: T }] }],
    /missing_metric_name/,
  ),
];

/**
 * docs/protocols/remote-write.md lists wrong wire types under bad_protobuf (400, nothing stored),
 * as Prometheus' own decoder refuses them; a Sample whose value arrives as a varint must not be
 * stored as a 0 W reading, nor one whose timestamp is a fixed64 as 1970.
 */
const REMOTE_WRITE_WIRE_TYPE_CASES: Case[] = [
  rw(
    'a Sample value with the wrong wire type (varint, not double)',
    compressSync(
      Buffer.concat([
        goodWriteRequest,
        Buffer.from(rawSample([...pbTag(1, 0), 5, ...pbTag(2, 0), ...pbVarint(T)])),
      ]),
    ),
    400,
    /bad_protobuf/,
    [],
  ),
  rw(
    'a Sample timestamp with the wrong wire type (fixed64, not varint)',
    compressSync(
      Buffer.concat([
        goodWriteRequest,
        Buffer.from(
          rawSample([...pbTag(1, 1), ...pbDoubleBits(0x40140000, 0), ...pbTag(2, 1), ...pbDoubleBits(0, 0)]),
        ),
      ]),
    ),
    400,
    /bad_protobuf/,
    [],
  ),
];

/* line protocol */

const LP_HEADERS = { 'content-type': 'text/plain; charset=utf-8' };
const GOOD_LINES = GOOD.map((s) => lineOfSample(s, MS));
const bad = (rest: string) => `hashwatt,device=bad-1,kind=gpu${rest}`;

const lp = (
  name: string,
  body: Buffer | string,
  status: number,
  reason: RegExp | undefined,
  stored: readonly PushSample[],
  options: { path?: string; headers?: Record<string, string> } = {},
): Case => ({
  name,
  protocol: 'influx',
  path: options.path ?? '/api/v2/write?org=o&bucket=b&precision=ms',
  headers: { ...LP_HEADERS, ...options.headers },
  body,
  status,
  ...(reason === undefined ? {} : { reason }),
  stored,
});

/** Good lines, then a bad one: 422 naming it (line 5), the good lines stored. */
const lpPartly = (name: string, line: string, reason: RegExp): Case =>
  lp(name, [...GOOD_LINES, line].join('\n'), 422, reason, GOOD);

const tags = (n: number) => Array.from({ length: n }, (_, i) => `,t${i}=${i}`).join('');
const fields = (n: number) => Array.from({ length: n }, (_, i) => `f${i}=${i}`).join(',');

const LINE_PROTOCOL_CASES: Case[] = [
  lp('all valid: 204, stored as sent', GOOD_LINES.join('\n'), 204, undefined, GOOD),
  lp(
    'v1 /write, gzip, CRLF, precision u',
    gzipSync(GOOD.map((s) => lineOfSample(s, LINE_PRECISIONS.find((p) => p.v1 === 'u')!)).join('\r\n')),
    204,
    undefined,
    GOOD,
    { path: '/write?db=x&precision=u', headers: { 'content-encoding': 'gzip' } },
  ),
  lpPartly(
    'an unescaped = in a tag value',
    `hashwatt,device=bad=1,kind=gpu power_w=1 ${T}`,
    /line 5.*bad_escape/,
  ),
  lpPartly('an escaped space eating the separator', `${bad('\\ ')}power_w=1 ${T}`, /line 5/),
  lpPartly('a tag without a value', `${bad(',lonely')} power_w=1 ${T}`, /line 5.*bad_tag/),
  lpPartly('an empty tag key', `${bad(',=x')} power_w=1 ${T}`, /line 5.*bad_tag/),
  lpPartly('no fields', `${bad('')} ${T}`, /line 5/),
  lp(
    'an unterminated quoted string runs to the end of the body: the lines before it are stored',
    [...GOOD_LINES, `${bad('')} serial="abc ${T}`, `${bad('')} power_w=1 ${T}`].join('\n'),
    422,
    /line 5.*unterminated_string/,
    GOOD,
  ),
  lpPartly('a string into a metric', `${bad('')} power_w="612" ${T}`, /line 5.*wrong_type/),
  lpPartly('a boolean into a metric', `${bad('')} power_w=true ${T}`, /line 5.*wrong_type/),
  lp(
    'a good field and a string field on one line: the good one stored',
    [...GOOD_LINES, `${bad('')} power_w=5,temp_c="hot" ${T}`].join('\n'),
    422,
    /wrong_type/,
    [...GOOD, sample('bad-1', 'power_w', 5)],
  ),
  lpPartly('int64 overflow', `${bad('')} power_w=9223372036854775808i ${T}`, /line 5.*integer_out_of_range/),
  lpPartly('int64 underflow', `${bad('')} temp_c=-9223372036854775809i ${T}`, /line 5.*integer_out_of_range/),
  lpPartly(
    'uint64 overflow',
    `${bad('')} power_w=18446744073709551616u ${T}`,
    /line 5.*integer_out_of_range/,
  ),
  lpPartly(
    'an integer past 2^53',
    `${bad('')} energy_j_total=9007199254740993i ${T}`,
    /line 5.*integer_not_exact/,
  ),
  lpPartly('a float past a double', `${bad('')} power_w=1e999 ${T}`, /line 5.*bad_field_value/),
  lpPartly('NaN', `${bad('')} power_w=NaN ${T}`, /line 5.*bad_field_value/),
  lpPartly(
    `${DEFAULT_PARSE_LIMITS.maxTags + 1} tags`,
    `${bad(tags(DEFAULT_PARSE_LIMITS.maxTags - 1))} power_w=1 ${T}`,
    /line 5.*too_many_tags/,
  ),
  lpPartly(
    `${DEFAULT_PARSE_LIMITS.maxFields + 1} fields`,
    `hashwatt,device=bad-1 ${fields(DEFAULT_PARSE_LIMITS.maxFields + 1)} ${T}`,
    /line 5.*too_many_fields/,
  ),
  lpPartly(
    `a tag value of ${DEFAULT_PARSE_LIMITS.maxTokenLength + 1}`,
    `${bad(`,note=${'v'.repeat(DEFAULT_PARSE_LIMITS.maxTokenLength + 1)}`)} power_w=1 ${T}`,
    /line 5.*token_too_long/,
  ),
  lp(
    'tags and tokens at the limits exactly are stored',
    `hashwatt,device=limits,kind=gpu${tags(DEFAULT_PARSE_LIMITS.maxTags - 3)},note=${'v'.repeat(DEFAULT_PARSE_LIMITS.maxTokenLength)} power_w=7 ${T}`,
    204,
    undefined,
    [sample('limits', 'power_w', 7)],
  ),
  lpPartly('a timestamp that is not a number', `${bad('')} power_w=1 12ab`, /line 5.*bad_timestamp/),
  lpPartly(
    'a timestamp past int64',
    `${bad('')} power_w=1 99999999999999999999999`,
    /line 5.*timestamp_out_of_range/,
  ),
  lpPartly(
    'a timestamp an hour ahead',
    `${bad('')} power_w=1 ${Date.now() + 3_600_000}`,
    /timestamp_in_future/,
  ),
  lpPartly('a timestamp 40 days old', `${bad('')} power_w=1 ${T - 40 * DAY_MS}`, /timestamp_too_old/),
  lpPartly('a value out of range', `${bad('')} temp_c=1000 ${T}`, /out_of_range/),
  lpPartly('an unknown metric on the hashwatt measurement', `${bad('')} power_kw=1 ${T}`, /unknown_metric/),
  lpPartly('an index outside the catalog', `${bad(',index=9')} chip_temp_c=70 ${T}`, /unknown_index/),
  lp(
    'every line bad: 400',
    [`${bad('')} power_w="x" ${T}`, 'garbage', `${bad('')} power_w=1 12ab`].join('\n'),
    400,
    /no point written.*line 1/,
    [],
  ),
  lp('precision m on v2', GOOD_LINES.join('\n'), 400, /precision/, [], {
    path: '/api/v2/write?precision=m',
  }),
  lp('precision n on v2 (a v1 name)', GOOD_LINES.join('\n'), 400, /precision/, [], {
    path: '/api/v2/write?precision=n',
  }),
  lp('an unknown precision on v1', GOOD_LINES.join('\n'), 400, /precision/, [], {
    path: '/write?precision=xs',
  }),
  lp('bad gzip', GOOD_LINES.join('\n'), 400, /gzip/, [], { headers: { 'content-encoding': 'gzip' } }),
  lp(
    'gzip cut short',
    (() => {
      const z = gzipSync(GOOD_LINES.join('\n'));
      return z.subarray(0, z.length - 6);
    })(),
    400,
    /gzip/,
    [],
    { headers: { 'content-encoding': 'gzip' } },
  ),
  lp('brotli', GOOD_LINES.join('\n'), 415, /gzip/, [], { headers: { 'content-encoding': 'br' } }),
  lp(
    'invalid UTF-8 anywhere: the whole body refused',
    Buffer.concat([
      Buffer.from(`${GOOD_LINES.join('\n')}\n${bad(',note=')}`),
      Buffer.from([0xc3, 0x28]),
      Buffer.from(` power_w=1 ${T}`),
    ]),
    400,
    /UTF-8/,
    [],
  ),
];

/* OTLP */

const otlpBad = (point: OtlpNumberPoint, name = 'power_w'): OtlpMetric => ({
  name,
  gauge: { dataPoints: [{ attributes: [otlpAttr('device', 'bad-1'), otlpAttr('kind', 'gpu')], ...point }] },
});
const BAD_ATTRS = [otlpAttr('device', 'bad-1'), otlpAttr('kind', 'gpu')];
const aggregate = { attributes: BAD_ATTRS, timeUnixNano: otlpNanos(T), count: '4', sum: 10.5 };

/** OTLP with the good metrics, then `bad` ones: 200 with `rejected` points named, the good stored. */
function otlpCases(encoding: 'json' | 'protobuf'): Case[] {
  const contentType = encoding === 'json' ? 'application/json' : 'application/x-protobuf';
  const bodyOf = (request: OtlpRequest) =>
    encoding === 'json' ? JSON.stringify(request) : Buffer.from(encodeOtlpProtobuf(request));
  const otlp = (
    name: string,
    body: Buffer | string,
    status: number,
    reason: RegExp | undefined,
    stored: readonly PushSample[],
    extra: { rejectedPoints?: number; headers?: Record<string, string> } = {},
  ): Case => ({
    name: `${encoding}: ${name}`,
    protocol: 'otlp',
    path: '/v1/metrics',
    headers: { 'content-type': contentType, ...extra.headers },
    body,
    status,
    ...(reason === undefined ? {} : { reason }),
    ...(extra.rejectedPoints === undefined ? {} : { rejectedPoints: extra.rejectedPoints }),
    stored,
  });
  const partly = (name: string, bad: OtlpMetric[], rejected: number, reason: RegExp) =>
    otlp(name, bodyOf(otlpRequest([...otlpMetrics(GOOD), ...bad])), 200, reason, GOOD, {
      rejectedPoints: rejected,
    });
  const good = bodyOf(otlpRequest(otlpMetrics(GOOD)));
  const goodBytes = Buffer.from(good);
  const max = DEFAULT_OTLP_MAPPING.limits;
  const cases: Case[] = [
    otlp('all valid: 200, stored as sent', good, 200, undefined, GOOD, { rejectedPoints: 0 }),
    otlp('gzip', gzipSync(good), 200, undefined, GOOD, {
      rejectedPoints: 0,
      headers: { 'content-encoding': 'gzip' },
    }),
    partly(
      'histogram points are rejected, counted',
      [
        {
          name: 'power_w',
          histogram: {
            dataPoints: [1, 2, 3].map(() => ({
              ...aggregate,
              bucketCounts: ['1', '3'],
              explicitBounds: [2.5],
            })),
            aggregationTemporality: OTLP_CUMULATIVE,
          },
        },
      ],
      3,
      /unsupported_metric_type/,
    ),
    partly(
      'exponential histogram points are rejected, counted',
      [
        {
          name: 'power_w',
          exponentialHistogram: {
            dataPoints: [{ ...aggregate, scale: 3, zeroCount: '1' }],
            aggregationTemporality: OTLP_CUMULATIVE,
          },
        },
      ],
      1,
      /unsupported_metric_type/,
    ),
    partly(
      'summary points are rejected, counted',
      [{ name: 'power_w', summary: { dataPoints: [aggregate, aggregate] } }],
      2,
      /unsupported_metric_type/,
    ),
    partly(
      'delta sums are rejected, counted',
      [
        {
          name: 'energy_j_total',
          sum: {
            dataPoints: [{ attributes: BAD_ATTRS, timeUnixNano: otlpNanos(T), asDouble: 4 }],
            aggregationTemporality: OTLP_DELTA,
            isMonotonic: true,
          },
        },
      ],
      1,
      /unsupported_temporality/,
    ),
    partly('NaN', [otlpBad({ timeUnixNano: otlpNanos(T), asDouble: 'NaN' })], 1, /not_finite/),
    partly('-Infinity', [otlpBad({ timeUnixNano: otlpNanos(T), asDouble: '-Infinity' })], 1, /not_finite/),
    partly('no value', [otlpBad({ timeUnixNano: otlpNanos(T) })], 1, /missing_value/),
    partly('no timestamp', [otlpBad({ asDouble: 1 })], 1, /missing_timestamp/),
    partly(
      'asInt past 2^53',
      [otlpBad({ timeUnixNano: otlpNanos(T), asInt: '9007199254740993' }, 'energy_j_total')],
      1,
      /integer_not_exact/,
    ),
    partly(
      'a timestamp an hour ahead',
      [otlpBad({ timeUnixNano: otlpNanos(Date.now() + 3_600_000), asDouble: 1 })],
      1,
      /timestamp_in_future/,
    ),
    partly(
      'a value out of range',
      [otlpBad({ timeUnixNano: otlpNanos(T), asDouble: 1e6 }, 'temp_c')],
      1,
      /out_of_range/,
    ),
    partly(
      `${max.maxAttributes + 1} attributes on a point`,
      [
        otlpBad({
          timeUnixNano: otlpNanos(T),
          asDouble: 1,
          attributes: [
            ...BAD_ATTRS,
            ...Array.from({ length: max.maxAttributes - 1 }, (_, i) => otlpAttr(`a${i}`, 'x')),
          ],
        }),
      ],
      1,
      /too_many_attributes/,
    ),
    partly(
      `an attribute of ${max.maxAttributeLength + 1}`,
      [
        otlpBad({
          timeUnixNano: otlpNanos(T),
          asDouble: 1,
          attributes: [...BAD_ATTRS, otlpAttr('note', 'v'.repeat(max.maxAttributeLength + 1))],
        }),
      ],
      1,
      /attribute_too_long/,
    ),
    otlp(
      `attributes at the limits exactly are stored`,
      bodyOf(
        otlpRequest([
          otlpBad({
            timeUnixNano: otlpNanos(T),
            asDouble: 3,
            attributes: [
              otlpAttr('device', 'limits'),
              otlpAttr('kind', 'gpu'),
              otlpAttr('note', 'v'.repeat(max.maxAttributeLength)),
              ...Array.from({ length: max.maxAttributes - 3 }, (_, i) => otlpAttr(`a${i}`, 'x')),
            ],
          }),
        ]),
      ),
      200,
      undefined,
      [sample('limits', 'power_w', 3)],
      { rejectedPoints: 0 },
    ),
    otlp(
      `a resource attribute of ${max.maxAttributeLength + 1} rejects every point of the resource`,
      bodyOf(otlpRequest(otlpMetrics(GOOD), [otlpAttr('note', 'v'.repeat(max.maxAttributeLength + 1))])),
      200,
      /attribute_too_long/,
      [],
      { rejectedPoints: GOOD.length },
    ),
    partly(
      'no device attribute',
      [
        {
          name: 'power_w',
          gauge: {
            dataPoints: [{ attributes: [otlpAttr('kind', 'gpu')], timeUnixNano: otlpNanos(T), asDouble: 1 }],
          },
        },
      ],
      1,
      /missing_device_attribute/,
    ),
    otlp('bad gzip', good, 400, /gzip/, [], { headers: { 'content-encoding': 'gzip' } }),
    otlp('brotli', good, 415, /gzip/, [], { headers: { 'content-encoding': 'br' } }),
  ];
  if (encoding === 'protobuf') {
    cases.push(
      otlp('truncated protobuf', goodBytes.subarray(0, goodBytes.length - 9), 400, /bad_protobuf/, []),
      otlp('truncated inside the first bytes', goodBytes.subarray(0, 3), 400, /bad_protobuf/, []),
      otlp(
        'wire type 7 after good data: the whole body refused',
        Buffer.concat([goodBytes, Buffer.from([0x0f, 0x00])]),
        400,
        /bad_protobuf/,
        [],
      ),
      otlp(
        'a length running past the end',
        Buffer.concat([goodBytes, Buffer.from([...pbTag(1, 2), ...pbVarint(1 << 30), 0])]),
        400,
        /bad_protobuf/,
        [],
      ),
      otlp(
        'invalid UTF-8 in a metric name',
        Buffer.concat([
          goodBytes,
          Buffer.from(pbBytes(1, pbBytes(2, pbBytes(2, [...pbTag(1, 2), 2, 0xc3, 0x28])))),
        ]),
        400,
        /bad_protobuf/,
        [],
      ),
      otlp(
        'a sub-message overrunning its parent',
        Buffer.from(pbBytes(1, [...pbTag(2, 2), 10, ...pbString(1, 'x')])),
        400,
        /bad_protobuf/,
        [],
      ),
    );
  } else {
    const point = (p: Record<string, unknown>) =>
      JSON.stringify({
        resourceMetrics: [
          {
            scopeMetrics: [
              {
                metrics: [
                  ...otlpMetrics(GOOD),
                  { name: 'power_w', gauge: { dataPoints: [{ attributes: BAD_ATTRS, ...p }] } },
                ],
              },
            ],
          },
        ],
      });
    cases.push(
      otlp('malformed JSON', '{"resourceMetrics": [', 400, /bad_json/, []),
      otlp('a JSON array', `[${good}]`, 400, /bad_json/, []),
      otlp('a JSON string', '"resourceMetrics"', 400, /bad_json/, []),
      otlp(
        'invalid UTF-8',
        Buffer.concat([Buffer.from('{"resourceMetrics":[],"x":"'), Buffer.from([0xff]), Buffer.from('"}')]),
        400,
        /bad_json/,
        [],
      ),
      otlp(
        'asDouble as an object',
        point({ timeUnixNano: otlpNanos(T), asDouble: { value: 1 } }),
        200,
        /missing_value/,
        GOOD,
        { rejectedPoints: 1 },
      ),
      otlp(
        'timeUnixNano as an object',
        point({ timeUnixNano: { nanos: 1 }, asDouble: 1 }),
        200,
        /missing_timestamp/,
        GOOD,
        { rejectedPoints: 1 },
      ),
      otlp(
        'asInt as a fraction',
        point({ timeUnixNano: otlpNanos(T), asInt: 1.5 }),
        200,
        /missing_value/,
        GOOD,
        { rejectedPoints: 1 },
      ),
      otlp(
        'timeUnixNano negative',
        point({ timeUnixNano: '-1', asDouble: 1 }),
        200,
        /missing_timestamp/,
        GOOD,
        { rejectedPoints: 1 },
      ),
    );
  }
  return cases;
}

/**
 * The OTLP JSON mapping of ExportMetricsServiceRequest has repeated fields as arrays: a body whose
 * `resourceMetrics`, `scopeMetrics`, `metrics` or `dataPoints` is a number or an object cannot be
 * decoded (OTLP/HTTP: 400), and answering 200 `{}` would tell the exporter all was stored.
 */
const OTLP_JSON_SHAPE_CASES: Case[] = [
  '{"resourceMetrics":5}',
  '{"resourceMetrics":{"scopeMetrics":[]}}',
  '{"resourceMetrics":[{"scopeMetrics":{"metrics":[]}}]}',
  '{"resourceMetrics":[{"scopeMetrics":[{"metrics":"power_w"}]}]}',
  '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"power_w","gauge":{"dataPoints":7}}]}]}]}',
].map((body) => ({
  name: `json: ${body}`,
  protocol: 'otlp',
  path: '/v1/metrics',
  headers: { 'content-type': 'application/json' },
  body,
  status: 400,
  reason: /bad_json|ExportMetricsServiceRequest/,
  stored: [],
}));

/**
 * A device name Postgres refuses (U+0000) must cost only its own item, as every other invalid
 * item does: the contract says the valid samples of the request are stored (remote_write 400,
 * line protocol 422, OTLP 200 with the point rejected).
 */
function nulDeviceCases(): Case[] {
  const device = 'bad\u0000gpu';
  return [
    rw(
      'remote_write: a NUL in one series’ device label',
      remoteWriteBody([...remoteWriteSeries(GOOD), own({ device })]),
      400,
      /series 4/,
      GOOD,
    ),
    lp(
      'line protocol: a NUL in one line’s device tag',
      [...GOOD_LINES, `hashwatt,device=bad\u0000gpu,kind=gpu power_w=1 ${T}`].join('\n'),
      422,
      /line 5/,
      GOOD,
    ),
    {
      name: 'OTLP json: a NUL in one point’s device attribute',
      protocol: 'otlp',
      path: '/v1/metrics',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(
        otlpRequest([
          ...otlpMetrics(GOOD),
          otlpBad({
            attributes: [otlpAttr('device', device), otlpAttr('kind', 'gpu')],
            timeUnixNano: otlpNanos(T),
            asDouble: 1,
          }),
        ]),
      ),
      status: 200,
      rejectedPoints: 1,
      reason: /device/,
      stored: GOOD,
    },
  ];
}

/**
 * docs/ingest.md: a device id is 1–128 UTF-16 code units, no control characters, no lone
 * surrogates. The push receivers hand protocol labels to the pipeline as device ids unchecked.
 */
function deviceContractCases(): Case[] {
  const long = `gpu-${'x'.repeat(125)}`;
  const marker = '\u0001device\u0001';
  /** `device` is JSON string content as written on the wire: a lone surrogate survives only as an escape. */
  const otlpDevice = (name: string, device: string): Case => ({
    name,
    protocol: 'otlp',
    path: '/v1/metrics',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(
      otlpRequest([
        ...otlpMetrics(GOOD),
        otlpBad({
          attributes: [otlpAttr('device', marker), otlpAttr('kind', 'gpu')],
          timeUnixNano: otlpNanos(T),
          asDouble: 1,
        }),
      ]),
    ).replace(JSON.stringify(marker), `"${device}"`),
    status: 200,
    rejectedPoints: 1,
    reason: /device/,
    stored: GOOD,
  });
  return [
    rw(
      'remote_write: a device label of 129 characters',
      remoteWriteBody([...remoteWriteSeries(GOOD), own({ device: long })]),
      400,
      /device/,
      GOOD,
    ),
    rw(
      'remote_write: a newline in a device label',
      remoteWriteBody([...remoteWriteSeries(GOOD), own({ device: 'gpu\nzero' })]),
      400,
      /device/,
      GOOD,
    ),
    lp(
      'line protocol: a tab in a device tag',
      [...GOOD_LINES, `hashwatt,device=gpu\tzero,kind=gpu power_w=1 ${T}`].join('\n'),
      422,
      /line 5/,
      GOOD,
    ),
    lp(
      'line protocol: a device tag of 129 characters',
      [...GOOD_LINES, `hashwatt,device=${lineTag(long)},kind=gpu power_w=1 ${T}`].join('\n'),
      422,
      /line 5/,
      GOOD,
    ),
    otlpDevice('OTLP json: a lone surrogate in a device attribute', '\\ud800-gpu'),
    otlpDevice('OTLP json: a device attribute of 129 characters', long),
  ];
}

const CASES: Record<string, Case[]> = {
  remote_write: REMOTE_WRITE_CASES,
  'remote_write wire types': REMOTE_WRITE_WIRE_TYPE_CASES,
  'line protocol': LINE_PROTOCOL_CASES,
  OTLP: [...otlpCases('json'), ...otlpCases('protobuf')],
  'OTLP JSON of the wrong shape': OTLP_JSON_SHAPE_CASES,
  'a NUL in a device name': nulDeviceCases(),
  'device names the reading contract refuses': deviceContractCases(),
};

/** The reason an answer gives, in its protocol's format ('' for a bare success). */
function reasonOf(c: Pick<Case, 'protocol' | 'headers'>, answer: PushAnswer): string {
  const text = Buffer.from(answer.body).toString('utf8');
  if (answer.body.length === 0) return '';
  if (c.protocol === 'remote_write') return text;
  if (c.protocol === 'influx') return String((JSON.parse(text) as { message?: unknown }).message);
  const protobuf = otlpEncodingOf(c.headers['content-type']) === 'protobuf';
  if (answer.status >= 400)
    return protobuf ? decodeRpcStatus(answer.body).message : String(JSON.parse(text).message);
  if (protobuf) return decodeOtlpExportResponse(answer.body).errorMessage;
  return String(
    (JSON.parse(text) as { partialSuccess?: { errorMessage?: string } }).partialSuccess?.errorMessage ?? '',
  );
}

function rejectedOf(c: Pick<Case, 'headers'>, answer: PushAnswer): number {
  if (otlpEncodingOf(c.headers['content-type']) === 'protobuf')
    return decodeOtlpExportResponse(answer.body).rejectedDataPoints;
  const json = JSON.parse(Buffer.from(answer.body).toString('utf8')) as {
    partialSuccess?: { rejectedDataPoints?: string };
  };
  return Number(json.partialSuccess?.rejectedDataPoints ?? 0);
}

/** Bytes that reach each decoder: raw, wrapped in valid snappy or gzip so they get past the framing. */
const FUZZ_ROUTES: {
  name: string;
  protocol: PushProtocol;
  path: string;
  headers: Record<string, string>;
  wrap: (b: Uint8Array) => Buffer;
}[] = [
  {
    name: 'remote_write, raw bytes',
    protocol: 'remote_write',
    path: '/api/v1/write',
    headers: RW_HEADERS,
    wrap: (b) => Buffer.from(b),
  },
  {
    name: 'remote_write, bytes in valid snappy',
    protocol: 'remote_write',
    path: '/api/v1/write',
    headers: RW_HEADERS,
    wrap: (b) => compressSync(Buffer.from(b)),
  },
  {
    name: 'line protocol v2',
    protocol: 'influx',
    path: '/api/v2/write?precision=ns',
    headers: LP_HEADERS,
    wrap: (b) => Buffer.from(b),
  },
  {
    name: 'line protocol v1, gzip',
    protocol: 'influx',
    path: '/write?precision=s',
    headers: { 'content-encoding': 'gzip' },
    wrap: (b) => gzipSync(b),
  },
  {
    name: 'OTLP protobuf',
    protocol: 'otlp',
    path: '/v1/metrics',
    headers: { 'content-type': 'application/x-protobuf' },
    wrap: (b) => Buffer.from(b),
  },
  {
    name: 'OTLP protobuf, gzip',
    protocol: 'otlp',
    path: '/v1/metrics',
    headers: { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' },
    wrap: (b) => gzipSync(b),
  },
  {
    name: 'OTLP JSON',
    protocol: 'otlp',
    path: '/v1/metrics',
    headers: { 'content-type': 'application/json' },
    wrap: (b) => Buffer.from(b),
  },
];

/** Line-protocol-ish text: the grammar's own characters, digits, escapes, quotes, newlines. */
const lineTextArb = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        'hashwatt',
        'nvidia_smi',
        'ipmi_sensor',
        'modbus',
        'device=',
        'kind=gpu',
        'power_w=',
        'index=',
        'host=',
        'name=',
        'unit=watts',
        'value=',
        ',',
        '=',
        ' ',
        '\\',
        '"',
        '\n',
        '\r\n',
        '#',
        '1',
        '-1.5e3',
        '9223372036854775808i',
        '42u',
        'true',
        '1796119200000',
        ' 17961192000000000000',
      ),
      fc.string({ unit: 'binary', maxLength: 8 }),
    ),
    { maxLength: 60 },
  )
  .map((parts) => parts.join(''));

/** A valid OTLP JSON request with one node replaced by any JSON value: wrong shapes at every depth. */
const otlpJsonMutantArb = fc
  .tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), fc.jsonValue())
  .map(([path, replacement]) => {
    const root = JSON.parse(JSON.stringify(otlpRequest(otlpMetrics(GOOD)))) as unknown;
    let at = root as Record<string, unknown> | unknown[];
    for (const step of path) {
      const keys = Object.keys(at);
      if (keys.length === 0) break;
      const key = keys[step % keys.length]!;
      const next = (at as Record<string, unknown>)[key];
      if (typeof next !== 'object' || next === null || step % 5 === 0) {
        (at as Record<string, unknown>)[key] = replacement;
        break;
      }
      at = next as Record<string, unknown>;
    }
    return JSON.stringify(root);
  });

describe.each(BACKENDS)('push receivers on %s, malformed input', (backend) => {
  let testDb: TestDatabase;
  let service: RunningService;
  let base: string;
  let sites = 0;
  const log: LogLine[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase(backend);
    service = await startTestService(testDb, { log });
    base = service.url;
  }, 60_000);

  afterAll(async () => {
    await service?.stop();
    await testDb?.dispose();
  });

  /** A site of its own per case, so "nothing stored" is exact. */
  const freshSite = async () => {
    const created = await createSite(base, `malformed-${backend}-${sites++}`, 'ai');
    return { id: created.site.id, token: created.token };
  };

  async function post(
    token: string,
    c: Pick<Case, 'protocol' | 'path' | 'headers' | 'body'>,
  ): Promise<PushAnswer> {
    const response = await fetch(`${base}${c.path}`, {
      method: 'POST',
      headers: { authorization: `${PUSH_AUTH[c.protocol]} ${token}`, ...c.headers },
      body: c.body,
    });
    return {
      status: response.status,
      headers: response.headers,
      body: new Uint8Array(await response.arrayBuffer()),
    };
  }

  async function storedOf(siteId: number): Promise<{ samples: StoredSample[]; devices: string[] }> {
    const db = service.storage.db;
    const rowsOf = async (table: 'readings' | 'readings_extra') =>
      (
        await sql<Record<string, unknown>>`
          SELECT d.external_id AS device, (extract(epoch FROM r.ts) * 1000000)::float8 AS ts_us, r.*
          FROM ${sql.table(table)} r JOIN devices d ON d.id = r.device_id WHERE r.site_id = ${siteId}`.execute(
          db,
        )
      ).rows;
    const devices = await db
      .selectFrom('devices')
      .select('external_id')
      .where('site_id', '=', siteId)
      .execute();
    return {
      samples: [
        ...samplesOfRows(await rowsOf('readings'), CORE_SAMPLE_COLUMNS),
        ...samplesOfRows(await rowsOf('readings_extra'), EXTRA_SAMPLE_COLUMNS),
      ],
      devices: devices.map((d) => d.external_id),
    };
  }

  for (const [group, cases] of Object.entries(CASES)) {
    describe(group, () => {
      it.each(cases)('$name', async (c) => {
        const site = await freshSite();
        const answer = await post(site.token, c);
        const said = `${c.name}: ${answer.status} ${Buffer.from(answer.body).toString('utf8').slice(0, 400)}`;
        expect(pushAnswerFault(c.protocol, c.headers['content-type'], answer), said).toBeUndefined();
        // Soft: a wrong answer still shows what was stored.
        expect.soft(answer.status, said).toBe(c.status);
        if (c.reason) expect.soft(reasonOf(c, answer), said).toMatch(c.reason);
        if (c.rejectedPoints !== undefined) expect.soft(rejectedOf(c, answer), said).toBe(c.rejectedPoints);
        const stored = await storedOf(site.id);
        const ledger = new PushLedger();
        ledger.accept(c.stored);
        expect(ledger.compare(stored.samples), said).toEqual([]);
        expect(stored.devices.sort(), said).toEqual([...new Set(c.stored.map((s) => s.device))].sort());
      });
    });
  }

  it('a resend of a partly bad body stores nothing twice and answers the same', async () => {
    const site = await freshSite();
    const cases = [
      rwPartly('rw', [own({}, [{ value: Number.NaN, timestamp: T }])], /not_finite/),
      lpPartly('lp', `${bad('')} power_w="x" ${T}`, /wrong_type/),
      otlpCases('protobuf').find((c) => c.name.endsWith('summary points are rejected, counted'))!,
    ];
    for (const c of cases) {
      const first = await post(site.token, c);
      const again = await post(site.token, c);
      expect([again.status, reasonOf(c, again)], c.name).toEqual([first.status, reasonOf(c, first)]);
      expect(first.status, c.name).toBe(c.status);
    }
    const ledger = new PushLedger();
    ledger.accept(GOOD);
    expect(ledger.compare((await storedOf(site.id)).samples)).toEqual([]);
  });

  describe('random input', () => {
    const runs = backend === 'postgres' ? 150 : 60;
    for (const route of FUZZ_ROUTES) {
      it(`${route.name}: random bytes never get a 5xx or an answer out of the protocol's format`, async () => {
        const { token } = await freshSite();
        await fc.assert(
          fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), async (bytes) => {
            const c = {
              protocol: route.protocol,
              path: route.path,
              headers: route.headers,
              body: route.wrap(bytes),
            };
            const answer = await post(token, c);
            expect(pushAnswerFault(route.protocol, route.headers['content-type'], answer)).toBeUndefined();
          }),
          { numRuns: runs, seed: 7_070 },
        );
      });
    }

    it('line protocol: random grammar-shaped text never gets a 5xx', async () => {
      const { token } = await freshSite();
      await fc.assert(
        fc.asyncProperty(lineTextArb, fc.constantFrom('ns', 'us', 'ms', 's'), async (text, precision) => {
          const answer = await post(token, {
            protocol: 'influx',
            path: `/api/v2/write?precision=${precision}`,
            headers: LP_HEADERS,
            body: text,
          });
          expect(pushAnswerFault('influx', undefined, answer), text).toBeUndefined();
        }),
        { numRuns: runs * 2, seed: 7_071 },
      );
    });

    it('OTLP JSON: a valid request with any node replaced by any JSON value never gets a 5xx', async () => {
      const { token } = await freshSite();
      await fc.assert(
        fc.asyncProperty(otlpJsonMutantArb, async (body) => {
          const headers = { 'content-type': 'application/json' };
          const answer = await post(token, { protocol: 'otlp', path: '/v1/metrics', headers, body });
          expect(
            pushAnswerFault('otlp', headers['content-type'], answer),
            body.slice(0, 400),
          ).toBeUndefined();
        }),
        { numRuns: runs * 2, seed: 7_072 },
      );
    });

    it('is still up afterwards and logged no unhandled error', async () => {
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const site = await freshSite();
      const answer = await post(site.token, REMOTE_WRITE_CASES[0]!);
      expect(answer.status).toBe(204);
      expect(log.filter((line) => line.level >= 50).map((line) => line.msg)).toEqual([]);
    });
  });
});
