/**
 * Measurement for the next design step (nothing here is used by src/): how to make the wide
 * `readings` row idempotent per (device, ts, metric), and where to store the extra metrics of
 * src/catalog/extra-metrics.ts. Findings: docs/storage.md, "Extra metrics and per-sample idempotency".
 *
 *   node bench/extra-metrics-shapes.ts [--quick]
 *
 * Creates its own database `hashwatt_extra_shapes` on 127.0.0.1:5432 (user postgres) and drops it at
 * the end, also on failure. Prints markdown and writes bench/results/extra-metrics-shapes.json
 * (extra-metrics-shapes.quick.json with --quick, so a quick check never overwrites the full figures).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { EXTRA_METRICS } from '../src/catalog/extra-metrics.ts';
import { type Conn, connect, machineBusyUs, PG, processCpuUs } from './support/postgres-cpu.ts';

// ---------------------------------------------------------------------------------------------
// Configuration

interface Scale {
  devices: number;
  /** Steps preloaded over the day (evenly spaced), so a device's day has this many points. */
  preloadSteps: number;
  /** 10-s fleet steps per measured run. */
  runSteps: number;
  rounds: number;
  probes: number;
}

const FULL: Scale = { devices: 30_000, preloadSteps: 48, runSteps: 2, rounds: 3, probes: 5 };
const QUICK: Scale = { devices: 2_000, preloadSteps: 12, runSteps: 1, rounds: 2, probes: 3 };

const { values: args } = parseArgs({ options: { quick: { type: 'boolean' } } });
const QUICK_RUN = args.quick === true;
const S = QUICK_RUN ? QUICK : FULL;
const DEVICES_PER_SITE = 100;
const SITES = S.devices / DEVICES_PER_SITE;
const BATCH = 5_000;
const DB_NAME = 'hashwatt_extra_shapes';
const DAY_MS = 86_400_000;
const BASE_MS = Date.UTC(2026, 0, 5);
/** Measured steps start here (the preload's last step is at 23:30 at most) and stay inside the day. */
const LIVE_MS = BASE_MS + 23.5 * 3_600_000 + 60_000;
const STEP_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// The fleet: 90 % ASICs, 10 % GPUs, 100 devices a site, the extra metrics each kind reports.

type Kind = 'asic' | 'gpu';
const kindOf = (device: number): Kind => (device % 10 === 0 ? 'gpu' : 'asic');
const siteOf = (device: number): number => 1 + Math.floor((device - 1) / DEVICES_PER_SITE);
const offsetMs = (device: number): number => (device * 37) % STEP_MS;

/** How many of each extra metric a device of the kind reports (the index label's range). */
const EXTRAS_BY_KIND: Record<Kind, [name: string, count: number][]> = {
  asic: [
    ['chip_temp_c', 3],
    ['board_temp_c', 3],
    ['fan_speed_rpm', 4],
    ['shares_accepted_total', 1],
    ['shares_rejected_total', 1],
    ['hashboard_shares_total', 3],
    ['hardware_errors_total', 3],
    ['power_limit_w', 1],
    ['energy_j_total', 1],
    ['inlet_temp_c', 1],
    ['outlet_temp_c', 1],
  ],
  gpu: [
    ['gpu_xid_last', 1],
    ['gpu_ecc_errors_total', 4],
    ['gpu_throttle_reasons', 1],
    ['energy_j_total', 1],
    ['gpu_sm_clock_mhz', 1],
    ['gpu_mem_clock_mhz', 1],
    ['gpu_mem_temp_c', 1],
    ['gpu_nvlink_errors_total', 4],
    ['gpu_mem_free_bytes', 1],
    ['power_limit_w', 1],
    ['inlet_temp_c', 1],
    ['outlet_temp_c', 1],
  ],
};

interface Slot {
  metricId: number;
  idx: number;
  /** Column of the per-kind wide table (shape C) and key in the jsonb column (shape B). */
  column: string;
  key: string;
  counter: boolean;
}

function slotsOf(kind: Kind): Slot[] {
  const out: Slot[] = [];
  for (const [name, count] of EXTRAS_BY_KIND[kind]) {
    const metricId = EXTRA_METRICS.findIndex((m) => m.name === name);
    if (metricId < 0) throw new Error(`${name} is not in the catalog`);
    for (let idx = 0; idx < count; idx++) {
      out.push({
        metricId,
        idx,
        column: count > 1 ? `${name}_${idx}` : name,
        key: count > 1 ? `${metricId}.${idx}` : `${metricId}`,
        counter: name.endsWith('_total'),
      });
    }
  }
  return out;
}
const SLOTS: Record<Kind, Slot[]> = { asic: slotsOf('asic'), gpu: slotsOf('gpu') };
const EXTRAS_PER_READING = 0.9 * SLOTS.asic.length + 0.1 * SLOTS.gpu.length;
const PROBE_SLOT = SLOTS.asic[0]!; // chip_temp_c, hashboard 0

// ---------------------------------------------------------------------------------------------
// Core columns (the real readings row)

const CORE = [
  ['power_w', 'float8'],
  ['hashrate_ths', 'float8'],
  ['expected_hashrate_ths', 'float8'],
  ['temp_c', 'real'],
  ['fan_rpm', 'real'],
  ['gpu_util_pct', 'real'],
  ['gpu_mem_used_bytes', 'float8'],
  ['available_power_w', 'float8'],
  ['status', 'device_status'],
] as const;
type CoreColumn = (typeof CORE)[number][0];
/** Prometheus-style split: the first request brings these, the second the rest. */
const FIRST_HALF: ReadonlySet<CoreColumn> = new Set(['power_w', 'temp_c', 'status']);

interface Reading {
  site: number;
  device: number;
  ts: number;
  core: Partial<Record<CoreColumn, number | string>>;
  extras: number[];
}

function coreValues(device: number, step: number): Partial<Record<CoreColumn, number | string>> {
  const v = (base: number, spread: number) =>
    Math.round((base + ((device * 7 + step * 13) % 100) * spread) * 100) / 100;
  return kindOf(device) === 'asic'
    ? {
        power_w: v(3200, 5),
        hashrate_ths: v(180, 0.4),
        expected_hashrate_ths: 200,
        temp_c: v(60, 0.2),
        fan_rpm: v(4000, 20),
        status: 'ok',
      }
    : {
        power_w: v(500, 2),
        temp_c: v(50, 0.3),
        gpu_util_pct: v(0, 1),
        gpu_mem_used_bytes: 4e10 + device,
        status: 'ok',
      };
}

