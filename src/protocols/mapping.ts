/**
 * The rule engine the three mappings share: a device id from a template over labels (tags,
 * attributes), a metric rule (scale, label filters, index label), and a collector that resolves
 * several source series landing on the same (device, metric, index, instant).
 */
import { DEVICE_NAME_MAX, type DeviceKind, MODEL_NAME_MAX, nameProblem } from '../catalog/index.ts';
import type { DecodedSample, ResultBuilder } from './sample.ts';

/** Reads one label (tag, attribute) by name; undefined when absent. */
export type LabelLookup = (name: string) => string | undefined;

/** How one source metric becomes one hashwatt metric. */
export interface MetricRule {
  /** The hashwatt metric name it produces. */
  readonly metric: string;
  /** Multiplier to hashwatt's unit (MiB → bytes: 1048576). */
  readonly scale?: number;
  /**
   * Divisor to hashwatt's unit (mJ → J: 1000; GH/s → TH/s: 1000). A division by 1000 gives the
   * double nearest the decimal result; a multiplication by 0.001 does not always.
   */
  readonly divideBy?: number;
  /**
   * Only series whose labels equal these values (e.g. Braiins `miner_power{type="wall"}`). An
   * empty string matches an absent label, as in Prometheus.
   */
  readonly where?: Readonly<Record<string, string>>;
  /** Only series whose labels match these patterns (IPMI sensor names, e.g. /inlet|ambient/i). */
  readonly match?: Readonly<Record<string, RegExp>>;
  /** A fixed index value (e.g. the ECC error class a DCGM field stands for). */
  readonly index?: string;
  /** The label whose value becomes the sample's index (hashboard, fan). */
  readonly indexFrom?: string;
  /**
   * The part of `indexFrom`'s value that is the index: the first capture group (IPMI's `Fan3` or
   * `fan_3` → "3"). A series whose label does not match is not this rule's.
   */
  readonly indexPattern?: RegExp;
  /**
   * Several source series that land on the same (device, metric, index, instant): 'max' keeps the
   * largest (hottest chip of a board), 'sum' adds them (shares over pools, PSUs of one server),
   * 'mean' averages them (the core `fan_rpm` is the mean of the fans).
   * Without it the first one is kept and a differing later value is reported as a conflict.
   */
  readonly combine?: 'max' | 'sum' | 'mean';
  /** Among rules producing the same key, a higher priority replaces a lower one (wall > estimate). */
  readonly priority?: number;
}

/**
 * How a source series names its device. `device` templates are tried in order; the first whose
 * `{label}` placeholders are all present wins: "{Hostname}/gpu{gpu}" → "gpu-node-07/gpu3".
 */
export interface DeviceRule {
  readonly device: readonly string[];
  /** The device kind, fixed... */
  readonly kind?: DeviceKind;
  /** ...or read from labels, the first holding a device kind wins (hashwatt's names carry `kind`). */
  readonly kindFrom?: string | readonly string[];
  /** The label holding the model (DCGM `modelName`, nvidia_smi `name`). */
  readonly modelFrom?: string;
}

type TemplatePart = { literal: string } | { label: string };

/** A device template split once into literal and `{label}` parts. */
export function compileTemplate(template: string): readonly TemplatePart[] {
  const parts: TemplatePart[] = [];
  const re = /\{([^{}]+)\}/g;
  let last = 0;
  for (let m = re.exec(template); m !== null; m = re.exec(template)) {
    if (m.index > last) parts.push({ literal: template.slice(last, m.index) });
    parts.push({ label: m[1]! });
    last = m.index + m[0].length;
  }
  if (last < template.length) parts.push({ literal: template.slice(last) });
  return parts;
}

/** Renders a template; undefined when a placeholder's label is absent or empty. */
export function renderTemplate(parts: readonly TemplatePart[], get: LabelLookup): string | undefined {
  let out = '';
  for (const p of parts) {
    if ('literal' in p) out += p.literal;
    else {
      const v = get(p.label);
      if (v === undefined || v === '') return undefined;
      out += v;
    }
  }
  return out;
}

const KINDS: ReadonlySet<string> = new Set(['asic', 'gpu', 'meter', 'pdu', 'other']);

/** A DeviceRule ready to apply. */
export class CompiledDeviceRule {
  readonly rule: DeviceRule;
  private readonly templates: readonly (readonly TemplatePart[])[];
  constructor(rule: DeviceRule) {
    this.rule = rule;
    this.templates = rule.device.map(compileTemplate);
  }

  /** The device identity of one series, or a reason it has none. */
  resolve(get: LabelLookup): DeviceIdentity | { missing: string; invalid?: true } {
    let device: string | undefined;
    for (const t of this.templates) {
      device = renderTemplate(t, get);
      if (device !== undefined) break;
    }
    if (device === undefined)
      return { missing: `none of the device templates ${this.rule.device.join(' | ')}` };
    const bad = nameProblem(device, DEVICE_NAME_MAX);
    if (bad) return { missing: `the device name ${bad.message}`, invalid: true };
    let kind = this.rule.kind;
    const kindFrom = this.rule.kindFrom;
    if (kindFrom !== undefined) {
      for (const label of typeof kindFrom === 'string' ? [kindFrom] : kindFrom) {
        const k = get(label);
        if (k !== undefined && KINDS.has(k)) {
          kind = k as DeviceKind;
          break;
        }
      }
    }
    const raw = this.rule.modelFrom === undefined ? undefined : get(this.rule.modelFrom);
    // A model is a description, not an identity: one that cannot be stored is left out.
    const model = raw === undefined || nameProblem(raw, MODEL_NAME_MAX) ? undefined : raw;
    const identity: DeviceIdentity = { device };
    if (kind !== undefined) identity.kind = kind;
    if (model !== undefined && model !== '') identity.model = model;
    return identity;
  }
}

