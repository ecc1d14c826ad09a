/**
 * InfluxDB line protocol body → hashwatt samples. Pure; never throws. Per-line problems carry the
 * line number ("line 12") in body order, so the route can answer InfluxDB 2.5+'s partial write:
 * 422 naming the first bad line while the good lines are kept.
 */
import { isKnownMetricName } from '../../catalog/extra-metrics.ts';
import {
  CompiledDeviceRule,
  convertValue,
  indexOf,
  type LabelLookup,
  matchesWhere,
  SampleCollector,
} from '../mapping.ts';
import { type DecodeResult, fatalResult, ResultBuilder } from '../sample.ts';
import { DEFAULT_LINE_PROTOCOL_MAPPING, type LineProtocolMapping, type MeasurementRule } from './mapping.ts';
import {
  DEFAULT_PARSE_LIMITS,
  type ParseLimits,
  type Point,
  type Precision,
  parseLineProtocol,
} from './parse.ts';

export interface LineProtocolDecodeOptions {
  precision: Precision;
  /** The receive time in integer microseconds: lines without a timestamp get it, as in InfluxDB. */
  nowUs: number;
  mapping?: CompiledLineProtocolMapping;
  limits?: ParseLimits;
}

export interface LineProtocolDecodeResult extends DecodeResult {
  /** Lines holding a point (not blank, not comments), parsed or not. */
  lines: number;
  /** Lines that did not parse: nothing of them is stored. */
  badLines: number;
  /** The first line that did not parse, for InfluxDB's 422 message. */
  firstBadLine?: { line: number; message: string; text: string };
}

interface CompiledMeasurement {
  rule: MeasurementRule;
  device: CompiledDeviceRule;
  ignore: ReadonlySet<string>;
}

export interface CompiledLineProtocolMapping {
  readonly byMeasurement: ReadonlyMap<string, CompiledMeasurement>;
}

export function compileLineProtocolMapping(mapping: LineProtocolMapping): CompiledLineProtocolMapping {
  const byMeasurement = new Map<string, CompiledMeasurement>();
  for (const [name, rule] of Object.entries(mapping.measurements)) {
    byMeasurement.set(name, {
      rule,
      device: new CompiledDeviceRule(rule.device),
      ignore: new Set(rule.ignoreFields ?? []),
    });
  }
  return { byMeasurement };
}

const DEFAULT_COMPILED = compileLineProtocolMapping(DEFAULT_LINE_PROTOCOL_MAPPING);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes a body (already gunzipped). */
export function decodeLineProtocol(
  body: Uint8Array | string,
  options: LineProtocolDecodeOptions,
): LineProtocolDecodeResult {
  let text: string;
  if (typeof body === 'string') text = body;
  else {
    try {
      text = utf8.decode(body);
    } catch {
      return { ...fatalResult('invalid_utf8', 'body is not valid UTF-8'), lines: 0, badLines: 0 };
    }
  }
  const mapping = options.mapping ?? DEFAULT_COMPILED;
  const out = new ResultBuilder();
  const collector = new SampleCollector(out);
  let lines = 0;
  let badLines = 0;
  let firstBadLine: LineProtocolDecodeResult['firstBadLine'];
  parseLineProtocol(
    text,
    options.precision,
    (p) => {
      lines++;
      mapPoint(p, mapping, options.nowUs, out, collector);
    },
    (e) => {
      lines++;
      badLines++;
      firstBadLine ??= { line: e.line, message: e.message, text: e.text };
      out.problem(`line ${e.line}`, e.code, e.message);
    },
    options.limits ?? DEFAULT_PARSE_LIMITS,
  );
  collector.flush();
  return { ...out.build(), lines, badLines, ...(firstBadLine === undefined ? {} : { firstBadLine }) };
}

function mapPoint(
  p: Point,
  mapping: CompiledLineProtocolMapping,
  nowUs: number,
  out: ResultBuilder,
  collector: SampleCollector,
): void {
  const m = mapping.byMeasurement.get(p.measurement);
  if (m === undefined) {
    for (let f = 0; f < p.fieldKeys.length; f++) out.noteUnmapped(`${p.measurement}.${p.fieldKeys[f]}`);
    return;
  }
  const get: LabelLookup = (name) => {
    for (let t = 0; t < p.tagKeys.length; t++) if (p.tagKeys[t] === name) return p.tagValues[t];
    return undefined;
  };
  const where = `line ${p.line}`;
  const identity = m.device.resolve(get);
  if ('missing' in identity) {
    out.problem(
      where,
      identity.invalid ? 'invalid_device' : 'missing_device_tag',
      `cannot name the device: ${identity.missing}`,
    );
    return;
  }
  const tsUs = p.tsUs ?? nowUs;
  for (let f = 0; f < p.fieldKeys.length; f++) {
    const key = p.fieldKeys[f]!;
    if (m.ignore.has(key)) continue;
    let rules = m.rule.fields?.[key];
    if (rules === undefined && m.rule.metricFields !== undefined) {
      if (isKnownMetricName(key)) {
        const indexFrom = m.rule.metricFields.indexFrom;
        rules = [indexFrom === undefined ? { metric: key } : { metric: key, indexFrom }];
      } else if (m.rule.metricFields.mode === 'strict') {
        out.problem(
          `${where} field ${key.slice(0, 64)}`,
          'unknown_metric',
          `${key.slice(0, 64)} is not a hashwatt metric name`,
        );
        continue;
      }
    }
    if (rules === undefined) {
      out.noteUnmapped(`${p.measurement}.${key}`);
      continue;
    }
    const raw = numericValue(p.fieldValues[f]!, `${where} field ${key.slice(0, 64)}`, out);
    if (raw === undefined) continue;
    let matched = 0;
    for (const rule of rules) {
      if (!matchesWhere(rule, get)) continue;
      matched++;
      const idx = indexOf(rule, get);
      const slots = collector.slotsFor(identity.device, rule.metric, idx);
      collector.add(slots, identity, rule.metric, idx, tsUs, convertValue(rule, raw), rule, where);
    }
    if (matched === 0) out.noteUnmapped(`${p.measurement}.${key}`);
  }
}

/** The number a mapped field carries, or undefined (reported) when it carries none exactly. */
function numericValue(
  value: Point['fieldValues'][number],
  where: string,
  out: ResultBuilder,
): number | undefined {
  switch (value.type) {
    case 'float':
      return value.value;
    case 'integer':
    case 'unsigned':
      if (!value.exact) {
        // Stored as a double, it would not be the number sent.
        out.problem(where, 'integer_not_exact', 'an integer beyond 2^53 cannot be stored exactly');
        return undefined;
      }
      return value.value;
    default:
      out.problem(where, 'wrong_type', `a metric needs a number, got a ${value.type}`);
      return undefined;
  }
}
