import { HashwattError } from '../errors.ts';
import type { Storage } from '../storage/database.ts';
import {
  countSiteMeters,
  deviceStepSeries,
  findSiteDevice,
  type PowerStepRow,
  type StepAggregation,
  sitePowerSteps,
  siteStepSeries,
} from '../storage/history.ts';
import {
  type RollupWatermark,
  readDeviceHours,
  readSiteRollup,
  rollupWatermark,
} from '../storage/rollups.ts';
import { hasPowerData, stepPower } from './energy.ts';
import {
  deviceColumn,
  fillSteps,
  type SeriesQuery,
  type SiteMetric,
  seriesWindow,
  siteMetric,
} from './query.ts';
import {
  coarsen,
  combinedRowOf,
  type Figure,
  HOUR_MS,
  MINUTE_MS,
  mergeDeviceHours,
  powerColumns,
  powerRowOf,
  type SeriesSource,
  sourceForStep,
} from './tiers.ts';

/** A series as the API answers it. Points are [epoch ms of the step's start, value or null]. */
export interface SeriesView {
  metric: string;
  unit: string;
  step_s: number;
  agg: SeriesQuery['agg'];
  /** Where the points come from: raw readings, the site-minute tier or the hourly tier. */
  source: SeriesSource;
  points: [number, number | null][];
  /**
   * For power series: per point, where the figure came from (meter, devices or capacity; `mixed`
   * when the tier buckets of a coarser step disagree); null without data.
   */
  power_source?: (string | null)[];
}

interface SiteRef {
  id: number;
  capacity_w: number;
}

/** A power step's figure by the rule, or undefined when the step says nothing about the site's power. */
function powerFigure(
  row: PowerStepRow,
  metersTotal: number,
  capacityW: number,
  metric: 'power_w' | 'available_power_w' | 'surplus_w',
): Figure | undefined {
  if (!hasPowerData(row, metersTotal)) return undefined;
  const f = stepPower(row, metersTotal, capacityW);
  if (metric === 'power_w') return { v: f.drawnW, src: f.drawnSource };
  if (metric === 'available_power_w') return { v: f.availableW, src: f.availableSource };
  return { v: f.surplusW, src: `${f.availableSource}-${f.drawnSource}` };
}

/** Per step of `stepMs` over [fromMs, toMs), the site metric's figures computed from raw readings. */
async function rawFigures(
  storage: Storage,
  site: SiteRef,
  metric: SiteMetric,
  agg: StepAggregation,
  window: { fromMs: number; toMs: number; stepMs: number },
  metersTotal: number,
): Promise<Map<number, Figure>> {
  const out = new Map<number, Figure>();
  if (window.fromMs >= window.toMs) return out;
  if (metric.kind === 'combined') {
    const rows = await siteStepSeries(storage.db, {
      ...window,
      siteId: site.id,
      column: metric.metric,
      kinds: metric.kinds,
      agg,
    });
    for (const r of rows) out.set(r.b, { v: metric.combine === 'sum' ? r.sum : r.sum / r.devices });
    return out;
  }
  for (const r of await sitePowerSteps(storage.db, { ...window, siteId: site.id, agg })) {
    const f = powerFigure(r, metersTotal, site.capacity_w, metric.metric);
    if (f) out.set(r.b, f);
  }
  return out;
}

/** Figures of a site tier's rows over [fromMs, toMs). */
async function tierFigures(
  storage: Storage,
  tier: '1m' | '1h',
  site: SiteRef,
  metric: SiteMetric,
  agg: StepAggregation,
  fromMs: number,
  toMs: number,
  metersTotal: number,
): Promise<Map<number, Figure>> {
  const out = new Map<number, Figure>();
  if (fromMs >= toMs) return out;
  const columns =
    metric.kind === 'combined' ? [`${metric.metric}_${agg}`, `${metric.metric}_n`] : powerColumns(agg);
  const rows = await readSiteRollup(storage.db, { tier, siteId: site.id, fromMs, toMs, columns });
  for (const row of rows) {
    if (metric.kind === 'combined') {
      const c = combinedRowOf(row, metric.metric, agg);
      if (c) out.set(c.b, { v: metric.combine === 'sum' ? c.sum : c.sum / c.devices });
    } else {
      const f = powerFigure(powerRowOf(row, agg), metersTotal, site.capacity_w, metric.metric);
      if (f) out.set(row.b, f);
    }
  }
  return out;
}

/**
 * A site's figures per bucket of a tier over [fromMs, toMs): the tier's rows where it is current
 * (before the site's oldest bucket still waiting for the rollup job), and the rest from the tier
 * below: minutes from raw readings, hours from their minutes combined as a coarser step would be.
 */
