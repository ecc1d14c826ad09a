import { HashwattError } from '../errors.ts';
import { sitePower } from '../fleet/power-source.ts';
import type { Storage } from '../storage/database.ts';
import {
  countSiteMeters,
  deviceStepSeries,
  findSiteDevice,
  sitePowerSteps,
  siteStepSeries,
} from '../storage/history.ts';
import { hasPowerData } from './energy.ts';
import { deviceColumn, fillSteps, type SeriesQuery, seriesWindow, siteMetric } from './query.ts';

/** A series as the API answers it. Points are [epoch ms of the step's start, value or null]. */
export interface SeriesView {
  metric: string;
  unit: string;
  step_s: number;
  agg: SeriesQuery['agg'];
  /** Where the points come from: raw readings (rollups come later). */
  source: 'raw' | '1m' | '1h';
  points: [number, number | null][];
  /** For power series: per point, where the figure came from (meter, devices or capacity); null without data. */
  power_source?: (string | null)[];
}

/**
 * A site's series by the fleet rules, per step (docs/read-api.md): each device's samples in a
 * step are reduced by `agg`, then devices are combined as the catalog says (sum or mean); drawn
 * power is the meters' when every meter reported in the step, else the devices' (never PDUs).
 */
export async function siteSeries(
  storage: Storage,
  site: { id: number; capacity_w: number },
  q: SeriesQuery,
  nowMs: number,
): Promise<SeriesView> {
  const metric = siteMetric(q.metric);
  const window = seriesWindow(q, nowMs);
  const base = {
    metric: q.metric,
    unit: metric.unit,
    step_s: window.stepS,
    agg: q.agg,
    source: 'raw' as const,
  };
  if (metric.kind === 'combined') {
    const rows = await siteStepSeries(storage.db, {
      ...window,
      siteId: site.id,
      column: metric.metric,
      kinds: metric.kinds,
      agg: q.agg,
    });
    const values = new Map(rows.map((r) => [r.b, metric.combine === 'sum' ? r.sum : r.sum / r.devices]));
    return { ...base, points: fillSteps(window, values) };
  }
  const [rows, metersTotal] = await Promise.all([
    sitePowerSteps(storage.db, { ...window, siteId: site.id, agg: q.agg }),
    countSiteMeters(storage.db, site.id),
  ]);
  const values = new Map<number, number>();
  const sources = new Map<number, string>();
  for (const r of rows) {
    if (!hasPowerData(r, metersTotal)) continue;
    const figures = sitePower({
      metersTotal,
      metersReporting: r.meters,
      meterPowerW: r.meter_w,
      metersWithAvailable: r.meters_available,
      meterAvailableW: r.meter_available_w,
      devicePowerW: r.device_w ?? 0,
      capacityW: site.capacity_w,
    });
    if (metric.metric === 'power_w') {
      values.set(r.b, figures.drawnW);
      sources.set(r.b, figures.drawnSource);
    } else if (metric.metric === 'available_power_w') {
      values.set(r.b, figures.availableW);
      sources.set(r.b, figures.availableSource);
    } else {
      values.set(r.b, figures.surplusW);
      sources.set(r.b, `${figures.availableSource}-${figures.drawnSource}`);
    }
  }
  const points = fillSteps(window, values);
  return { ...base, points, power_source: points.map(([t]) => sources.get(t) ?? null) };
}

/** One device's series: its own samples per step, reduced by `agg`. `device` is its id or its name. */
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
  const rows = await deviceStepSeries(storage.db, {
    ...window,
    siteId,
    deviceId: found.id,
    table,
    column,
    agg: q.agg,
  });
  return {
    device: { id: found.id, name: found.external_id, kind: found.kind },
    metric: q.index === undefined ? q.metric : `${q.metric}[${q.index}]`,
    unit,
    step_s: window.stepS,
    agg: q.agg,
    source: 'raw',
    points: fillSteps(window, new Map(rows.map((r) => [r.b, r.v]))),
  };
}
