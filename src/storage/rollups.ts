/**
 * Rollup storage: the statements that build site-minute, device-hour and site-hour rows from raw
 * readings by the fleet's rules, the dirty log ingest appends to and the job claims, and the reads
 * of each tier (docs/rollups.md has the measurements behind every choice here).
 */
import { type Kysely, type RawBuilder, sql } from 'kysely';
import { CORE_METRICS } from '../catalog/index.ts';
import {
  DEVICE_COLUMNS,
  POWER_GROUPS,
  SITE_COLUMNS,
  SITE_HOUR_ENERGY,
  SITE_MINUTE_PRICE,
  SITE_ROLLUP_METRICS,
  STAGED_COLUMNS,
} from '../rollups/columns.ts';
import { hoursOf, planHours, planMinutes, type SiteRange } from '../rollups/ranges.ts';
import type { Database } from './schema.ts';

const HOUR_MS = 3_600_000;

/** Postgres array literal of numbers (ids and epoch ms), built by hand as the write path does. */
function numbers(values: readonly number[]): string {
  return `{${values.join(',')}}`;
}

const raw = (text: string) => sql.raw(text);
const kindList = (kinds: readonly string[]): string => kinds.map((k) => `'${k}'`).join(', ');
const upsertSet = (columns: readonly string[]): string =>
  columns.map((c) => `${c} = EXCLUDED.${c}`).join(', ');

// -------------------------------------------------------------------------------------------------
// The dirty log

/** Appends marks for the minutes a write touched, in the writer's transaction (no key: no waits). */
export async function insertMarks(trx: Kysely<Database>, marks: readonly SiteRange[]): Promise<void> {
  if (marks.length === 0) return;
  await sql`
    INSERT INTO rollup_dirty (site_id, from_ts, to_ts, readings)
    SELECT s, to_timestamp(f / 1000.0), to_timestamp(t / 1000.0), n
    FROM unnest(${numbers(marks.map((m) => m.siteId))}::int[], ${numbers(marks.map((m) => m.fromMs))}::float8[],
      ${numbers(marks.map((m) => m.toMs))}::float8[],
      ${numbers(marks.map((m) => Math.min(2_147_483_647, Math.round(m.readings ?? 0))))}::int[]) AS u(s, f, t, n)`.execute(
    trx,
  );
}

/** Takes every mark that starts before `closedMs` off the log (the caller's transaction owns them). */
export async function claimMarks(trx: Kysely<Database>, closedMs: number): Promise<SiteRange[]> {
  const { rows } = await sql<{ site_id: number; f: number; t: number; n: number }>`
    DELETE FROM rollup_dirty WHERE from_ts < ${new Date(closedMs)}
    RETURNING site_id, (extract(epoch FROM from_ts) * 1000)::float8 AS f, (extract(epoch FROM to_ts) * 1000)::float8 AS t,
      readings AS n`.execute(trx);
  return rows.map((r) => ({ siteId: r.site_id, fromMs: r.f, toMs: r.t, readings: r.n }));
}

/** Hours waiting for their close: every one is claimed, the caller puts back those still waiting. */
export async function claimHourMarks(trx: Kysely<Database>): Promise<SiteRange[]> {
  const { rows } = await sql<{ site_id: number; b: number }>`
    DELETE FROM rollup_dirty_hour RETURNING site_id, (extract(epoch FROM bucket) * 1000)::float8 AS b`.execute(
    trx,
  );
  return rows.map((r) => ({ siteId: r.site_id, fromMs: r.b, toMs: r.b + HOUR_MS }));
}

export async function insertHourMarks(trx: Kysely<Database>, hours: readonly SiteRange[]): Promise<void> {
  if (hours.length === 0) return;
  await sql`
    INSERT INTO rollup_dirty_hour (site_id, bucket)
    SELECT s, to_timestamp(b / 1000.0)
    FROM unnest(${numbers(hours.map((h) => h.siteId))}::int[], ${numbers(hours.map((h) => h.fromMs))}::float8[]) AS u(s, b)`.execute(
    trx,
  );
}

