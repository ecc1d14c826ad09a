/**
 * Energy per hour or day: the integral of the site's drawn power by the fleet's rule, minute by
 * minute (docs/read-api.md). Each minute with data contributes its mean drawn power × 60 s; a
 * minute without data contributes nothing and lowers the bucket's coverage, so a gap is visible
 * instead of being guessed.
 */
import { z } from 'zod';
import { HashwattError } from '../errors.ts';
import { type PowerFigures, sitePower } from '../fleet/power-source.ts';
import { SITE_HOUR_ENERGY, SITE_MINUTE_PRICE } from '../rollups/columns.ts';
import type { Storage } from '../storage/database.ts';
import { countSiteMeters, type PowerStepRow, sitePowerSteps, sitePriceSteps } from '../storage/history.ts';
import { readSiteRollup, rollupWatermark } from '../storage/rollups.ts';
import { instantOrThrow } from './query.ts';
import { HOUR_MS, powerColumns, powerRowOf } from './tiers.ts';

const MINUTE_MS = 60_000;
const J_PER_KWH = 3_600_000;
/** Most buckets one answer may hold (a year of hours is 8 784). */
export const MAX_BUCKETS = 10_000;

export const EnergyQuery = z.strictObject({
  from: z.string().min(1).max(40),
  to: z.string().min(1).max(40).optional(),
  bucket: z.enum(['hour', 'day']).default('hour'),
});

export interface EnergyBucket {
  start: string;
  kwh: number;
  mining_kwh: number;
  ai_kwh: number;
  other_kwh: number;
  /** Share of the bucket's minutes that had power data. */
  coverage_ratio: number;
  /** kWh × price: the site's pushed `power_price_per_mwh` where it has one, else its tariff; null without either. */
  cost: number | null;
}

/** One minute's energy split by workload, and its price if pushed. */
export interface MinuteEnergy {
  startMs: number;
  joules: number;
  miningJ: number;
  aiJ: number;
  otherJ: number;
}

/** A step's power figures by the fleet's rule, from what raw readings or a rollup row say of it. */
export function stepPower(row: PowerStepRow, metersTotal: number, capacityW: number): PowerFigures {
  return sitePower({
    metersTotal,
    metersReporting: row.meters,
    meterPowerW: row.meter_w,
    metersWithAvailable: row.meters_available,
    meterAvailableW: row.meter_available_w,
    devicePowerW: row.device_w ?? 0,
    capacityW,
  });
}

/**
 * A minute's energy from its power inputs: drawn power by the meter rule; mining and AI are the
 * ASICs' and GPUs' own power; other is what they do not explain (the meter's rest, or other devices).
 */
export function minuteEnergy(row: PowerStepRow, metersTotal: number, capacityW: number): MinuteEnergy {
  const figures = stepPower(row, metersTotal, capacityW);
  const seconds = MINUTE_MS / 1000;
  const mining = (row.asic_w ?? 0) * seconds;
  const ai = (row.gpu_w ?? 0) * seconds;
  const total = figures.drawnW * seconds;
  return {
    startMs: row.b,
    joules: total,
    miningJ: mining,
    aiJ: ai,
    otherJ: Math.max(0, total - mining - ai),
  };
}

/**
 * Whether a step says what the site drew: every meter reported, or (meters untrusted) some device
 * reported its own power. A step where one of two meters reported and no device did has no
 * figure; counting it as 0 W would pass for complete data.
 */
export function hasPowerData(row: PowerStepRow, metersTotal: number): boolean {
  return (metersTotal > 0 && row.meters === metersTotal && row.meter_w !== null) || row.devices > 0;
}

/** The UTC instants of local midnights (or hours) from `fromMs` to `toMs` in a time zone. */
export function bucketStarts(
  fromMs: number,
  toMs: number,
  bucket: 'hour' | 'day',
  timeZone: string,
): number[] {
  if (bucket === 'hour') {
    // Local hours: in a zone offset by :30 or :45 (Kolkata, Adelaide, Kathmandu) they start at
    // hh:30 or hh:15 UTC, so hours add up to the local days.
    const starts: number[] = [];
    for (let t = localHourStart(fromMs, timeZone); t < toMs; t = localHourStart(t + 3_600_000, timeZone))
      starts.push(t);
    return starts;
  }
  const starts: number[] = [];
  let t = localMidnight(fromMs, timeZone);
  while (t < toMs) {
    starts.push(t);
    // The next local midnight: 26 h on is always in the next day, whatever DST does.
    t = localMidnight(t + 26 * 3_600_000, timeZone);
  }
  return starts;
}

/** A time zone's wall clock at an instant, read as if it were UTC (epoch ms). */
const FORMATTERS = new Map<string, Intl.DateTimeFormat>();