function extraValues(device: number, step: number): number[] {
  return SLOTS[kindOf(device)].map((s, i) =>
    s.counter
      ? (step + 1000) * 1000 + device + i
      : Math.round((40 + ((device + step * 3 + i * 11) % 500) / 10) * 100) / 100,
  );
}

/** Fleet step `k` (all devices at LIVE_MS + k·10 s), in key order (site, ts, device), in 5k batches. */
function fleetStep(k: number): Reading[][] {
  const rows: Reading[] = [];
  for (let d = 1; d <= S.devices; d++) {
    rows.push({
      site: siteOf(d),
      device: d,
      ts: LIVE_MS + k * STEP_MS + offsetMs(d),
      core: coreValues(d, k),
      extras: extraValues(d, k),
    });
  }
  rows.sort((x, y) => x.site - y.site || x.ts - y.ts || x.device - y.device);
  const out: Reading[][] = [];
  for (let i = 0; i < rows.length; i += BATCH) out.push(rows.slice(i, i + BATCH));
  return out;
}

function half(rows: readonly Reading[], first: boolean): Reading[] {
  return rows.map((r) => ({
    ...r,
    core: Object.fromEntries(
      Object.entries(r.core).filter(([c]) => FIRST_HALF.has(c as CoreColumn) === first),
    ),
  }));
}

// ---------------------------------------------------------------------------------------------
// Array literals, built by hand as src/storage/readings.ts does

