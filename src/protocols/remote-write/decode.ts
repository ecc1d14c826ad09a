/**
 * Prometheus remote_write 1.0: a snappy block-compressed protobuf `prometheus.WriteRequest`
 * (timeseries: labels, samples {double value, int64 timestamp ms}) → hashwatt samples. Pure; never
 * throws: an unreadable body is a `fatal` result, a bad series a problem naming "series N".
 */
import { KNOWN_METRIC_NAMES } from '../../catalog/extra-metrics.ts';
import {
  CompiledDeviceRule,
  convertValue,
  indexOf,
  type LabelLookup,
  matchesWhere,
  SampleCollector,
} from '../mapping.ts';
import { ProtoError, ProtoReader, skipField, WIRE_I64, WIRE_LEN, WIRE_VARINT } from '../protobuf/reader.ts';

// The wire type of every field this decoder knows, per message (prometheus/prompb/types.proto, remote.proto).
const WRITE_REQUEST_FIELDS = { 1: WIRE_LEN, 3: WIRE_LEN };
const TIME_SERIES_FIELDS = { 1: WIRE_LEN, 2: WIRE_LEN, 3: WIRE_LEN, 4: WIRE_LEN };
const LABEL_FIELDS = { 1: WIRE_LEN, 2: WIRE_LEN };
const SAMPLE_FIELDS = { 1: WIRE_I64, 2: WIRE_VARINT };

import { type DecodeResult, fatalResult, isUsInRange, ResultBuilder } from '../sample.ts';
import {
  DEFAULT_REMOTE_WRITE_MAPPING,
  type RemoteWriteMapping,
  type RemoteWriteRule,
  type SeriesFamily,
} from './mapping.ts';
import { maxSnappyExpansion, snappyUncompress, snappyUncompressedLength } from './snappy.ts';

export interface RemoteWriteDecodeResult extends DecodeResult {
  /** Samples carrying Prometheus' staleness marker (the series ended): skipped, not problems. */
  staleMarkers: number;
  /** Series in the request, mapped or not. */
  series: number;
}

export interface RemoteWriteDecodeOptions {
  mapping?: CompiledRemoteWriteMapping;
  /** Refuse bodies that would decompress past this many bytes (`too_large`), before decompressing. */
  maxUncompressedBytes?: number;
}

/** The default bound on a decompressed request: Prometheus sends about 2000 samples (< 1 MiB). */
export const DEFAULT_MAX_UNCOMPRESSED_BYTES = 32 * 1024 * 1024;

interface FamilyEntry {
  family: SeriesFamily;
  device: CompiledDeviceRule;
  rules: readonly RemoteWriteRule[];
}

/** A mapping indexed by metric name, built once. */
export interface CompiledRemoteWriteMapping {
  readonly source: RemoteWriteMapping;
  readonly byName: ReadonlyMap<string, FamilyEntry>;
  readonly own?: {
    prefix: string;
    device: CompiledDeviceRule;
    indexFrom: string;
    /** The rules of every `<prefix><known metric>` name, built once rather than per series. */
    rulesByName: ReadonlyMap<string, readonly RemoteWriteRule[]>;
  };
}

/** Indexes a mapping by metric name; a name listed by two families belongs to the first. */
export function compileRemoteWriteMapping(mapping: RemoteWriteMapping): CompiledRemoteWriteMapping {
  const byName = new Map<string, FamilyEntry>();
  for (const family of mapping.families) {
    const device = new CompiledDeviceRule(family.device);
    for (const [name, rules] of Object.entries(family.metrics)) {
      if (!byName.has(name)) byName.set(name, { family, device, rules });
    }
  }
  return {
    source: mapping,
    byName,
    ...(mapping.own === undefined
      ? {}
      : {
          own: {
            prefix: mapping.own.prefix,
            device: new CompiledDeviceRule(mapping.own.device),
            indexFrom: mapping.own.indexFrom,
            rulesByName: ownRules(mapping.own.prefix, mapping.own.indexFrom),
          },
        }),
  };
}