/** How far back a site's rollups are current: before `minuteMs` every minute is built, before `hourMs` every hour. */
export interface RollupWatermark {
  minuteMs: number;
  hourMs: number;
}

/**
 * The oldest bucket of a site still waiting for the job (Infinity when none): rollup rows before
 * it are current; from it on, readers compute from the tier below.
 */
export async function rollupWatermark(db: Kysely<Database>, siteId: number): Promise<RollupWatermark> {
  const { rows } = await sql<{ m: number | null; h: number | null }>`
    SELECT (SELECT (extract(epoch FROM min(from_ts)) * 1000)::float8 FROM rollup_dirty WHERE site_id = ${siteId}) AS m,
           (SELECT (extract(epoch FROM min(bucket)) * 1000)::float8 FROM rollup_dirty_hour WHERE site_id = ${siteId}) AS h`.execute(
    db,
  );
  const minuteMs = rows[0]?.m ?? Number.POSITIVE_INFINITY;
  const hourMark = rows[0]?.h ?? Number.POSITIVE_INFINITY;
  const minuteHour = Number.isFinite(minuteMs) ? Math.floor(minuteMs / HOUR_MS) * HOUR_MS : minuteMs;
  return { minuteMs, hourMs: Math.min(hourMark, minuteHour) };
}

/** The start of the oldest minute waiting to be built, or null (hours waiting for their close not counted). */
export async function oldestPendingMinuteMs(db: Kysely<Database>): Promise<number | null> {
  const { rows } = await sql<{ t: number | null }>`
    SELECT (extract(epoch FROM min(from_ts)) * 1000)::float8 AS t FROM rollup_dirty`.execute(db);
  return rows[0]?.t ?? null;
}

/** The oldest mark of the whole log, or null: what retention must not drop raw data past. */
export async function oldestPendingMs(db: Kysely<Database>): Promise<number | null> {
  const { rows } = await sql<{ t: number | null }>`
    SELECT (extract(epoch FROM least((SELECT min(from_ts) FROM rollup_dirty), (SELECT min(bucket) FROM rollup_dirty_hour))) * 1000)::float8 AS t`.execute(
    db,
  );
  return rows[0]?.t ?? null;
}

// -------------------------------------------------------------------------------------------------
// Building buckets

const EPOCH = "timestamptz 'epoch'";
const hourOf = (column: string) => `date_bin('1 hour', ${column}, ${EPOCH})`;

/**
 * The (site, from, to) ranges as the CTE `k`, and their overall bounds. The bounds are passed again
 * as plain parameters wherever a table is read by the ranges: without them the planner cannot see
 * how few rows the ranges select and scans the whole partition (10× the cost, docs/rollups.md).
 */
function rangesOf(ranges: readonly SiteRange[]): { k: RawBuilder<unknown>; lo: Date; hi: Date } {
  return {
    k: sql`k AS (
      SELECT site_id, to_timestamp(lo / 1000.0) AS lo, to_timestamp(hi / 1000.0) AS hi
      FROM unnest(${numbers(ranges.map((r) => r.siteId))}::int[], ${numbers(ranges.map((r) => r.fromMs))}::float8[],
        ${numbers(ranges.map((r) => r.toMs))}::float8[]) AS u(site_id, lo, hi))`,
    lo: new Date(Math.min(...ranges.map((r) => r.fromMs))),
    hi: new Date(Math.max(...ranges.map((r) => r.toMs))),
  };
}

/**
 * `dev`: level 1 of the site rule, each device's raw readings in each minute of `k` reduced to
 * min, max, sum, last and count per metric (avg is sum / count: the same division avg() does, on
 * the same running sum, so one aggregate less per metric), with the device's kind.
 */
