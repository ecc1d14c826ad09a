/**
 * OTLP/HTTP metrics, protobuf encoding: opentelemetry.proto.collector.metrics.v1
 * .ExportMetricsServiceRequest, read field by field with the minimal reader. Field numbers from
 * opentelemetry-proto (metrics/v1/metrics.proto, common/v1/common.proto). Pure; never throws.
 */
import {
  nanosToMicros,
  ProtoError,
  ProtoReader,
  skipField,
  WIRE_I64,
  WIRE_LEN,
  WIRE_VARINT,
} from '../protobuf/reader.ts';
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

const tag = (field: number, wire: number) => (field << 3) | wire;

// Wire types of the fields read, so one sent with another type is refused rather than skipped.
const NUMBER_DATA_POINT_FIELDS = {
  2: WIRE_I64,
  3: WIRE_I64,
  4: WIRE_I64,
  6: WIRE_I64,
  7: WIRE_LEN,
  8: WIRE_VARINT,
};
const KEY_VALUE_FIELDS = { 1: WIRE_LEN, 2: WIRE_LEN };

export function decodeOtlpProtobuf(
  body: Uint8Array,
  mapping: CompiledOtlpMapping = DEFAULT_COMPILED_OTLP,
): OtlpDecodeResult {
  const m = new OtlpMapper(mapping);
  const r = new ProtoReader(body);
  try {
    let rIndex = 0;
    while (r.pos < r.end) {
      const t = r.uint32();
      if (t === tag(1, WIRE_LEN)) readResourceMetrics(r.sub(r.length()), m, `resourceMetrics[${rIndex++}]`);
      else r.skip(t & 7);
    }
  } catch (e) {
    if (e instanceof ProtoError) {
      return fatalOtlp(
        fatalResult('bad_protobuf', `not an ExportMetricsServiceRequest: ${e.message} at byte ${e.offset}`),
      );
    }
    throw e;
  }
  return m.finish();
}

function readResourceMetrics(r: ProtoReader, m: OtlpMapper, where: string): void {
  // The resource (field 1) applies to every scope; protobuf allows it after them, so find it first.
  const start = r.pos;
  m.setResource(NO_ATTRIBUTES);
  while (r.pos < r.end) {
    const t = r.uint32();
    if (t === tag(1, WIRE_LEN)) m.setResource(readResource(r.sub(r.length()), m.limits.maxAttributeLength));
    else r.skip(t & 7);
  }
  r.pos = start;
  let s = 0;
  while (r.pos < r.end) {
    const t = r.uint32();
    if (t === tag(2, WIRE_LEN)) readScopeMetrics(r.sub(r.length()), m, `${where}.scopeMetrics[${s++}]`);
    else r.skip(t & 7);
  }
}

function readResource(r: ProtoReader, maxLength: number): Attributes {
  const attrs: Attributes = { keys: [], values: [] };
  while (r.pos < r.end) {
    const t = r.uint32();
    if (t === tag(1, WIRE_LEN)) readKeyValue(r.sub(r.length()), attrs, maxLength);
    else r.skip(t & 7);
  }
  return attrs;
}

function readScopeMetrics(r: ProtoReader, m: OtlpMapper, where: string): void {
  let i = 0;
  while (r.pos < r.end) {
    const t = r.uint32();
    if (t === tag(2, WIRE_LEN)) readMetric(r.sub(r.length()), m, `${where}.metrics[${i++}]`);
    else r.skip(t & 7); // scope (1), schema_url (3)
  }
}

const DATA_FIELDS: Readonly<Record<number, Exclude<MetricDataKind, 'none'>>> = {
  5: 'gauge',
  7: 'sum',
  9: 'histogram',
  10: 'exponentialHistogram',
  11: 'summary',
};

