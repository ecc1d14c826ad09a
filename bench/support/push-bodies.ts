// Request bodies for the push-protocol benchmark (bench/push-protocols.ts): the `load` scenario's
// readings — the same devices, values and timestamps the JSON path's simulator sends, taken from the
// same LoadGenerator — as Prometheus remote_write, InfluxDB line protocol and OTLP protobuf, with
// hashwatt's own metric names in each (the default mappings' `own`, `hashwatt` measurement and
// `ownNames` entries).
//
// Everything that does not change between requests is encoded once per device before anything is
// timed: labels, tags and attributes, with room for the values and the timestamp. A request is
// then one copy per device (per device and metric for OTLP) and fixed-width patches of the values
// and timestamps, so the load generator spends its CPU on compression, as a real sender does, and
// the service's CPU per sample is not diluted by a slow generator on the same two cores.
import protobuf from 'protobufjs';
import { compressSync } from 'snappy';
import { escapeTag, formatFieldValue } from '../../simulators/load/line-protocol.ts';
import { LoadGenerator } from '../../simulators/load/templates.ts';
import type { SiteSpec } from '../../simulators/scenario.ts';
import { findMetric } from '../../src/catalog/metrics.ts';
import {
  type DecodeResult,
  decodeLineProtocol,
  decodeOtlp,
  decodeRemoteWrite,
} from '../../src/protocols/index.ts';
import { WriteRequestType } from '../../src/protocols/testing/prometheus-proto.ts';

/** The load scenario's numeric values, in hashwatt's names: a push reading is these five samples. */
export const PUSH_METRICS = [
  'power_w',
  'hashrate_ths',
  'expected_hashrate_ths',
  'temp_c',
  'fan_rpm',
] as const;
/**
 * Samples per pushed reading. The JSON path counts six: its readings also carry `status`, which is a
 * device state, not a metric any push protocol's mapping has.
 */
export const SAMPLES_PER_PUSH_READING = PUSH_METRICS.length;

export type PushProtocol = 'remote_write' | 'influx' | 'otlp';
export const PUSH_PROTOCOLS: readonly PushProtocol[] = ['remote_write', 'influx', 'otlp'];

/** Readings of one request, as indexes into the site's devices and value sets. Reused between calls. */
export interface ReadingRun {
  count: number;
  device: Int32Array;
  tsMs: Float64Array;
  valueSet: Int32Array;
}

/**
 * One site of the load scenario as a stream of readings: device names and models learnt once, the
 * handful of value sets (per model and variant) learnt on first sight, then a reading is three
 * numbers. Wraps the JSON path's LoadGenerator so the two never drift.
 */
export class LoadReadings {
  readonly devices: readonly string[];
  readonly models: readonly string[];
  readonly kind = 'asic';
  /** Value set i's values are `values[i * SAMPLES_PER_PUSH_READING + m]`, m in PUSH_METRICS order. */
  readonly values: number[] = [];
  readonly #gen: LoadGenerator;
  /** Where each device's JSON has its ts (after `"ts":`), so the values part is one slice away. */
  readonly #tsAt: Int32Array;
  readonly #valueSetOf = new Map<string, number>();
  #run: ReadingRun = {
    count: 0,
    device: new Int32Array(0),
    tsMs: new Float64Array(0),
    valueSet: new Int32Array(0),
  };

  constructor(site: SiteSpec, seed: number) {
    this.#gen = new LoadGenerator(site, seed, 'epoch_ms');
    this.devices = this.#gen.devices;
    const n = this.devices.length;
    this.#tsAt = new Int32Array(n);
    const models = new Array<string>(n);
    // A twin generator (same site and seed: the same devices in the same order) shows each device's
    // JSON once, without moving the real one's cursor or timestamps.
    new LoadGenerator(site, seed, 'epoch_ms').emit(n, 1_000_000_000_000, n, (json, d) => {
      const reading = JSON.parse(json) as Record<string, unknown>;
      if (
        reading.device !== this.devices[d] ||
        reading.kind !== this.kind ||
        typeof reading.model !== 'string'
      )
        throw new Error(`unexpected load reading: ${json}`);
      models[d] = reading.model;
      this.#tsAt[d] = json.indexOf('"ts":') + 5;
    });
    this.models = models;
  }

  /** Value sets learnt so far (a handful per model: the generator's variants). */
  get valueSets(): number {
    return this.#valueSetOf.size;
  }

  /**
   * The next `count` readings exactly as LoadGenerator.emit gives them to the JSON path (devices
   * round-robin, timestamps spread over [fromMs, fromMs + spanMs), never repeated per device).
   * The run is overwritten by the next call: encode it first.
   */
  next(count: number, fromMs: number, spanMs: number): ReadingRun {
    const run = this.#reserve(count);
    let i = 0;
    this.#gen.emit(count, fromMs, spanMs, (json, d, ts) => {
      run.device[i] = d;
      run.tsMs[i] = ts;
      run.valueSet[i] = this.#valueSet(json.slice(this.#tsAt[d]! + String(ts).length));
      i++;
    });
    run.count = count;
    return run;
  }

  #reserve(count: number): ReadingRun {
    if (this.#run.device.length < count) {
      this.#run = {
        count: 0,
        device: new Int32Array(count),
        tsMs: new Float64Array(count),
        valueSet: new Int32Array(count),
      };
    }
    return this.#run;
  }

  /** `,"power_w":3512.3,…,"status":"ok"}` → its value set, learnt on first sight. */
  #valueSet(valuesJson: string): number {
    const known = this.#valueSetOf.get(valuesJson);
    if (known !== undefined) return known;
    const parsed = JSON.parse(`{${valuesJson.slice(1)}`) as Record<string, unknown>;
    for (const key of Object.keys(parsed)) {
      if (key !== 'status' && !(PUSH_METRICS as readonly string[]).includes(key))
        throw new Error(`load reading with a value the push bodies do not carry: ${key}`);
    }
    for (const metric of PUSH_METRICS) {
      const value = parsed[metric];
      if (typeof value !== 'number') throw new Error(`load reading without ${metric}: ${valuesJson}`);
      this.values.push(value);
    }
    const id = this.#valueSetOf.size;
    this.#valueSetOf.set(valuesJson, id);
    return id;
  }
}