function rawDeviceMinutes(lo: Date, hi: Date): RawBuilder<unknown> {
  // Constants, not parameters, inside the per-metric text below; a Date's ISO form is safe to inline.
  const literalTime = (t: Date) => `timestamptz '${t.toISOString()}'`;
  const bounded = (alias: string) => sql`${raw(alias)}.ts >= ${lo} AND ${raw(alias)}.ts < ${hi}`;
  return sql`s AS (
      SELECT r.site_id, r.device_id, r.ts, date_bin('1 minute', r.ts, ${raw(EPOCH)}) AS bucket,
        ${raw(CORE_METRICS.map((m) => `r.${m.name}::float8 AS ${m.name}`).join(', '))}
      FROM k JOIN readings r ON r.site_id = k.site_id AND r.ts >= k.lo AND r.ts < k.hi
        AND ${bounded('r')}),
    -- One hashed grouping, no sort: a site-minute at full load is ~1 M readings, and sorting them
    -- for a window (the way to "last" without a last() aggregate) was two thirds of the build, on
    -- disk past work_mem (docs/rollups.md). Each metric's last is the device's latest sample in
    -- the minute carrying it: its time here, its value below.
    g AS (
      SELECT site_id, bucket, device_id, max(ts) AS last_at,
        ${raw(
          CORE_METRICS.map(
            (m) =>
              `min(${m.name}) AS ${m.name}_min, max(${m.name}) AS ${m.name}_max, sum(${m.name}) AS ${m.name}_sum,
          max(ts) FILTER (WHERE ${m.name} IS NOT NULL) AS ${m.name}_at, count(${m.name}) AS ${m.name}_n`,
          ).join(',\n        '),
        )}
      FROM s GROUP BY site_id, bucket, device_id),
    -- A metric whose min is its max has that as its last too: a device reporting once a minute,
    -- or a steady value, needs nothing read back. Otherwise the device's last reading of the
    -- minute holds the metric's last, unless it left the metric out: then it is read at its own
    -- time. Both are primary-key lookups, made only when needed.
    dev AS (
      SELECT g.site_id, g.bucket, g.device_id,
        ${raw(
          CORE_METRICS.map(
            (m) =>
              `g.${m.name}_min, g.${m.name}_max, g.${m.name}_sum,
          CASE WHEN g.${m.name}_n = 0 THEN NULL
            WHEN g.${m.name}_min = g.${m.name}_max THEN g.${m.name}_min
            WHEN g.${m.name}_at = g.last_at THEN l.${m.name}::float8
            ELSE (SELECT x.${m.name}::float8 FROM readings x
              WHERE x.site_id = g.site_id AND x.ts = g.${m.name}_at AND x.device_id = g.device_id
                AND x.ts >= ${literalTime(lo)} AND x.ts < ${literalTime(hi)}) END AS ${m.name}_last,
          g.${m.name}_n`,
          ).join(',\n        '),
        )},
        d.kind
      FROM g
      LEFT JOIN LATERAL (
        SELECT ${raw(CORE_METRICS.map((m) => `x.${m.name}`).join(', '))} FROM readings x
        WHERE (${raw(CORE_METRICS.map((m) => `g.${m.name}_min <> g.${m.name}_max`).join(' OR '))})
          AND x.site_id = g.site_id AND x.ts = g.last_at AND x.device_id = g.device_id AND ${bounded('x')}) l ON true
      JOIN devices d ON d.id = g.device_id)`;
}

/** `dev` as the minute build staged it: the same columns (but kind), without reading raw. */
function stagedDeviceMinutes(lo: Date, hi: Date): RawBuilder<unknown> {
  return sql`dev AS (
      SELECT t.site_id, t.bucket, t.device_id, ${raw(STAGED_COLUMNS.map((c) => `t.${c}`).join(', '))}
      FROM k JOIN rollup_device_1m_staged t ON t.site_id = k.site_id AND t.bucket >= k.lo AND t.bucket < k.hi
        AND t.bucket >= ${lo} AND t.bucket < ${hi})`;
}

/** Deletes the staged device-minutes of the ranges (a minute rebuilt, or an hour built). */
async function deleteStaged(trx: Kysely<Database>, ranges: readonly SiteRange[]): Promise<void> {
  const { k, lo, hi } = rangesOf(ranges);
  await sql`
    WITH ${k}
    DELETE FROM rollup_device_1m_staged t USING k
    WHERE t.site_id = k.site_id AND t.bucket >= k.lo AND t.bucket < k.hi AND t.bucket >= ${lo} AND t.bucket < ${hi}`.execute(
    trx,
  );
}

