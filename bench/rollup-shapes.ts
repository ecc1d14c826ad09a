/**
 * Measurement for the rollup design of issue 13, before anyone builds it (nothing here is used by
 * src/): sizes of the rollup tiers, the SQL that builds a bucket from raw readings by the fleet's
 * rules, incremental maintenance with late readings, its cost to ingest, and read latency.
 * Findings and the recommendation: docs/rollups.md.
 *
 *   node bench/rollup-shapes.ts [--quick]
 *
 * Creates its own database `hashwatt_rollup_shapes` on 127.0.0.1:5432 (user postgres) and drops it
 * at the end, also on failure. The full run takes about 8 minutes, --quick under one. Prints markdown and writes bench/results/rollup-shapes.json
 * (rollup-shapes.quick.json with --quick, so a quick check never overwrites the full figures).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { CORE_METRICS, type DeviceKind } from '../src/catalog/metrics.ts';
import { type Conn, connect, machineBusyUs, PG, processCpuUs } from './support/postgres-cpu.ts';

// ---------------------------------------------------------------------------------------------
// Configuration

interface Scale {
  sites: number;
  devicesPerSite: number;
  /** Minutes of 10-s readings preloaded (all devices), from 00:00 of the day. */
  preloadMinutes: number;
  /** Build-cost rounds (variants interleaved) and ingest rounds. */
  buildRounds: number;
  ingestRounds: number;
  /** Length of one measured ingest window, and the rollup job's period inside it. */
  ingestWindowS: number;
  jobPeriodS: number;
  /** Probes per read query (median and p95 are reported). */
  probes: number;
  /** Days of synthetic history in the rollup tables for the read probes and sizes. */
  siteMinuteDays: number;
  siteHourDays: number;
  deviceHourDays: number;
}

const FULL: Scale = {
  sites: 10,
  devicesPerSite: 3_000,
  preloadMinutes: 70,
  buildRounds: 3,
  ingestRounds: 3,
  ingestWindowS: 20,
  jobPeriodS: 10,
  probes: 15,
  siteMinuteDays: 89,
  siteHourDays: 730,
  deviceHourDays: 30,
};
const QUICK: Scale = {
  sites: 10,
  devicesPerSite: 300,
  preloadMinutes: 70,
  buildRounds: 1,
  ingestRounds: 1,
  ingestWindowS: 4,
  jobPeriodS: 4,
  probes: 5,
  siteMinuteDays: 10,
  siteHourDays: 60,
  deviceHourDays: 7,
};

const { values: args } = parseArgs({ options: { quick: { type: 'boolean' } } });
const QUICK_RUN = args.quick === true;
const S = QUICK_RUN ? QUICK : FULL;
const DEVICES = S.sites * S.devicesPerSite;
const DB_NAME = 'hashwatt_rollup_shapes';
const BATCH = 5_000;
const STEP_MS = 10_000;
const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** A UTC midnight: the preload and every measured write land in this day's partition. */
const BASE_MS = Date.UTC(2026, 0, 5);
const PRELOAD_STEPS = (S.preloadMinutes * MINUTE_MS) / STEP_MS;

/** Site 3's second meter is silent in this range: its minutes must fall back to the devices' power. */
const METER_GAP = { site: 3, fromMs: BASE_MS + 10 * MINUTE_MS, toMs: BASE_MS + 15 * MINUTE_MS };
/** The last site has no meter at all. */
const METERLESS_SITE = S.sites;
/** Site 7's agent is down in this range during the preload; its readings arrive later (a backfill). */
const OUTAGE = { site: 7, fromMs: BASE_MS + 30 * MINUTE_MS, toMs: BASE_MS + 60 * MINUTE_MS };
/** Minutes of raw rolled up into the site-minute table during setup (the rest of the preload is raw only). */
const SEED_MINUTES = 10;
/** Devices of site 3 given device-hour history (the probe reads one device; the rest only sizes the table). */
const HISTORY_DEVICES = Math.min(1_000, S.devicesPerSite - 10);

// ---------------------------------------------------------------------------------------------
// The fleet: per site 2 meters, 2 PDUs, 6 other devices (cooling), the rest compute: 90 % ASIC, 10 % GPU.

function kindOf(device: number): DeviceKind {
  const site = siteOf(device);
  const i = (device - 1) % S.devicesPerSite;
  if (i < 2) return site === METERLESS_SITE ? 'asic' : 'meter';
  if (i < 4) return 'pdu';
  if (i < 10) return 'other';
  return device % 10 === 0 ? 'gpu' : 'asic';
}
const siteOf = (device: number): number => 1 + Math.floor((device - 1) / S.devicesPerSite);
const offsetMs = (device: number): number => (device * 37) % STEP_MS;

/** The metric columns of `readings`, from the catalog (the storage contract's order). */
const METRICS = CORE_METRICS.map((m) => ({
  name: m.name,
  type: m.precision === 'float4' ? 'real' : 'float8',
  kinds: [...m.kinds] as DeviceKind[],
  mean: m.siteAggregation === 'mean',
}));
const AGGS = ['min', 'max', 'avg', 'last'] as const;
type Agg = (typeof AGGS)[number];

/** The kinds whose power is the site's drawn power when the meters are not all reporting (never PDUs). */
const DEVICE_POWER_KINDS = ['asic', 'gpu', 'other'] as const;
const POWER_GROUPS = ['meter', ...DEVICE_POWER_KINDS] as const;
type PowerGroup = (typeof POWER_GROUPS)[number];
/** Metrics summed or averaged over devices of their catalog kinds; power has its own groups. */
const SITE_METRICS = METRICS.filter((m) => m.name !== 'power_w');

function liveValues(device: number, step: number): (number | string | null)[] {
  const v = (base: number, spread: number) =>
    Math.round((base + ((device * 7 + step * 13) % 100) * spread) * 100) / 100;
  const kind = kindOf(device);
  // power_w, hashrate_ths, expected_hashrate_ths, temp_c, fan_rpm, gpu_util_pct, gpu_mem_used_bytes, available_power_w, status
  switch (kind) {
    case 'asic':
      return [v(3200, 5), v(180, 0.4), 200, v(60, 0.2), v(4000, 20), null, null, null, 'ok'];
    case 'gpu':
      return [v(500, 2), null, null, v(50, 0.3), v(3000, 10), v(0, 1), 4e10 + device, null, 'ok'];
    case 'meter':
      return [v(4.7e6, 1000), null, null, null, null, null, null, 5e6, 'ok'];
    case 'pdu':
      return [v(1e5, 100), null, null, null, null, null, null, null, 'ok'];
    default:
      return [v(2e4, 10), null, null, v(30, 0.1), v(1500, 5), null, null, null, 'ok'];
  }
}

// ---------------------------------------------------------------------------------------------
// Rollup tables

/** Site rows: per power group and per metric, the sum over devices of each device's min/max/avg/last, and how many devices. */
function siteValueColumns(): string[] {
  const cols: string[] = [];
  for (const g of POWER_GROUPS) {
    for (const a of AGGS) cols.push(`${g}_power_w_${a}`);
    cols.push(`${g}_power_w_n`);
  }
  for (const m of SITE_METRICS) {
    for (const a of AGGS) cols.push(`${m.name}_${a}`);
    cols.push(`${m.name}_n`);
  }
  return cols;
}
const SITE_COLUMNS = siteValueColumns();
/** Energy of an hour by the rule of src/history/energy.ts: per minute with data, mean drawn power × 60 s. */
const SITE_HOUR_ENERGY = ['energy_j', 'mining_energy_j', 'ai_energy_j', 'other_energy_j', 'power_minutes'];
const colType = (c: string): string => (c.endsWith('_n') || c === 'power_minutes' ? 'int' : 'float8');

/** Device rows: per metric min, max, sum, last, count (avg = sum / count, so buckets merge exactly). */
const DEVICE_COLUMNS = [
  ...METRICS.flatMap((m) => ['min', 'max', 'sum', 'last', 'n'].map((a) => `${m.name}_${a}`)),
  'energy_j',
  'power_minutes',
];

function monthStart(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}
const iso = (ms: number): string => new Date(ms).toISOString();
const dayTag = (ms: number): string => iso(ms).slice(0, 10).replaceAll('-', '');

/** Daily partitions from `fromMs` (inclusive) to `toMs`, or monthly ones. */
async function partitions(
  c: pg.Client,
  table: string,
  fromMs: number,
  toMs: number,
  per: 'day' | 'month',
): Promise<void> {
  let t = per === 'day' ? Math.floor(fromMs / DAY_MS) * DAY_MS : monthStart(fromMs);
  while (t < toMs) {
    const next = per === 'day' ? t + DAY_MS : monthStart(t + 32 * DAY_MS);
    await c.query(
      `CREATE TABLE ${table}_p${dayTag(t)} PARTITION OF ${table} FOR VALUES FROM ('${iso(t)}') TO ('${iso(next)}')`,
    );
    t = next;
  }
}

const SITE_1M_DDL = (name: string, partitioned = true) => `CREATE TABLE ${name} (
  site_id int NOT NULL, bucket timestamptz NOT NULL,
  ${SITE_COLUMNS.map((c) => `${c} ${colType(c)}`).join(', ')},
  PRIMARY KEY (site_id, bucket)) ${partitioned ? 'PARTITION BY RANGE (bucket)' : ''}`;
const SITE_1H_DDL = `CREATE TABLE rollup_site_1h (
  site_id int NOT NULL, bucket timestamptz NOT NULL,
  ${[...SITE_COLUMNS, ...SITE_HOUR_ENERGY].map((c) => `${c} ${colType(c)}`).join(', ')},
  PRIMARY KEY (site_id, bucket)) PARTITION BY RANGE (bucket)`;
const DEVICE_DDL = (name: string, partitioned = true) => `CREATE TABLE ${name} (
  site_id int NOT NULL, device_id int NOT NULL, bucket timestamptz NOT NULL,
  ${DEVICE_COLUMNS.map((c) => `${c} ${colType(c)}`).join(', ')},
  PRIMARY KEY (site_id, device_id, bucket)) ${partitioned ? 'PARTITION BY RANGE (bucket)' : ''}`;

// ---------------------------------------------------------------------------------------------
// The SQL that builds buckets from raw readings

type LastBy = 'window' | 'array' | 'none';

/**
 * `$1 int[], $2 timestamptz[], $3 timestamptz[]`: the (site, from, to) ranges to build, whole
 * buckets; `$4, $5` the earliest from and latest to. The raw rows of each range, each with its
 * device's kind and bucket.
 */
function rangesCte(width: string): string {
  return `k AS (SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::timestamptz[]) AS k(site_id, lo, hi)),
  s AS (
    SELECT r.site_id, r.device_id, d.kind, r.ts, date_bin('${width}', r.ts, timestamptz 'epoch') AS bucket,
      ${METRICS.map((m) => `r.${m.name}::float8 AS ${m.name}`).join(', ')}
    FROM k JOIN readings r ON r.site_id = k.site_id AND r.ts >= k.lo AND r.ts < k.hi
      -- The ranges' overall bounds as plain parameters: without them the planner cannot see how few
      -- rows the ranges select and scans the whole partition (10× the cost of one fleet-minute).
      AND r.ts >= $4 AND r.ts < $5
    JOIN devices d ON d.id = r.device_id)`;
}

/**
 * "last" is the value of the device's latest sample in the bucket that carries the metric. Postgres
 * has no last() aggregate: either the time of that sample per metric by a window over the device's
 * bucket (one sort shared by all metrics), or an ordered array_agg per metric (a sort per group and
 * metric; what src/storage/history.ts does on raw).
 */
function lastCte(lastBy: LastBy): string {
  if (lastBy !== 'window') return `w AS (SELECT * FROM s)`;
  return `w AS (
    SELECT s.*, ${METRICS.map((m) => `max(ts) FILTER (WHERE ${m.name} IS NOT NULL) OVER d AS ${m.name}_at`).join(', ')}
    FROM s WINDOW d AS (PARTITION BY site_id, bucket, device_id))`;
}
function lastOf(m: string, lastBy: LastBy): string {
  if (lastBy === 'window') return `max(${m}) FILTER (WHERE ts = ${m}_at)`;
  if (lastBy === 'array') return `(array_agg(${m} ORDER BY ts DESC) FILTER (WHERE ${m} IS NOT NULL))[1]`;
  return 'NULL::float8';
}