function readMetric(r: ProtoReader, m: OtlpMapper, where: string): void {
  let name = '';
  let kind: MetricDataKind = 'none';
  let data: ProtoReader | undefined;
  while (r.pos < r.end) {
    const t = r.uint32();
    const field = t >>> 3;
    if (t === tag(1, WIRE_LEN)) name = r.string();
    else if ((t & 7) === WIRE_LEN && DATA_FIELDS[field] !== undefined) {
      kind = DATA_FIELDS[field]!;
      data = r.sub(r.length());
    } else r.skip(t & 7);
  }
  if (data === undefined) {
    m.beginMetric(name, kind, 0, 0, where);
    return;
  }
  // First pass: temporality and the point count, which a skipped metric still reports.
  const start = data.pos;
  let points = 0;
  let temporality = 0;
  while (data.pos < data.end) {
    const t = data.uint32();
    if (t === tag(1, WIRE_LEN)) {
      points++;
      data.skip(WIRE_LEN);
    } else if (t === tag(2, WIRE_VARINT)) temporality = data.uint32();
    else data.skip(t & 7);
  }
  const handle = m.beginMetric(name, kind, temporality, points, where);
  if (handle === undefined) return;
  data.pos = start;
  let i = 0;
  while (data.pos < data.end) {
    const t = data.uint32();
    if (t === tag(1, WIRE_LEN)) readNumberDataPoint(data.sub(data.length()), m, handle, i++);
    else data.skip(t & 7);
  }
}

function readNumberDataPoint(
  r: ProtoReader,
  m: OtlpMapper,
  handle: NonNullable<ReturnType<OtlpMapper['beginMetric']>>,
  i: number,
): void {
  const attrs: Attributes = { keys: [], values: [] };
  let timeUs: number | undefined;
  let value: number | undefined;
  let exact = true;
  let flags = 0;
  const max = m.limits.maxAttributes;
  while (r.pos < r.end) {
    const t = r.uint32();
    switch (t) {
      case tag(7, WIRE_LEN):
        if (attrs.keys.length > max) r.skip(WIRE_LEN);
        else readKeyValue(r.sub(r.length()), attrs, m.limits.maxAttributeLength);
        break;
      case tag(3, WIRE_I64): {
        const { lo, hi } = r.fixed64();
        timeUs = nanosToMicros(lo, hi);
        break;
      }
      case tag(4, WIRE_I64):
        value = r.double();
        exact = true;
        break;
      case tag(6, WIRE_I64):
        value = r.sfixed64();
        exact = Number.isSafeInteger(value);
        break;
      case tag(8, WIRE_VARINT):
        flags = r.uint32();
        break;
      default:
        skipField(r, t, NUMBER_DATA_POINT_FIELDS); // start_time_unix_nano (2), exemplars (5)
    }
  }
  m.point(handle, i, attrs, timeUs, value, exact, flags);
}

function readKeyValue(r: ProtoReader, attrs: Attributes, maxLength: number): void {
  let key = '';
  let value: string | undefined;
  while (r.pos < r.end) {
    const t = r.uint32();
    if (t === tag(1, WIRE_LEN)) key = r.string();
    else if (t === tag(2, WIRE_LEN)) value = readAnyValue(r.sub(r.length()));
    else skipField(r, t, KEY_VALUE_FIELDS);
  }
  if (value === undefined) return;
  if (key.length > maxLength || value.length > maxLength) {
    attrs.invalid ??= `attribute ${key.slice(0, 64)} longer than ${maxLength}`;
    return;
  }
  attrs.keys.push(key);
  attrs.values.push(value);
}

/** AnyValue → string: scalars as text; arrays, maps and bytes are not labels and are dropped. */
function readAnyValue(r: ProtoReader): string | undefined {
  let out: string | undefined;
  while (r.pos < r.end) {
    const t = r.uint32();
    switch (t) {
      case tag(1, WIRE_LEN):
        out = r.string();
        break;
      case tag(2, WIRE_VARINT):
        out = String(r.bool());
        break;
      case tag(3, WIRE_VARINT):
        out = String(r.int64());
        break;
      case tag(4, WIRE_I64):
        out = String(r.double());
        break;
      default:
        r.skip(t & 7);
    }
  }
  return out;
}