/** Level 2: devices combined per site, power by group (meters apart, PDUs never), the rest by catalog kinds. */
function siteAggregates(source: string, deviceAvg: (m: string) => string): string {
  const parts: string[] = [];
  const add = (metric: string, kindFilter: string) => {
    const f = `FILTER (WHERE ${source}.kind IN (${kindFilter}))`;
    parts.push(
      `sum(${source}.${metric}_min) ${f}`,
      `sum(${source}.${metric}_max) ${f}`,
      `sum(${deviceAvg(metric)}) ${f}`,
      `sum(${source}.${metric}_last) ${f}`,
      `NULLIF(count(*) FILTER (WHERE ${source}.kind IN (${kindFilter}) AND ${source}.${metric}_n > 0), 0)`,
    );
  };
  for (const g of POWER_GROUPS) add('power_w', `'${g}'`);
  for (const m of SITE_ROLLUP_METRICS) add(m.name, kindList(m.kinds));
  return parts.join(',\n      ');
}

/**
 * Builds (or rebuilds) the site-minute rows of whole minutes of the given ranges from raw, and
 * stages each device's minute for its hour (rollup_device_1m_staged), unless the hour is built
 * already: a built hour's staged minutes are gone, so its rebuild reads raw (buildHours).
 */
export async function buildSiteMinutes(trx: Kysely<Database>, ranges: readonly SiteRange[]): Promise<void> {
  if (ranges.length === 0) return;
  const { k, lo, hi } = rangesOf(ranges);
  const columns = [...SITE_COLUMNS, SITE_MINUTE_PRICE];
  await deleteStaged(trx, ranges);
  await sql`
    WITH ${k}, ${rawDeviceMinutes(lo, hi)},
    -- The pushed price is the mean of the minute's samples, as the raw energy answer reads it.
    price AS (
      SELECT x.site_id, date_bin('1 minute', x.ts, ${raw(EPOCH)}) AS bucket, avg(x.power_price_per_mwh) AS price
      FROM k JOIN readings_extra x ON x.site_id = k.site_id AND x.ts >= k.lo AND x.ts < k.hi
        AND x.ts >= ${lo} AND x.ts < ${hi}
      WHERE x.power_price_per_mwh IS NOT NULL
      GROUP BY 1, 2),
    built AS (
      SELECT h.site_id, h.bucket
      FROM k JOIN rollup_site_1h h ON h.site_id = k.site_id AND h.bucket >= ${raw(hourOf('k.lo'))} AND h.bucket < k.hi
        AND h.bucket >= ${new Date(Math.floor(lo.getTime() / HOUR_MS) * HOUR_MS)} AND h.bucket < ${hi}),
    staged AS (
      INSERT INTO rollup_device_1m_staged (site_id, device_id, bucket, ${raw(STAGED_COLUMNS.join(', '))})
      SELECT site_id, device_id, bucket, ${raw(STAGED_COLUMNS.join(', '))} FROM dev
      WHERE NOT EXISTS (SELECT 1 FROM built b WHERE b.site_id = dev.site_id AND b.bucket = ${raw(hourOf('dev.bucket'))})),
    site AS (
      SELECT dev.site_id, dev.bucket, ${raw(siteAggregates('dev', (m) => `dev.${m}_sum / NULLIF(dev.${m}_n, 0)`))}
      FROM dev GROUP BY dev.site_id, dev.bucket)
    INSERT INTO rollup_site_1m (site_id, bucket, ${raw(columns.join(', '))})
    SELECT site.*, price.price FROM site LEFT JOIN price USING (site_id, bucket)
    ON CONFLICT (site_id, bucket) DO UPDATE SET ${raw(upsertSet(columns))}`.execute(trx);
}

/** Hours per statement: one from raw reads the hour's readings, a few keep its sort small. */
const RAW_HOURS_PER_STATEMENT = 4;
/** One staged hour is a row per device-minute: 60 per device, not one per reading. */
const STAGED_HOURS_PER_STATEMENT = 32;