/** Each device's samples in the bucket, reduced by every agg: the first level of the site rule. */
function perDeviceCte(lastBy: LastBy): string {
  return `dev AS (
    SELECT site_id, bucket, device_id, kind,
      ${METRICS.map(
        (m) =>
          `min(${m.name}) AS ${m.name}_min, max(${m.name}) AS ${m.name}_max, avg(${m.name}) AS ${m.name}_avg,
           ${lastOf(m.name, lastBy)} AS ${m.name}_last, sum(${m.name}) AS ${m.name}_sum, count(${m.name}) AS ${m.name}_n`,
      ).join(',\n      ')}
    FROM w GROUP BY site_id, bucket, device_id, kind)`;
}

const kindList = (kinds: readonly string[]): string => kinds.map((k) => `'${k}'`).join(', ');

/** The second level: devices combined per site, power by group (meters apart, PDUs never), the rest by catalog kinds. */
function siteAggregates(source: string, deviceAvg: (m: string) => string, n: (m: string) => string): string {
  const parts: string[] = [];
  for (const g of POWER_GROUPS) {
    const f = `FILTER (WHERE ${source}.kind = '${g}')`;
    parts.push(
      `sum(${source}.power_w_min) ${f}`,
      `sum(${source}.power_w_max) ${f}`,
      `sum(${deviceAvg('power_w')}) ${f}`,
      `sum(${source}.power_w_last) ${f}`,
      `NULLIF(count(*) FILTER (WHERE ${source}.kind = '${g}' AND ${n('power_w')} > 0), 0)`,
    );
  }
  for (const m of SITE_METRICS) {
    const f = `FILTER (WHERE ${source}.kind IN (${kindList(m.kinds)}))`;
    parts.push(
      `sum(${source}.${m.name}_min) ${f}`,
      `sum(${source}.${m.name}_max) ${f}`,
      `sum(${deviceAvg(m.name)}) ${f}`,
      `sum(${source}.${m.name}_last) ${f}`,
      `NULLIF(count(*) FILTER (WHERE ${source}.kind IN (${kindList(m.kinds)}) AND ${n(m.name)} > 0), 0)`,
    );
  }
  return parts.join(',\n    ');
}

const upsertSet = (columns: readonly string[]): string =>
  columns.map((c) => `${c} = EXCLUDED.${c}`).join(', ');

/** Builds (or rebuilds) whole site-minute buckets of the given ranges from raw. */
function siteMinuteSql(table: string, lastBy: LastBy): string {
  return `WITH ${rangesCte('1 minute')}, ${lastCte(lastBy)}, ${perDeviceCte(lastBy)}
  INSERT INTO ${table} (site_id, bucket, ${SITE_COLUMNS.join(', ')})
  SELECT dev.site_id, dev.bucket,
    ${siteAggregates(
      'dev',
      (m) => `dev.${m}_avg`,
      (m) => `dev.${m}_n`,
    )}
  FROM dev GROUP BY dev.site_id, dev.bucket
  ON CONFLICT (site_id, bucket) DO UPDATE SET ${upsertSet(SITE_COLUMNS)}`;
}

/** Per-device rows of width `1 minute` from raw (only built to size the tier). */
function deviceMinuteSql(table: string): string {
  return `WITH ${rangesCte('1 minute')}, ${lastCte('window')}, ${perDeviceCte('window')}
  INSERT INTO ${table} (site_id, device_id, bucket, ${DEVICE_COLUMNS.join(', ')})
  SELECT site_id, device_id, bucket,
    ${METRICS.map((m) => `${m.name}_min, ${m.name}_max, ${m.name}_sum, ${m.name}_last, NULLIF(${m.name}_n, 0)`).join(', ')},
    power_w_avg * 60, CASE WHEN power_w_n > 0 THEN 1 END
  FROM dev
  ON CONFLICT (site_id, device_id, bucket) DO UPDATE SET ${upsertSet(DEVICE_COLUMNS)}`;
}

/**
 * Device-hour rows of the given (site, hour) ranges from raw, in two levels: each device's minute
 * first (its mean power × 60 s is the minute's energy, as the raw energy answer computes it), then
 * the hour: min of mins, max of maxes, sum of sums and counts, the last minute's last. The same
 * statement then builds the site-hour rows from the device rows it wrote (RETURNING: no re-read)
 * and the hour's energy from the site-minute rows (which must be built first).
 */
function hourSql(): string {
  const hourAgg = METRICS.map(
    (m) => `min(${m.name}_min) AS ${m.name}_min, max(${m.name}_max) AS ${m.name}_max,
      sum(${m.name}_sum) AS ${m.name}_sum,
      (array_agg(${m.name}_last ORDER BY bucket DESC) FILTER (WHERE ${m.name}_n > 0))[1] AS ${m.name}_last,
      NULLIF(sum(${m.name}_n), 0) AS ${m.name}_n`,
  ).join(',\n      ');
  const deviceAvg = (m: string) => `CASE WHEN h.${m}_n > 0 THEN h.${m}_sum / h.${m}_n END`;
  const drawn = `CASE WHEN mt.n > 0 AND m.meter_power_w_n = mt.n AND m.meter_power_w_avg IS NOT NULL
      THEN m.meter_power_w_avg
      ELSE coalesce(m.asic_power_w_avg, 0) + coalesce(m.gpu_power_w_avg, 0) + coalesce(m.other_power_w_avg, 0) END`;
  return `WITH ${rangesCte('1 minute')}, ${lastCte('window')}, ${perDeviceCte('window')},
  hourly AS (
    SELECT site_id, device_id, date_bin('1 hour', bucket, timestamptz 'epoch') AS bucket, ${hourAgg},
      sum(power_w_avg * 60) AS energy_j, NULLIF(count(power_w_avg), 0) AS power_minutes
    FROM dev GROUP BY site_id, device_id, date_bin('1 hour', bucket, timestamptz 'epoch')),
  written AS (
    INSERT INTO rollup_device_1h AS t (site_id, device_id, bucket, ${DEVICE_COLUMNS.join(', ')})
    SELECT site_id, device_id, bucket, ${DEVICE_COLUMNS.join(', ')} FROM hourly
    ON CONFLICT (site_id, device_id, bucket) DO UPDATE SET ${upsertSet(DEVICE_COLUMNS)}
    RETURNING t.*),
  mt AS (SELECT k.site_id, (SELECT count(*) FROM devices d WHERE d.site_id = k.site_id AND d.kind = 'meter') AS n
         FROM k GROUP BY k.site_id),
  energy AS (
    SELECT m.site_id, date_bin('1 hour', m.bucket, timestamptz 'epoch') AS bucket,
      sum(${drawn} * 60) AS energy_j,
      sum(coalesce(m.asic_power_w_avg, 0) * 60) AS mining_energy_j,
      sum(coalesce(m.gpu_power_w_avg, 0) * 60) AS ai_energy_j,
      sum(greatest(0, ${drawn} - coalesce(m.asic_power_w_avg, 0) - coalesce(m.gpu_power_w_avg, 0)) * 60) AS other_energy_j,
      count(*) AS power_minutes
    FROM k JOIN rollup_site_1m m ON m.site_id = k.site_id AND m.bucket >= k.lo AND m.bucket < k.hi
      AND m.bucket >= $4 AND m.bucket < $5
    JOIN mt ON mt.site_id = k.site_id
    GROUP BY 1, 2),
  site AS (
    SELECT h.site_id, h.bucket,
      ${siteAggregates('h', deviceAvg, (m) => `h.${m}_n`)}
    FROM (SELECT w.*, d.kind FROM written w JOIN devices d ON d.id = w.device_id) h
    GROUP BY h.site_id, h.bucket)
  INSERT INTO rollup_site_1h (site_id, bucket, ${[...SITE_COLUMNS, ...SITE_HOUR_ENERGY].join(', ')})
  SELECT site.*, ${SITE_HOUR_ENERGY.map((c) => `e.${c}`).join(', ')}
  FROM site LEFT JOIN energy e USING (site_id, bucket)
  ON CONFLICT (site_id, bucket) DO UPDATE SET ${upsertSet([...SITE_COLUMNS, ...SITE_HOUR_ENERGY])}`;
}

// ---------------------------------------------------------------------------------------------
// Plumbing

const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
/** Nearest-rank 95th percentile. */
const p95 = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)] ?? Number.NaN;
};
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const fix = (n: number, d = 1): string => (Number.isFinite(n) ? n.toFixed(d) : '–');

/** A (site, from, to) list as the parameters of the build statements: three arrays, then their bounds. */
interface Range {
  site: number;
  fromMs: number;
  toMs: number;
}
function rangeParams(ranges: readonly Range[]): string[] {
  return [
    `{${ranges.map((r) => r.site).join(',')}}`,
    `{${ranges.map((r) => `"${iso(r.fromMs)}"`).join(',')}}`,
    `{${ranges.map((r) => `"${iso(r.toMs)}"`).join(',')}}`,
    iso(Math.min(...ranges.map((r) => r.fromMs))),
    iso(Math.max(...ranges.map((r) => r.toMs))),
  ];
}
const allSites = (fromMs: number, toMs: number): Range[] =>
  Array.from({ length: S.sites }, (_, i) => ({ site: i + 1, fromMs, toMs }));

/** Merges (site, bucket start) pairs into per-site runs of consecutive buckets. */
function mergeBuckets(pairs: readonly { site: number; ms: number }[], widthMs: number): Range[] {
  const sorted = [...pairs].sort((a, b) => a.site - b.site || a.ms - b.ms);
  const out: Range[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last && last.site === p.site && p.ms <= last.toMs) last.toMs = Math.max(last.toMs, p.ms + widthMs);
    else out.push({ site: p.site, fromMs: p.ms, toMs: p.ms + widthMs });
  }
  return out;
}

interface Cost {
  wallMs: number;
  pgCpuMs: number;
}

/** Runs one statement and returns its wall time and the backend's CPU. */
async function timed(conn: Conn, text: string, params: unknown[] = []): Promise<Cost & { rows: number }> {
  const cpu0 = processCpuUs(conn.pid);
  const t0 = performance.now();
  const res = await conn.client.query(text, params);
  return {
    wallMs: performance.now() - t0,
    pgCpuMs: (processCpuUs(conn.pid) - cpu0) / 1000,
    rows: res.rowCount ?? 0,
  };
}

async function scalar(c: pg.Client, text: string, params: unknown[] = []): Promise<number> {
  const { rows } = await c.query<Record<string, string | number | null>>(text, params);
  const first = rows[0] ? Object.values(rows[0])[0] : null;
  return Number(first ?? 0);
}

/** Table + index bytes of a (partitioned or plain) table, and its rows. */
async function tableSize(
  c: pg.Client,
  table: string,
): Promise<{ bytes: number; heap: number; rows: number }> {
  const { rows } = await c.query<{ bytes: string; heap: string }>(
    `WITH parts AS (SELECT inhrelid AS oid FROM pg_inherits WHERE inhparent = $1::regclass
                    UNION ALL SELECT $1::regclass::oid WHERE NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = $1::regclass))
     SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::bigint AS bytes,
            coalesce(sum(pg_relation_size(oid)), 0)::bigint AS heap FROM parts`,
    [table],
  );
  const n = await scalar(c, `SELECT count(*) FROM ${table}`);
  return { bytes: Number(rows[0]!.bytes), heap: Number(rows[0]!.heap), rows: n };
}

// ---------------------------------------------------------------------------------------------
// Schema and preload

const READING_COLUMNS = [
  ...METRICS.map((m) => [m.name, m.type] as const),
  ['status', 'device_status'] as const,
];