function lit(values: readonly (number | string | null | undefined)[]): string | null {
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

/** Text array literal whose elements need quoting (JSON documents). */
function textLit(values: readonly (string | null)[]): string {
  return `{${values.map((v) => (v === null ? 'NULL' : `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`)).join(',')}}`;
}

function keyParams(rows: readonly Reading[]): (string | null)[] {
  return [lit(rows.map((r) => r.site)), lit(rows.map((r) => r.device)), lit(rows.map((r) => r.ts))];
}

function coreParams(rows: readonly Reading[]): (string | null)[] {
  return CORE.map(([c]) => lit(rows.map((r) => r.core[c])));
}

const CORE_NAMES = CORE.map(([c]) => c).join(', ');
const UNNEST_CORE = CORE.map(([, t], i) => `$${i + 4}::${t}[]`).join(', ');
const U_CORE = CORE.map((_, i) => `c${i}`).join(', ');

// ---------------------------------------------------------------------------------------------
// Part 1 statements: per-sample idempotency of the core row

function insertSql(table: string, tail: string, returning = ''): string {
  return `INSERT INTO ${table} AS r (site_id, device_id, ts, ${CORE_NAMES})
    SELECT s, d, to_timestamp(t / 1000.0), ${U_CORE}
    FROM unnest($1::int[], $2::int[], $3::float8[], ${UNNEST_CORE}) AS u(s, d, t, ${U_CORE})
    ${tail} ${returning}`;
}

/** Fill-in: a stored value always wins; the update happens only when it fills at least one NULL. */
function fillInTail(columns: readonly string[]): string {
  return `ON CONFLICT (site_id, ts, device_id) DO UPDATE SET
    ${columns.map((c) => `${c} = COALESCE(r.${c}, EXCLUDED.${c})`).join(', ')}
    WHERE ${columns.map((c) => `(r.${c} IS NULL AND EXCLUDED.${c} IS NOT NULL)`).join(' OR ')}`;
}
const CORE_FILL = fillInTail(CORE.map(([c]) => c));

/**
 * Which sent samples were duplicates, for the rows of a batch that were not freshly inserted. Read
 * under FOR UPDATE, so the stored values cannot change before the fill-in that follows; bit i of
 * `had` is set when core column i already had a value (each shift is parenthesised: `|` and `<<`
 * share one precedence level in PostgreSQL).
 */
const LOCK_MASK_SQL = `
  SELECT u.o::int AS o, (${CORE.map(([c], i) => `((r.${c} IS NOT NULL)::int << ${i})`).join(' | ')}) AS had
  FROM unnest($1::int[], $2::int[], $3::float8[]) WITH ORDINALITY AS u(s, d, t, o)
  JOIN %T r ON r.site_id = u.s AND r.ts = to_timestamp(u.t / 1000.0) AND r.device_id = u.d
  WHERE r.xmin <> pg_current_xact_id()::xid
  ORDER BY u.o
  FOR UPDATE OF r`;

function updateFillSql(table: string): string {
  return `UPDATE ${table} r SET ${CORE.map(([c], i) => `${c} = COALESCE(r.${c}, u.c${i})`).join(', ')}
    FROM unnest($1::int[], $2::int[], $3::float8[], ${UNNEST_CORE}) AS u(s, d, t, ${U_CORE})
    WHERE r.site_id = u.s AND r.ts = to_timestamp(u.t / 1000.0) AND r.device_id = u.d`;
}

/** Per input row, a bitmask over CORE of the sent samples that were duplicates. */
type DupMasks = number[];

const sentMask = (r: Reading): number =>
  CORE.reduce((m, [c], i) => (r.core[c] === undefined ? m : m | (1 << i)), 0);

/** Today's write: DO NOTHING, and on a short count the xmin lookup (whole rows are duplicates). */
async function writeDoNothing(c: pg.Client, table: string, rows: Reading[]): Promise<DupMasks> {
  const params = [...keyParams(rows), ...coreParams(rows)];
  const res = await c.query(insertSql(table, 'ON CONFLICT DO NOTHING'), params);
  if (res.rowCount === rows.length) return rows.map(() => 0);
  const mine = await c.query<{ o: number }>(
    `SELECT u.o::int AS o FROM unnest($1::int[], $2::int[], $3::float8[]) WITH ORDINALITY AS u(s, d, t, o)
     JOIN ${table} r ON r.site_id = u.s AND r.ts = to_timestamp(u.t / 1000.0) AND r.device_id = u.d
     WHERE r.xmin = pg_current_xact_id()::xid`,
    params.slice(0, 3),
  );
  const fresh = new Set(mine.rows.map((x) => x.o - 1));
  return rows.map((r, i) => (fresh.has(i) ? 0 : sentMask(r)));
}

/** The fill-in upsert alone: stores per sample correctly, reports no duplicates (the floor of its cost). */
async function writeFillInOnly(c: pg.Client, table: string, rows: Reading[]): Promise<DupMasks> {
  await c.query(insertSql(table, CORE_FILL), [...keyParams(rows), ...coreParams(rows)]);
  return rows.map(() => 0);
}

/**
 * The fill-in upsert, then a count of the batch's rows that were not freshly inserted by this
 * transaction (xmin another transaction's, or xmax set: ON CONFLICT DO UPDATE leaves the row locked
 * by us). RETURNING xmax would save that statement, but PostgreSQL 15 refuses system columns in
 * RETURNING on a partitioned table ("cannot retrieve a system column in this context"). Only when
 * the count is not zero does a lookup compare stored with sent values: a row this transaction did not
 * touch was a pure repeat; in a row it filled, a sample whose stored value differs from the sent one
 * was a duplicate. A duplicate sent with the very value already stored, next to a new sample of the
 * same row, cannot be told from a fill (PostgreSQL 15 cannot RETURN the old row; 18 can with OLD).
 */
async function writeFillIn(c: pg.Client, table: string, rows: Reading[]): Promise<DupMasks> {
  const params = [...keyParams(rows), ...coreParams(rows)];
  await c.query(insertSql(table, CORE_FILL), params);
  const touched = await c.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM unnest($1::int[], $2::int[], $3::float8[]) AS u(s, d, t)
     JOIN ${table} r ON r.site_id = u.s AND r.ts = to_timestamp(u.t / 1000.0) AND r.device_id = u.d
     WHERE r.xmin <> pg_current_xact_id()::xid OR r.xmax::text <> '0'`,
    params.slice(0, 3),
  );
  if (touched.rows[0]!.n === 0) return rows.map(() => 0);
  const stored = await c.query<Record<string, number | string | null> & { o: number; mine: boolean }>(
    `SELECT u.o::int AS o, r.xmin = pg_current_xact_id()::xid AS mine, ${CORE.map(([c]) => `r.${c}`).join(', ')}
     FROM unnest($1::int[], $2::int[], $3::float8[]) WITH ORDINALITY AS u(s, d, t, o)
     JOIN ${table} r ON r.site_id = u.s AND r.ts = to_timestamp(u.t / 1000.0) AND r.device_id = u.d`,
    params.slice(0, 3),
  );
  const masks = rows.map(() => 0);
  for (const row of stored.rows) {
    const r = rows[row.o - 1]!;
    if (!row.mine) {
      masks[row.o - 1] = sentMask(r);
      continue;
    }
    CORE.forEach(([col], i) => {
      const sent = r.core[col];
      if (sent !== undefined && String(row[col]) !== String(sent)) masks[row.o - 1]! |= 1 << i;
    });
  }
  return masks;
}

/**
 * DO NOTHING first (the normal path costs what it costs today), then, only on a short count, lock the
 * rows that were not inserted, read which columns they already had, and fill in the rest. Exact per
 * sample, also under concurrency: the conflicting rows exist and are locked before they are read.
 */
async function writeHybrid(c: pg.Client, table: string, rows: Reading[]): Promise<DupMasks> {
  const params = [...keyParams(rows), ...coreParams(rows)];
  const res = await c.query(insertSql(table, 'ON CONFLICT DO NOTHING'), params);
  const masks = rows.map(() => 0);
  if (res.rowCount === rows.length) return masks;
  const had = await c.query<{ o: number; had: number }>(
    LOCK_MASK_SQL.replace('%T', table),
    params.slice(0, 3),
  );
  const fill: Reading[] = [];
  for (const row of had.rows) {
    const r = rows[row.o - 1]!;
    const sent = sentMask(r);
    masks[row.o - 1] = sent & row.had;
    if ((sent & ~row.had) !== 0) fill.push(r);
  }
  if (fill.length > 0) await c.query(updateFillSql(table), [...keyParams(fill), ...coreParams(fill)]);
  return masks;
}

const HAD_MASK = CORE.map(([c], i) => `((r.${c} IS NOT NULL)::int << ${i})`).join(' | ');

/**
 * As writeHybrid, but optimistic instead of locking: read which columns the conflicting rows
 * already have without a lock, then fill in only where the stored mask is still the one read
 * (UPDATE re-checks its WHERE on the newest row version). A row filled concurrently in between is
 * read again. Pure repeats then cost a read and no write; exact per sample like writeHybrid.
 */
async function writeOptimistic(c: pg.Client, table: string, rows: Reading[]): Promise<DupMasks> {
  const res = await c.query(insertSql(table, 'ON CONFLICT DO NOTHING'), [
    ...keyParams(rows),
    ...coreParams(rows),
  ]);
  const masks = rows.map(() => 0);
  if (res.rowCount === rows.length) return masks;
  let pending = rows.map((_, i) => i);
  while (pending.length > 0) {
    const sub = pending.map((i) => rows[i]!);
    const had = await c.query<{ o: number; had: number }>(
      `SELECT u.o::int AS o, (${HAD_MASK}) AS had
       FROM unnest($1::int[], $2::int[], $3::float8[]) WITH ORDINALITY AS u(s, d, t, o)
       JOIN ${table} r ON r.site_id = u.s AND r.ts = to_timestamp(u.t / 1000.0) AND r.device_id = u.d
       WHERE r.xmin <> pg_current_xact_id()::xid`,
      keyParams(sub),
    );
    const fill: Reading[] = [];
    const fillIndex: number[] = [];
    const fillHad: number[] = [];
    for (const row of had.rows) {
      const i = pending[row.o - 1]!;
      const sent = sentMask(rows[i]!);
      masks[i] = sent & row.had;
      if ((sent & ~row.had) !== 0) {
        fill.push(rows[i]!);
        fillIndex.push(i);
        fillHad.push(row.had);
      }
    }
    if (fill.length === 0) break;
    const n = CORE.length + 4;
    const updated = await c.query<{ o: number }>(
      `UPDATE ${table} r SET ${CORE.map(([c], i) => `${c} = COALESCE(r.${c}, u.c${i})`).join(', ')}
       FROM unnest($1::int[], $2::int[], $3::float8[], ${UNNEST_CORE}, $${n}::int[], $${n + 1}::int[])
         AS u(s, d, t, ${U_CORE}, had, o)
       WHERE r.site_id = u.s AND r.ts = to_timestamp(u.t / 1000.0) AND r.device_id = u.d AND (${HAD_MASK}) = u.had
       RETURNING u.o`,
      [...keyParams(fill), ...coreParams(fill), lit(fillHad), lit(fill.map((_, j) => j + 1))],
    );
    const done = new Set(updated.rows.map((r) => r.o - 1));
    pending = fillIndex.filter((_, j) => !done.has(j));
  }
  return masks;
}

type Writer = (c: pg.Client, table: string, rows: Reading[]) => Promise<DupMasks>;
const IDEM_VARIANTS: [string, Writer][] = [
  ['DO NOTHING (today)', writeDoNothing],
  ['fill-in upsert, row count only (no duplicate report)', writeFillInOnly],
  ['fill-in upsert + xmin/xmax check (lookup on a non-zero count)', writeFillIn],
  ['DO NOTHING + lock/fill-in on a short count', writeHybrid],
  ['DO NOTHING + optimistic fill-in on a short count', writeOptimistic],
];

// ---------------------------------------------------------------------------------------------
// Part 2 statements: extras storage

function coreFillSql(table: string): string {
  return insertSql(table, CORE_FILL);
}

/** A: narrow rows, one per sample; DO NOTHING is per-sample idempotency by itself. */
async function writeNarrow(c: pg.Client, rows: Reading[]): Promise<void> {
  await c.query(coreFillSql('core_ac'), [...keyParams(rows), ...coreParams(rows)]);
  const s: number[] = [];
  const t: number[] = [];
  const d: number[] = [];
  const m: number[] = [];
  const x: number[] = [];
  const v: number[] = [];
  for (const r of rows) {
    const slots = SLOTS[kindOf(r.device)];
    for (let i = 0; i < slots.length; i++) {
      s.push(r.site);
      t.push(r.ts);
      d.push(r.device);
      m.push(slots[i]!.metricId);
      x.push(slots[i]!.idx);
      v.push(r.extras[i]!);
    }
  }
  await c.query(
    `INSERT INTO extras_narrow (site_id, ts, device_id, metric_id, idx, value)
     SELECT s, to_timestamp(t / 1000.0), d, m, x, v
     FROM unnest($1::int[], $2::float8[], $3::int[], $4::smallint[], $5::smallint[], $6::float8[]) AS u(s, t, d, m, x, v)
     ON CONFLICT DO NOTHING`,
    [lit(s), lit(t), lit(d), lit(m), lit(x), lit(v)],
  );
}

function extrasJson(r: Reading): string {
  const slots = SLOTS[kindOf(r.device)];
  let out = '{';
  for (let i = 0; i < slots.length; i++) out += `${i > 0 ? ',' : ''}"${slots[i]!.key}":${r.extras[i]}`;
  return `${out}}`;
}

/** B: the core row with the extras in one jsonb column; a stored key wins (`new || old`). */
async function writeJson(c: pg.Client, rows: Reading[]): Promise<void> {
  const columns = [...CORE.map(([c]) => c)];
  const sql = `INSERT INTO core_b AS r (site_id, device_id, ts, ${CORE_NAMES}, extras)
    SELECT s, d, to_timestamp(t / 1000.0), ${U_CORE}, x::jsonb
    FROM unnest($1::int[], $2::int[], $3::float8[], ${UNNEST_CORE}, $${CORE.length + 4}::text[]) AS u(s, d, t, ${U_CORE}, x)
    ON CONFLICT (site_id, ts, device_id) DO UPDATE SET
      ${columns.map((c) => `${c} = COALESCE(r.${c}, EXCLUDED.${c})`).join(', ')},
      extras = CASE WHEN r.extras IS NULL THEN EXCLUDED.extras WHEN EXCLUDED.extras IS NULL THEN r.extras
                    ELSE EXCLUDED.extras || r.extras END
    WHERE ${columns.map((c) => `(r.${c} IS NULL AND EXCLUDED.${c} IS NOT NULL)`).join(' OR ')}
      OR (EXCLUDED.extras IS NOT NULL AND (r.extras IS NULL OR (EXCLUDED.extras || r.extras) <> r.extras))`;
  await c.query(sql, [...keyParams(rows), ...coreParams(rows), textLit(rows.map(extrasJson))]);
}

function kindTableSql(kind: Kind): string {
  const slots = SLOTS[kind];
  const cols = slots.map((s) => s.column);
  return `INSERT INTO ${kind}_extras AS r (site_id, device_id, ts, ${cols.join(', ')})
    SELECT s, d, to_timestamp(t / 1000.0), ${slots.map((_, i) => `x${i}`).join(', ')}
    FROM unnest($1::int[], $2::int[], $3::float8[], ${slots.map((_, i) => `$${i + 4}::float8[]`).join(', ')})
      AS u(s, d, t, ${slots.map((_, i) => `x${i}`).join(', ')})
    ${fillInTail(cols)}`;
}
const KIND_SQL: Record<Kind, string> = { asic: kindTableSql('asic'), gpu: kindTableSql('gpu') };

/** C: the core row plus a second wide row in the device kind's own table, both fill-in upserts. */
async function writeKindTables(c: pg.Client, rows: Reading[]): Promise<void> {
  await c.query(coreFillSql('core_ac'), [...keyParams(rows), ...coreParams(rows)]);
  for (const kind of ['asic', 'gpu'] as const) {
    const mine = rows.filter((r) => kindOf(r.device) === kind);
    if (mine.length === 0) continue;
    const slots = SLOTS[kind];
    await c.query(KIND_SQL[kind], [
      ...keyParams(mine),
      ...slots.map((_, i) => lit(mine.map((r) => r.extras[i]))),
    ]);
  }
}

type ShapeWriter = (c: pg.Client, rows: Reading[]) => Promise<void>;
const SHAPES: [name: string, write: ShapeWriter, tables: string[]][] = [
  ['A narrow (site_id, ts, device_id, metric_id, idx, value)', writeNarrow, ['extras_narrow']],
  ['B jsonb column on the readings row', writeJson, ['core_b']],
  ['C per-kind wide table (asic_extras, gpu_extras)', writeKindTables, ['asic_extras', 'gpu_extras']],
];

// ---------------------------------------------------------------------------------------------
// Plumbing

interface Measured {
  seconds: number;
  /** Cluster-wide WAL written during the run (other databases' writes included). */
  walBytes: number;
  pgCpuUs: number;
  /** Cores used by everything on the machine that is neither this process nor its two backends. */
  otherLoad: number;
}

/** Runs one job per connection in parallel (each its batches in transactions) and times the whole. */
async function measure(conns: Conn[], jobs: ((c: pg.Client) => Promise<void>)[]): Promise<Measured> {
  const lsn = async () =>
    Number(
      (await conns[0]!.client.query<{ b: string }>(`SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS b`))
        .rows[0]!.b,
    );
  const wal0 = await lsn();
  const pg0 = conns.reduce((a, c) => a + processCpuUs(c.pid), 0);
  const me0 = process.cpuUsage();
  const busy0 = machineBusyUs();
  const t0 = performance.now();
  await Promise.all(jobs.map((job, i) => job(conns[i]!.client)));
  const seconds = (performance.now() - t0) / 1000;
  const pgCpuUs = conns.reduce((a, c) => a + processCpuUs(c.pid), 0) - pg0;
  const me = process.cpuUsage(me0);
  const other = machineBusyUs() - busy0 - pgCpuUs - me.user - me.system;
  const walBytes = (await lsn()) - wal0;
  return { seconds, pgCpuUs, walBytes, otherLoad: Math.max(0, other / 1e6 / seconds) };
}

/** Splits batches over two connections, each batch its own transaction. */
function twoJobs(
  batches: Reading[][],
  write: (c: pg.Client, rows: Reading[]) => Promise<unknown>,
): ((c: pg.Client) => Promise<void>)[] {
  return [0, 1].map((j) => async (c: pg.Client) => {
    for (let i = j; i < batches.length; i += 2) {
      await c.query('BEGIN');
      try {
        await write(c, batches[i]!);
        await c.query('COMMIT');
      } catch (error) {
        await c.query('ROLLBACK');
        throw error;
      }
    }
  });
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

async function sizeOf(c: pg.Client, table: string): Promise<number> {
  const { rows } = await c.query<{ b: string }>(
    `SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint AS b FROM pg_inherits WHERE inhparent = $1::regclass`,
    [table],
  );
  return Number(rows[0]!.b);
}

async function count(c: pg.Client, table: string): Promise<number> {
  const { rows } = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0]!.n;
}

// ---------------------------------------------------------------------------------------------
// Schema and preload (server-side generate_series into bare tables; keys built afterwards)

const DAY_LO = new Date(BASE_MS).toISOString();
const DAY_HI = new Date(BASE_MS + DAY_MS).toISOString();

async function partitioned(c: pg.Client, table: string, columns: string, storage = ''): Promise<void> {
  await c.query(`CREATE TABLE ${table} (${columns}) PARTITION BY RANGE (ts)`);
  await c.query(
    `CREATE TABLE ${table}_p20260105 PARTITION OF ${table} FOR VALUES FROM ('${DAY_LO}') TO ('${DAY_HI}') ${storage}`,
  );
}

const CORE_COLUMNS = `site_id int NOT NULL, device_id int NOT NULL, ts timestamptz NOT NULL,
  ${CORE.map(([c, t]) => `${c} ${t}`).join(', ')}`;

/** SQL expressions of the core columns for a preloaded row of device `dv.d` at step `s`. */
const CORE_GEN = `
  CASE WHEN dv.gpu THEN 500 + random() * 200 ELSE 3200 + random() * 500 END,
  CASE WHEN dv.gpu THEN NULL ELSE 180 + random() * 40 END,
  CASE WHEN dv.gpu THEN NULL ELSE 200 END,
  (50 + random() * 30)::real,
  CASE WHEN dv.gpu THEN NULL ELSE (4000 + random() * 2000)::real END,
  CASE WHEN dv.gpu THEN (random() * 100)::real END,
  CASE WHEN dv.gpu THEN 4e10 + dv.d END,
  NULL::float8,
  'ok'::device_status`;

function genValue(slot: Slot): string {
  return slot.counter ? `(s * 1000 + dv.d)::float8` : `round((40 + random() * 50)::numeric, 2)::float8`;
}

async function setup(c: pg.Client): Promise<void> {
  await c.query(`CREATE TYPE device_status AS ENUM ('ok', 'curtailed', 'idle', 'error', 'offline')`);
  await c.query(`SET maintenance_work_mem = '512MB'`);
  for (const t of ['idem', 'core_ac']) await partitioned(c, t, CORE_COLUMNS);
  // The same core table with room on each page, to see whether fill-in updates can stay HOT.
  await partitioned(c, 'idem_ff', CORE_COLUMNS, 'WITH (fillfactor = 80)');
  await partitioned(c, 'core_b', `${CORE_COLUMNS}, extras jsonb`);
  await partitioned(
    c,
    'extras_narrow',
    'site_id int NOT NULL, ts timestamptz NOT NULL, device_id int NOT NULL, metric_id smallint NOT NULL, idx smallint NOT NULL, value float8 NOT NULL',
  );
  for (const kind of ['asic', 'gpu'] as const) {
    await partitioned(
      c,
      `${kind}_extras`,
      `site_id int NOT NULL, device_id int NOT NULL, ts timestamptz NOT NULL, ${SLOTS[kind].map((s) => `${s.column} float8`).join(', ')}`,
    );
  }
  await c.query(`CREATE TABLE dev AS SELECT d, 1 + (d - 1) / ${DEVICES_PER_SITE} AS site, d % 10 = 0 AS gpu
    FROM generate_series(1, ${S.devices}) d`);
  await c.query(
    'CREATE TABLE slot (gpu bool, metric_id smallint, idx smallint, key text, counter bool, n int)',
  );
  for (const kind of ['asic', 'gpu'] as const) {
    for (const [n, s] of SLOTS[kind].entries()) {
      await c.query('INSERT INTO slot VALUES ($1, $2, $3, $4, $5, $6)', [
        kind === 'gpu',
        s.metricId,
        s.idx,
        s.key,
        s.counter,
        n,
      ]);
    }
  }
  const stepMs = Math.floor((23.5 * 3_600_000) / Math.max(1, S.preloadSteps - 1));
  const ts = `to_timestamp((${BASE_MS} + s::float8 * ${stepMs} + (dv.d * 37) % ${STEP_MS}) / 1000.0)`;
  const fleet = `FROM generate_series(0, ${S.preloadSteps - 1}) s CROSS JOIN dev dv`;
  for (const t of ['idem', 'core_ac']) {
    await c.query(
      `INSERT INTO ${t} SELECT dv.site, dv.d, ${ts}, ${CORE_GEN} ${fleet} ORDER BY s, dv.site, dv.d`,
    );
  }
  await c.query(`INSERT INTO core_b SELECT dv.site, dv.d, ${ts}, ${CORE_GEN},
      (SELECT jsonb_object_agg(sl.key, CASE WHEN sl.counter THEN (s * 1000 + dv.d)::float8
                                           ELSE round((40 + random() * 50)::numeric, 2)::float8 END)
       FROM slot sl WHERE sl.gpu = dv.gpu)
    ${fleet} ORDER BY s, dv.site, dv.d`);
  await c.query(`INSERT INTO extras_narrow SELECT dv.site, ${ts}, dv.d, sl.metric_id, sl.idx,
      CASE WHEN sl.counter THEN (s * 1000 + dv.d)::float8 ELSE round((40 + random() * 50)::numeric, 2)::float8 END
    ${fleet} JOIN slot sl ON sl.gpu = dv.gpu`);
  for (const kind of ['asic', 'gpu'] as const) {
    await c.query(`INSERT INTO ${kind}_extras SELECT dv.site, dv.d, ${ts}, ${SLOTS[kind].map(genValue).join(', ')}
      ${fleet} WHERE dv.gpu = ${kind === 'gpu'} ORDER BY s, dv.site, dv.d`);
  }
  for (const t of ['idem', 'idem_ff', 'core_ac', 'core_b', 'asic_extras', 'gpu_extras']) {
    await c.query(`ALTER TABLE ${t} ADD PRIMARY KEY (site_id, ts, device_id)`);
  }
  await c.query('ALTER TABLE extras_narrow ADD PRIMARY KEY (site_id, ts, device_id, metric_id, idx)');
  await c.query('VACUUM ANALYZE');
}

// ---------------------------------------------------------------------------------------------
// Part 1: hand-checked case, then the rates

interface HandCase {
  variant: string;
  expected: string[];
  got: string[];
  correct: boolean;
}

/**
 * Device 1 at T already has power_w = 100 and temp_c = 60. The batch brings: device 1 at T with
 * power_w 100 (a repeat, same value), temp_c 61 (a repeat, different value) and fan_rpm 5000 (new);
 * device 2 at T (a new row); device 3 at T with power_w 7 (device 3 already has exactly that: a pure
 * repeat). Expected duplicates: (1, T, power_w), (1, T, temp_c), (3, T, power_w).
 */
async function handCheck(c: pg.Client): Promise<HandCase[]> {
  const T = BASE_MS + 3_600_000;
  const out: HandCase[] = [];
  const expected = ['1:power_w', '1:temp_c', '3:power_w'];
  for (const [variant, write] of IDEM_VARIANTS) {
    await c.query('DROP TABLE IF EXISTS hand');
    await partitioned(c, 'hand', `${CORE_COLUMNS}, PRIMARY KEY (site_id, ts, device_id)`);
    await c.query('BEGIN');
    await write(c, 'hand', [
      { site: 1, device: 1, ts: T, core: { power_w: 100, temp_c: 60 }, extras: [] },
      { site: 1, device: 3, ts: T, core: { power_w: 7 }, extras: [] },
    ]);
    await c.query('COMMIT');
    const batch: Reading[] = [
      { site: 1, device: 1, ts: T, core: { power_w: 100, temp_c: 61, fan_rpm: 5000 }, extras: [] },
      { site: 1, device: 2, ts: T, core: { power_w: 50, status: 'ok' }, extras: [] },
      { site: 1, device: 3, ts: T, core: { power_w: 7 }, extras: [] },
    ];
    await c.query('BEGIN');
    const masks = await write(c, 'hand', batch);
    await c.query('COMMIT');
    const got: string[] = [];
    batch.forEach((r, i) => {
      CORE.forEach(([col], b) => {
        if (masks[i]! & (1 << b)) got.push(`${r.device}:${col}`);
      });
    });
    const { rows } = await c.query<{ fan: number | null; temp: number }>(
      'SELECT fan_rpm AS fan, temp_c AS temp FROM hand WHERE device_id = 1',
    );
    const stored = rows[0]?.fan === 5000 && rows[0]?.temp === 60;
    out.push({
      variant: `${variant}${stored ? '' : ' (fan_rpm not filled in: the later sample was lost)'}`,
      expected,
      got,
      correct: stored && got.join() === expected.join(),
    });
  }
  await c.query('DROP TABLE hand');
  return out;
}

interface IdemRow {
  variant: string;
  scenario: string;
  rowsPerS: number[];
  pgUsPerRow: number[];
  walBytesPerRow: number[];
  otherLoad: number[];
  duplicatesReported: number;
  samplesSent: number;
}

let idemStep = 0;
async function partOne(conns: Conn[]): Promise<{ rows: IdemRow[]; splitComplete: Record<string, number> }> {
  const table = new Map<string, IdemRow>();
  const splitComplete: Record<string, number> = {};
  const record = (
    variant: string,
    scenario: string,
    rows: number,
    m: Measured,
    masks: DupMasks[],
    sent: number,
  ) => {
    const key = `${variant}|${scenario}`;
    const row = table.get(key) ?? {
      variant,
      scenario,
      rowsPerS: [],
      pgUsPerRow: [],
      walBytesPerRow: [],
      otherLoad: [],
      duplicatesReported: 0,
      samplesSent: 0,
    };
    row.rowsPerS.push(rows / m.seconds);
    row.pgUsPerRow.push(m.pgCpuUs / rows);
    row.walBytesPerRow.push(m.walBytes / rows);
    row.otherLoad.push(m.otherLoad);
    row.duplicatesReported += masks.flat().reduce((a, x) => a + popcount(x), 0);
    row.samplesSent += sent;
    table.set(key, row);
  };
  for (let round = 0; round < S.rounds; round++) {
    const all: [string, Writer, string][] = [
      ...IDEM_VARIANTS.map(([v, w]): [string, Writer, string] => [v, w, 'idem']),
      ['DO NOTHING + optimistic fill-in on a short count, fillfactor 80', writeOptimistic, 'idem_ff'],
    ];
    const order = [...all.slice(round % all.length), ...all.slice(0, round % all.length)];
    for (const [variant, write, target] of order) {
      const steps: Reading[][] = [];
      for (let k = 0; k < 2 * S.runSteps; k++) steps.push(...fleetStep(idemStep++));
      const n = steps.reduce((a, b) => a + b.length, 0);
      const samples = (bs: Reading[][]) => bs.flat().reduce((a, r) => a + popcount(sentMask(r)), 0);
      const collect = () => {
        const masks: DupMasks[] = [];
        return {
          masks,
          w: async (c: pg.Client, rows: Reading[]) => masks.push(await write(c, target, rows)),
        };
      };
      let k = collect();
      let m = await measure(conns, twoJobs(steps, k.w));
      record(variant, '(a) all new rows', n, m, k.masks, samples(steps));
      k = collect();
      m = await measure(conns, twoJobs(steps, k.w));
      record(variant, '(b) all repeats (a retried request)', n, m, k.masks, samples(steps));

      const split: Reading[][] = [];
      const k0 = idemStep;
      for (let s = 0; s < 2 * S.runSteps; s++) split.push(...fleetStep(idemStep++));
      const first = split.map((b) => half(b, true));
      const second = split.map((b) => half(b, false));
      k = collect();
      m = await measure(conns, twoJobs(first, k.w));
      record(variant, '(c1) split: first half of the metrics', n, m, k.masks, samples(first));
      k = collect();
      m = await measure(conns, twoJobs(second, k.w));
      record(variant, '(c2) split: second half, same (device, ts)', n, m, k.masks, samples(second));
      const lo = new Date(LIVE_MS + k0 * STEP_MS).toISOString();
      const hi = new Date(LIVE_MS + idemStep * STEP_MS).toISOString();
      const { rows } = await conns[0]!.client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${target} WHERE ts >= $1 AND ts < $2 AND power_w IS NOT NULL
           AND (hashrate_ths IS NOT NULL OR gpu_util_pct IS NOT NULL)`,
        [lo, hi],
      );
      splitComplete[variant] = (splitComplete[variant] ?? 0) + rows[0]!.n / n / S.rounds;
      console.error(`  part 1 round ${round + 1} ${variant} done`);
    }
  }
  return { rows: [...table.values()], splitComplete };
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x; v; v &= v - 1) n++;
  return n;
}