/** True when the series' labels satisfy the rule's `where` filter. */
export function matchesWhere(rule: MetricRule, get: LabelLookup): boolean {
  if (rule.where !== undefined) {
    for (const key in rule.where) if ((get(key) ?? '') !== rule.where[key]) return false;
  }
  if (rule.match !== undefined) {
    for (const key in rule.match) if (!rule.match[key]!.test(get(key) ?? '')) return false;
  }
  if (rule.indexPattern !== undefined && rule.indexFrom !== undefined) {
    if (!rule.indexPattern.test(get(rule.indexFrom) ?? '')) return false;
  }
  return true;
}

/** The value in hashwatt's unit under a rule. */
export function convertValue(rule: MetricRule, value: number): number {
  let v = value;
  if (rule.scale !== undefined) v *= rule.scale;
  if (rule.divideBy !== undefined) v /= rule.divideBy;
  return v;
}

/** The sample's index under a rule: fixed, or from a label. */
export function indexOf(rule: MetricRule, get: LabelLookup): string | undefined {
  if (rule.index !== undefined) return rule.index;
  if (rule.indexFrom !== undefined) {
    const v = get(rule.indexFrom);
    if (v === undefined || v === '') return undefined;
    if (rule.indexPattern === undefined) return v;
    return rule.indexPattern.exec(v)?.[1];
  }
  return undefined;
}

interface Slot {
  sample: DecodedSample;
  priority: number;
  combine: MetricRule['combine'];
  /** Values combined so far, for 'mean'. */
  n: number;
}

/** A device as a series names it. */
export interface DeviceIdentity {
  device: string;
  kind?: DeviceKind;
  model?: string;
}

/**
 * The slots of one (device, metric, index), by instant in microseconds. Most series carry one
 * instant per request, so the first slot is held inline and a Map is made only for a second: a Map
 * per series was most of the decoders' garbage (docs/performance.md).
 */
export class SeriesSlots {
  #firstUs = Number.NaN;
  #first: Slot | undefined;
  #more: Map<number, Slot> | undefined;

  get(tsUs: number): Slot | undefined {
    if (tsUs === this.#firstUs) return this.#first;
    return this.#more?.get(tsUs);
  }

  set(tsUs: number, slot: Slot): void {
    if (this.#first === undefined) {
      this.#firstUs = tsUs;
      this.#first = slot;
    } else {
      this.#more ??= new Map();
      this.#more.set(tsUs, slot);
    }
  }
}

/**
 * Collects samples, one per (device, metric, index, instant). A source series looks its slots up
 * once (`slotsFor`), then adds each sample by instant. The output keeps the order in which samples
 * first appeared, so a result is deterministic for a given body.
 */
export class SampleCollector {
  /** By device, then by metric (with its index after a NUL): no key string built per series. */
  private readonly series = new Map<string, Map<string, SeriesSlots>>();
  private readonly order: Slot[] = [];
  private readonly out: ResultBuilder;

  constructor(out: ResultBuilder) {
    this.out = out;
  }

  slotsFor(device: string, metric: string, index: string | undefined): SeriesSlots {
    let byMetric = this.series.get(device);
    if (byMetric === undefined) {
      byMetric = new Map();
      this.series.set(device, byMetric);
    }
    const key = index === undefined ? metric : `${metric}\u0000${index}`;
    let slots = byMetric.get(key);
    if (slots === undefined) {
      slots = new SeriesSlots();
      byMetric.set(key, slots);
    }
    return slots;
  }

  add(
    slots: SeriesSlots,
    identity: DeviceIdentity,
    metric: string,
    index: string | undefined,
    tsUs: number,
    value: number,
    rule: MetricRule,
    /** Where the sample came from, for a problem: a function when building it costs (remote_write). */
    where: string | (() => string),
  ): void {
    const priority = rule.priority ?? 0;
    const slot = slots.get(tsUs);
    if (slot === undefined) {
      const sample: DecodedSample = {
        device: identity.device,
        metric,
        tsMs: Math.floor(tsUs / 1000),
        tsUs,
        value,
      };
      if (identity.kind !== undefined) sample.kind = identity.kind;
      if (identity.model !== undefined) sample.model = identity.model;
      if (index !== undefined) sample.index = index;
      const created = { sample, priority, combine: rule.combine, n: 1 };
      slots.set(tsUs, created);
      this.order.push(created);
      return;
    }
    if (priority > slot.priority) {
      slot.sample.value = value;
      slot.priority = priority;
      slot.combine = rule.combine;
      slot.n = 1;
      return;
    }
    if (priority < slot.priority) return;
    slot.n++;
    if (slot.combine === 'sum' || slot.combine === 'mean') slot.sample.value += value;
    else if (slot.combine === 'max') slot.sample.value = Math.max(slot.sample.value, value);
    else if (!Object.is(slot.sample.value, value)) {
      this.out.problem(
        typeof where === 'string' ? where : where(),
        'conflicting_series',
        `${metric} of ${identity.device} at ${new Date(slot.sample.tsMs).toISOString()} already has ${slot.sample.value} from another series; ${value} ignored`,
      );
    }
  }

  /** Moves the collected samples into the result. */
  flush(): void {
    for (const s of this.order) {
      if (s.combine === 'mean' && s.n > 1) s.sample.value /= s.n;
      this.out.samples.push(s.sample);
    }
    this.order.length = 0;
    this.series.clear();
  }
}