async function setup(conns: Conn[]): Promise<{ preloadSeconds: number; indexSeconds: number }> {
  const c = conns[0]!.client;
  await c.query(`CREATE TYPE device_kind AS ENUM ('asic', 'gpu', 'meter', 'pdu', 'other')`);
  await c.query(`CREATE TYPE device_status AS ENUM ('ok', 'curtailed', 'idle', 'error', 'offline')`);
  await c.query('CREATE TABLE devices (id int PRIMARY KEY, site_id int NOT NULL, kind device_kind NOT NULL)');
  const kinds = Array.from({ length: DEVICES }, (_, i) => kindOf(i + 1));
  await c.query(
    `INSERT INTO devices SELECT d, 1 + (d - 1) / ${S.devicesPerSite}, ($1::device_kind[])[d] FROM generate_series(1, ${DEVICES}) d`,
    [`{${kinds.join(',')}}`],
  );
  // migrations/2026-11-24T00-00-initial.ts, plus `received_at` for design (b2) only: NULL in every
  // row but those of its own ingest runs and the backfill (a NULL costs a bit of the null bitmap).
  await c.query(`CREATE TABLE readings (
      site_id integer NOT NULL,
      device_id integer NOT NULL,
      ts timestamptz NOT NULL,
      power_w double precision,
      hashrate_ths double precision,
      expected_hashrate_ths double precision,
      temp_c real,
      fan_rpm real,
      gpu_util_pct real,
      gpu_mem_used_bytes double precision,
      available_power_w double precision,
      status device_status,
      received_at timestamptz
    ) PARTITION BY RANGE (ts)`);
  await partitions(c, 'readings', BASE_MS, BASE_MS + DAY_MS, 'day');

  // The preload: server-side generate_series into the bare partition, keys built afterwards. Site 7
  // is silent in the outage and site 3's second meter in the meter gap.
  const t0 = performance.now();
  const half = Math.ceil(PRELOAD_STEPS / 2);
  await Promise.all(
    [0, 1].map(async (j) => {
      const cj = conns[j]!.client;
      await cj.query('SET synchronous_commit = off');
      const ts = `timestamptz '${iso(BASE_MS)}' + make_interval(secs => s * 10 + (d.id * 37 % 10000) / 1000.0)`;
      await cj.query(`INSERT INTO readings
        SELECT d.site_id, d.id, ${ts},
          CASE d.kind WHEN 'asic' THEN 3200 + random() * 500 WHEN 'gpu' THEN 500 + random() * 200
            WHEN 'meter' THEN 4.7e6 + random() * 1e5 WHEN 'pdu' THEN 1e5 + random() * 1e4 ELSE 2e4 + random() * 1e3 END,
          CASE WHEN d.kind = 'asic' THEN 180 + random() * 40 END,
          CASE WHEN d.kind = 'asic' THEN 200 END,
          CASE WHEN d.kind IN ('asic', 'gpu', 'other') THEN (50 + random() * 30)::real END,
          CASE WHEN d.kind IN ('asic', 'gpu', 'other') THEN (3000 + random() * 2000)::real END,
          CASE WHEN d.kind = 'gpu' THEN (random() * 100)::real END,
          CASE WHEN d.kind = 'gpu' THEN 4e10 + d.id END,
          CASE WHEN d.kind = 'meter' THEN 5e6 END,
          'ok'::device_status, NULL::timestamptz
        FROM generate_series(${j * half}, ${Math.min(PRELOAD_STEPS, (j + 1) * half) - 1}) s CROSS JOIN devices d
        WHERE NOT (d.site_id = ${OUTAGE.site} AND s * 10000 >= ${OUTAGE.fromMs - BASE_MS} AND s * 10000 < ${OUTAGE.toMs - BASE_MS})
          AND NOT (d.site_id = ${METER_GAP.site} AND d.kind = 'meter' AND (d.id - 1) % ${S.devicesPerSite} = 1
                   AND s * 10000 >= ${METER_GAP.fromMs - BASE_MS} AND s * 10000 < ${METER_GAP.toMs - BASE_MS})`);
    }),
  );
  const preloadSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  await c.query(`SET maintenance_work_mem = '512MB'`);
  await c.query('ALTER TABLE readings ADD PRIMARY KEY (site_id, ts, device_id)');
  // docs/storage.md: a BRIN on ts is what a time-range scan of the whole fleet wants.
  await c.query('CREATE INDEX readings_ts_brin ON readings USING brin (ts)');
  await c.query('CREATE INDEX readings_received_brin ON readings USING brin (received_at)');
  await c.query('VACUUM ANALYZE readings');
  await c.query('VACUUM ANALYZE devices');
  const indexSeconds = (performance.now() - t1) / 1000;

  await c.query(SITE_1M_DDL('rollup_site_1m'));
  await partitions(c, 'rollup_site_1m', BASE_MS - S.siteMinuteDays * DAY_MS, BASE_MS + DAY_MS, 'day');
  await c.query(SITE_1H_DDL);
  await partitions(c, 'rollup_site_1h', BASE_MS - S.siteHourDays * DAY_MS, BASE_MS + DAY_MS, 'month');
  await c.query(DEVICE_DDL('rollup_device_1h'));
  await partitions(c, 'rollup_device_1h', BASE_MS - S.deviceHourDays * DAY_MS, BASE_MS + DAY_MS, 'month');
  await c.query(DEVICE_DDL('rollup_device_1m'));
  await partitions(c, 'rollup_device_1m', BASE_MS, BASE_MS + DAY_MS, 'day');
  // Design (b1): append-only, no key, so no writer ever waits on another's mark of the same bucket.
  await c.query('CREATE TABLE rollup_dirty (site_id int NOT NULL, bucket timestamptz NOT NULL)');
  return { preloadSeconds, indexSeconds };
}

// ---------------------------------------------------------------------------------------------
// The reference: the documented rule computed in Node from raw rows, to hold the SQL to it

interface RawRow {
  device: number;
  kind: DeviceKind;
  tsUs: number;
  values: (number | null)[];
}

async function fetchRaw(c: pg.Client, site: number, fromMs: number, toMs: number): Promise<RawRow[]> {
  const res = await c.query({
    text: `SELECT r.device_id, d.kind, (extract(epoch FROM r.ts) * 1000000)::float8,
             ${METRICS.map((m) => `r.${m.name}::float8`).join(', ')}
           FROM readings r JOIN devices d ON d.id = r.device_id
           WHERE r.site_id = $1 AND r.ts >= $2 AND r.ts < $3`,
    values: [site, iso(fromMs), iso(toMs)],
    rowMode: 'array',
  });
  return (res.rows as unknown[][]).map((r) => ({
    device: r[0] as number,
    kind: r[1] as DeviceKind,
    tsUs: r[2] as number,
    values: r.slice(3) as (number | null)[],
  }));
}

/** One device's samples of one metric in a step, reduced by agg; null when it has none. */
function reduceSamples(agg: Agg, samples: readonly { tsUs: number; v: number }[]): number | null {
  if (samples.length === 0) return null;
  if (agg === 'min') return Math.min(...samples.map((s) => s.v));
  if (agg === 'max') return Math.max(...samples.map((s) => s.v));
  if (agg === 'avg') return samples.reduce((a, s) => a + s.v, 0) / samples.length;
  return samples.reduce((a, s) => (s.tsUs > a.tsUs ? s : a)).v;
}

/** A site's figures in one step: what a series point says. */
interface StepFigures {
  drawnW: number | null;
  drawnSource: 'meter' | 'devices' | null;
  miningW: number | null;
  aiW: number | null;
  /** Per non-power metric: the combined value (sum, or mean over devices of its kinds). */
  metrics: Record<string, number | null>;
}

/** Drawn power by src/fleet/power-source.ts: the meters when every meter reported, else ASICs + GPUs + others. */
function drawnPower(
  metersTotal: number,
  metersReporting: number,
  meterW: number | null,
  groups: (number | null)[],
): { drawnW: number | null; drawnSource: 'meter' | 'devices' | null } {
  if (metersTotal > 0 && metersReporting === metersTotal && meterW !== null)
    return { drawnW: meterW, drawnSource: 'meter' };
  if (groups.every((g) => g === null) && meterW === null) return { drawnW: null, drawnSource: null };
  return { drawnW: groups.reduce<number>((a, g) => a + (g ?? 0), 0), drawnSource: 'devices' };
}

/** The rule from raw rows of one site and one step: each device reduced by agg, then devices combined. */
function figuresFromRaw(rows: readonly RawRow[], metersTotal: number, agg: Agg): StepFigures {
  const byDevice = new Map<number, RawRow[]>();
  for (const r of rows) {
    const list = byDevice.get(r.device);
    if (list) list.push(r);
    else byDevice.set(r.device, [r]);
  }
  const power: Record<PowerGroup, { sum: number; n: number }> = {
    meter: { sum: 0, n: 0 },
    asic: { sum: 0, n: 0 },
    gpu: { sum: 0, n: 0 },
    other: { sum: 0, n: 0 },
  };
  const combined = new Map(SITE_METRICS.map((m) => [m.name, { sum: 0, n: 0 }]));
  for (const samples of byDevice.values()) {
    const kind = samples[0]!.kind;
    METRICS.forEach((m, i) => {
      const vs = samples.filter((s) => s.values[i] !== null).map((s) => ({ tsUs: s.tsUs, v: s.values[i]! }));
      const v = reduceSamples(agg, vs);
      if (v === null) return;
      if (m.name === 'power_w') {
        if (kind !== 'pdu') {
          power[kind as PowerGroup].sum += v;
          power[kind as PowerGroup].n++;
        }
      } else if (m.kinds.includes(kind)) {
        const acc = combined.get(m.name)!;
        acc.sum += v;
        acc.n++;
      }
    });
  }
  const g = (k: PowerGroup) => (power[k].n > 0 ? power[k].sum : null);
  const metrics: Record<string, number | null> = {};
  for (const m of SITE_METRICS) {
    const acc = combined.get(m.name)!;
    metrics[m.name] = acc.n === 0 ? null : m.mean ? acc.sum / acc.n : acc.sum;
  }
  return {
    ...drawnPower(metersTotal, power.meter.n, g('meter'), [g('asic'), g('gpu'), g('other')]),
    miningW: g('asic'),
    aiW: g('gpu'),
    metrics,
  };
}

type RollupRow = Record<string, number | null>;

/** The same figures read from a site rollup row: sums of per-device aggregates and device counts. */
function figuresFromRollup(row: RollupRow, metersTotal: number, agg: Agg): StepFigures {
  const g = (k: PowerGroup) => row[`${k}_power_w_${agg}`] ?? null;
  const metrics: Record<string, number | null> = {};
  for (const m of SITE_METRICS) {
    const sum = row[`${m.name}_${agg}`] ?? null;
    const n = row[`${m.name}_n`] ?? null;
    metrics[m.name] = sum === null || n === null ? null : m.mean ? sum / n : sum;
  }
  return {
    ...drawnPower(metersTotal, row.meter_power_w_n ?? 0, g('meter'), [g('asic'), g('gpu'), g('other')]),
    miningW: g('asic'),
    aiW: g('gpu'),
    metrics,
  };
}

const close = (a: number | null, b: number | null): boolean =>
  a === null || b === null ? a === b : Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));

function sameFigures(a: StepFigures, b: StepFigures): string | null {
  if (a.drawnSource !== b.drawnSource) return `power source ${a.drawnSource} vs ${b.drawnSource}`;
  for (const k of ['drawnW', 'miningW', 'aiW'] as const)
    if (!close(a[k], b[k])) return `${k} ${a[k]} vs ${b[k]}`;
  for (const m of SITE_METRICS)
    if (!close(a.metrics[m.name]!, b.metrics[m.name]!))
      return `${m.name} ${a.metrics[m.name]} vs ${b.metrics[m.name]}`;
  return null;
}

interface CheckResult {
  what: string;
  steps: number;
  comparisons: number;
  mismatches: string[];
  meterSteps: number;
  deviceSteps: number;
}