/**
 * Builds the device-hour and site-hour rows of whole (site, hour) ranges, from the hour's staged
 * device-minutes when the hour has never been built (every minute of it then staged its devices
 * when it was built), else from raw: a built hour's staged minutes were deleted, and a late reading
 * re-marks only its own minute. Then the staged minutes of the hours go.
 */
export async function buildHours(trx: Kysely<Database>, hours: readonly SiteRange[]): Promise<void> {
  if (hours.length === 0) return;
  const { k, lo, hi } = rangesOf(hours);
  const { rows } = await sql<{ site_id: number; b: number }>`
    WITH ${k}
    SELECT h.site_id, (extract(epoch FROM h.bucket) * 1000)::float8 AS b
    FROM k JOIN rollup_site_1h h ON h.site_id = k.site_id AND h.bucket = k.lo AND h.bucket >= ${lo} AND h.bucket < ${hi}`.execute(
    trx,
  );
  const built = new Set(rows.map((r) => `${r.site_id}:${r.b}`));
  const fromRaw = hours.filter((h) => built.has(`${h.siteId}:${h.fromMs}`));
  const fromStaged = hours.filter((h) => !built.has(`${h.siteId}:${h.fromMs}`));
  for (let i = 0; i < fromStaged.length; i += STAGED_HOURS_PER_STATEMENT)
    await buildHoursFrom(trx, fromStaged.slice(i, i + STAGED_HOURS_PER_STATEMENT), 'staged');
  for (let i = 0; i < fromRaw.length; i += RAW_HOURS_PER_STATEMENT)
    await buildHoursFrom(trx, fromRaw.slice(i, i + RAW_HOURS_PER_STATEMENT), 'raw');
  await deleteStaged(trx, hours);
}

/**
 * One statement of buildHours: each device's minutes (its mean power × 60 s is the minute's
 * energy), then the hour per device (min of mins, max of maxes, Σ sum and count, the last minute's
 * last), then the site from the device rows just written (RETURNING: no re-read), and the hour's
 * energy from its site-minute rows (built first).
 */