/** Turns a run of readings into one uncompressed request body. */
export interface PushBodyEncoder {
  readonly protocol: PushProtocol;
  encode(run: ReadingRun): Buffer;
}

// --- protobuf writing: just what the three fixed message shapes need ---------------------------

function varintLength(n: number): number {
  let length = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) length++;
  return length;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  let v = n;
  let p = at;
  while (v >= 0x80) {
    buf[p++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[p++] = v;
  return p;
}

/** A length-delimited field's bytes: tag, length, payload. */
function field(fieldNumber: number, payload: Buffer): Buffer {
  const head = Buffer.allocUnsafe(1 + varintLength(payload.length));
  head[0] = (fieldNumber << 3) | 2;
  writeVarint(head, 1, payload.length);
  return Buffer.concat([head, payload]);
}

const text = (s: string) => Buffer.from(s, 'utf8');

/** The map's value for `key`, made and kept on first use (a handful of models per site). */
function memo<V>(map: Map<string, V>, key: string, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/** Bytes of a length-delimited field's tag and length, for a payload of `payloadLength`. */
const headLength = (payloadLength: number) => 1 + varintLength(payloadLength);

/**
 * Epoch milliseconds in the 2^35..2^42 range (1971..2109) are exactly six varint bytes, so a
 * template keeps six bytes for the timestamp and a request overwrites them in place.
 */
const TS_VARINT_BYTES = 6;

function writeTsVarint(buf: Buffer, at: number, tsMs: number): void {
  if (!(tsMs >= 2 ** 35 && tsMs < 2 ** 42)) throw new Error(`timestamp ${tsMs} ms outside 1971..2109`);
  let v = tsMs;
  for (let i = 0; i < TS_VARINT_BYTES - 1; i++) {
    buf[at + i] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[at + TS_VARINT_BYTES - 1] = v;
}

/**
 * Epoch ms as OTLP's fixed64 nanoseconds, little-endian. ms × 10^6 passes 2^53, so it is built
 * from 16-bit halves of the milliseconds, every step exact in a double.
 */
export function writeNanosFromMs(buf: Buffer, at: number, tsMs: number): void {
  const high = Math.floor(tsMs / 0x10000);
  const low = tsMs - high * 0x10000;
  const highNs = high * 1e6; // < 2^46: exact
  const lowWord = (highNs % 0x10000) * 0x10000 + low * 1e6; // < 2^37: exact
  const carry = Math.floor(lowWord / 2 ** 32);
  buf.writeUInt32LE(lowWord - carry * 2 ** 32, at);
  buf.writeUInt32LE(Math.floor(highNs / 0x10000) + carry, at + 4);
}

// --- Prometheus remote_write 1.0 ----------------------------------------------------------------

/** prometheus.Label { string name = 1; string value = 2; } as a TimeSeries.labels field. */
function promLabel(name: string, value: string): Buffer {
  return field(1, Buffer.concat([field(1, text(name)), field(2, text(value))]));
}

/** TimeSeries.samples: Sample { double value = 1 (tag 0x09 + 8); int64 timestamp = 2 (tag 0x10 + 6) }. */
const PROM_SAMPLE_PAYLOAD = 1 + 8 + 1 + TS_VARINT_BYTES;
const PROM_SAMPLE_FIELD = headLength(PROM_SAMPLE_PAYLOAD) + PROM_SAMPLE_PAYLOAD;

/**
 * WriteRequest bodies: per reading five TimeSeries `hashwatt_<metric>{device, kind, model}` (labels
 * sorted by name, as Prometheus sends them), one sample each. A WriteRequest is its repeated
 * `timeseries` fields back to back, so a body is the devices' pre-encoded series concatenated.
 */
export class RemoteWriteEncoder implements PushBodyEncoder {
  readonly protocol = 'remote_write';
  readonly #readings: LoadReadings;
  /** Every device's five series, back to back; device d's are at [start[d], start[d + 1]). */
  readonly #series: Buffer;
  readonly #start: Int32Array;
  /** Where device d's sample value for metric m sits, relative to start[d]; the ts follows it. */
  readonly #valueAt: Int32Array;

  constructor(readings: LoadReadings) {
    this.#readings = readings;
    const names = PUSH_METRICS.map((m) => promLabel('__name__', `hashwatt_${m}`));
    const kind = promLabel('kind', readings.kind);
    const modelLabels = new Map<string, Buffer>();
    const n = readings.devices.length;
    const deviceLabels = readings.devices.map((device) => promLabel('device', device));
    const labelsOf = (d: number, m: number) => {
      const model = readings.models[d]!;
      return [names[m]!, deviceLabels[d]!, kind, memo(modelLabels, model, () => promLabel('model', model))];
    };
    const payloadOf = (labels: Buffer[]) => labels.reduce((sum, b) => sum + b.length, 0) + PROM_SAMPLE_FIELD;
    // Sized first, then written into one buffer: 200 000 devices are a million series.
    this.#start = new Int32Array(n + 1);
    for (let d = 0; d < n; d++) {
      let size = 0;
      for (let m = 0; m < SAMPLES_PER_PUSH_READING; m++) {
        const payload = payloadOf(labelsOf(d, m));
        size += headLength(payload) + payload;
      }
      this.#start[d + 1] = this.#start[d]! + size;
    }
    this.#series = Buffer.alloc(this.#start[n]!);
    this.#valueAt = new Int32Array(n * SAMPLES_PER_PUSH_READING);
    const out = this.#series;
    for (let d = 0; d < n; d++) {
      let p = this.#start[d]!;
      for (let m = 0; m < SAMPLES_PER_PUSH_READING; m++) {
        const labels = labelsOf(d, m);
        out[p] = (1 << 3) | 2;
        p = writeVarint(out, p + 1, payloadOf(labels));
        for (const label of labels) p += label.copy(out, p);
        out[p++] = (2 << 3) | 2;
        out[p++] = PROM_SAMPLE_PAYLOAD;
        out[p++] = (1 << 3) | 1;
        this.#valueAt[d * SAMPLES_PER_PUSH_READING + m] = p - this.#start[d]!;
        out[p + 8] = 2 << 3;
        p += 8 + 1 + TS_VARINT_BYTES;
      }
      if (p !== this.#start[d + 1])
        throw new Error(`remote_write template of device ${d}: ${p} ≠ ${this.#start[d + 1]}`);
    }
  }

  encode(run: ReadingRun): Buffer {
    const start = this.#start;
    let size = 0;
    for (let i = 0; i < run.count; i++) size += start[run.device[i]! + 1]! - start[run.device[i]!]!;
    const out = Buffer.allocUnsafe(size);
    const values = this.#readings.values;
    let p = 0;
    for (let i = 0; i < run.count; i++) {
      const d = run.device[i]!;
      const v = run.valueSet[i]! * SAMPLES_PER_PUSH_READING;
      const ts = run.tsMs[i]!;
      this.#series.copy(out, p, start[d]!, start[d + 1]!);
      for (let m = 0; m < SAMPLES_PER_PUSH_READING; m++) {
        const at = p + this.#valueAt[d * SAMPLES_PER_PUSH_READING + m]!;
        out.writeDoubleLE(values[v + m]!, at);
        writeTsVarint(out, at + 9, ts);
      }
      p += start[d + 1]! - start[d]!;
    }
    return out;
  }
}

// --- InfluxDB line protocol ---------------------------------------------------------------------

/**
 * Line protocol in hashwatt's own measurement, one line per reading, epoch ms (send with
 * `precision=ms`): `hashwatt,device=…,kind=asic,model=S21\ Pro power_w=…,…,fan_rpm=… 1764…`.
 * A line is the device's prefix, the value set's fields and the timestamp.
 */
export class LineProtocolEncoder implements PushBodyEncoder {
  readonly protocol = 'influx';
  readonly #readings: LoadReadings;
  readonly #prefix: string[];
  readonly #fields: string[] = [];

  constructor(readings: LoadReadings) {
    this.#readings = readings;
    this.#prefix = readings.devices.map(
      (device, d) =>
        `hashwatt,device=${escapeTag(device)},kind=${readings.kind},model=${escapeTag(readings.models[d]!)} `,
    );
  }

  encode(run: ReadingRun): Buffer {
    let body = '';
    for (let i = 0; i < run.count; i++) {
      body += `${this.#prefix[run.device[i]!]}${this.#fieldsOf(run.valueSet[i]!)}${run.tsMs[i]}\n`;
    }
    return Buffer.from(body, 'utf8');
  }

  #fieldsOf(valueSet: number): string {
    let fields = this.#fields[valueSet];
    if (fields === undefined) {
      const values = this.#readings.values;
      fields = `${PUSH_METRICS.map((m, i) => `${m}=${formatFieldValue(values[valueSet * SAMPLES_PER_PUSH_READING + i]!)}`).join(',')} `;
      this.#fields[valueSet] = fields;
    }
    return fields;
  }
}

// --- OTLP/HTTP protobuf -------------------------------------------------------------------------

/** KeyValue { string key = 1; AnyValue value = 2 { string string_value = 1; } } as a field. */
function otlpAttribute(fieldNumber: number, key: string, value: string): Buffer {
  return field(fieldNumber, Buffer.concat([field(1, text(key)), field(2, field(1, text(value)))]));
}

/** NumberDataPoint's fixed part: time_unix_nano = 3 (fixed64, tag 0x19), as_double = 4 (tag 0x21). */
const OTLP_POINT_FIXED = 1 + 8 + 1 + 8;

/**
 * ExportMetricsServiceRequest bodies shaped as an OpenTelemetry SDK or Collector sends them: one
 * ResourceMetrics and one ScopeMetrics, then one gauge Metric per hashwatt metric (`power_w`, …,
 * its unit from the catalog) holding a NumberDataPoint per reading, attributes `device`, `kind`
 * and `hw.model`. The resource names no host, so the device is the point's `device` attribute
 * (DEFAULT_OTLP_MAPPING's `{device}` template) and the names map as hashwatt's own.
 */
export class OtlpEncoder implements PushBodyEncoder {
  readonly protocol = 'otlp';
  readonly #readings: LoadReadings;
  /** Every device's data point (time and value left to fill), back to back. */
  readonly #points: Buffer;
  readonly #start: Int32Array;
  /** Where the time field's 8 bytes start in device d's point; the value's 8 follow 1 byte later. */
  readonly #timeAt: Uint8Array;
  readonly #resource = field(1, otlpAttribute(1, 'service.name', 'hashwatt-bench'));
  readonly #scope = field(1, Buffer.concat([field(1, text('hashwatt-bench')), field(2, text('1'))]));
  /** Per metric: its `name` and `unit` fields. */
  readonly #metricHeads = PUSH_METRICS.map((m) =>
    Buffer.concat([field(1, text(m)), field(3, text(findMetric(m)?.unit ?? ''))]),
  );

  constructor(readings: LoadReadings) {
    this.#readings = readings;
    const n = readings.devices.length;
    const kind = otlpAttribute(7, 'kind', readings.kind);
    const modelAttributes = new Map<string, Buffer>();
    const blocks: Buffer[] = [];
    this.#start = new Int32Array(n + 1);
    this.#timeAt = new Uint8Array(n);
    let offset = 0;
    for (let d = 0; d < n; d++) {
      const model = readings.models[d]!;
      const modelAttribute = memo(modelAttributes, model, () => otlpAttribute(7, 'hw.model', model));
      const attributes = Buffer.concat([
        otlpAttribute(7, 'device', readings.devices[d]!),
        kind,
        modelAttribute,
      ]);
      const fixed = Buffer.alloc(OTLP_POINT_FIXED);
      fixed[0] = (3 << 3) | 1;
      fixed[9] = (4 << 3) | 1;
      const point = field(1, Buffer.concat([fixed, attributes]));
      this.#start[d] = offset;
      this.#timeAt[d] = point.length - (OTLP_POINT_FIXED + attributes.length) + 1;
      blocks.push(point);
      offset += point.length;
    }
    this.#start[n] = offset;
    this.#points = Buffer.concat(blocks, offset);
  }

  encode(run: ReadingRun): Buffer {
    const start = this.#start;
    let pointsLength = 0;
    for (let i = 0; i < run.count; i++) pointsLength += start[run.device[i]! + 1]! - start[run.device[i]!]!;
    // Gauge { repeated NumberDataPoint data_points = 1 } is the points back to back.
    const metricLengths = this.#metricHeads.map(
      (head) => head.length + headLength(pointsLength) + pointsLength,
    );
    const scopeMetricsLength =
      this.#scope.length + metricLengths.reduce((s, length) => s + headLength(length) + length, 0);
    const resourceMetricsLength = this.#resource.length + headLength(scopeMetricsLength) + scopeMetricsLength;
    const out = Buffer.allocUnsafe(headLength(resourceMetricsLength) + resourceMetricsLength);
    let p = writeHead(out, 0, 1, resourceMetricsLength);
    p += this.#resource.copy(out, p);
    p = writeHead(out, p, 2, scopeMetricsLength);
    p += this.#scope.copy(out, p);
    const values = this.#readings.values;
    for (let m = 0; m < SAMPLES_PER_PUSH_READING; m++) {
      p = writeHead(out, p, 2, metricLengths[m]!);
      p += this.#metricHeads[m]!.copy(out, p);
      p = writeHead(out, p, 5, pointsLength);
      for (let i = 0; i < run.count; i++) {
        const d = run.device[i]!;
        this.#points.copy(out, p, start[d]!, start[d + 1]!);
        const at = p + this.#timeAt[d]!;
        writeNanosFromMs(out, at, run.tsMs[i]!);
        out.writeDoubleLE(values[run.valueSet[i]! * SAMPLES_PER_PUSH_READING + m]!, at + 9);
        p += start[d + 1]! - start[d]!;
      }
    }
    if (p !== out.length) throw new Error(`OTLP body: wrote ${p} of ${out.length} bytes`);
    return out;
  }
}