/** Compares every step of a site rollup table in [from, to) with the rule computed from raw, for every agg. */
async function checkAgainstRaw(
  c: pg.Client,
  what: string,
  table: 'rollup_site_1m' | 'rollup_site_1h',
  site: number,
  fromMs: number,
  toMs: number,
): Promise<CheckResult> {
  const widthMs = table === 'rollup_site_1m' ? MINUTE_MS : HOUR_MS;
  const metersTotal = await scalar(c, `SELECT count(*) FROM devices WHERE site_id = $1 AND kind = 'meter'`, [
    site,
  ]);
  const raw = await fetchRaw(c, site, fromMs, toMs);
  const { rows } = await c.query<RollupRow & { b: number }>(
    `SELECT (extract(epoch FROM bucket) * 1000)::float8 AS b, * FROM ${table} WHERE site_id = $1 AND bucket >= $2 AND bucket < $3`,
    [site, iso(fromMs), iso(toMs)],
  );
  const stored = new Map(rows.map((r) => [r.b, r]));
  const out: CheckResult = { what, steps: 0, comparisons: 0, mismatches: [], meterSteps: 0, deviceSteps: 0 };
  const minuteEnergy: { b: number; drawn: number; mining: number; ai: number }[] = [];
  for (let b = fromMs; b < toMs; b += widthMs) {
    const inStep = raw.filter((r) => r.tsUs >= b * 1000 && r.tsUs < (b + widthMs) * 1000);
    const row = stored.get(b);
    out.steps++;
    if (inStep.length === 0 || !row) {
      if ((inStep.length === 0) !== !row)
        out.mismatches.push(`${iso(b)}: raw ${inStep.length} rows, rollup ${row ? 'row' : 'none'}`);
      continue;
    }
    for (const agg of AGGS) {
      const want = figuresFromRaw(inStep, metersTotal, agg);
      const got = figuresFromRollup(row, metersTotal, agg);
      out.comparisons++;
      if (agg === 'avg') want.drawnSource === 'meter' ? out.meterSteps++ : out.deviceSteps++;
      const diff = sameFigures(want, got);
      if (diff) out.mismatches.push(`${iso(b)} ${agg}: ${diff}`);
    }
  }
  if (table === 'rollup_site_1h') {
    // The hour's energy by src/history/energy.ts: per minute with data, mean drawn power × 60 s.
    for (let m = fromMs; m < toMs; m += MINUTE_MS) {
      const inMinute = raw.filter((r) => r.tsUs >= m * 1000 && r.tsUs < (m + MINUTE_MS) * 1000);
      if (inMinute.length === 0) continue;
      const f = figuresFromRaw(inMinute, metersTotal, 'avg');
      minuteEnergy.push({ b: m, drawn: f.drawnW ?? 0, mining: f.miningW ?? 0, ai: f.aiW ?? 0 });
    }
    for (let b = fromMs; b < toMs; b += HOUR_MS) {
      const ms = minuteEnergy.filter((e) => e.b >= b && e.b < b + HOUR_MS);
      const want = {
        energy_j: ms.reduce((a, e) => a + e.drawn * 60, 0),
        mining_energy_j: ms.reduce((a, e) => a + e.mining * 60, 0),
        ai_energy_j: ms.reduce((a, e) => a + e.ai * 60, 0),
        other_energy_j: ms.reduce((a, e) => a + Math.max(0, e.drawn - e.mining - e.ai) * 60, 0),
        power_minutes: ms.length,
      };
      const row = stored.get(b);
      for (const [k, v] of Object.entries(want)) {
        out.comparisons++;
        if (!close(v, row?.[k] ?? null)) out.mismatches.push(`${iso(b)} ${k}: ${v} vs ${row?.[k]}`);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writers: the ingest statement of src/storage/readings.ts (unnest, hand-built literals, 5k rows)

/** Devices in the order of a step's rows sorted by the key (site, ts, device). */
const STEP_ORDER = Array.from({ length: DEVICES }, (_, i) => i + 1).sort(
  (a, b) => siteOf(a) - siteOf(b) || offsetMs(a) - offsetMs(b) || a - b,
);

interface BatchRow {
  device: number;
  step: number;
}

function lit(values: readonly (number | string | null)[]): string | null {
  let out = '{';
  let present = false;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    if (v === null || v === undefined) out += 'NULL';
    else {
      out += String(v);
      present = true;
    }
  }
  return present ? `${out}}` : null;
}

const tsMsOf = (r: BatchRow): number => BASE_MS + r.step * STEP_MS + offsetMs(r.device);

function insertSql(receivedAt: boolean): string {
  const names = READING_COLUMNS.map(([c]) => c).join(', ');
  const u = READING_COLUMNS.map((_, i) => `c${i}`).join(', ');
  const arrays = READING_COLUMNS.map(([, t], i) => `$${i + 4}::${t}[]`).join(', ');
  return `INSERT INTO readings (site_id, device_id, ts, ${names}${receivedAt ? ', received_at' : ''})
    SELECT s, d, to_timestamp(t / 1000000.0), ${u}${receivedAt ? ', now()' : ''}
    FROM unnest($1::int[], $2::int[], $3::float8[], ${arrays}) AS u(s, d, t, ${u})
    ON CONFLICT DO NOTHING`;
}
const INSERT_PLAIN = insertSql(false);
const INSERT_RECEIVED = insertSql(true);

function batchParams(rows: readonly BatchRow[]): (string | null)[] {
  const values = rows.map((r) => liveValues(r.device, r.step));
  return [
    lit(rows.map((r) => siteOf(r.device))),
    lit(rows.map((r) => r.device)),
    lit(rows.map((r) => tsMsOf(r) * 1000)),
    ...READING_COLUMNS.map((_, i) => lit(values.map((v) => v[i]!))),
  ];
}

/** The (site, minute) marks of a batch for design (b1): a handful per 5 000 rows. */
function batchMarks(rows: readonly BatchRow[]): [string, string] {
  const seen = new Set<string>();
  const sites: number[] = [];
  const buckets: string[] = [];
  for (const r of rows) {
    const site = siteOf(r.device);
    const minute = Math.floor(tsMsOf(r) / MINUTE_MS) * MINUTE_MS;
    const key = `${site}:${minute}`;
    if (seen.has(key)) continue;
    seen.add(key);
    sites.push(site);
    buckets.push(`"${iso(minute)}"`);
  }
  return [`{${sites.join(',')}}`, `{${buckets.join(',')}}`];
}

type WriteMode = 'plain' | 'marks' | 'received_at' | 'marks+received_at';

/** One batch in one transaction, with the marks (b1) or received_at (b2) the design needs. */
async function writeBatch(c: pg.Client, rows: readonly BatchRow[], mode: WriteMode): Promise<void> {
  await c.query('BEGIN');
  try {
    await c.query(mode.includes('received_at') ? INSERT_RECEIVED : INSERT_PLAIN, batchParams(rows));
    if (mode.includes('marks'))
      await c.query(
        'INSERT INTO rollup_dirty (site_id, bucket) SELECT * FROM unnest($1::int[], $2::timestamptz[])',
        batchMarks(rows),
      );
    await c.query('COMMIT');
  } catch (error) {
    await c.query('ROLLBACK');
    throw error;
  }
}

/** The live fleet after the preload: batch i is the i-th 5 000 key-ordered rows of steps PRELOAD_STEPS… */
const BATCHES_PER_STEP = Math.ceil(DEVICES / BATCH);
function liveBatch(i: number): BatchRow[] {
  const step = PRELOAD_STEPS + Math.floor(i / BATCHES_PER_STEP);
  const part = i % BATCHES_PER_STEP;
  return STEP_ORDER.slice(part * BATCH, (part + 1) * BATCH).map((device) => ({ device, step }));
}

// ---------------------------------------------------------------------------------------------
// Rollup jobs (the designs of part 3). Each run is one transaction on the job's own connection.

interface JobRun {
  wallMs: number;
  pgCpuMs: number;
  /** Site-minute buckets rebuilt, and the raw rows they cover. */
  buckets: number;
  rawRows: number;
  /** Time of the detection step alone (b1's claim, b2's scan), in the run's wall time. */
  detectMs: number;
}

interface JobState {
  /** Start of the newest data step every writer is past: all data before it is committed. */
  headMs: () => number;
  /** (b2): received_at already scanned up to (DB clock), and buckets seen while still open. */
  sinceIso: string;
  pending: Map<string, { site: number; ms: number }>;
}

type Job = (conn: Conn, state: JobState) => Promise<JobRun>;
const SITE_MINUTE_SQL = siteMinuteSql('rollup_site_1m', 'window');
const rawRowsPerSiteMinute = (S.devicesPerSite * MINUTE_MS) / STEP_MS;

async function rebuild(conn: Conn, ranges: readonly Range[]): Promise<number> {
  if (ranges.length === 0) return 0;
  await conn.client.query(SITE_MINUTE_SQL, rangeParams(ranges));
  return ranges.reduce((a, r) => a + (r.toMs - r.fromMs) / MINUTE_MS, 0);
}

async function inJobRun(
  conn: Conn,
  body: () => Promise<{ buckets: number; detectMs: number }>,
): Promise<JobRun> {
  const cpu0 = processCpuUs(conn.pid);
  const t0 = performance.now();
  await conn.client.query('BEGIN');
  let r: { buckets: number; detectMs: number };
  try {
    r = await body();
    await conn.client.query('COMMIT');
  } catch (error) {
    await conn.client.query('ROLLBACK');
    throw error;
  }
  return {
    wallMs: performance.now() - t0,
    pgCpuMs: (processCpuUs(conn.pid) - cpu0) / 1000,
    buckets: r.buckets,
    rawRows: r.buckets * rawRowsPerSiteMinute,
    detectMs: r.detectMs,
  };
}

/** (a) Recompute the newest two minutes (the open one and the one before) of every site from raw. */
const slidingJob: Job = (conn, state) =>
  inJobRun(conn, async () => {
    const minute = Math.floor(state.headMs() / MINUTE_MS) * MINUTE_MS;
    return { buckets: await rebuild(conn, allSites(minute - MINUTE_MS, minute + MINUTE_MS)), detectMs: 0 };
  });

/**
 * (b1) Claim the marks of closed minutes and rebuild those buckets, in one transaction: marks whose
 * readings commit later are invisible to the DELETE and stay for the next run; a failed run rolls
 * its claims back.
 */
const dirtyLogJob: Job = (conn, state) =>
  inJobRun(conn, async () => {
    const closedMs = Math.floor(state.headMs() / MINUTE_MS) * MINUTE_MS;
    const t0 = performance.now();
    const { rows } = await conn.client.query<{ site_id: number; ms: number }>(
      `DELETE FROM rollup_dirty WHERE bucket < $1
       RETURNING site_id, (extract(epoch FROM bucket) * 1000)::float8 AS ms`,
      [iso(closedMs)],
    );
    const detectMs = performance.now() - t0;
    const ranges = mergeBuckets(
      rows.map((r) => ({ site: r.site_id, ms: r.ms })),
      MINUTE_MS,
    );
    return { buckets: await rebuild(conn, ranges), detectMs };
  });

/**
 * (b2) Find the buckets of rows received since the last scan (less a margin for transactions still
 * open when it ran) through the BRIN on received_at, and rebuild the closed ones; open ones wait.
 */
const RECEIVED_MARGIN_S = 2;
const receivedAtJob: Job = (conn, state) =>
  inJobRun(conn, async () => {
    const closedMs = Math.floor(state.headMs() / MINUTE_MS) * MINUTE_MS;
    const t0 = performance.now();
    const c = conn.client;
    const now = (await c.query<{ now: Date }>('SELECT now()')).rows[0]!.now;
    // New heap pages are unsummarised until this (autovacuum would do it); a scan reads them all.
    await c.query(
      `SELECT brin_summarize_new_values('readings_p${dayTag(BASE_MS)}_received_at_idx'::regclass)`,
    );
    const { rows } = await c.query<{ site_id: number; ms: number }>(
      `SELECT DISTINCT site_id, (extract(epoch FROM date_bin('1 minute', ts, timestamptz 'epoch')) * 1000)::float8 AS ms
       FROM readings WHERE received_at >= $1::timestamptz - make_interval(secs => ${RECEIVED_MARGIN_S})`,
      [state.sinceIso],
    );
    const detectMs = performance.now() - t0;
    state.sinceIso = now.toISOString();
    for (const r of rows) state.pending.set(`${r.site_id}:${r.ms}`, { site: r.site_id, ms: r.ms });
    const closed = [...state.pending.entries()].filter(([, p]) => p.ms < closedMs);
    for (const [key] of closed) state.pending.delete(key);
    return {
      buckets: await rebuild(
        conn,
        mergeBuckets(
          closed.map(([, p]) => p),
          MINUTE_MS,
        ),
      ),
      detectMs,
    };
  });

// ---------------------------------------------------------------------------------------------
// Part 3: ingest with and without the job, interleaved

interface IngestVariant {
  name: string;
  mode: WriteMode;
  job?: Job;
}
const INGEST_VARIANTS: IngestVariant[] = [
  { name: 'ingest only', mode: 'plain' },
  { name: '(a) sliding recompute of the newest 2 min, every period', mode: 'plain', job: slidingJob },
  { name: '(b1) dirty-bucket log, job rebuilds every closed minute', mode: 'marks', job: dirtyLogJob },
  {
    name: '(b2) received_at + BRIN watermark, job rebuilds every closed minute',
    mode: 'received_at',
    job: receivedAtJob,
  },
];

interface IngestRun {
  variant: string;
  round: number;
  rows: number;
  seconds: number;
  rowsPerS: number;
  /** Writer backends' CPU per row (the job's backend is counted apart). */
  writerPgUsPerRow: number;
  jobPgCpuMs: number;
  jobRuns: JobRun[];
  nodeUsPerRow: number;
  walBytesPerRow: number;
  /** Cores used by everything else on the machine during the window. */
  otherLoad: number;
  loadAvg1: number;
}

let nextBatch = 0;

async function ingestWindow(
  writers: Conn[],
  jobConn: Conn,
  v: IngestVariant,
  round: number,
): Promise<IngestRun> {
  const c = writers[0]!.client;
  // Another window's backlog is not this one's work: its marks, or its pages not yet BRIN-summarised.
  if (v.mode === 'marks') await c.query('TRUNCATE rollup_dirty');
  if (v.mode === 'received_at')
    await c.query(
      `SELECT brin_summarize_new_values('readings_p${dayTag(BASE_MS)}_received_at_idx'::regclass)`,
    );
  const inFlight = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY];
  let written = PRELOAD_STEPS + Math.floor(nextBatch / BATCHES_PER_STEP);
  const state: JobState = {
    headMs: () => BASE_MS + Math.min(written, ...inFlight) * STEP_MS,
    sinceIso: (await c.query<{ now: Date }>('SELECT now()')).rows[0]!.now.toISOString(),
    pending: new Map(),
  };
  const lsn = async () => scalar(c, `SELECT pg_current_wal_lsn() - '0/0'::pg_lsn`);
  const wal0 = await lsn();
  const cpu0 = writers.map((w) => processCpuUs(w.pid));
  const job0 = processCpuUs(jobConn.pid);
  const me0 = process.cpuUsage();
  const busy0 = machineBusyUs();
  const t0 = performance.now();
  const deadline = t0 + S.ingestWindowS * 1000;
  let rows = 0;
  const writer = async (j: number) => {
    while (performance.now() < deadline) {
      const i = nextBatch++;
      const batch = liveBatch(i);
      inFlight[j] = batch[0]!.step;
      await writeBatch(writers[j]!.client, batch, v.mode);
      written = Math.max(written, batch[0]!.step);
      inFlight[j] = Number.POSITIVE_INFINITY;
      rows += batch.length;
    }
  };
  const jobRuns: JobRun[] = [];
  const job = async () => {
    if (!v.job) return;
    // Runs at the middle of each period, so a window of k periods holds exactly k runs.
    for (let at = S.jobPeriodS / 2; at < S.ingestWindowS; at += S.jobPeriodS) {
      const wait = t0 + at * 1000 - performance.now();
      if (wait > 0) await sleep(wait);
      if (performance.now() >= deadline) break;
      jobRuns.push(await v.job(jobConn, state));
    }
  };
  await Promise.all([writer(0), writer(1), job()]);
  const seconds = (performance.now() - t0) / 1000;
  const writerCpu = writers.reduce((a, w, j) => a + processCpuUs(w.pid) - cpu0[j]!, 0);
  const jobCpu = processCpuUs(jobConn.pid) - job0;
  const me = process.cpuUsage(me0);
  const other = machineBusyUs() - busy0 - writerCpu - jobCpu - me.user - me.system;
  return {
    variant: v.name,
    round,
    rows,
    seconds,
    rowsPerS: rows / seconds,
    writerPgUsPerRow: writerCpu / rows,
    jobPgCpuMs: jobCpu / 1000,
    jobRuns,
    nodeUsPerRow: (me.user + me.system) / rows,
    walBytesPerRow: ((await lsn()) - wal0) / rows,
    otherLoad: Math.max(0, other / 1e6 / seconds),
    loadAvg1: os.loadavg()[0]!,
  };
}

async function partIngest(writers: Conn[], jobConn: Conn): Promise<IngestRun[]> {
  const runs: IngestRun[] = [];
  // Once, not per window: each window writes about max_wal_size of WAL, so a checkpoint falls in
  // most windows of every variant alike (and per-window CHECKPOINTs cost a minute of the budget).
  await writers[0]!.client.query('CHECKPOINT');
  for (let round = 0; round < S.ingestRounds; round++) {
    const k = round % INGEST_VARIANTS.length;
    const order = [...INGEST_VARIANTS.slice(k), ...INGEST_VARIANTS.slice(0, k)];
    for (const v of order) {
      const run = await ingestWindow(writers, jobConn, v, round);
      runs.push(run);
      console.error(
        `  ingest round ${round + 1} ${v.name}: ${fmt(run.rowsPerS)} rows/s, job ${fix(run.jobPgCpuMs, 0)} ms CPU in ${run.jobRuns.length} runs`,
      );
    }
  }
  return runs;
}

// ---------------------------------------------------------------------------------------------
// Part 3b: late readings (site 7's backfill after its outage) under each design

interface LateResult {
  backfillRows: number;
  backfillRowsPerS: number;
  bucketsInOutage: number;
  rolledBeforeBackfill: number;
  slidingRebuilt: number;
  rolledAfterSliding: number;
  dirtyLog: JobRun & { rolledAfter: number };
  hourRebuild: Cost;
  receivedAtDetect: { wallMs: number; pgCpuMs: number; bucketsFound: number; summariseMs: number };
  xminScan: { pages: number; rows: number; wallMs: number; pgCpuMs: number; usPerRow: number };
  checks: CheckResult[];
}

async function partLate(writers: Conn[], jobConn: Conn): Promise<LateResult> {
  const c = writers[0]!.client;
  const rolledIn = () =>
    scalar(c, `SELECT count(*) FROM rollup_site_1m WHERE site_id = $1 AND bucket >= $2 AND bucket < $3`, [
      OUTAGE.site,
      iso(OUTAGE.fromMs),
      iso(OUTAGE.toMs),
    ]);
  const bucketsInOutage = (OUTAGE.toMs - OUTAGE.fromMs) / MINUTE_MS;
  const rolledBeforeBackfill = await rolledIn();
  await c.query('TRUNCATE rollup_dirty');
  // So (b2)'s margin looks back past the last ingest window's rows: only the backfill is new.
  await sleep((RECEIVED_MARGIN_S + 1) * 1000);
  const since = (await c.query<{ now: Date }>('SELECT now()')).rows[0]!.now.toISOString();

  // The agent comes back and sends what it buffered: marks and received_at, so every design can see it.
  const siteDevices = STEP_ORDER.filter((d) => siteOf(d) === OUTAGE.site);
  const rows: BatchRow[] = [];
  for (let step = (OUTAGE.fromMs - BASE_MS) / STEP_MS; step < (OUTAGE.toMs - BASE_MS) / STEP_MS; step++)
    for (const device of siteDevices) rows.push({ device, step });
  const batches: BatchRow[][] = [];
  for (let i = 0; i < rows.length; i += BATCH) batches.push(rows.slice(i, i + BATCH));
  const t0 = performance.now();
  await Promise.all(
    [0, 1].map(async (j) => {
      for (let i = j; i < batches.length; i += 2)
        await writeBatch(writers[j]!.client, batches[i]!, 'marks+received_at');
    }),
  );
  const backfillRowsPerS = rows.length / ((performance.now() - t0) / 1000);

  // (a): its window follows the head of the data; the outage is hours behind it.
  const head = BASE_MS + (PRELOAD_STEPS + Math.floor(nextBatch / BATCHES_PER_STEP)) * STEP_MS;
  const state: JobState = { headMs: () => head, sinceIso: since, pending: new Map() };
  const sliding = await slidingJob(jobConn, state);
  const rolledAfterSliding = await rolledIn();

  // (b2): what its scan finds (the rebuild itself is the same statement as (b1)'s).
  const summarise = await timed(
    jobConn,
    `SELECT brin_summarize_new_values('readings_p${dayTag(BASE_MS)}_received_at_idx'::regclass)`,
  );
  const detect = await timed(
    jobConn,
    `SELECT DISTINCT site_id, date_bin('1 minute', ts, timestamptz 'epoch') FROM readings
     WHERE received_at >= $1::timestamptz - make_interval(secs => ${RECEIVED_MARGIN_S})`,
    [since],
  );

  // (b1): claims the marks, rebuilds the minutes; then the hour they fall in.
  const dirty = await dirtyLogJob(jobConn, state);
  const rolledAfter = await rolledIn();
  const hourStart = Math.floor(OUTAGE.fromMs / HOUR_MS) * HOUR_MS;
  const hourRebuild = await timed(
    jobConn,
    hourSql(),
    rangeParams([{ site: OUTAGE.site, fromMs: hourStart, toMs: hourStart + HOUR_MS }]),
  );
  const checks = [
    await checkAgainstRaw(
      c,
      'site 7 minutes around the backfilled outage',
      'rollup_site_1m',
      OUTAGE.site,
      OUTAGE.fromMs - 2 * MINUTE_MS,
      OUTAGE.toMs + 2 * MINUTE_MS,
    ),
    await checkAgainstRaw(
      c,
      'site 7 hour of the backfill',
      'rollup_site_1h',
      OUTAGE.site,
      hourStart,
      hourStart + HOUR_MS,
    ),
  ];

  // (b3) xmin: nothing indexes it, so finding late rows means reading every page of every partition
  // they could be in. Measured on the first tenth of the day's partition.
  const pages = Math.max(
    1,
    Math.floor(
      (await scalar(c, `SELECT relpages FROM pg_class WHERE relname = 'readings_p${dayTag(BASE_MS)}'`)) / 10,
    ),
  );
  const xid = await scalar(c, 'SELECT txid_current()');
  const xmin = await timed(
    jobConn,
    `SELECT count(*) FROM readings_p${dayTag(BASE_MS)} WHERE ctid < '(${pages},0)'::tid AND xmin::text::bigint >= $1`,
    [xid - 1000],
  );
  const xminRows = await scalar(
    c,
    `SELECT count(*) FROM readings_p${dayTag(BASE_MS)} WHERE ctid < '(${pages},0)'::tid`,
  );
  return {
    backfillRows: rows.length,
    backfillRowsPerS,
    bucketsInOutage,
    rolledBeforeBackfill,
    slidingRebuilt: sliding.buckets,
    rolledAfterSliding,
    dirtyLog: { ...dirty, rolledAfter },
    hourRebuild: { wallMs: hourRebuild.wallMs, pgCpuMs: hourRebuild.pgCpuMs },
    receivedAtDetect: {
      wallMs: detect.wallMs,
      pgCpuMs: detect.pgCpuMs,
      bucketsFound: detect.rows,
      summariseMs: summarise.wallMs,
    },
    xminScan: {
      pages,
      rows: xminRows,
      wallMs: xmin.wallMs,
      pgCpuMs: xmin.pgCpuMs,
      usPerRow: (xmin.pgCpuMs * 1000) / xminRows,
    },
    checks,
  };
}

// ---------------------------------------------------------------------------------------------
// Parts 1 and 2: building buckets from raw, what it costs, and whether it follows the rule

interface BuildCost {
  what: string;
  /** Raw readings the statement reads (site-minutes × devices × 6, less the outage). */
  rawRows: number;
  wallMs: number[];
  pgCpuMs: number[];
}

function addCost(list: BuildCost[], what: string, rawRows: number, cost: Cost): void {
  let entry = list.find((b) => b.what === what);
  if (!entry) {
    entry = { what, rawRows, wallMs: [], pgCpuMs: [] };
    list.push(entry);
  }
  entry.wallMs.push(cost.wallMs);
  entry.pgCpuMs.push(cost.pgCpuMs);
}

const fleetMinuteRows = S.sites * rawRowsPerSiteMinute;
const siteHourRows = rawRowsPerSiteMinute * 60;
const LAST_VARIANTS: [string, LastBy][] = [
  ['site-minute, one fleet-minute: last by window (design)', 'window'],
  ['site-minute, one fleet-minute: last by ordered array_agg', 'array'],
  ['site-minute, one fleet-minute: no last (floor)', 'none'],
];

async function partBuild(conn: Conn): Promise<{ costs: BuildCost[]; checks: CheckResult[] }> {
  const c = conn.client;
  const costs: BuildCost[] = [];
  const m = (minute: number) => BASE_MS + minute * MINUTE_MS;
  // Seeds: every site's first minutes (templates of the synthetic history), the two hours sites 3
  // and 10 are rolled up over, and site 7 up to the end of the preload (its outage has no rows yet).
  addCost(
    costs,
    `site-minute, ${SEED_MINUTES} fleet-minutes in one statement`,
    SEED_MINUTES * fleetMinuteRows,
    await timed(conn, SITE_MINUTE_SQL, rangeParams(allSites(m(0), m(SEED_MINUTES)))),
  );
  await c.query(
    SITE_MINUTE_SQL,
    rangeParams([3, METERLESS_SITE].map((site) => ({ site, fromMs: m(SEED_MINUTES), toMs: m(60) }))),
  );
  await c.query(
    SITE_MINUTE_SQL,
    rangeParams([{ site: OUTAGE.site, fromMs: m(SEED_MINUTES), toMs: m(S.preloadMinutes) }]),
  );

  for (const [, lastBy] of LAST_VARIANTS) await c.query(SITE_1M_DDL(`scratch_${lastBy}`, false));
  await c.query(SITE_1M_DDL('scratch_jit', false));
  let minute = 10;
  for (let round = 0; round < S.buildRounds; round++) {
    const order = [...LAST_VARIANTS.slice(round % 3), ...LAST_VARIANTS.slice(0, round % 3)];
    for (const [what, lastBy] of order) {
      const fm = minute++;
      addCost(
        costs,
        what,
        fleetMinuteRows,
        await timed(
          conn,
          siteMinuteSql(`scratch_${lastBy}`, lastBy),
          rangeParams(allSites(m(fm), m(fm + 1))),
        ),
      );
    }
    // The server's defaults, for comparison: jit on, work_mem 4 MB.
    const fm = minute++;
    await c.query('SET jit = on; SET work_mem = DEFAULT');
    addCost(
      costs,
      'site-minute, one fleet-minute: design with the server defaults (jit on, work_mem 4 MB)',
      fleetMinuteRows,
      await timed(conn, siteMinuteSql('scratch_jit', 'window'), rangeParams(allSites(m(fm), m(fm + 1)))),
    );
    await c.query(`SET jit = off; SET work_mem = '${JOB_WORK_MEM}'`);
    // What the dirty-bucket job mostly does: one site's minute.
    const site = 1 + (round % (S.sites - 1));
    addCost(
      costs,
      'site-minute, one site-minute (design)',
      rawRowsPerSiteMinute,
      await timed(
        conn,
        siteMinuteSql('scratch_window', 'window'),
        rangeParams([{ site, fromMs: m(25 + round), toMs: m(26 + round) }]),
      ),
    );
  }
  // Device-hour + site-hour of one site-hour from raw (two levels, RETURNING into the site row).
  for (const site of [3, METERLESS_SITE])
    addCost(
      costs,
      'device-hour + site-hour, one site-hour from raw',
      siteHourRows,
      await timed(conn, hourSql(), rangeParams([{ site, fromMs: BASE_MS, toMs: BASE_MS + HOUR_MS }])),
    );
  // Per-device minute rows, only to size that tier.
  addCost(
    costs,
    'device-minute, 5 fleet-minutes (to size the tier)',
    5 * fleetMinuteRows,
    await timed(conn, deviceMinuteSql('rollup_device_1m'), rangeParams(allSites(m(0), m(5)))),
  );

  const checks = [
    await checkAgainstRaw(c, 'site 1 (two meters), minutes', 'rollup_site_1m', 1, m(0), m(SEED_MINUTES)),
    await checkAgainstRaw(
      c,
      'site 3, minutes with its second meter silent from 00:10 to 00:15',
      'rollup_site_1m',
      3,
      m(5),
      m(20),
    ),
    await checkAgainstRaw(
      c,
      `site ${METERLESS_SITE} (no meter), minutes`,
      'rollup_site_1m',
      METERLESS_SITE,
      m(0),
      m(10),
    ),
    await checkAgainstRaw(
      c,
      'site 3, hour 00 (from its device-hour rows)',
      'rollup_site_1h',
      3,
      BASE_MS,
      BASE_MS + HOUR_MS,
    ),
    await checkAgainstRaw(
      c,
      `site ${METERLESS_SITE}, hour 00`,
      'rollup_site_1h',
      METERLESS_SITE,
      BASE_MS,
      BASE_MS + HOUR_MS,
    ),
  ];
  return { costs, checks };
}

// ---------------------------------------------------------------------------------------------
// Part 1: sizes. Synthetic history (copies of the rows built above, shifted in time, inserted in
// bucket order with the key in place, as the job would), then alternatives of the row shape.

async function fillHistory(c: pg.Client): Promise<number> {
  const t0 = performance.now();
  // Templates in plain temporary tables: a join on the partitioned tables prunes per row and is slow.
  await c.query(
    `CREATE TEMP TABLE tpl_1m AS SELECT * FROM rollup_site_1m WHERE bucket >= $1 AND bucket < $2`,
    [iso(BASE_MS), iso(BASE_MS + SEED_MINUTES * MINUTE_MS)],
  );
  await c.query(`CREATE TEMP TABLE tpl_1h AS SELECT * FROM rollup_site_1h WHERE bucket = $1`, [iso(BASE_MS)]);
  await c.query(
    `CREATE TEMP TABLE tpl_dev AS SELECT * FROM rollup_device_1h WHERE site_id = 3 AND bucket = $1 AND device_id <= $2`,
    [iso(BASE_MS), 2 * S.devicesPerSite + HISTORY_DEVICES],
  );
  const siteCols = SITE_COLUMNS.join(', ');
  for (let d = S.siteMinuteDays; d >= 1; d--) {
    await c.query(
      `INSERT INTO rollup_site_1m (site_id, bucket, ${siteCols})
       SELECT t.site_id, $1::timestamptz + make_interval(mins => g.m), ${SITE_COLUMNS.map((x) => `t.${x}`).join(', ')}
       FROM generate_series(0, 1439) g(m) JOIN tpl_1m t
         ON t.bucket = $2::timestamptz + make_interval(mins => g.m % ${SEED_MINUTES})
       ORDER BY g.m, t.site_id`,
      [iso(BASE_MS - d * DAY_MS), iso(BASE_MS)],
    );
  }
  const hourCols = [...SITE_COLUMNS, ...SITE_HOUR_ENERGY];
  await c.query(
    `INSERT INTO rollup_site_1h (site_id, bucket, ${hourCols.join(', ')})
     SELECT s, b, ${hourCols.map((x) => `t.${x}`).join(', ')}
     FROM generate_series($1::timestamptz, $2::timestamptz, interval '1 hour') b
     CROSS JOIN generate_series(1, ${S.sites}) s
     JOIN tpl_1h t ON t.site_id = CASE WHEN s % 2 = 1 THEN 3 ELSE ${METERLESS_SITE} END
     ORDER BY b, s`,
    [iso(BASE_MS - S.siteHourDays * DAY_MS), iso(BASE_MS - HOUR_MS)],
  );
  for (let d = S.deviceHourDays; d >= 1; d--) {
    await c.query(
      `INSERT INTO rollup_device_1h (site_id, device_id, bucket, ${DEVICE_COLUMNS.join(', ')})
       SELECT t.site_id, t.device_id, b, ${DEVICE_COLUMNS.map((x) => `t.${x}`).join(', ')}
       FROM generate_series($1::timestamptz, $1::timestamptz + interval '23 hours', interval '1 hour') b
       CROSS JOIN tpl_dev t
       ORDER BY b, t.device_id`,
      [iso(BASE_MS - d * DAY_MS)],
    );
  }
  console.error(`  history rows ${fix((performance.now() - t0) / 1000, 1)} s`);
  await c.query('VACUUM ANALYZE rollup_site_1m, rollup_site_1h, rollup_device_1h, rollup_device_1m');
  return (performance.now() - t0) / 1000;
}

interface ShapeSize {
  table: string;
  shape: string;
  rows: number;
  bytesPerRow: number;
  heapBytesPerRow: number;
}

async function measureSize(c: pg.Client, table: string, shape: string): Promise<ShapeSize> {
  const s = await tableSize(c, table);
  return { table, shape, rows: s.rows, bytesPerRow: s.bytes / s.rows, heapBytesPerRow: s.heap / s.rows };
}

/** A jsonb object of the columns' non-null values (jsonb_build_object takes at most 100 arguments). */
function jsonbOf(columns: readonly string[]): string {
  const parts: string[] = [];
  for (let i = 0; i < columns.length; i += 40)
    parts.push(
      `jsonb_build_object(${columns
        .slice(i, i + 40)
        .map((x) => `'${x}', ${x}`)
        .join(', ')})`,
    );
  return `jsonb_strip_nulls(${parts.join(' || ')})`;
}

/** The device row in other shapes: narrower types, arrays, jsonb; same key, same sample of rows. */
async function alternatives(c: pg.Client): Promise<ShapeSize[]> {
  const sample = `(SELECT * FROM rollup_device_1h WHERE site_id = 3 ORDER BY bucket, device_id LIMIT 100000) x`;
  const key = 'site_id int NOT NULL, device_id int NOT NULL, bucket timestamptz NOT NULL';
  const pk = 'PRIMARY KEY (site_id, device_id, bucket)';
  const out: ShapeSize[] = [];
  const make = async (name: string, shape: string, columns: string, select: string) => {
    await c.query(`CREATE TABLE ${name} (${key}, ${columns}, ${pk})`);
    await c.query(`INSERT INTO ${name} SELECT site_id, device_id, bucket, ${select} FROM ${sample}`);
    await c.query(`VACUUM ANALYZE ${name}`);
    out.push(await measureSize(c, name, shape));
  };
  await make(
    'alt_device_wide',
    'wide: float8 values, int4 counts (the design)',
    DEVICE_COLUMNS.map((x) => `${x} ${colType(x)}`).join(', '),
    DEVICE_COLUMNS.join(', '),
  );
  const compactType = (x: string) => {
    if (x.endsWith('_n') || x === 'power_minutes') return 'smallint';
    const m = METRICS.find((mm) => x.startsWith(`${mm.name}_`));
    return m?.type === 'real' && !x.endsWith('_sum') ? 'real' : 'float8';
  };
  await make(
    'alt_device_compact',
    'wide, compact: real for the float4 metrics (not their sums), smallint counts',
    DEVICE_COLUMNS.map((x) => `${x} ${compactType(x)}`).join(', '),
    DEVICE_COLUMNS.map((x) => `${x}::${compactType(x)}`).join(', '),
  );
  await make(
    'alt_device_arrays',
    'one float8[5] per metric {min,max,sum,last,n}',
    [...METRICS.map((m) => `${m.name} float8[]`), 'energy_j float8', 'power_minutes int'].join(', '),
    [
      ...METRICS.map(
        (m) =>
          `CASE WHEN ${m.name}_n IS NOT NULL THEN ARRAY[${m.name}_min, ${m.name}_max, ${m.name}_sum, ${m.name}_last, ${m.name}_n] END`,
      ),
      'energy_j',
      'power_minutes',
    ].join(', '),
  );
  await make(
    'alt_device_one_array',
    'one float8[] of every value (NULLs in its bitmap)',
    'v float8[]',
    `ARRAY[${DEVICE_COLUMNS.map((x) => `${x}::float8`).join(', ')}]`,
  );
  await make(
    'alt_device_jsonb',
    'jsonb of the non-null values, keyed by column name',
    'v jsonb',
    jsonbOf(DEVICE_COLUMNS),
  );
  await c.query(
    `CREATE TABLE alt_site_jsonb (site_id int NOT NULL, bucket timestamptz NOT NULL, v jsonb, PRIMARY KEY (site_id, bucket))`,
  );
  await c.query(
    `INSERT INTO alt_site_jsonb SELECT site_id, bucket, ${jsonbOf(SITE_COLUMNS)}
     FROM (SELECT * FROM rollup_site_1m ORDER BY bucket, site_id LIMIT 100000) x`,
  );
  await c.query(`CREATE TABLE alt_site_wide (LIKE rollup_site_1m INCLUDING ALL)`);
  await c.query(
    `INSERT INTO alt_site_wide SELECT * FROM rollup_site_1m ORDER BY bucket, site_id LIMIT 100000`,
  );
  await c.query('VACUUM ANALYZE alt_site_jsonb, alt_site_wide');
  out.push(await measureSize(c, 'alt_site_wide', 'site row, wide (the design)'));
  out.push(await measureSize(c, 'alt_site_jsonb', 'site row, jsonb of the non-null values'));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Part 4: read latency

interface ReadProbe {
  what: string;
  points: number;
  serverMs: number[];
  clientMs: number[];
  pages: number[];
}

async function probe(
  c: pg.Client,
  list: ReadProbe[],
  what: string,
  text: string,
  params: unknown[],
): Promise<void> {
  let entry = list.find((p) => p.what === what);
  if (!entry) {
    entry = { what, points: 0, serverMs: [], clientMs: [], pages: [] };
    list.push(entry);
  }
  await c.query(text, params); // warm: the figures are for a cached page set
  const t0 = performance.now();
  const res = await c.query<RollupRow>(text, params);
  // What the API does with the rows: the power rule per point (a few µs; part of the client figure).
  // Two meters, as most sites here have; the figure only needs the work, not the answer.
  for (const row of res.rows) figuresFromRollupPower(row, 2);
  entry.clientMs.push(performance.now() - t0);
  entry.points = res.rowCount ?? 0;
  const { rows } = await c.query<{
    'QUERY PLAN': [{ Plan: Record<string, number>; 'Execution Time': number }];
  }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`, params);
  const plan = rows[0]!['QUERY PLAN'][0];
  entry.serverMs.push(plan['Execution Time']);
  entry.pages.push((plan.Plan['Shared Hit Blocks'] ?? 0) + (plan.Plan['Shared Read Blocks'] ?? 0));
}

function figuresFromRollupPower(row: RollupRow, metersTotal: number): number | null {
  return drawnPower(metersTotal, row.meter_power_w_n ?? 0, row.meter_power_w_avg ?? null, [
    row.asic_power_w_avg ?? null,
    row.gpu_power_w_avg ?? null,
    row.other_power_w_avg ?? null,
  ]).drawnW;
}

const POWER_READ_COLUMNS =
  'bucket, meter_power_w_n, meter_power_w_avg, asic_power_w_avg, gpu_power_w_avg, other_power_w_avg';

/** The raw path for the same answer (the shape of sitePowerSteps in src/storage/history.ts). */
const rawPowerSql = (width: string) => `
  SELECT b AS bucket, count(p) FILTER (WHERE kind = 'meter') AS meter_power_w_n,
    sum(p) FILTER (WHERE kind = 'meter') AS meter_power_w_avg,
    sum(p) FILTER (WHERE kind = 'asic') AS asic_power_w_avg, sum(p) FILTER (WHERE kind = 'gpu') AS gpu_power_w_avg,
    sum(p) FILTER (WHERE kind = 'other') AS other_power_w_avg
  FROM (SELECT date_bin('${width}', r.ts, timestamptz 'epoch') AS b, r.device_id, d.kind, avg(r.power_w) AS p
        FROM readings r JOIN devices d ON d.id = r.device_id
        WHERE r.site_id = $1 AND r.ts >= $2 AND r.ts < $3 AND r.power_w IS NOT NULL
        GROUP BY 1, 2, 3) per_device
  GROUP BY b ORDER BY b`;

async function partRead(c: pg.Client): Promise<ReadProbe[]> {
  const list: ReadProbe[] = [];
  const rawProbes = Math.min(S.probes, 3);
  for (let p = 0; p < S.probes; p++) {
    const site = 1 + (p % S.sites);
    const dayStart = BASE_MS - (1 + (p % S.siteMinuteDays)) * DAY_MS;
    await probe(
      c,
      list,
      '24 h × 1 min site power, site-minute rollup',
      `SELECT ${POWER_READ_COLUMNS} FROM rollup_site_1m WHERE site_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket`,
      [site, iso(dayStart), iso(dayStart + DAY_MS)],
    );
    const end = BASE_MS - (p % Math.max(1, S.siteHourDays - 30)) * DAY_MS;
    await probe(
      c,
      list,
      '30 d × 1 h site power, site-hour rollup',
      `SELECT ${POWER_READ_COLUMNS} FROM rollup_site_1h WHERE site_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket`,
      [site, iso(end - 30 * DAY_MS), iso(end)],
    );
    const device = 2 * S.devicesPerSite + 11 + ((p * 97) % (HISTORY_DEVICES - 11)); // a compute device of site 3
    await probe(
      c,
      list,
      `${Math.min(30, S.deviceHourDays)} d × 1 h device power, device-hour rollup`,
      `SELECT bucket, power_w_sum / power_w_n AS power_w_avg FROM rollup_device_1h
       WHERE site_id = 3 AND device_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket`,
      [device, iso(BASE_MS - Math.min(30, S.deviceHourDays) * DAY_MS), iso(BASE_MS)],
    );
    if (p < rawProbes) {
      const rawSite = [1, 2, 4, 5, 6][p % 5]!;
      // The preload is one hour of a day's partition, so a 30-min range is half the table and the
      // planner would scan all of it; in a full day it is 1/48 and the key is the plan (as here).
      await c.query('SET enable_seqscan = off');
      for (const minutes of [30, 60])
        await probe(c, list, `${minutes} min × 1 min site power, raw`, rawPowerSql('1 minute'), [
          rawSite,
          iso(BASE_MS),
          iso(BASE_MS + minutes * MINUTE_MS),
        ]);
      await c.query('SET enable_seqscan = on');
    }
  }
  return list;
}

// ---------------------------------------------------------------------------------------------
// Derived figures

interface IngestSummary {
  variant: string;
  rowsPerS: number;
  /** Median over rounds of this variant's rate over the same round's "ingest only" rate. */
  rateRatio: number;
  writerPgUsPerRow: number;
  walBytesPerRow: number;
  jobPgCpuMsPerRun: number;
  jobWallMsPerRun: number;
  jobDetectMsPerRun: number;
  bucketsPerRun: number;
  jobPgCpuMsPerSiteMinute: number;
  otherLoad: number;
}

function summariseIngest(runs: readonly IngestRun[]): IngestSummary[] {
  return INGEST_VARIANTS.map((v) => {
    const mine = runs.filter((r) => r.variant === v.name);
    const ratios = mine.map((r) => {
      const base = runs.find((b) => b.round === r.round && b.variant === INGEST_VARIANTS[0]!.name)!;
      return r.rowsPerS / base.rowsPerS;
    });
    const jobRuns = mine.flatMap((r) => r.jobRuns);
    const buckets = jobRuns.reduce((a, j) => a + j.buckets, 0);
    return {
      variant: v.name,
      rowsPerS: median(mine.map((r) => r.rowsPerS)),
      rateRatio: median(ratios),
      writerPgUsPerRow: median(mine.map((r) => r.writerPgUsPerRow)),
      walBytesPerRow: median(mine.map((r) => r.walBytesPerRow)),
      jobPgCpuMsPerRun: median(jobRuns.map((j) => j.pgCpuMs)),
      jobWallMsPerRun: median(jobRuns.map((j) => j.wallMs)),
      jobDetectMsPerRun: median(jobRuns.map((j) => j.detectMs)),
      bucketsPerRun: median(jobRuns.map((j) => j.buckets)),
      jobPgCpuMsPerSiteMinute:
        buckets > 0 ? jobRuns.reduce((a, j) => a + j.pgCpuMs, 0) / buckets : Number.NaN,
      otherLoad: median(mine.map((r) => r.otherLoad)),
    };
  });
}

interface Fleet {
  name: string;
  sites: number;
  devices: number;
}
const FLEETS: Fleet[] = [
  {
    name: `${FULL.sites} sites × ${fmt(FULL.devicesPerSite)} devices`,
    sites: FULL.sites,
    devices: FULL.sites * FULL.devicesPerSite,
  },
  { name: '1,000 sites / 300,000 devices (the issue)', sites: 1_000, devices: 300_000 },
];

interface Tier {
  tier: string;
  keepDays: number;
  rowsPerDay: (f: Fleet) => number;
  bytesPerRow: number;
}

function projections(tiers: readonly Tier[]): { tier: string; fleet: string; rows: number; gb: number }[] {
  return tiers.flatMap((t) =>
    FLEETS.map((f) => {
      const rows = t.rowsPerDay(f) * t.keepDays;
      return { tier: t.tier, fleet: f.name, rows, gb: (rows * t.bytesPerRow) / 1e9 };
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Main

async function admin(text: string): Promise<void> {
  const c = new pg.Client({ ...PG, database: 'postgres' });
  await c.connect();
  await c.query(text).finally(() => c.end());
}

/** The rollup job's session setting: a fleet-minute's window sort fits in memory. */
const JOB_WORK_MEM = '64MB';
const jobConnOf = (all: readonly Conn[]): Conn => all[2]!;

const started = Date.now();
const loadAtStart = os.loadavg();
await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
await admin(`CREATE DATABASE ${DB_NAME}`);
const conns: Conn[] = [];
try {
  conns.push(await connect(DB_NAME), await connect(DB_NAME), await connect(DB_NAME));
  // The job's session: no JIT (it made no difference to a fleet-minute, measured in the build costs,
  // and its compile time would be paid per statement), and room for its window sorts.
  for (const conn of conns) await conn.client.query('SET jit = off');
  await jobConnOf(conns).client.query(`SET work_mem = '${JOB_WORK_MEM}'`);
  const [w0, w1, jobConn] = conns as [Conn, Conn, Conn];
  const c = w0.client;
  const settings = await c.query<{ name: string; setting: string; unit: string | null }>(
    `SELECT name, setting, unit FROM pg_settings WHERE name IN ('server_version', 'shared_buffers', 'work_mem',
      'maintenance_work_mem', 'autovacuum', 'synchronous_commit', 'max_wal_size', 'checkpoint_timeout',
      'wal_compression', 'max_parallel_workers_per_gather', 'jit')`,
  );
  console.error(`preloading ${fmt(DEVICES)} devices × ${PRELOAD_STEPS} steps…`);
  const load = await setup([w0, w1]);
  const rawAfterPreload = await tableSize(c, 'readings');
  console.error(`  preload ${fix(load.preloadSeconds, 0)} s + keys ${fix(load.indexSeconds, 0)} s`);

  const build = await partBuild(jobConn);
  console.error('  builds and checks done');
  const historySeconds = await fillHistory(c);
  console.error(`  synthetic history ${fix(historySeconds, 0)} s`);
  const sizes = [
    await measureSize(c, 'rollup_site_1m', 'site-minute, wide'),
    await measureSize(c, 'rollup_site_1h', 'site-hour, wide'),
    await measureSize(c, 'rollup_device_1h', 'device-hour, wide'),
    await measureSize(c, 'rollup_device_1m', 'device-minute, wide'),
  ];
  const shapes = await alternatives(c);
  const reads = await partRead(c);
  console.error('  reads done');
  const ingest = await partIngest([w0, w1], jobConn);
  const late = await partLate([w0, w1], jobConn);
  console.error('  late readings done');
  const rawAfterIngest = await tableSize(c, 'readings');
  const rawInsertedBytesPerRow =
    (rawAfterIngest.bytes - rawAfterPreload.bytes) / (rawAfterIngest.rows - rawAfterPreload.rows);

  const sizeOf = (table: string) => sizes.find((s) => s.table === table)!.bytesPerRow;
  const tiers: Tier[] = [
    {
      tier: 'site-minute, kept 90 d',
      keepDays: 90,
      rowsPerDay: (f) => f.sites * 1440,
      bytesPerRow: sizeOf('rollup_site_1m'),
    },
    {
      tier: 'site-hour, kept 2 y',
      keepDays: 730,
      rowsPerDay: (f) => f.sites * 24,
      bytesPerRow: sizeOf('rollup_site_1h'),
    },
    {
      tier: 'device-hour, kept 2 y',
      keepDays: 730,
      rowsPerDay: (f) => f.devices * 24,
      bytesPerRow: sizeOf('rollup_device_1h'),
    },
    {
      tier: 'device-minute, kept 90 d (not proposed)',
      keepDays: 90,
      rowsPerDay: (f) => f.devices * 1440,
      bytesPerRow: sizeOf('rollup_device_1m'),
    },
    {
      tier: 'device-minute, kept 14 d (not proposed)',
      keepDays: 14,
      rowsPerDay: (f) => f.devices * 1440,
      bytesPerRow: sizeOf('rollup_device_1m'),
    },
    {
      tier: 'raw readings, kept 14 d (for comparison)',
      keepDays: 14,
      rowsPerDay: (f) => f.devices * 8640,
      bytesPerRow: rawInsertedBytesPerRow,
    },
  ];
  const ingestSummary = summariseIngest(ingest);
  const fleetReadingsPerS = DEVICES / (STEP_MS / 1000);
  const base = ingestSummary[0]!;
  const hourCost = median(build.costs.find((b) => b.what.startsWith('device-hour'))!.pgCpuMs);
  /** At the fleet's own rate: what each design costs per second of wall time, next to ingest itself. */
  const production = ingestSummary.map((s) => {
    const mode = INGEST_VARIANTS.find((v) => v.name === s.variant)!.mode;
    // Only a design that writes more per batch (marks, received_at) costs ingest per row.
    const markUs = mode === 'plain' ? 0 : Math.max(0, s.writerPgUsPerRow - base.writerPgUsPerRow);
    const jobMsPerS =
      s.variant === base.variant
        ? 0
        : s.variant.startsWith('(a)')
          ? s.jobPgCpuMsPerRun / S.jobPeriodS
          : (s.jobPgCpuMsPerSiteMinute * S.sites) / 60;
    const hourlyMsPerS = s.variant === base.variant ? 0 : (hourCost * S.sites) / 3600;
    const extraMsPerS = (fleetReadingsPerS * markUs) / 1000 + jobMsPerS + hourlyMsPerS;
    return {
      variant: s.variant,
      ingestPgMsPerS: (fleetReadingsPerS * base.writerPgUsPerRow) / 1000,
      writeExtraPgMsPerS: (fleetReadingsPerS * markUs) / 1000,
      jobPgMsPerS: jobMsPerS,
      hourlyJobPgMsPerS: hourlyMsPerS,
      shareOfIngestCpu: extraMsPerS / ((fleetReadingsPerS * base.writerPgUsPerRow) / 1000),
      shareOfMachine: extraMsPerS / 1000 / os.cpus().length,
    };
  });

  const result = {
    measured: new Date().toISOString(),
    quick: QUICK_RUN,
    wallSeconds: (Date.now() - started) / 1000,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      loadAvgAtStart: loadAtStart,
      loadAvgAtEnd: os.loadavg(),
      note: 'cores shared with other agents; rates move with their load, PG CPU per row much less',
    },
    postgres: Object.fromEntries(
      settings.rows.map((r) => [r.name, `${r.setting}${r.unit ? ` ${r.unit}` : ''}`]),
    ),
    scale: {
      ...S,
      devices: DEVICES,
      preloadRows: rawAfterPreload.rows,
      fleetReadingsPerS,
      kinds: 'per site 2 meters, 2 PDUs, 6 other, rest 90 % ASIC / 10 % GPU; last site has no meter',
      batch: BATCH,
      writerConnections: 2,
    },
    preloadSeconds: load.preloadSeconds,
    indexSeconds: load.indexSeconds,
    historySeconds,
    checks: [...build.checks, ...late.checks].map((k) => ({
      ...k,
      mismatches: k.mismatches.slice(0, 10),
      mismatchCount: k.mismatches.length,
    })),
    buildCosts: build.costs.map((b) => ({
      ...b,
      medianWallMs: median(b.wallMs),
      medianPgCpuMs: median(b.pgCpuMs),
      pgUsPerRawRow: (median(b.pgCpuMs) * 1000) / b.rawRows,
    })),
    sizes,
    shapes,
    raw: {
      afterPreload: rawAfterPreload,
      afterIngest: rawAfterIngest,
      bytesPerPreloadedRow: rawAfterPreload.bytes / rawAfterPreload.rows,
      bytesPerInsertedRow: rawInsertedBytesPerRow,
    },
    projections: projections(tiers),
    reads: reads.map((r) => ({
      ...r,
      serverMedianMs: median(r.serverMs),
      serverP95Ms: p95(r.serverMs),
      clientMedianMs: median(r.clientMs),
      clientP95Ms: p95(r.clientMs),
      medianPages: median(r.pages),
    })),
    ingest: { runs: ingest, summary: ingestSummary, production },
    late,
  };
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/rollup-shapes${QUICK_RUN ? '.quick' : ''}.json`;
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

  console.log(`## Rule checks (rollup against the rule computed in Node from raw, every agg)\n`);
  for (const k of result.checks)
    console.log(
      `- ${k.what}: ${k.steps} steps (${k.meterSteps} by meter, ${k.deviceSteps} by devices), ${k.comparisons} comparisons, ${k.mismatchCount} mismatches${k.mismatchCount ? `: ${k.mismatches.join('; ')}` : ''}`,
    );
  console.log(`\n## Build cost (median of ${S.buildRounds})\n`);
  console.log('| statement | raw rows | wall ms | PG CPU ms | PG µs / raw row |');
  console.log('|---|---|---|---|---|');
  for (const b of result.buildCosts)
    console.log(
      `| ${b.what} | ${fmt(b.rawRows)} | ${fix(b.medianWallMs)} | ${fix(b.medianPgCpuMs)} | ${fix(b.pgUsPerRawRow, 2)} |`,
    );
  console.log('\n## Sizes\n');
  console.log('| table / shape | rows | bytes/row (heap + index) | heap bytes/row |');
  console.log('|---|---|---|---|');
  for (const s of [...sizes, ...shapes])
    console.log(`| ${s.shape} | ${fmt(s.rows)} | ${fix(s.bytesPerRow, 0)} | ${fix(s.heapBytesPerRow, 0)} |`);
  console.log(
    `\nraw readings: ${fix(result.raw.bytesPerPreloadedRow, 0)} B/row preloaded (sorted index), ${fix(rawInsertedBytesPerRow, 0)} B/row inserted\n`,
  );
  console.log('| tier | fleet | rows | GB |');
  console.log('|---|---|---|---|');
  for (const p of result.projections)
    console.log(`| ${p.tier} | ${p.fleet} | ${fmt(p.rows)} | ${fix(p.gb, 1)} |`);
  console.log(`\n## Reads (${S.probes} probes; raw ${Math.min(S.probes, 3)})\n`);
  console.log('| query | points | server ms median / p95 | client ms median / p95 | pages |');
  console.log('|---|---|---|---|---|');
  for (const r of result.reads)
    console.log(
      `| ${r.what} | ${r.points} | ${fix(r.serverMedianMs, 2)} / ${fix(r.serverP95Ms, 2)} | ${fix(r.clientMedianMs, 2)} / ${fix(r.clientP95Ms, 2)} | ${fmt(r.medianPages)} |`,
    );
  console.log(
    `\n## Ingest with the job (${S.ingestRounds} rounds × ${S.ingestWindowS} s, job every ${S.jobPeriodS} s)\n`,
  );
  console.log(
    '| variant | rows/s | × ingest only | writer PG µs/row | WAL B/row | job PG ms/run | site-minutes/run | job PG ms / site-minute | detect ms/run | other load |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const s of ingestSummary)
    console.log(
      `| ${s.variant} | ${fmt(s.rowsPerS)} | ${fix(s.rateRatio, 3)} | ${fix(s.writerPgUsPerRow, 2)} | ${fmt(s.walBytesPerRow)} | ${fix(s.jobPgCpuMsPerRun, 0)} | ${fix(s.bucketsPerRun, 0)} | ${fix(s.jobPgCpuMsPerSiteMinute, 2)} | ${fix(s.jobDetectMsPerRun, 1)} | ${fix(s.otherLoad, 2)} |`,
    );
  console.log(`\nAt the fleet's own rate (${fmt(fleetReadingsPerS)} readings/s):\n`);
  console.log(
    '| variant | ingest PG ms/s | extra write PG ms/s | minute job PG ms/s | hourly job PG ms/s | extra / ingest CPU | extra / machine |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const p of production)
    console.log(
      `| ${p.variant} | ${fix(p.ingestPgMsPerS, 1)} | ${fix(p.writeExtraPgMsPerS, 2)} | ${fix(p.jobPgMsPerS, 2)} | ${fix(p.hourlyJobPgMsPerS, 2)} | ${fix(p.shareOfIngestCpu * 100, 1)} % | ${fix(p.shareOfMachine * 100, 2)} % |`,
    );
  console.log('\n## Late readings\n');
  console.log(
    `- backfill of ${fmt(late.backfillRows)} rows (site ${OUTAGE.site}, ${late.bucketsInOutage} minutes) at ${fmt(late.backfillRowsPerS)} rows/s`,
  );
  console.log(
    `- rolled buckets in the outage: before ${late.rolledBeforeBackfill}, after (a) sliding pass ${late.rolledAfterSliding} (it rebuilt ${late.slidingRebuilt} others), after (b1) ${late.dirtyLog.rolledAfter}`,
  );
  console.log(
    `- (b1) job: ${late.dirtyLog.buckets} site-minutes in ${fix(late.dirtyLog.wallMs, 0)} ms (PG ${fix(late.dirtyLog.pgCpuMs, 0)} ms, claim ${fix(late.dirtyLog.detectMs, 1)} ms); the hour: ${fix(late.hourRebuild.wallMs, 0)} ms (PG ${fix(late.hourRebuild.pgCpuMs, 0)} ms)`,
  );
  console.log(
    `- (b2) scan: ${late.receivedAtDetect.bucketsFound} buckets found in ${fix(late.receivedAtDetect.wallMs, 1)} ms (PG ${fix(late.receivedAtDetect.pgCpuMs, 1)} ms) after a ${fix(late.receivedAtDetect.summariseMs, 0)} ms BRIN summarise`,
  );
  console.log(
    `- (b3) xmin scan: ${fmt(late.xminScan.rows)} rows (${fmt(late.xminScan.pages)} pages) in ${fix(late.xminScan.wallMs, 0)} ms, ${fix(late.xminScan.usPerRow, 3)} µs/row`,
  );
  console.log(`\nwall-clock ${fix((Date.now() - started) / 1000, 0)} s; results in ${file}`);
} finally {
  for (const conn of conns) await conn.client.end().catch(() => undefined);
  await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
}