async function buildHoursFrom(
  trx: Kysely<Database>,
  hours: readonly SiteRange[],
  source: 'raw' | 'staged',
): Promise<void> {
  const { k, lo, hi } = rangesOf(hours);
  const hourAgg = CORE_METRICS.map(
    (m) => `min(${m.name}_min) AS ${m.name}_min, max(${m.name}_max) AS ${m.name}_max,
      sum(${m.name}_sum) AS ${m.name}_sum,
      (array_agg(${m.name}_last ORDER BY bucket DESC) FILTER (WHERE ${m.name}_n > 0))[1] AS ${m.name}_last,
      NULLIF(sum(${m.name}_n), 0) AS ${m.name}_n`,
  ).join(',\n      ');
  const deviceAvg = (m: string) => `CASE WHEN h.${m}_n > 0 THEN h.${m}_sum / h.${m}_n END`;
  // The meter rule per minute (src/fleet/power-source.ts), and whether the minute says what the
  // site drew at all (src/history/energy.ts hasPowerData): a minute without is not counted as 0 W.
  const meterTrusted = `mt.n > 0 AND m.meter_power_w_n = mt.n AND m.meter_power_w_avg IS NOT NULL`;
  const drawn = `CASE WHEN ${meterTrusted} THEN m.meter_power_w_avg
      ELSE coalesce(m.asic_power_w_avg, 0) + coalesce(m.gpu_power_w_avg, 0) + coalesce(m.other_power_w_avg, 0) END`;
  const hasData = `((${meterTrusted}) OR coalesce(m.asic_power_w_n, 0) + coalesce(m.gpu_power_w_n, 0) + coalesce(m.other_power_w_n, 0) > 0)`;
  await sql`
    WITH ${k}, ${source === 'raw' ? rawDeviceMinutes(lo, hi) : stagedDeviceMinutes(lo, hi)},
    hourly AS (
      SELECT site_id, device_id, ${raw(hourOf('bucket'))} AS bucket, ${raw(hourAgg)},
        sum(power_w_sum / NULLIF(power_w_n, 0) * 60) AS energy_j,
        NULLIF(count(*) FILTER (WHERE power_w_n > 0), 0) AS power_minutes
      FROM dev GROUP BY site_id, device_id, ${raw(hourOf('bucket'))}),
    written AS (
      INSERT INTO rollup_device_1h AS t (site_id, device_id, bucket, ${raw(DEVICE_COLUMNS.join(', '))})
      SELECT site_id, device_id, bucket, ${raw(DEVICE_COLUMNS.join(', '))} FROM hourly
      ON CONFLICT (site_id, device_id, bucket) DO UPDATE SET ${raw(upsertSet(DEVICE_COLUMNS))}
      RETURNING t.*),
    mt AS (
      SELECT site_id, (SELECT count(*) FROM devices d WHERE d.site_id = k.site_id AND d.kind = 'meter') AS n
      FROM k GROUP BY site_id),
    minutes AS (
      SELECT m.site_id, ${raw(hourOf('m.bucket'))} AS bucket, ${raw(drawn)} AS drawn,
        coalesce(m.asic_power_w_avg, 0) AS mining, coalesce(m.gpu_power_w_avg, 0) AS ai, m.${raw(SITE_MINUTE_PRICE)} AS price
      FROM k JOIN rollup_site_1m m ON m.site_id = k.site_id AND m.bucket >= k.lo AND m.bucket < k.hi
        AND m.bucket >= ${lo} AND m.bucket < ${hi}
      JOIN mt ON mt.site_id = k.site_id
      WHERE ${raw(hasData)}),
    energy AS (
      SELECT site_id, bucket, sum(drawn * 60) AS energy_j, sum(mining * 60) AS mining_energy_j,
        sum(ai * 60) AS ai_energy_j, sum(greatest(0, drawn - mining - ai) * 60) AS other_energy_j,
        count(*) AS power_minutes,
        sum(drawn * 60 / 3.6e9 * price) FILTER (WHERE price IS NOT NULL) AS pushed_cost,
        count(*) FILTER (WHERE price IS NOT NULL) AS priced_minutes,
        coalesce(sum(drawn * 60) FILTER (WHERE price IS NULL), 0) AS unpriced_energy_j
      FROM minutes GROUP BY site_id, bucket),
    site AS (
      SELECT h.site_id, h.bucket, ${raw(siteAggregates('h', deviceAvg))}
      FROM (SELECT w.*, d.kind FROM written w JOIN devices d ON d.id = w.device_id) h
      GROUP BY h.site_id, h.bucket)
    INSERT INTO rollup_site_1h (site_id, bucket, ${raw([...SITE_COLUMNS, ...SITE_HOUR_ENERGY].join(', '))})
    SELECT site.*, ${raw(SITE_HOUR_ENERGY.map((c) => `e.${c}`).join(', '))}
    FROM site LEFT JOIN energy e USING (site_id, bucket)
    ON CONFLICT (site_id, bucket) DO UPDATE SET ${raw(upsertSet([...SITE_COLUMNS, ...SITE_HOUR_ENERGY]))}`.execute(
    trx,
  );
}

/** Removes a purged site's rollups and marks (the caller's transaction, with its readings). */
export async function deleteSiteRollups(trx: Kysely<Database>, siteId: number): Promise<void> {
  for (const table of [
    'rollup_site_1m',
    'rollup_site_1h',
    'rollup_device_1h',
    'rollup_dirty',
    'rollup_dirty_hour',
    'rollup_device_1m_staged',
  ])
    await sql`DELETE FROM ${sql.table(table)} WHERE site_id = ${siteId}`.execute(trx);
}

// -------------------------------------------------------------------------------------------------
// Reading the tiers

/** A site row's values by column name, with its bucket start in epoch ms. */
export type SiteRollupRow = { b: number } & Record<string, number | null>;