/** A length-delimited field's tag and length; returns where its payload starts. */
function writeHead(buf: Buffer, at: number, fieldNumber: number, payloadLength: number): number {
  buf[at] = (fieldNumber << 3) | 2;
  return writeVarint(buf, at + 1, payloadLength);
}

/** The encoder of a protocol over a site's readings (builds the per-device templates: ~1 s for 200k devices). */
export function createPushEncoder(protocol: PushProtocol, readings: LoadReadings): PushBodyEncoder {
  switch (protocol) {
    case 'remote_write':
      return new RemoteWriteEncoder(readings);
    case 'influx':
      return new LineProtocolEncoder(readings);
    case 'otlp':
      return new OtlpEncoder(readings);
  }
}

// --- checking the bodies before anything is timed -----------------------------------------------

/** One sample as `device|kind|model|metric|tsMs|value`, for comparing what was meant with what decodes. */
const sampleKey = (
  device: string,
  kind: string,
  model: string,
  metric: string,
  tsMs: number,
  value: number,
) => `${device}|${kind}|${model}|${metric}|${tsMs}|${value}`;

// The OTLP messages these bodies use (opentelemetry-proto metrics/v1), for protobufjs' reading.
const OTLP_PROTO = `
syntax = "proto3";
package otlp;
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2; }
message InstrumentationScope { string name = 1; string version = 2; }
message Metric { string name = 1; string description = 2; string unit = 3; Gauge gauge = 5; }
message Gauge { repeated NumberDataPoint data_points = 1; }
message NumberDataPoint { repeated KeyValue attributes = 7; fixed64 time_unix_nano = 3; double as_double = 4; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue { string string_value = 1; }
`;
const OtlpRequestType = protobuf
  .parse(OTLP_PROTO, { keepCase: true })
  .root.lookupType('otlp.ExportMetricsServiceRequest');