function ownRules(prefix: string, indexFrom: string): Map<string, readonly RemoteWriteRule[]> {
  return new Map(KNOWN_METRIC_NAMES.map((metric) => [`${prefix}${metric}`, [{ metric, indexFrom }]]));
}

const DEFAULT_COMPILED = compileRemoteWriteMapping(DEFAULT_REMOTE_WRITE_MAPPING);

/** Decodes a remote_write request body (still snappy-compressed, as it arrives). */
export function decodeRemoteWrite(
  body: Uint8Array,
  options: RemoteWriteDecodeOptions = {},
): RemoteWriteDecodeResult {
  const max = options.maxUncompressedBytes ?? DEFAULT_MAX_UNCOMPRESSED_BYTES;
  const length = snappyUncompressedLength(body);
  if (length === undefined)
    return withCounts(fatalResult('bad_snappy', 'body is not snappy block format: bad length header'));
  if (length > max) {
    return withCounts(
      fatalResult('too_large', `body decompresses to ${length} bytes, more than the limit of ${max}`),
    );
  }
  if (length > maxSnappyExpansion(body.length)) {
    return withCounts(
      fatalResult(
        'bad_snappy',
        `body declares ${length} bytes, more than ${body.length} snappy bytes can hold`,
      ),
    );
  }
  const raw = snappyUncompress(body);
  if (raw === undefined)
    return withCounts(fatalResult('bad_snappy', 'body is not valid snappy block-format data'));
  return decodeWriteRequest(raw, options.mapping ?? DEFAULT_COMPILED);
}

function withCounts(r: DecodeResult): RemoteWriteDecodeResult {
  return { ...r, staleMarkers: 0, series: 0 };
}

/** Prometheus' staleness marker: the NaN with payload 0x7ff0000000000002. */
const STALE_HI = 0x7ff00000;
const STALE_LO = 0x00000002;

/**
 * One decoded TimeSeries, reused across series to spare allocations. The arrays only grow: the
 * first `labels` and `samples` entries are this series' (truncating five arrays per series, most
 * of one sample, was 2 % of the service's time under remote_write).
 */
class SeriesBuffer {
  readonly names: string[] = [];
  readonly values: string[] = [];
  labels = 0;
  readonly sampleValues: number[] = [];
  readonly sampleStale: boolean[] = [];
  readonly sampleTs: number[] = [];
  samples = 0;
  histograms = 0;
  labelProblem: string | undefined;

  reset(): void {
    this.labels = 0;
    this.samples = 0;
    this.histograms = 0;
    this.labelProblem = undefined;
  }

  addLabel(name: string, value: string): void {
    this.names[this.labels] = name;
    this.values[this.labels] = value;
    this.labels++;
  }

  addSample(value: number, stale: boolean, ts: number): void {
    this.sampleValues[this.samples] = value;
    this.sampleStale[this.samples] = stale;
    this.sampleTs[this.samples] = ts;
    this.samples++;
  }

  readonly get: LabelLookup = (name) => {
    const names = this.names;
    for (let i = 0; i < this.labels; i++) if (names[i] === name) return this.values[i];
    return undefined;
  };
}

/** Decodes an uncompressed WriteRequest. Exported for tests and the benchmark. */
export function decodeWriteRequest(
  raw: Uint8Array,
  mapping: CompiledRemoteWriteMapping = DEFAULT_COMPILED,
): RemoteWriteDecodeResult {
  const out = new ResultBuilder();
  const collector = new SampleCollector(out);
  const series = new SeriesBuffer();
  const limits = mapping.source.limits;
  let staleMarkers = 0;
  let count = 0;
  const r = new ProtoReader(raw);
  try {
    while (r.pos < r.end) {
      const tag = r.uint32();
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field === 1 && wire === WIRE_LEN) {
        series.reset();
        const outer = r.enter(r.length());
        readTimeSeries(r, series, limits);
        r.leave(outer);
        staleMarkers += mapSeries(series, count, mapping, out, collector);
        count++;
      } else skipField(r, tag, WRITE_REQUEST_FIELDS); // metadata (field 3) and anything newer
    }
  } catch (e) {
    if (e instanceof ProtoError) {
      return withCounts(
        fatalResult('bad_protobuf', `not a WriteRequest: ${e.message} at byte ${e.offset} (series ${count})`),
      );
    }
    throw e;
  }
  collector.flush();
  return { ...out.build(), staleMarkers, series: count };
}