async function tieredFigures(
  storage: Storage,
  tier: '1m' | '1h',
  site: SiteRef,
  metric: SiteMetric,
  agg: StepAggregation,
  range: { fromMs: number; toMs: number },
  mark: RollupWatermark,
  metersTotal: number,
): Promise<Map<number, Figure>> {
  const { fromMs, toMs } = range;
  const split = Math.max(fromMs, Math.min(toMs, tier === '1m' ? mark.minuteMs : mark.hourMs));
  const below = async (): Promise<Map<number, Figure>> => {
    if (split >= toMs) return new Map();
    if (tier === '1m')
      return rawFigures(storage, site, metric, agg, { fromMs: split, toMs, stepMs: MINUTE_MS }, metersTotal);
    const minutes = await tieredFigures(
      storage,
      '1m',
      site,
      metric,
      agg,
      { fromMs: split, toMs },
      mark,
      metersTotal,
    );
    return coarsen(minutes, HOUR_MS, agg);
  };
  const [built, rest] = await Promise.all([
    tierFigures(storage, tier, site, metric, agg, fromMs, split, metersTotal),
    below(),
  ]);
  for (const [t, f] of rest) built.set(t, f);
  return built;
}

/**
 * A site's series by the fleet rules, per step (docs/read-api.md): each device's samples in a
 * step (or tier bucket) are reduced by `agg`, then devices are combined as the catalog says (sum
 * or mean); drawn power is the meters' when every meter reported in the step, else the devices'
 * (never PDUs). Steps of whole minutes or hours read the rollups; a step coarser than its tier's
 * bucket combines the buckets by `agg`.
 */
export async function siteSeries(
  storage: Storage,
  site: SiteRef,
  q: SeriesQuery,
  nowMs: number,
): Promise<SeriesView> {
  const metric = siteMetric(q.metric);
  const window = seriesWindow(q, nowMs);
  const source = sourceForStep(window.stepS, 'site');
  const [metersTotal, mark] = await Promise.all([
    metric.kind === 'power' ? countSiteMeters(storage.db, site.id) : Promise.resolve(0),
    source === 'raw' ? Promise.resolve(undefined) : rollupWatermark(storage.db, site.id),
  ]);
  let figures: Map<number, Figure>;
  if (source === 'raw') {
    figures = await rawFigures(storage, site, metric, q.agg, window, metersTotal);
  } else {
    const tierMs = source === '1m' ? MINUTE_MS : HOUR_MS;
    const buckets = await tieredFigures(storage, source, site, metric, q.agg, window, mark!, metersTotal);
    figures = window.stepMs === tierMs ? buckets : coarsen(buckets, window.stepMs, q.agg);
  }
  const values = new Map<number, number>();
  for (const [t, f] of figures) values.set(t, f.v);
  const points = fillSteps(window, values);
  const view: SeriesView = {
    metric: q.metric,
    unit: metric.unit,
    step_s: window.stepS,
    agg: q.agg,
    source,
    points,
  };
  if (metric.kind === 'power') view.power_source = points.map(([t]) => figures.get(t)?.src ?? null);
  return view;
}

/**
 * One device's series: its own samples per step, reduced by `agg`. `device` is its id or its name.
 * Steps of whole hours of a core metric read the device-hour tier (exact for any multiple of an
 * hour); everything else, and hours still waiting for the rollup job, read raw readings.
 */
export async function deviceSeries(
  storage: Storage,
  siteId: number,
  device: string,
  q: SeriesQuery,
  nowMs: number,
): Promise<SeriesView & { device: { id: number; name: string; kind: string } }> {
  const { table, column, unit } = deviceColumn(q.metric, q.index);
  const window = seriesWindow(q, nowMs);
  const found =
    (/^[1-9][0-9]{0,9}$/.test(device)
      ? await findSiteDevice(storage.db, siteId, { id: Number(device) })
      : undefined) ?? (await findSiteDevice(storage.db, siteId, { name: device }));
  if (!found) throw new HashwattError('not_found', `no device "${device.slice(0, 128)}" at site ${siteId}`);
  const source: SeriesSource =
    table === 'readings' && sourceForStep(window.stepS, 'device') === '1h' ? '1h' : 'raw';
  const values = new Map<number, number>();
  let rawFrom = window.fromMs;
  if (source === '1h') {
    const mark = await rollupWatermark(storage.db, siteId);
    // Steps wholly before the site's oldest hour waiting for the job come from the tier.
    rawFrom = Math.max(
      window.fromMs,
      Math.min(window.toMs, Math.floor(Math.min(mark.hourMs, 8.64e15) / window.stepMs) * window.stepMs),
    );
    const rows = await readDeviceHours(storage.db, {
      siteId,
      deviceId: found.id,
      metric: column,
      fromMs: window.fromMs,
      toMs: rawFrom,
    });
    for (const [t, v] of mergeDeviceHours(rows, window.stepMs, q.agg)) values.set(t, v);
  }
  if (rawFrom < window.toMs) {
    const rows = await deviceStepSeries(storage.db, {
      fromMs: rawFrom,
      toMs: window.toMs,
      stepMs: window.stepMs,
      siteId,
      deviceId: found.id,
      table,
      column,
      agg: q.agg,
    });
    for (const r of rows) values.set(r.b, r.v);
  }
  return {
    device: { id: found.id, name: found.external_id, kind: found.kind },
    metric: q.index === undefined ? q.metric : `${q.metric}[${q.index}]`,
    unit,
    step_s: window.stepS,
    agg: q.agg,
    source,
    points: fillSteps(window, values),
  };
}