/** How many of the fill-in updates were HOT (no new index entry) on the part-1 table. */
async function updateStats(
  conns: Conn[],
  partition: string,
): Promise<{ updates: number; hot: number; dead: number }> {
  for (const conn of conns) await conn.client.query('SELECT pg_stat_force_next_flush()');
  for (const conn of conns) await conn.client.query('SELECT 1');
  const reader = await connect(DB_NAME);
  try {
    const { rows } = await reader.client.query<{ updates: number; hot: number; dead: number }>(
      `SELECT n_tup_upd::int AS updates, n_tup_hot_upd::int AS hot, n_dead_tup::int AS dead
       FROM pg_stat_user_tables WHERE relname = $1`,
      [partition],
    );
    return rows[0] ?? { updates: 0, hot: 0, dead: 0 };
  } finally {
    await reader.client.end();
  }
}

// ---------------------------------------------------------------------------------------------
// Part 2: extras storage

interface ShapeResult {
  shape: string;
  readingsPerS: number[];
  samplesPerS: number[];
  pgUsPerReading: number[];
  walBytesPerReading: number[];
  otherLoad: number[];
  repeatReadingsPerS: number[];
  bytesPerExtraSampleInserted: number;
  bytesPerExtraSampleWhole: number;
  wholeBytes: number;
  extraSamplesStored: number;
  deviceDay: Probe;
  siteHour: Probe;
}