/**
 * Maps series an external decoder produced (protobufjs objects): the benchmark's baseline for
 * "a protobuf library plus the same mapping". Not used by the service.
 */
export function mapDecodedSeries(
  list: readonly {
    labels: readonly { name: string; value: string }[];
    samples: readonly { value: number; timestamp: number }[];
  }[],
  mapping: CompiledRemoteWriteMapping = DEFAULT_COMPILED,
): RemoteWriteDecodeResult {
  const out = new ResultBuilder();
  const collector = new SampleCollector(out);
  const series = new SeriesBuffer();
  let staleMarkers = 0;
  list.forEach((ts, i) => {
    series.reset();
    for (const l of ts.labels) {
      series.addLabel(l.name, l.value);
    }
    for (const x of ts.samples) {
      series.addSample(x.value, false, Number(x.timestamp));
    }
    staleMarkers += mapSeries(series, i, mapping, out, collector);
  });
  collector.flush();
  return { ...out.build(), staleMarkers, series: list.length };
}

function readTimeSeries(r: ProtoReader, s: SeriesBuffer, limits: RemoteWriteMapping['limits']): void {
  while (r.pos < r.end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === WIRE_LEN) {
      const outer = r.enter(r.length());
      if (s.labels >= limits.maxLabels) {
        s.labelProblem ??= `more than ${limits.maxLabels} labels`;
        r.pos = r.end;
        r.leave(outer);
        continue;
      }
      let name = '';
      let value = '';
      while (r.pos < r.end) {
        const t = r.uint32();
        if (t === (1 << 3) + WIRE_LEN) name = r.string();
        else if (t === (2 << 3) + WIRE_LEN) value = r.string();
        else skipField(r, t, LABEL_FIELDS);
      }
      r.leave(outer);
      if (name.length > limits.maxLabelNameLength)
        s.labelProblem ??= `a label name longer than ${limits.maxLabelNameLength}`;
      else if (value.length > limits.maxLabelValueLength) {
        s.labelProblem ??= `label ${name.slice(0, 64)} longer than ${limits.maxLabelValueLength}`;
      }
      s.addLabel(name, value);
    } else if (field === 2 && wire === WIRE_LEN) {
      const outer = r.enter(r.length());
      let value = 0;
      let stale = false;
      let ts = 0;
      while (r.pos < r.end) {
        const t = r.uint32();
        if (t === (1 << 3) + WIRE_I64) {
          const at = r.pos;
          value = r.double();
          // Only a NaN can be the marker: read its bits then, not for every sample.
          stale = Number.isNaN(value) && r.uint32At(at + 4) === STALE_HI && r.uint32At(at) === STALE_LO;
        } else if (t === (2 << 3) + WIRE_VARINT) ts = r.int64();
        else skipField(r, t, SAMPLE_FIELDS);
      }
      r.leave(outer);
      s.addSample(value, stale, ts);
    } else if (field === 4 && wire === WIRE_LEN) {
      s.histograms++;
      r.skip(wire);
    } else skipField(r, tag, TIME_SERIES_FIELDS); // exemplars (3)
  }
}

