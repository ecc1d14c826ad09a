import { extraColumn, nameProblem } from '../catalog/index.ts';
import type { DecodedSample } from '../protocols/index.ts';
import {
  checkCoreValue,
  checkWindow,
  isCoreMetric,
  LABEL_MAX,
  type Rejection,
  type ValidationWindow,
  type ValidReading,
  validateReadings,
  valueProblem,
} from './reading.ts';

/** A batch after validation: what may be stored, and why the rest may not. */
export interface CheckedReadings {
  valid: ValidReading[];
  rejected: Rejection[];
}

/**
 * What every transport hands the pipeline: a protocol-neutral batch of readings, validated by the
 * pipeline in the site's turn against its clock and retention window. `size` (readings, i.e. rows
 * per device and instant) is what the write queue reserves before validation runs.
 *
 * `check` runs once and lets go of the decoded body: from then on the request holds only its
 * readings, which is what the write queue charges it (src/ingest/pipeline.ts). A batch that kept
 * its parsed objects until the commit held several times what it was charged.
 */
export interface IngestBatch {
  readonly size: number;
  check(window: ValidationWindow): CheckedReadings;
}

/** A batch over `source` whose check consumes it: a second check is a bug, and throws. */
function consumedOnce<T>(
  size: number,
  source: T,
  check: (source: T, window: ValidationWindow) => CheckedReadings,
): IngestBatch {
  let held: { source: T } | undefined = { source };
  return {
    size,
    check(window) {
      if (held === undefined) throw new Error('an ingest batch is checked once');
      const { source } = held;
      held = undefined;
      return check(source, window);
    },
  };
}

/** hashwatt's own JSON readings (HTTP and WebSocket), validated by the reading schema. */
export function jsonBatch(raw: readonly unknown[]): IngestBatch {
  return consumedOnce(raw.length, raw, validateReadings);
}

interface SampleGroup {
  /** Index of the group's first sample: what rejections of the whole reading name. */
  first: number;
  samples: number[];
}

/**
 * The samples of a standard protocol (src/protocols/), grouped into one reading per (device,
 * instant) as the wide rows store them. Each sample is checked on its own (range, index, time
 * window): a bad one is rejected, naming its metric, while the device's other samples of the same
 * instant are kept. Rejections carry the sample's index in `samples`.
 */
export function sampleBatch(samples: readonly DecodedSample[]): IngestBatch {
  const groups = new Map<string, SampleGroup>();
  // Decoders emit a device's samples of one instant together: those join the group of the sample
  // before without building its key (a string per sample was most of this function's cost).
  let last: SampleGroup | undefined;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    const head = last === undefined ? undefined : samples[last.first]!;
    if (head !== undefined && head.device === s.device && sampleUs(head) === sampleUs(s)) {
      last!.samples.push(i);
      continue;
    }
    const key = `${s.device}\u0000${sampleUs(s)}`;
    const group = groups.get(key);
    if (group) group.samples.push(i);
    else groups.set(key, { first: i, samples: [i] });
    last = group ?? groups.get(key);
  }
  return consumedOnce(groups.size, { samples, groups }, (source, window) =>
    checkSampleGroups(source.samples, source.groups.values(), window),
  );
}

/** The sample's instant in microseconds (every decoder sets tsUs; tsMs alone means whole milliseconds). */
function sampleUs(s: DecodedSample): number {
  return s.tsUs ?? s.tsMs * 1000;
}

function describe(s: DecodedSample): string {
  const index = s.index === undefined ? '' : `[${s.index}]`;
  return `${s.device.slice(0, 128)} ${s.metric}${index} at ${new Date(sampleUs(s) / 1000).toISOString()}`;
}

function checkSampleGroups(
  samples: readonly DecodedSample[],
  groups: Iterable<SampleGroup>,
  window: ValidationWindow,
): CheckedReadings {
  const valid: ValidReading[] = [];
  const rejected: Rejection[] = [];
  for (const group of groups) {
    const head = samples[group.first]!;
    const tsUs = sampleUs(head);
    const name = nameProblem(head.device, LABEL_MAX.device);
    if (name) {
      for (const i of group.samples) {
        rejected.push({ index: i, field: 'device', code: name.code, message: `device name ${name.message}` });
      }
      continue;
    }
    const time = checkWindow(tsUs, window);
    if (!time.ok) {
      for (const i of group.samples) {
        rejected.push({
          index: i,
          field: 'ts',
          code: time.code,
          message: `${describe(samples[i]!)}: ${time.message}`,
        });
      }
      continue;
    }
    const reading: ValidReading = {
      index: group.first,
      device: head.device,
      kind: head.kind,
      model: undefined,
      tsUs,
    };
    let stored = 0;
    for (const i of group.samples) {
      const s = samples[i]!;
      reading.kind ??= s.kind;
      // A model is a description, not an identity: one that is not storable is left out, not fatal.
      if (reading.model === undefined && s.model !== undefined && !nameProblem(s.model, LABEL_MAX.model))
        reading.model = s.model;
      const field = s.index === undefined ? s.metric : `${s.metric}.${s.index}`;
      if (isCoreMetric(s.metric) && s.index === undefined) {
        const checked = checkCoreValue(s.metric, s.value);
        if (!checked.ok) {
          rejected.push({
            index: i,
            field,
            code: checked.code,
            message: `${describe(s)}: ${checked.message}`,
          });
          continue;
        }
        // First value wins, as in storage (the decoders already combine repeats; this is the backstop).
        reading[s.metric] ??= checked.value;
        stored++;
        continue;
      }
      const column = extraColumn(s.metric, s.index);
      if ('code' in column) {
        const code = isCoreMetric(s.metric) ? 'unknown_index' : column.code;
        const message = isCoreMetric(s.metric) ? `${s.metric} takes no index` : column.message;
        rejected.push({ index: i, field, code, message: `${describe(s)}: ${message}` });
        continue;
      }
      const checked = valueProblem(s.metric, s.value, column.min, column.max);
      if (checked) {
        rejected.push({ index: i, field, code: checked.code, message: `${describe(s)}: ${checked.message}` });
        continue;
      }
      reading.extras ??= {};
      reading.extras[column.column] ??= s.value;
      stored++;
    }
    if (stored > 0) valid.push(reading);
  }
  if (rejected.length > 1) rejected.sort((a, b) => a.index - b.index);
  return { valid, rejected };
}
