/**
 * The history API's query rules, pure: which metrics a site or device series may ask for, the time
 * window and step (aligned, bounded), and the shape of the answer's points.
 */
import { z } from 'zod';
import {
  CORE_METRICS,
  type CoreMetricName,
  type DeviceKind,
  EXTRA_METRICS,
  extraColumn,
  findMetric,
} from '../catalog/index.ts';
import { HashwattError } from '../errors.ts';
import { parseRfc3339 } from '../ingest/reading.ts';
import type { StepAggregation, StepWindow } from '../storage/history.ts';

/** Most points one answer may hold; past it the caller must narrow the range or widen the step. */
export const MAX_POINTS = 10_000;

/** Steps the server picks when none is asked for: the finest giving at most DEFAULT_POINTS points. */
const AUTO_STEPS_S = [10, 60, 300, 900, 3600, 6 * 3600, 86_400];
const DEFAULT_POINTS = 1_000;
const DEFAULT_RANGE_MS = 86_400_000;

/** The latest instant a Date holds, in epoch ms. */
const MAX_EPOCH_MS = 8.64e15;

/**
 * An instant of a query: integer epoch ms, or RFC 3339 with its offset (without one, the server's
 * time zone would decide what the caller meant); undefined when it is neither.
 */
export function parseInstantMs(raw: string): number | undefined {
  if (/^\d{1,16}$/.test(raw)) {
    const ms = Number(raw);
    return ms <= MAX_EPOCH_MS ? ms : undefined;
  }
  // The ingest contract's strict parser: the offset is required, impossible dates are refused.
  const parsed = parseRfc3339(raw);
  return parsed.ok ? Math.floor(parsed.value / 1000) : undefined;
}

const INSTANT_MESSAGE =
  'expected integer epoch milliseconds or an RFC 3339 timestamp with its offset (Z or ±hh:mm)';

const instant = z.string().transform((raw, ctx) => {
  const ms = parseInstantMs(raw);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: INSTANT_MESSAGE });
    return z.NEVER;
  }
  return ms;
});

/** The same rule for a value read outside a zod schema, as the 400 naming `field`. */
export function instantOrThrow(raw: string, field: string): number {
  const ms = parseInstantMs(raw);
  if (ms === undefined) throw new HashwattError('invalid_query', INSTANT_MESSAGE, { field });
  return ms;
}

const step = z.string().transform((raw, ctx) => {
  const m = /^(\d{1,7})(s|m|h|d)?$/.exec(raw);
  const seconds = m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 's'] : 0;
  if (!m || seconds < 1 || seconds > 366 * 86_400) {
    ctx.addIssue({
      code: 'custom',
      message: 'expected a step of 1 s to 366 d: seconds, or a number with s, m, h or d',
    });
    return z.NEVER;
  }
  return seconds;
});

/** The query of both series routes. */
export const SeriesQuery = z
  .strictObject({
    metric: z.string().min(1).max(100),
    index: z.string().min(1).max(32).optional(),
    from: instant.optional(),
    to: instant.optional(),
    step,
    agg: z.enum(['avg', 'min', 'max', 'last']).default('avg'),
  })
  .partial({ step: true });
export type SeriesQuery = z.infer<typeof SeriesQuery>;

/** The window a query names: `to` defaults to now, `from` to a day before; steps aligned to their size. */
export function seriesWindow(
  q: Pick<SeriesQuery, 'from' | 'to' | 'step'>,
  nowMs: number,
): StepWindow & { stepS: number } {
  const toMs = q.to ?? nowMs;
  const fromMs = q.from ?? toMs - DEFAULT_RANGE_MS;
  if (fromMs >= toMs)
    throw new HashwattError('invalid_query', '"from" must be before "to"', { field: 'from' });
  const stepS = q.step ?? AUTO_STEPS_S.find((s) => (toMs - fromMs) / (s * 1000) <= DEFAULT_POINTS) ?? 86_400;
  const stepMs = stepS * 1000;
  const alignedFrom = Math.floor(fromMs / stepMs) * stepMs;
  const points = Math.ceil((toMs - alignedFrom) / stepMs);
  if (points > MAX_POINTS) {
    throw new HashwattError(
      'invalid_query',
      `${points} points asked for, at most ${MAX_POINTS}: narrow from/to or widen step`,
      { field: 'step' },
    );
  }
  return { fromMs: alignedFrom, toMs, stepMs, stepS };
}

/** What a site series of a metric is made of. */
export type SiteMetric =
  | { kind: 'power'; metric: 'power_w' | 'available_power_w' | 'surplus_w'; unit: 'W' }
  | {
      kind: 'combined';
      metric: CoreMetricName;
      unit: string;
      kinds: readonly DeviceKind[];
      combine: 'sum' | 'mean';
    };

/** The site-level meaning of a metric name, or the 400 naming what may be asked. */
export function siteMetric(name: string): SiteMetric {
  if (name === 'power_w' || name === 'available_power_w' || name === 'surplus_w')
    return { kind: 'power', metric: name, unit: 'W' };
  const def = findMetric(name);
  if (!def) {
    throw new HashwattError(
      'invalid_query',
      `unknown site metric "${name.slice(0, 64)}": one of ${[...CORE_METRICS.map((m) => m.name), 'surplus_w'].join(', ')}`,
      { field: 'metric' },
    );
  }
  return {
    kind: 'combined',
    metric: def.name as CoreMetricName,
    unit: def.unit,
    // Power is handled by the meter rule above; what a PDU measures is never summed with its devices.
    kinds: def.kinds,
    combine: def.siteAggregation,
  };
}

/** Where a device series of a metric is stored: a core column of `readings` or an extra column. */
export function deviceColumn(
  name: string,
  index: string | undefined,
): { table: 'readings' | 'readings_extra'; column: string; unit: string } {
  const def = findMetric(name);
  if (def && index === undefined) return { table: 'readings', column: def.name, unit: def.unit };
  const column = extraColumn(name, index);
  if ('code' in column)
    throw new HashwattError('invalid_query', column.message, {
      field: column.code === 'unknown_metric' ? 'metric' : 'index',
    });
  return { table: 'readings_extra', column: column.column, unit: extraUnit(column.metric) };
}

function extraUnit(metric: string): string {
  return EXTRA_METRICS.find((m) => m.name === metric)?.unit ?? '';
}

/** Every step of the window as a point, null where there was no value (never 0). */
export function fillSteps(
  window: StepWindow,
  values: ReadonlyMap<number, number>,
): [number, number | null][] {
  const points: [number, number | null][] = [];
  for (let t = window.fromMs; t < window.toMs; t += window.stepMs) points.push([t, values.get(t) ?? null]);
  return points;
}

export type { StepAggregation };