/** Maps one series; returns how many stale markers it carried. */
function mapSeries(
  s: SeriesBuffer,
  index: number,
  mapping: CompiledRemoteWriteMapping,
  out: ResultBuilder,
  collector: SampleCollector,
): number {
  const name = s.get('__name__');
  // Built only for a problem: this runs per series, and a request is mostly one-sample series.
  const where = () => `series ${index}${name === undefined ? '' : ` (${name.slice(0, 128)})`}`;
  if (s.labelProblem !== undefined) {
    out.problem(where(), 'too_many_labels', `series skipped: ${s.labelProblem}`);
    return 0;
  }
  if (name === undefined || name === '') {
    out.problem(where(), 'missing_metric_name', 'series has no __name__ label');
    return 0;
  }
  if (s.histograms > 0) {
    out.problem(where(), 'unsupported_histogram', `${s.histograms} native histogram samples are not stored`);
  }
  let rules: readonly RemoteWriteRule[];
  let device: CompiledDeviceRule;
  const entry = mapping.byName.get(name);
  if (entry !== undefined) {
    rules = entry.rules;
    device = entry.device;
  } else if (mapping.own !== undefined && name.startsWith(mapping.own.prefix)) {
    const own = mapping.own.rulesByName.get(name);
    if (own === undefined) {
      out.problem(
        where(),
        'unknown_metric',
        `${name.slice(mapping.own.prefix.length)} is not a hashwatt metric name`,
      );
      return 0;
    }
    rules = own;
    device = mapping.own.device;
  } else {
    out.noteUnmapped(name);
    return 0;
  }
  const identity = device.resolve(s.get);
  if ('missing' in identity) {
    out.problem(
      where(),
      identity.invalid ? 'invalid_device' : 'missing_device_label',
      `cannot name the device: ${identity.missing}`,
    );
    return 0;
  }
  let matched = 0;
  let stale = 0;
  for (const rule of rules) {
    if (!matchesWhere(rule, s.get)) continue;
    matched++;
    const idx = indexOf(rule, s.get);
    const slots = collector.slotsFor(identity.device, rule.metric, idx);
    for (let i = 0; i < s.samples; i++) {
      if (s.sampleStale[i]) {
        if (matched === 1) stale++;
        continue;
      }
      const raw = s.sampleValues[i]!;
      if (!Number.isFinite(raw)) {
        out.problem(where(), 'not_finite', `sample ${i} value ${raw} is not a finite number`);
        continue;
      }
      if (isDcgmBlank(rule, raw)) {
        out.problem(where(), 'dcgm_blank', `sample ${i} is DCGM's blank value ${raw} (no reading), filtered`);
        continue;
      }
      const tsUs = s.sampleTs[i]! * 1000;
      if (!isUsInRange(tsUs)) {
        out.problem(
          where(),
          'timestamp_out_of_range',
          `sample ${i} timestamp ${s.sampleTs[i]} ms is out of range`,
        );
        continue;
      }
      collector.add(slots, identity, rule.metric, idx, tsUs, convertValue(rule, raw), rule, where);
    }
  }
  if (matched === 0) out.noteUnmapped(name);
  return stale;
}

const INT64_BLANK_AS_DOUBLE = 2 ** 63; // 0x7ffffffffffffff0..ff all round to 2^63
const INT32_BLANK_MIN = 0x7ffffff0;
const INT32_BLANK_MAX = 0x7fffffff;
const FP64_BLANK_MIN = 2 ** 47;
const FP64_BLANK_MAX = 2 ** 47 + 15;

/** True when a value is one of DCGM's "blank" sentinels for the rule's field type. */
export function isDcgmBlank(rule: RemoteWriteRule, v: number): boolean {
  if (rule.dcgm === undefined) return false;
  if (v >= INT32_BLANK_MIN && v <= INT32_BLANK_MAX && Number.isInteger(v)) return true;
  if (rule.dcgm === 'int64') return v >= INT64_BLANK_AS_DOUBLE;
  return v >= FP64_BLANK_MIN && v <= FP64_BLANK_MAX;
}