function wallClockMs(ms: number, timeZone: string): number {
  let format = FORMATTERS.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    });
    FORMATTERS.set(timeZone, format);
  }
  const parts = format.formatToParts(new Date(ms));
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  return Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
}

/** The UTC instant the local hour containing `ms` began. */
export function localHourStart(ms: number, timeZone: string): number {
  return Math.floor(ms / 1000) * 1000 - (wallClockMs(ms, timeZone) % 3_600_000);
}

/** The UTC instant of the local midnight starting the day that contains `ms` in `timeZone`. */
export function localMidnight(ms: number, timeZone: string): number {
  const wall = wallClockMs(ms, timeZone);
  const midnightWall = Math.floor(wall / 86_400_000) * 86_400_000;
  // The zone's offset at midnight may differ from its offset at `ms` (a DST change that day):
  // take the offset at a first guess, then at the corrected instant.
  let guess = midnightWall - (wall - Math.floor(ms / 1000) * 1000);
  for (let i = 0; i < 2; i++) guess = midnightWall - (wallClockMs(guess, timeZone) - guess);
  // Where DST starts at midnight (Santiago, Beirut, Havana) there is no 00:00 that day: the day
  // begins at its first instant, 01:00, and the guess lands on the day before. Step forward to it.
  for (let i = 0; i < 3 && wallClockMs(guess, timeZone) < midnightWall; i++) guess += 3_600_000;
  return guess;
}

/**
 * A stretch of energy added into a bucket: a minute (from raw or the site-minute tier), or a whole
 * hour of the hourly tier (older than the minute tier keeps) with its cost already split.
 */
export interface EnergyChunk extends MinuteEnergy {
  /** Minutes with data it stands for (1 for a minute). */
  minutes?: number;
  /** An hour's cost inputs: what its pushed-price minutes cost, and the energy of the others. */
  cost?: { pushed: number; pricedMinutes: number; unpricedJ: number };
}

/**
 * Adds minutes (or hours) into buckets; pure, for the tests. A minute's price is
 * `pricePerMwh(minute)` (its pushed price, else the tariff); an hour chunk's unpriced energy is
 * charged at `tariffPerMwh`.
 */
export function energyBuckets(
  starts: readonly number[],
  endMs: number,
  minutes: readonly EnergyChunk[],
  pricePerMwh: (minuteStartMs: number) => number | null,
  tariffPerMwh: number | null = null,
): EnergyBucket[] {
  const buckets = starts.map((start, i) => ({
    start,
    end: starts[i + 1] ?? endMs,
    j: 0,
    mining: 0,
    ai: 0,
    other: 0,
    minutes: 0,
    cost: 0,
    priced: false,
  }));
  let k = 0;
  const sorted = [...minutes].sort((a, b) => a.startMs - b.startMs);
  for (const m of sorted) {
    while (k < buckets.length && m.startMs >= buckets[k]!.end) k++;
    const b = buckets[k];
    if (!b || m.startMs < b.start) continue;
    b.j += m.joules;
    b.mining += m.miningJ;
    b.ai += m.aiJ;
    b.other += m.otherJ;
    b.minutes += m.minutes ?? 1;
    if (m.cost) {
      b.cost += m.cost.pushed;
      if (m.cost.pricedMinutes > 0) b.priced = true;
      if (tariffPerMwh !== null && (m.minutes ?? 1) > m.cost.pricedMinutes) {
        b.cost += (m.cost.unpricedJ / J_PER_KWH / 1000) * tariffPerMwh;
        b.priced = true;
      }
      continue;
    }
    const price = pricePerMwh(m.startMs);
    if (price !== null) {
      b.cost += (m.joules / J_PER_KWH / 1000) * price;
      b.priced = true;
    }
  }
  return buckets.map((b) => ({
    start: new Date(b.start).toISOString(),
    kwh: b.j / J_PER_KWH,
    mining_kwh: b.mining / J_PER_KWH,
    ai_kwh: b.ai / J_PER_KWH,
    other_kwh: b.other / J_PER_KWH,
    coverage_ratio: b.minutes / Math.max(1, Math.round((b.end - b.start) / MINUTE_MS)),
    cost: b.priced ? b.cost : null,
  }));
}

/** The zone when the runtime knows it (a site's timezone is free text); undefined otherwise. */
export function knownTimeZone(zone: string | null): string | undefined {
  if (zone === null) return undefined;
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return zone;
  } catch {
    return undefined;
  }
}