/** Site rows of a tier in [fromMs, toMs), oldest first, with the named columns only. */
export async function readSiteRollup(
  db: Kysely<Database>,
  q: { tier: '1m' | '1h'; siteId: number; fromMs: number; toMs: number; columns: readonly string[] },
): Promise<SiteRollupRow[]> {
  const table = q.tier === '1m' ? 'rollup_site_1m' : 'rollup_site_1h';
  const { rows } = await sql<SiteRollupRow>`
    SELECT (extract(epoch FROM bucket) * 1000)::float8 AS b, ${raw(q.columns.join(', '))}
    FROM ${sql.table(table)}
    WHERE site_id = ${q.siteId} AND bucket >= ${new Date(q.fromMs)} AND bucket < ${new Date(q.toMs)}
    ORDER BY bucket`.execute(db);
  return rows;
}

/** One device's hour rows of a core metric in [fromMs, toMs): min, max, sum, last, n. */
export async function readDeviceHours(
  db: Kysely<Database>,
  q: { siteId: number; deviceId: number; metric: string; fromMs: number; toMs: number },
): Promise<{ b: number; min: number; max: number; sum: number; last: number; n: number }[]> {
  const m = q.metric;
  const { rows } = await sql<{ b: number; min: number; max: number; sum: number; last: number; n: number }>`
    SELECT (extract(epoch FROM bucket) * 1000)::float8 AS b, ${sql.ref(`${m}_min`)} AS min, ${sql.ref(`${m}_max`)} AS max,
      ${sql.ref(`${m}_sum`)} AS sum, ${sql.ref(`${m}_last`)} AS last, ${sql.ref(`${m}_n`)} AS n
    FROM rollup_device_1h
    WHERE site_id = ${q.siteId} AND device_id = ${q.deviceId}
      AND bucket >= ${new Date(q.fromMs)} AND bucket < ${new Date(q.toMs)} AND ${sql.ref(`${m}_n`)} > 0
    ORDER BY bucket`.execute(db);
  return rows;
}

/** What one rollup transaction did. */
export interface RollupStep {
  siteMinutes: number;
  hours: number;
  /** Closed work is still on the log (past this transaction's budget). */
  more: boolean;
}

/**
 * One transaction of the rollup job: claims the marks of closed minutes, builds up to
 * about `budgetReadings` raw readings of them and every hour that is then complete, and puts the rest back. The
 * claims commit with the rebuilt rows or roll back with them, so a failed run loses nothing; marks
 * of writes still in flight are invisible here and stay for the next run.
 */
export async function rollupStep(
  db: Kysely<Database>,
  closedMs: number,
  budgetReadings: number,
): Promise<RollupStep> {
  return db.transaction().execute(async (trx) => {
    // The device-minute grouping of a site-minute at full load (~50,000 devices) fits; the server
    // default (4 MB) spills it to disk.
    await sql`SET LOCAL work_mem = '64MB'`.execute(trx);
    // The build's estimated cost passes jit_above_cost, and compiling its ~160 expressions took
    // 1.7 s of a 3 s statement that then ran 1.2 s (docs/rollups.md): nothing here runs long
    // enough per row to win it back.
    await sql`SET LOCAL jit = off`.execute(trx);
    // The service's statement timeout (30 s) guards request paths; an hour of a site with
    // thousands of devices takes longer to build (docs/scaling.md), and nobody waits on it.
    await sql`SET LOCAL statement_timeout = '10min'`.execute(trx);
    const claimed = await claimMarks(trx, closedMs);
    const minutes = planMinutes(claimed, closedMs, budgetReadings);
    await buildSiteMinutes(trx, minutes.build);
    await insertMarks(trx, minutes.keep);
    const hours = planHours(
      [...hoursOf(minutes.build), ...(await claimHourMarks(trx))],
      closedMs,
      minutes.keep,
    );
    await buildHours(trx, hours.build);
    await insertHourMarks(trx, hours.wait);
    const built = minutes.build.reduce((n, r) => n + (r.toMs - r.fromMs) / 60_000, 0);
    return {
      siteMinutes: built,
      hours: hours.build.length,
      more: minutes.keep.some((r) => r.fromMs < closedMs),
    };
  });
}