interface OtlpObject {
  resource_metrics: {
    scope_metrics: {
      metrics: {
        name: string;
        gauge: {
          data_points: {
            attributes: { key: string; value: { string_value: string } }[];
            time_unix_nano: string;
            as_double: number;
          }[];
        };
      }[];
    }[];
  }[];
}

interface PromObject {
  timeseries: {
    labels: { name: string; value: string }[];
    samples: { value: number; timestamp: number }[];
  }[];
}

/** The samples a protobuf body holds, read by protobufjs (not hashwatt's reader). */
function protobufjsKeys(protocol: PushProtocol, raw: Buffer): string[] | undefined {
  if (protocol === 'remote_write') {
    const message = WriteRequestType.toObject(WriteRequestType.decode(raw), { longs: Number }) as PromObject;
    return message.timeseries.flatMap((series) => {
      const label = (name: string) => series.labels.find((l) => l.name === name)?.value ?? '';
      const metric = label('__name__').replace(/^hashwatt_/, '');
      return series.samples.map((s) =>
        sampleKey(label('device'), label('kind'), label('model'), metric, s.timestamp, s.value),
      );
    });
  }
  if (protocol === 'otlp') {
    const message = OtlpRequestType.toObject(OtlpRequestType.decode(raw), { longs: String }) as OtlpObject;
    return message.resource_metrics.flatMap((rm) =>
      rm.scope_metrics.flatMap((sm) =>
        sm.metrics.flatMap((metric) =>
          metric.gauge.data_points.map((point) => {
            const attribute = (key: string) =>
              point.attributes.find((a) => a.key === key)?.value.string_value ?? '';
            const tsMs = Number(BigInt(point.time_unix_nano) / 1_000_000n);
            return sampleKey(
              attribute('device'),
              attribute('kind'),
              attribute('hw.model'),
              metric.name,
              tsMs,
              point.as_double,
            );
          }),
        ),
      ),
    );
  }
  return undefined;
}