interface Probe {
  ms: number;
  pages: number;
  rows: number;
}

async function extrasBytes(c: pg.Client, shape: string): Promise<{ bytes: number; samples: number }> {
  if (shape.startsWith('A'))
    return { bytes: await sizeOf(c, 'extras_narrow'), samples: await count(c, 'extras_narrow') };
  if (shape.startsWith('C')) {
    const a = await count(c, 'asic_extras');
    const g = await count(c, 'gpu_extras');
    return {
      bytes: (await sizeOf(c, 'asic_extras')) + (await sizeOf(c, 'gpu_extras')),
      samples: a * SLOTS.asic.length + g * SLOTS.gpu.length,
    };
  }
  // B: the jsonb row's bytes beyond the same core row's (core_ac holds the same core columns).
  const rowsB = await count(c, 'core_b');
  const rowsCore = await count(c, 'core_ac');
  const perB = (await sizeOf(c, 'core_b')) / rowsB;
  const perCore = (await sizeOf(c, 'core_ac')) / rowsCore;
  return { bytes: (perB - perCore) * rowsB, samples: Math.round(rowsB * EXTRAS_PER_READING) };
}

async function explain(c: pg.Client, sql: string, params: unknown[]): Promise<Probe> {
  await c.query(sql, params); // warm: the figures are for a cached page set
  const { rows } = await c.query<{
    'QUERY PLAN': [{ Plan: Record<string, number>; 'Execution Time': number }];
  }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`, params);
  const plan = rows[0]!['QUERY PLAN'][0];
  return {
    ms: plan['Execution Time'],
    pages: (plan.Plan['Shared Hit Blocks'] ?? 0) + (plan.Plan['Shared Read Blocks'] ?? 0),
    rows: plan.Plan['Actual Rows'] ?? 0,
  };
}

function probeSql(shape: string, scope: 'device' | 'site'): string {
  const where =
    scope === 'device'
      ? `site_id = $1 AND device_id = $2 AND ts >= '${DAY_LO}' AND ts < '${DAY_HI}'`
      : `site_id = $1 AND ts >= '${new Date(BASE_MS + 23 * 3_600_000).toISOString()}' AND ts < '${DAY_HI}'`;
  const params = scope === 'device' ? '' : ' AND $2::int IS NOT NULL';
  if (shape.startsWith('A'))
    return `SELECT ts, device_id, value FROM extras_narrow WHERE ${where}${params}
      AND metric_id = ${PROBE_SLOT.metricId} AND idx = ${PROBE_SLOT.idx} ORDER BY ts, device_id`;
  if (shape.startsWith('B'))
    return `SELECT ts, device_id, (extras ->> '${PROBE_SLOT.key}')::float8 AS value FROM core_b WHERE ${where}${params}
      AND extras ? '${PROBE_SLOT.key}' ORDER BY ts, device_id`;
  return `SELECT ts, device_id, ${PROBE_SLOT.column} AS value FROM asic_extras WHERE ${where}${params}
    AND ${PROBE_SLOT.column} IS NOT NULL ORDER BY ts, device_id`;
}

async function probes(c: pg.Client, shape: string): Promise<{ deviceDay: Probe; siteHour: Probe }> {
  const pick = (scope: 'device' | 'site') => async () => {
    const got: Probe[] = [];
    for (let p = 0; p < S.probes; p++) {
      const site = 1 + Math.floor((p * SITES) / S.probes);
      const device = (site - 1) * DEVICES_PER_SITE + 1 + ((p * 7) % 9); // an ASIC (never a multiple of 10)
      got.push(await explain(c, probeSql(shape, scope), [site, device]));
    }
    return {
      ms: median(got.map((g) => g.ms)),
      pages: median(got.map((g) => g.pages)),
      rows: median(got.map((g) => g.rows)),
    };
  };
  return { deviceDay: await pick('device')(), siteHour: await pick('site')() };
}

let shapeStep = 0;
async function partTwo(conns: Conn[]): Promise<ShapeResult[]> {
  const c = conns[0]!.client;
  const before = new Map<string, { bytes: number; samples: number }>();
  for (const [name] of SHAPES) before.set(name, await extrasBytes(c, name));
  const results = new Map<string, ShapeResult>();
  for (const [name] of SHAPES) {
    results.set(name, {
      shape: name,
      readingsPerS: [],
      samplesPerS: [],
      pgUsPerReading: [],
      walBytesPerReading: [],
      otherLoad: [],
      repeatReadingsPerS: [],
      bytesPerExtraSampleInserted: 0,
      bytesPerExtraSampleWhole: 0,
      wholeBytes: 0,
      extraSamplesStored: 0,
      deviceDay: { ms: 0, pages: 0, rows: 0 },
      siteHour: { ms: 0, pages: 0, rows: 0 },
    });
  }
  for (let round = 0; round < S.rounds; round++) {
    const order = [...SHAPES.slice(round % 3), ...SHAPES.slice(0, round % 3)];
    for (const [name, write] of order) {
      const batches: Reading[][] = [];
      for (let k = 0; k < S.runSteps; k++) batches.push(...fleetStep(shapeStep++));
      const n = batches.reduce((a, b) => a + b.length, 0);
      const samples = batches.flat().reduce((a, r) => a + r.extras.length + Object.keys(r.core).length, 0);
      await c.query('CHECKPOINT');
      const m = await measure(conns, twoJobs(batches, write));
      const r = results.get(name)!;
      r.readingsPerS.push(n / m.seconds);
      r.samplesPerS.push(samples / m.seconds);
      r.pgUsPerReading.push(m.pgCpuUs / n);
      r.walBytesPerReading.push(m.walBytes / n);
      r.otherLoad.push(m.otherLoad);
      const again = await measure(conns, twoJobs(batches, write));
      r.repeatReadingsPerS.push(n / again.seconds);
      console.error(`  part 2 round ${round + 1} ${name} done`);
    }
  }
  await c.query('VACUUM ANALYZE');
  for (const [name] of SHAPES) {
    const r = results.get(name)!;
    const now = await extrasBytes(c, name);
    const was = before.get(name)!;
    r.bytesPerExtraSampleInserted = (now.bytes - was.bytes) / (now.samples - was.samples);
    r.bytesPerExtraSampleWhole = now.bytes / now.samples;
    r.wholeBytes = now.bytes;
    r.extraSamplesStored = now.samples;
    Object.assign(r, await probes(c, name));
  }
  return [...results.values()];
}

// ---------------------------------------------------------------------------------------------
// Main

async function admin(text: string): Promise<void> {
  const c = new pg.Client({ ...PG, database: 'postgres' });
  await c.connect();
  await c.query(text).finally(() => c.end());
}

const started = Date.now();
await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
await admin(`CREATE DATABASE ${DB_NAME}`);
const conns: Conn[] = [];
try {
  conns.push(await connect(DB_NAME), await connect(DB_NAME));
  const c = conns[0]!.client;
  const settings = await c.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'shared_buffers', 'autovacuum',
      'synchronous_commit', 'max_wal_size', 'wal_compression')`,
  );
  console.error(
    `preloading ${S.devices} devices × ${S.preloadSteps} steps (${fmt(S.devices * S.preloadSteps * EXTRAS_PER_READING)} extra samples)…`,
  );
  const t0 = performance.now();
  await setup(c);
  const preloadSeconds = (performance.now() - t0) / 1000;
  console.error(`  preload ${preloadSeconds.toFixed(0)} s`);
  const hand = await handCheck(c);
  const idem = await partOne(conns);
  const hot = {
    fillfactor100: await updateStats(conns, 'idem_p20260105'),
    fillfactor80: await updateStats(conns, 'idem_ff_p20260105'),
  };
  const shapes = await partTwo(conns);
  const result = {
    measured: new Date().toISOString(),
    quick: QUICK_RUN,
    wallSeconds: (Date.now() - started) / 1000,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      note: '2 cores shared with other agents; rates move with their load, PG CPU per row much less',
    },
    postgres: Object.fromEntries(settings.rows.map((r) => [r.name, r.setting])),
    scale: {
      devices: S.devices,
      sites: SITES,
      asicShare: 0.9,
      extrasPerReading: { asic: SLOTS.asic.length, gpu: SLOTS.gpu.length, mean: EXTRAS_PER_READING },
      preloadStepsPerDay: S.preloadSteps,
      preloadReadings: S.devices * S.preloadSteps,
      preloadExtraSamples: Math.round(S.devices * S.preloadSteps * EXTRAS_PER_READING),
      readingsPerRun: S.devices * S.runSteps,
      batch: BATCH,
      connections: 2,
      rounds: S.rounds,
    },
    preloadSeconds,
    handCheck: hand,
    idempotency: { ...idem, updatesOfIdemPartition: hot },
    extras: shapes,
  };
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/extra-metrics-shapes${QUICK_RUN ? '.quick' : ''}.json`;
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

  console.log(`## Hand-checked case\n`);
  for (const h of hand)
    console.log(
      `- ${h.variant}: expected ${h.expected.join(' ')}; got ${h.got.join(' ') || '(none)'} → ${h.correct ? 'correct' : 'WRONG'}`,
    );
  console.log(
    `\n## Per-sample idempotency (${fmt(S.devices)} devices, 5k batches, 2 conns, median of ${S.rounds})\n`,
  );
  console.log(
    '| variant | scenario | rows/s | PG µs/row | WAL B/row | other load (cores) | duplicates reported / samples sent |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const r of idem.rows) {
    console.log(
      `| ${r.variant} | ${r.scenario} | ${fmt(median(r.rowsPerS))} | ${median(r.pgUsPerRow).toFixed(2)} | ${fmt(median(r.walBytesPerRow))} | ${median(r.otherLoad).toFixed(2)} | ${fmt(r.duplicatesReported)} / ${fmt(r.samplesSent)} |`,
    );
  }
  for (const [ff, h] of Object.entries(hot))
    console.log(
      `\nupdates on the part-1 partition (${ff}): ${h.updates} (${h.hot} HOT), dead tuples ${h.dead}`,
    );
  console.log('\nrows complete after the split (both halves stored):');
  for (const [v, share] of Object.entries(idem.splitComplete))
    console.log(`- ${v}: ${(share * 100).toFixed(1)} %`);
  console.log(`\n## Extra metrics storage (median of ${S.rounds})\n`);
  console.log(
    '| shape | readings/s | samples/s (core + extra) | PG µs/reading | WAL B/reading | retry readings/s | B/extra sample (inserted) | B/extra sample (whole) | device 24 h: ms / pages / rows | site 1 h: ms / pages / rows |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of shapes) {
    console.log(
      `| ${r.shape} | ${fmt(median(r.readingsPerS))} | ${fmt(median(r.samplesPerS))} | ${median(r.pgUsPerReading).toFixed(1)} | ${fmt(median(r.walBytesPerReading))} | ${fmt(median(r.repeatReadingsPerS))} | ${r.bytesPerExtraSampleInserted.toFixed(1)} | ${r.bytesPerExtraSampleWhole.toFixed(1)} | ${r.deviceDay.ms.toFixed(2)} / ${r.deviceDay.pages} / ${r.deviceDay.rows} | ${r.siteHour.ms.toFixed(2)} / ${r.siteHour.pages} / ${r.siteHour.rows} |`,
    );
  }
  console.log(`\nwall-clock ${((Date.now() - started) / 1000).toFixed(0)} s; results in ${file}`);
} finally {
  for (const conn of conns) await conn.client.end().catch(() => undefined);
  await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
}
