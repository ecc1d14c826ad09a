/**
 * How a series is read from the rollup tiers, pure (docs/read-api.md, docs/rollups.md): which tier
 * serves a step, how a tier row becomes the inputs of the site rule, and how a step coarser than
 * the tier combines the tier's buckets.
 */

import { DEVICE_POWER_KINDS, POWER_GROUPS } from '../rollups/columns.ts';
import type { PowerStepRow, StepAggregation } from '../storage/history.ts';
import type { SiteRollupRow } from '../storage/rollups.ts';

export type SeriesSource = 'raw' | '1m' | '1h';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;

/**
 * The tier a step reads: whole hours from the hourly tier, whole minutes from the site-minute tier
 * (a site; a device has no minute tier: its minutes come from raw while raw is kept), anything
 * else from raw readings.
 */
export function sourceForStep(stepS: number, scope: 'site' | 'device'): SeriesSource {
  if (stepS % 3600 === 0) return '1h';
  if (scope === 'site' && stepS % 60 === 0) return '1m';
  return 'raw';
}

/** One bucket's value and, for power, where it came from. */
export interface Figure {
  v: number;
  src?: string;
}

/**
 * Combines a tier's bucket values into coarser steps: `avg` is the mean of the buckets that have a
 * value, `min` and `max` theirs, `last` the latest bucket's. A source shared by every bucket of the
 * step is kept, else it is `mixed`. Steps without any bucket are absent (null in the answer).
 */
export function coarsen(
  figures: ReadonlyMap<number, Figure>,
  stepMs: number,
  agg: StepAggregation,
): Map<number, Figure> {
  const steps = new Map<
    number,
    {
      sum: number;
      n: number;
      min: number;
      max: number;
      last: number;
      lastAt: number;
      src?: string | undefined;
      mixed: boolean;
    }
  >();
  for (const [t, f] of figures) {
    const start = Math.floor(t / stepMs) * stepMs;
    const s = steps.get(start);
    if (!s) {
      steps.set(start, {
        sum: f.v,
        n: 1,
        min: f.v,
        max: f.v,
        last: f.v,
        lastAt: t,
        src: f.src,
        mixed: false,
      });
      continue;
    }
    s.sum += f.v;
    s.n++;
    s.min = Math.min(s.min, f.v);
    s.max = Math.max(s.max, f.v);
    if (t > s.lastAt) {
      s.last = f.v;
      s.lastAt = t;
    }
    if (s.src !== f.src) s.mixed = true;
  }
  const out = new Map<number, Figure>();
  for (const [start, s] of steps) {
    const v = agg === 'avg' ? s.sum / s.n : agg === 'min' ? s.min : agg === 'max' ? s.max : s.last;
    const src = s.mixed ? 'mixed' : s.src;
    out.set(start, src === undefined ? { v } : { v, src });
  }
  return out;
}

const num = (v: number | null | undefined): number | null =>
  v === null || v === undefined ? null : Number(v);

/** A site tier row as the power rule's inputs for `agg`, the same shape the raw path returns. */
export function powerRowOf(row: SiteRollupRow, agg: StepAggregation): PowerStepRow {
  const groupValue = (g: string) => num(row[`${g}_power_w_${agg}`]);
  const groupN = (g: string) => num(row[`${g}_power_w_n`]) ?? 0;
  const devices = DEVICE_POWER_KINDS.reduce((n, g) => n + groupN(g), 0);
  const parts = DEVICE_POWER_KINDS.map(groupValue).filter((v): v is number => v !== null);
  return {
    b: row.b,
    meter_w: groupValue('meter'),
    meters: groupN('meter'),
    meter_available_w: num(row[`available_power_w_${agg}`]),
    meters_available: num(row.available_power_w_n) ?? 0,
    device_w: parts.length > 0 ? parts.reduce((a, b) => a + b, 0) : null,
    devices,
    asic_w: groupValue('asic'),
    gpu_w: groupValue('gpu'),
  };
}

/** The columns powerRowOf reads for `agg`. */
export function powerColumns(agg: StepAggregation): string[] {
  return [
    ...POWER_GROUPS.flatMap((g) => [`${g}_power_w_${agg}`, `${g}_power_w_n`]),
    `available_power_w_${agg}`,
    'available_power_w_n',
  ];
}

/** A combined metric's Σ over devices and how many devices had it, from a site tier row. */
export function combinedRowOf(
  row: SiteRollupRow,
  metric: string,
  agg: StepAggregation,
): { b: number; sum: number; devices: number } | undefined {
  const sum = num(row[`${metric}_${agg}`]);
  const devices = num(row[`${metric}_n`]);
  return sum === null || !devices ? undefined : { b: row.b, sum, devices };
}

/** One device's hour rows merged into steps of whole hours, exactly: min of mins, Σ sum / Σ n, the latest last. */
export function mergeDeviceHours(
  rows: readonly { b: number; min: number; max: number; sum: number; last: number; n: number }[],
  stepMs: number,
  agg: StepAggregation,
): Map<number, number> {
  const steps = new Map<
    number,
    { min: number; max: number; sum: number; n: number; last: number; lastAt: number }
  >();
  for (const r of rows) {
    const start = Math.floor(r.b / stepMs) * stepMs;
    const s = steps.get(start);
    if (!s) {
      steps.set(start, { min: r.min, max: r.max, sum: r.sum, n: r.n, last: r.last, lastAt: r.b });
      continue;
    }
    s.min = Math.min(s.min, r.min);
    s.max = Math.max(s.max, r.max);
    s.sum += r.sum;
    s.n += r.n;
    if (r.b > s.lastAt) {
      s.last = r.last;
      s.lastAt = r.b;
    }
  }
  const out = new Map<number, number>();
  for (const [start, s] of steps)
    out.set(start, agg === 'avg' ? s.sum / s.n : agg === 'min' ? s.min : agg === 'max' ? s.max : s.last);
  return out;
}