function decodeWithHashwatt(protocol: PushProtocol, raw: Buffer): DecodeResult {
  switch (protocol) {
    case 'remote_write':
      return decodeRemoteWrite(compressSync(raw));
    case 'influx':
      return decodeLineProtocol(raw, { precision: 'ms', nowUs: Date.now() * 1000 });
    case 'otlp':
      return decodeOtlp(raw, 'protobuf');
  }
}

/**
 * Encodes a few of the site's next readings and checks that hashwatt's decoder (the one the
 * receiver runs) and, for the protobuf bodies, protobufjs read back exactly the meant samples —
 * every metric of every reading, nothing unmapped, no problem. Throws naming the first mismatch.
 */
export function verifyPushEncoder(encoder: PushBodyEncoder, readings: LoadReadings): void {
  const run = readings.next(3, Date.now(), 3);
  const expected: string[] = [];
  for (let i = 0; i < run.count; i++) {
    const d = run.device[i]!;
    PUSH_METRICS.forEach((metric, m) => {
      const value = readings.values[run.valueSet[i]! * SAMPLES_PER_PUSH_READING + m]!;
      expected.push(
        sampleKey(readings.devices[d]!, readings.kind, readings.models[d]!, metric, run.tsMs[i]!, value),
      );
    });
  }
  expected.sort();
  const raw = encoder.encode(run);
  const decoded = decodeWithHashwatt(encoder.protocol, raw);
  const problem = decoded.fatal ?? decoded.problems[0];
  if (problem)
    throw new Error(`${encoder.protocol} body: ${problem.where}: ${problem.message} (${problem.code})`);
  if (decoded.unmapped > 0)
    throw new Error(`${encoder.protocol} body: unmapped ${decoded.unmappedNames.join(', ')}`);
  const readers: [string, string[] | undefined][] = [
    [
      'hashwatt',
      decoded.samples.map((s) => sampleKey(s.device, s.kind ?? '', s.model ?? '', s.metric, s.tsMs, s.value)),
    ],
    ['protobufjs', protobufjsKeys(encoder.protocol, raw)],
  ];
  for (const [reader, keys] of readers) {
    if (keys === undefined) continue;
    const got = [...keys].sort();
    const mismatch = expected.findIndex((key, i) => got[i] !== key);
    if (got.length !== expected.length || mismatch >= 0) {
      throw new Error(
        `${encoder.protocol} body as ${reader} reads it: expected ${expected.length} samples, got ${got.length}; ` +
          `first difference: expected ${expected[mismatch] ?? '(none)'}, got ${got[mismatch] ?? '(none)'}`,
      );
    }
  }
}
