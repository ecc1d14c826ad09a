import type { SiteSpec } from '../scenario.ts';
import { LoadGenerator } from './templates.ts';

// InfluxDB line protocol for peer benchmarks (VictoriaMetrics' /write and /api/v2/write):
//
//   asic,site=load-1,device=hall-1/r001/s21-001,model=S21\ Pro,status=ok power_w=3512.3,hashrate_ths=201.55,… 1700000000000
//
// Timestamps are epoch milliseconds: send with `precision=ms`.

const TAG_SPECIAL = /[\\, =\n\r]/;
const MEASUREMENT_SPECIAL = /[\\, \n\r]/;

/**
 * Escapes a tag key or value (also right for field keys): backslash, comma, equals sign and space
 * get a backslash. A newline cannot be escaped in line protocol, so it throws.
 */
export function escapeTag(s: string): string {
  if (!TAG_SPECIAL.test(s)) return s;
  if (/[\n\r]/.test(s))
    throw new Error(`line protocol cannot carry a newline in a tag or key: ${JSON.stringify(s)}`);
  // Backslash first; VictoriaMetrics and InfluxDB both read `\\` as one backslash.
  return s.replace(/[\\, =]/g, '\\$&');
}

/** Escapes a measurement name: backslash, comma and space (an equals sign is allowed there). */
export function escapeMeasurement(s: string): string {
  if (s === '') throw new Error('line protocol: empty measurement');
  if (!MEASUREMENT_SPECIAL.test(s)) return s;
  if (/[\n\r]/.test(s))
    throw new Error(`line protocol cannot carry a newline in a measurement: ${JSON.stringify(s)}`);
  return s.replace(/[\\, ]/g, '\\$&');
}

/**
 * Formats a field value: finite numbers as floats (no `i` suffix: every field is a float64 to
 * VictoriaMetrics, and hashwatt stores these columns as floats too), booleans as `true`/`false`,
 * strings quoted with `"` and `\` escaped. NaN and ±Infinity have no line-protocol form: throws.
 */