/** A site's energy per bucket. `tariffPerMwh` is the site's flat price (metadata), if any. */
export async function siteEnergy(
  storage: Storage,
  site: {
    id: number;
    capacity_w: number;
    timezone: string | null;
    tariffPerMwh: number | null;
    /** Where the site-minute tier begins (its retention cutoff): older, only hours remain. */
    minuteTierFromMs?: number;
  },
  q: z.infer<typeof EnergyQuery>,
  nowMs: number,
): Promise<{ bucket: 'hour' | 'day'; timezone: string; buckets: EnergyBucket[] }> {
  const fromMs = instantOrThrow(q.from, 'from');
  const toMs = q.to === undefined ? nowMs : instantOrThrow(q.to, 'to');
  if (fromMs >= toMs)
    throw new HashwattError('invalid_query', '"from" must be before "to"', { field: 'from' });
  const timeZone = knownTimeZone(site.timezone) ?? 'UTC';
  // Counted before any is built: a day is at least 23 hours, so this bounds the list from above.
  const most = Math.ceil((toMs - fromMs) / (q.bucket === 'hour' ? 3_600_000 : 23 * 3_600_000)) + 1;
  if (most > MAX_BUCKETS) {
    throw new HashwattError(
      'invalid_query',
      `up to ${most} buckets, at most ${MAX_BUCKETS}: narrow from/to`,
      {
        field: 'from',
      },
    );
  }
  const starts = bucketStarts(fromMs, toMs, q.bucket, timeZone);
  const firstMs = starts[0]!;
  const [metersTotal, mark] = await Promise.all([
    countSiteMeters(storage.db, site.id),
    rollupWatermark(storage.db, site.id),
  ]);
  // Whole hours the hourly tier holds current, where every bucket boundary is a whole UTC hour
  // (zones offset by :30 or :45 split hours between buckets: those read minutes while kept).
  const aligned = starts.every((t) => t % HOUR_MS === 0);
  const hourFrom = Math.ceil(firstMs / HOUR_MS) * HOUR_MS;
  const hourTo = Math.max(
    hourFrom,
    Math.floor(
      Math.min(
        toMs,
        mark.hourMs,
        aligned ? Number.POSITIVE_INFINITY : (site.minuteTierFromMs ?? Number.NEGATIVE_INFINITY),
      ) / HOUR_MS,
    ) * HOUR_MS,
  );
  const useHours = hourFrom === firstMs && hourTo > hourFrom;
  const minutesFrom = useHours ? hourTo : firstMs;
  const minuteSplit = Math.max(minutesFrom, Math.min(toMs, mark.minuteMs));
  const [hours, tierMinutes, rawMinutes, prices] = await Promise.all([
    useHours
      ? readSiteRollup(storage.db, {
          tier: '1h',
          siteId: site.id,
          fromMs: hourFrom,
          toMs: hourTo,
          columns: SITE_HOUR_ENERGY,
        })
      : Promise.resolve([]),
    readSiteRollup(storage.db, {
      tier: '1m',
      siteId: site.id,
      fromMs: minutesFrom,
      toMs: minuteSplit,
      columns: [...powerColumns('avg'), SITE_MINUTE_PRICE],
    }),
    minuteSplit < toMs
      ? sitePowerSteps(storage.db, {
          fromMs: minuteSplit,
          toMs,
          stepMs: MINUTE_MS,
          siteId: site.id,
          agg: 'avg',
        })
      : Promise.resolve([]),
    minuteSplit < toMs
      ? sitePriceSteps(storage.db, { fromMs: minuteSplit, toMs, stepMs: MINUTE_MS, siteId: site.id })
      : Promise.resolve([]),
  ]);
  const pushed = new Map(prices.map((p) => [p.b, p.price]));
  const chunks: EnergyChunk[] = [];
  for (const h of hours) {
    if (!h.power_minutes) continue;
    chunks.push({
      startMs: h.b,
      joules: h.energy_j ?? 0,
      miningJ: h.mining_energy_j ?? 0,
      aiJ: h.ai_energy_j ?? 0,
      otherJ: h.other_energy_j ?? 0,
      minutes: h.power_minutes,
      cost: {
        pushed: h.pushed_cost ?? 0,
        pricedMinutes: h.priced_minutes ?? 0,
        unpricedJ: h.unpriced_energy_j ?? 0,
      },
    });
  }
  for (const m of tierMinutes) {
    const row = powerRowOf(m, 'avg');
    if (!hasPowerData(row, metersTotal)) continue;
    chunks.push(minuteEnergy(row, metersTotal, site.capacity_w));
    const price = m[SITE_MINUTE_PRICE];
    if (price !== null && price !== undefined) pushed.set(m.b, price);
  }
  for (const r of rawMinutes) {
    if (hasPowerData(r, metersTotal)) chunks.push(minuteEnergy(r, metersTotal, site.capacity_w));
  }
  return {
    bucket: q.bucket,
    timezone: timeZone,
    buckets: energyBuckets(
      starts,
      toMs,
      chunks,
      (t) => pushed.get(t) ?? site.tariffPerMwh,
      site.tariffPerMwh,
    ),
  };
}