export function formatFieldValue(value: number | boolean | string): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`line protocol: field value ${value} is not finite`);
    // String() never yields "-0" and writes 1e21 and up as "1e+21", both valid line-protocol floats.
    return String(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * One line of line protocol, without the trailing newline. Tags with an empty value are left out
 * (line protocol has no empty tag value); at least one field is required; `tsMs` is epoch ms.
 */
export function formatLine(
  measurement: string,
  tags: Readonly<Record<string, string>>,
  fields: Readonly<Record<string, number | boolean | string>>,
  tsMs?: number,
): string {
  let out = escapeMeasurement(measurement);
  for (const [k, v] of Object.entries(tags)) if (v !== '') out += `,${escapeTag(k)}=${escapeTag(v)}`;
  const set = Object.entries(fields).map(([k, v]) => `${escapeTag(k)}=${formatFieldValue(v)}`);
  if (set.length === 0) throw new Error('line protocol: a line needs at least one field');
  out += ` ${set.join(',')}`;
  if (tsMs !== undefined) {
    if (!Number.isSafeInteger(tsMs))
      throw new Error(`line protocol: timestamp ${tsMs} is not an integer (ms)`);
    out += ` ${tsMs}`;
  }
  return out;
}

/** Fields in one line (each becomes a sample); honours escapes and quoted string values. */
export function countFields(line: string): number {
  let i = 0;
  // Measurement and tags end at the first unescaped space.
  for (; i < line.length && line[i] !== ' '; i++) if (line[i] === '\\') i++;
  let fields = 0;
  i++;
  while (i < line.length) {
    // Key up to its unescaped `=`, then a quoted string or a bare value up to `,` or ` `.
    for (; i < line.length && line[i] !== '='; i++) if (line[i] === '\\') i++;
    i++;
    if (line[i] === '"') for (i++; i < line.length && line[i] !== '"'; i++) if (line[i] === '\\') i++;
    for (; i < line.length && line[i] !== ',' && line[i] !== ' '; i++);
    fields++;
    if (line[i] !== ',') break;
    i++;
  }
  return fields;
}

/** Keys of a reading that identify the device rather than carry a value. */
const IDENTITY_KEYS = new Set(['device', 'kind', 'model', 'ts']);

/**
 * The `load` scenario's readings as line protocol: the same devices, values and timestamps as the
 * {@link LoadGenerator} (which it wraps, so the two never drift), one line per reading. Measurement
 * `asic` (the reading's kind); tags `site`, `device`, `model` and `status`; every numeric value a
 * field (`power_w`, `hashrate_ths`, `expected_hashrate_ths`, `temp_c`, `fan_rpm`), which
 * VictoriaMetrics stores as series `asic_power_w{site,device,model,status}` and so on.
 *
 * `status` is a tag, not a string field: VictoriaMetrics stores only numbers, so a string field
 * would become a meaningless extra series of zeros (`asic_status 0`). As a tag it costs nothing per
 * line while it does not change (always `ok` in the load scenario); a change starts new series.
 *
 * Cheap enough for benchmarks: each device's line prefix and each distinct value set are rendered
 * once, from the JSON the first time it is seen; after that a line is a slice of the JSON, one map
 * lookup and three concatenations.
 */
export class LineProtocolGenerator {
  /** Device names by index, as in the JSON. */
  readonly devices: readonly string[];
  readonly #gen: LoadGenerator;
  readonly #siteTag: string;
  /** Per device: `asic,site=…,device=…,model=…`, and where its JSON's value part starts after the ts. */
  readonly #linePrefix: string[] = [];
  readonly #jsonPrefixLength: Int32Array;
  /** JSON value part (`,"power_w":…}`) → line tail before the ts (`,status=ok power_w=… `). */
  readonly #tails = new Map<string, string>();

  constructor(site: SiteSpec, seed: number) {
    this.#gen = new LoadGenerator(site, seed, 'epoch_ms');
    this.devices = this.#gen.devices;
    this.#siteTag = `,site=${escapeTag(site.name)}`;
    this.#jsonPrefixLength = new Int32Array(this.devices.length).fill(-1);
  }

  /** Distinct value sets seen so far (a handful per model). */
  get valueSets(): number {
    return this.#tails.size;
  }

  /**
   * Emits `count` readings exactly as {@link LoadGenerator.emit} does (devices round-robin,
   * timestamps spread over [fromMs, fromMs + spanMs), never repeated per device); `sink` gets each
   * line without its newline.
   */
  emit(
    count: number,
    fromMs: number,
    spanMs: number,
    sink: (line: string, device: number, tsMs: number) => void,
  ): void {
    this.#gen.emit(count, fromMs, spanMs, (json, d, ts) => sink(this.#toLine(json, d, ts), d, ts));
  }

  /** `count` readings as one request body: newline-terminated lines. */
  render(count: number, fromMs: number, spanMs: number): string {
    let body = '';
    this.#gen.emit(count, fromMs, spanMs, (json, d, ts) => {
      body += `${this.#toLine(json, d, ts)}\n`;
    });
    return body;
  }

  #toLine(json: string, d: number, ts: number): string {
    const tsText = String(ts);
    let start = this.#jsonPrefixLength[d]!;
    if (start < 0) start = this.#learnDevice(json, d, ts);
    const valuePart = json.slice(start + tsText.length);
    const tail = this.#tails.get(valuePart) ?? this.#learnValues(valuePart);
    return this.#linePrefix[d]! + tail + tsText;
  }

  /** First sight of a device: its tags from the JSON, and where the ts sits in its JSON. */
  #learnDevice(json: string, d: number, ts: number): number {
    const reading = JSON.parse(json) as Record<string, unknown>;
    const { device, kind, model } = reading;
    if (typeof device !== 'string' || typeof kind !== 'string' || reading.ts !== ts)
      throw new Error(`unexpected load reading (need device, kind, ts in epoch ms): ${json}`);
    const at = json.indexOf('"ts":');
    if (at < 0 || !json.startsWith(String(ts), at + 5))
      throw new Error(`unexpected load reading (ts not where expected): ${json}`);
    let prefix = `${escapeMeasurement(kind)}${this.#siteTag},device=${escapeTag(device)}`;
    if (typeof model === 'string' && model !== '') prefix += `,model=${escapeTag(model)}`;
    this.#linePrefix[d] = prefix;
    this.#jsonPrefixLength[d] = at + 5;
    return at + 5;
  }

  /** First sight of a value set: `,status=… field=…,… ` from the JSON after the ts. */
  #learnValues(valuePart: string): string {
    if (!valuePart.startsWith(',"') || !valuePart.endsWith('}'))
      throw new Error(`unexpected load reading values: ${valuePart}`);
    const values = JSON.parse(`{${valuePart.slice(1)}`) as Record<string, unknown>;
    let tags = '';
    const fields: string[] = [];
    for (const [key, value] of Object.entries(values)) {
      if (IDENTITY_KEYS.has(key))
        throw new Error(`unexpected load reading values (${key} after ts): ${valuePart}`);
      if (key === 'status' && typeof value === 'string') {
        if (value !== '') tags += `,status=${escapeTag(value)}`;
      } else if (typeof value === 'number') {
        fields.push(`${escapeTag(key)}=${formatFieldValue(value)}`);
      } else if (value !== null) {
        throw new Error(`unexpected load reading value ${key}=${JSON.stringify(value)}`);
      }
    }
    if (fields.length === 0) throw new Error(`load reading without numeric values: ${valuePart}`);
    const tail = `${tags} ${fields.join(',')} `;
    this.#tails.set(valuePart, tail);
    return tail;
  }
}
