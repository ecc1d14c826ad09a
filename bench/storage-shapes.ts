/**
 * Which readings-table shape, key order and write path to use, measured at fleet scale.
 * Findings and the decision: docs/storage.md.
 *
 *   node bench/storage-shapes.ts [--quick] [--key=a|b|c]
 *
 * Creates its own database `hashwatt_shapes` on 127.0.0.1:5432 (user postgres) and drops it at the
 * end, also on failure or Ctrl-C. Prints markdown and writes bench/results/storage-shapes.json
 * (storage-shapes.quick.json with --quick, so a quick check never overwrites the full figures).
 * --key skips the automatic choice of the key the later phases run on.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { type Conn, connect, machineBusyUs, PG, processCpuUs } from './support/postgres-cpu.ts';

// ---------------------------------------------------------------------------------------------
// Configuration

interface Scale {
  devices: number;
  sites: number;
  /** 10-s steps (all devices each) COPYed into every wide table before measuring. */
  preloadSteps: number;
  /** Steps per measured run of the key-order comparison. */
  keySteps: number;
  /** Steps per measured run of write paths, duplicates, RETURNING and latest-state. */
  pathSteps: number;
  /** Upsert-only passes over device_latest before it is measured, so it is in steady state. */
  latestWarmSteps: number;
  narrowPreloadSteps: number;
  narrowSteps: number;
  rounds: number;
  probeDevices: number;
}

const FULL: Scale = {
  devices: 100_000,
  sites: 1_000,
  preloadSteps: 200,
  keySteps: 25,
  pathSteps: 6,
  latestWarmSteps: 3,
  narrowPreloadSteps: 35,
  narrowSteps: 4,
  rounds: 3,
  probeDevices: 5,
};

const QUICK: Scale = {
  devices: 10_000,
  sites: 100,
  preloadSteps: 20,
  keySteps: 5,
  pathSteps: 2,
  latestWarmSteps: 2,
  narrowPreloadSteps: 5,
  narrowSteps: 2,
  rounds: 2,
  probeDevices: 3,
};

const DB_NAME = 'hashwatt_shapes';
const STEP_MS = 10_000;
const DAY_MS = 86_400_000;
/** A UTC midnight: every step of the run lands in this one daily partition, as during a real day. */
const BASE_MS = Date.UTC(2026, 0, 5);

type KeyName = 'a' | 'b' | 'c';
const KEY_NAMES: readonly KeyName[] = ['a', 'b', 'c'];
const WIDE_KEYS: Record<KeyName, string> = {
  a: 'site_id, device_id, ts',
  b: 'site_id, ts, device_id',
  c: 'ts, site_id, device_id',
};
const NARROW_KEYS: Record<KeyName, string> = {
  a: 'site_id, device_id, metric, ts',
  b: 'site_id, ts, device_id, metric',
  c: 'ts, site_id, device_id, metric',
};

const METRICS = [
  { name: 'power_w', type: 'float8' },
  { name: 'hashrate_ths', type: 'float8' },
  { name: 'expected_hashrate_ths', type: 'float8' },
  { name: 'temp_c', type: 'real' },
  { name: 'fan_rpm', type: 'real' },
  { name: 'gpu_util_pct', type: 'real' },
  { name: 'gpu_mem_used_bytes', type: 'float8' },
  { name: 'available_power_w', type: 'float8' },
] as const;
const STATUS_LABELS = ['ok', 'curtailed', 'idle', 'error', 'offline'] as const;
/** Narrow rows carry the status as one more metric, its value the label's index. */
const STATUS_METRIC = METRICS.length;

const WIDE_COLUMNS = ['site_id', 'device_id', 'ts', ...METRICS.map((m) => m.name), 'status'].join(', ');
const METRIC_DDL = METRICS.map((m) => `${m.name} ${m.type === 'real' ? 'real' : 'double precision'}`).join(
  ', ',
);

type TsEncoding = 'float8-ms' | 'bigint-ms' | 'text';
const TS_SQL: Record<TsEncoding, { type: string; expr: string }> = {
  'float8-ms': { type: 'float8[]', expr: 'to_timestamp(t / 1000.0)' },
  'bigint-ms': { type: 'bigint[]', expr: "'epoch'::timestamptz + t * interval '1 millisecond'" },
  text: { type: 'timestamptz[]', expr: 't' },
};

// ---------------------------------------------------------------------------------------------
// Synthetic fleet: device d (1-based) belongs to site ceil(d / devicesPerSite); every tenth device is
// a GPU, the rest ASICs. Values depend only on (device, step), so a retried step is byte-identical.

interface Batch {
  n: number;
  /** Non-null metric values (status not counted). */
  samples: number;
  site: Int32Array;
  device: Int32Array;
  ts: Float64Array;
  /** One column per METRICS entry; NaN is NULL. */
  metrics: Float64Array[];
  /** Index into STATUS_LABELS; -1 is NULL. */
  status: Int8Array;
}

function allocBatch(n: number): Batch {
  return {
    n,
    samples: 0,
    site: new Int32Array(n),
    device: new Int32Array(n),
    ts: new Float64Array(n),
    metrics: METRICS.map(() => new Float64Array(n).fill(Number.NaN)),
    status: new Int8Array(n).fill(-1),
  };
}

function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return h >>> 0;
}

function generateBatch(scale: Scale, step: number, firstDevice: number, count: number): Batch {
  const b = allocBatch(count);
  const perSite = scale.devices / scale.sites;
  const [power, hashrate, expected, temp, fan, util, mem] = b.metrics as [
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
  ];
  for (let i = 0; i < count; i++) {
    const d = firstDevice + i;
    const h = mix(d, step);
    b.site[i] = Math.floor((d - 1) / perSite) + 1;
    b.device[i] = d;
    // Devices do not report on the same millisecond; the spread also exercises ms round-tripping.
    b.ts[i] = BASE_MS + step * STEP_MS + ((d * 389) % 1000);
    // Values are one division of integers so that they print short, as device APIs send them.
    if (d % 10 === 0) {
      power[i] = (2500 + (h % 4000)) / 10;
      util[i] = ((h >>> 8) % 1001) / 10;
      temp[i] = (400 + ((h >>> 16) % 400)) / 10;
      mem[i] = ((h >>> 4) % 80_000) * 1_000_000;
      b.samples += 4;
    } else {
      power[i] = (30_000 + (h % 6000)) / 10;
      hashrate[i] = (10_000 + ((h >>> 8) % 2000)) / 100;
      expected[i] = (11_000 + (d % 500)) / 100;
      temp[i] = (550 + ((h >>> 16) % 250)) / 10;
      fan[i] = 4000 + ((h >>> 4) % 2000);
      const r = h >>> 24;
      b.status[i] = r < 243 ? 0 : r < 248 ? 1 : r < 251 ? 2 : r < 253 ? 3 : 4;
      b.samples += 5;
    }
  }
  return b;
}

function permute(b: Batch, order: ArrayLike<number>): Batch {
  const out = allocBatch(order.length);
  for (let i = 0; i < order.length; i++) {
    const j = order[i]!;
    out.site[i] = b.site[j]!;
    out.device[i] = b.device[j]!;
    out.ts[i] = b.ts[j]!;
    out.status[i] = b.status[j]!;
    for (let m = 0; m < METRICS.length; m++) {
      const v = b.metrics[m]![j]!;
      out.metrics[m]![i] = v;
      if (!Number.isNaN(v)) out.samples++;
    }
  }
  return out;
}

/** Rows in key order: the research measured ~13 % more throughput for batches sorted by the key. */
function sortByKey(b: Batch, key: KeyName): Batch {
  // Generated in device order with one ts per device, which is already (site, device, ts) order.
  if (key === 'a') return b;
  const order = Array.from({ length: b.n }, (_, i) => i);
  const { site, ts, device } = b;
  if (key === 'b') order.sort((i, j) => site[i]! - site[j]! || ts[i]! - ts[j]! || device[i]! - device[j]!);
  else order.sort((i, j) => ts[i]! - ts[j]! || site[i]! - site[j]! || device[i]! - device[j]!);
  return permute(b, order);
}

/** Batches for `steps` consecutive steps, each step cut into slices of `batchSize` devices. */
function makeBatches(
  scale: Scale,
  firstStep: number,
  steps: number,
  batchSize: number,
  key: KeyName,
): Batch[] {
  const out: Batch[] = [];
  for (let s = firstStep; s < firstStep + steps; s++) {
    for (let d = 1; d <= scale.devices; d += batchSize) {
      out.push(sortByKey(generateBatch(scale, s, d, Math.min(batchSize, scale.devices - d + 1)), key));
    }
  }
  return out;
}

/** Newest reading per device, in device order (a stable lock order for concurrent upserts). */
function latestPerDevice(b: Batch): Batch {
  const newest = new Map<number, number>();
  for (let i = 0; i < b.n; i++) {
    const seen = newest.get(b.device[i]!);
    if (seen === undefined || b.ts[i]! > b.ts[seen]!) newest.set(b.device[i]!, i);
  }
  const order = [...newest.values()].sort((i, j) => b.device[i]! - b.device[j]!);
  return permute(b, order);
}

interface NarrowBatch {
  n: number;
  samples: number;
  site: Int32Array;
  device: Int32Array;
  metric: Int16Array;
  ts: Float64Array;
  value: Float64Array;
}

/** One row per non-null value; expanding a key-sorted wide batch in metric order keeps it key-sorted. */
function toNarrow(b: Batch): NarrowBatch {
  const cap = b.n * (METRICS.length + 1);
  const site = new Int32Array(cap);
  const device = new Int32Array(cap);
  const metric = new Int16Array(cap);
  const ts = new Float64Array(cap);
  const value = new Float64Array(cap);
  let n = 0;
  const push = (i: number, m: number, v: number) => {
    site[n] = b.site[i]!;
    device[n] = b.device[i]!;
    metric[n] = m;
    ts[n] = b.ts[i]!;
    value[n] = v;
    n++;
  };
  for (let i = 0; i < b.n; i++) {
    for (let m = 0; m < METRICS.length; m++) {
      const v = b.metrics[m]![i]!;
      if (!Number.isNaN(v)) push(i, m, v);
    }
    if (b.status[i] !== -1) push(i, STATUS_METRIC, b.status[i]!);
  }
  return {
    n,
    samples: b.samples,
    site: site.subarray(0, n),
    device: device.subarray(0, n),
    metric: metric.subarray(0, n),
    ts: ts.subarray(0, n),
    value: value.subarray(0, n),
  };
}

// ---------------------------------------------------------------------------------------------
// Encoders

const MS3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
let cachedSecond = Number.NaN;
let cachedPrefix = '';

/** ISO-8601 UTC with milliseconds; the formatted second is cached since batches come in time order. */
function formatTs(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  return `${cachedPrefix}.${MS3[ms - second * 1000]}Z`;
}

/** Postgres array literal built by hand; NaN becomes NULL. */
function numberLiteral(a: ArrayLike<number>): string {
  let out = '{';
  for (let i = 0; i < a.length; i++) {
    if (i > 0) out += ',';
    const v = a[i]!;
    out += Number.isNaN(v) ? 'NULL' : String(v);
  }
  return `${out}}`;
}

function statusLiteral(a: Int8Array): string {
  let out = '{';
  for (let i = 0; i < a.length; i++) {
    if (i > 0) out += ',';
    const v = a[i]!;
    out += v === -1 ? 'NULL' : STATUS_LABELS[v];
  }
  return `${out}}`;
}

/** ISO strings need no quoting inside an array literal: no commas, braces, quotes or spaces. */
function tsTextLiteral(a: Float64Array): string {
  let out = '{';
  for (let i = 0; i < a.length; i++) {
    if (i > 0) out += ',';
    out += formatTs(a[i]!);
  }
  return `${out}}`;
}

function unnestParams(b: Batch, ts: TsEncoding): string[] {
  return [
    numberLiteral(b.site),
    numberLiteral(b.device),
    ts === 'text' ? tsTextLiteral(b.ts) : numberLiteral(b.ts),
    ...b.metrics.map(numberLiteral),
    statusLiteral(b.status),
  ];
}

/** Plain JS arrays for pg's own array serialiser, the path the research says doubles Node CPU. */
function defaultSerialiserParams(b: Batch): unknown[] {
  const nullable = (a: Float64Array) => Array.from(a, (v) => (Number.isNaN(v) ? null : v));
  return [
    Array.from(b.site),
    Array.from(b.device),
    Array.from(b.ts),
    ...b.metrics.map(nullable),
    Array.from(b.status, (v) => (v === -1 ? null : STATUS_LABELS[v])),
  ];
}

/** What a query builder's `.values(rows)` sends: one parameter per value, Date objects for ts. */
function valuesParams(b: Batch): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < b.n; i++) {
    out.push(b.site[i], b.device[i], new Date(b.ts[i]!));
    for (let m = 0; m < METRICS.length; m++) {
      const v = b.metrics[m]![i]!;
      out.push(Number.isNaN(v) ? null : v);
    }
    const s = b.status[i]!;
    out.push(s === -1 ? null : STATUS_LABELS[s]);
  }
  return out;
}

function copyText(b: Batch): string {
  let out = '';
  for (let i = 0; i < b.n; i++) {
    out += `${b.site[i]}\t${b.device[i]}\t${formatTs(b.ts[i]!)}`;
    for (let m = 0; m < METRICS.length; m++) {
      const v = b.metrics[m]![i]!;
      out += Number.isNaN(v) ? '\t\\N' : `\t${v}`;
    }
    const s = b.status[i]!;
    out += s === -1 ? '\t\\N\n' : `\t${STATUS_LABELS[s]}\n`;
  }
  return out;
}

function narrowCopyText(b: NarrowBatch): string {
  let out = '';
  for (let i = 0; i < b.n; i++) {
    out += `${b.site[i]}\t${b.device[i]}\t${b.metric[i]}\t${formatTs(b.ts[i]!)}\t${b.value[i]}\n`;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// SQL

function unnestFrom(ts: TsEncoding, ordinality = false): string {
  const metricArgs = METRICS.map((m, i) => `$${i + 4}::${m.type}[]`).join(', ');
  const metricNames = METRICS.map((_, i) => `m${i}`).join(', ');
  return `FROM unnest($1::int[], $2::int[], $3::${TS_SQL[ts].type}, ${metricArgs},
      $${METRICS.length + 4}::device_status[])${ordinality ? ' WITH ORDINALITY' : ''}
      AS u(s, d, t, ${metricNames}, st${ordinality ? ', ord' : ''})`;
}

function insertSql(table: string, ts: TsEncoding, returning: boolean): string {
  const metricNames = METRICS.map((_, i) => `m${i}`).join(', ');
  return `INSERT INTO ${table} (${WIDE_COLUMNS})
    SELECT s, d, ${TS_SQL[ts].expr}, ${metricNames}, st ${unnestFrom(ts)}
    ON CONFLICT DO NOTHING${returning ? ' RETURNING device_id, ts' : ''}`;
}

/**
 * Inserts and returns only the positions (1-based) of the rows that were not inserted: nothing comes
 * back in the common case, yet the caller still learns exactly which rows were duplicates. (Repeats of
 * one key inside the batch are not caught by the join; the caller can spot those itself.)
 */
function insertReportingDuplicatesSql(table: string): string {
  const metricNames = METRICS.map((_, i) => `m${i}`).join(', ');
  return `WITH u AS (SELECT s, d, ${TS_SQL['float8-ms'].expr} AS ts, ${metricNames}, st, ord
      ${unnestFrom('float8-ms', true)}),
    ins AS (INSERT INTO ${table} (${WIDE_COLUMNS}) SELECT s, d, ts, ${metricNames}, st FROM u
      ON CONFLICT DO NOTHING RETURNING device_id, ts)
    SELECT u.ord FROM u LEFT JOIN ins ON ins.device_id = u.d AND ins.ts = u.ts WHERE ins.device_id IS NULL`;
}

/** UPDATE-only alternative to the upsert, for devices already known to device_latest. */
function updateLatestSql(table: string): string {
  const sets = METRICS.map((m, i) => `${m.name} = u.m${i}`).join(', ');
  return `UPDATE ${table} AS l SET site_id = u.s, ts = ${TS_SQL['float8-ms'].expr}, received_at = now(), ${sets},
      status = u.st
    ${unnestFrom('float8-ms')}
    WHERE l.device_id = u.d AND ${TS_SQL['float8-ms'].expr} > l.ts`;
}

function valuesSql(table: string, rows: number): string {
  const width = METRICS.length + 4;
  const tuples: string[] = [];
  for (let r = 0; r < rows; r++) {
    tuples.push(`(${Array.from({ length: width }, (_, c) => `$${r * width + c + 1}`).join(', ')})`);
  }
  return `INSERT INTO ${table} (${WIDE_COLUMNS}) VALUES ${tuples.join(', ')} ON CONFLICT DO NOTHING`;
}

function upsertLatestSql(table: string): string {
  const metricNames = METRICS.map((_, i) => `m${i}`).join(', ');
  const sets = [...METRICS.map((m) => m.name), 'status'].map((c) => `${c} = excluded.${c}`).join(', ');
  return `INSERT INTO ${table} AS l (device_id, site_id, ts, received_at, ${METRICS.map((m) => m.name).join(', ')}, status)
    SELECT d, s, ${TS_SQL['float8-ms'].expr}, now(), ${metricNames}, st ${unnestFrom('float8-ms')}
    ON CONFLICT (device_id) DO UPDATE SET site_id = excluded.site_id, ts = excluded.ts,
      received_at = excluded.received_at, ${sets}
    WHERE excluded.ts > l.ts`;
}

function narrowInsertSql(table: string): string {
  return `INSERT INTO ${table} (site_id, device_id, metric, ts, value)
    SELECT s, d, m, to_timestamp(t / 1000.0), v
    FROM unnest($1::int[], $2::int[], $3::smallint[], $4::float8[], $5::float8[]) AS u(s, d, m, t, v)
    ON CONFLICT DO NOTHING`;
}

function dayName(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10).replaceAll('-', '');
}

/** Daily partitions around BASE_MS; all measured data falls into the BASE_MS day. */
function partitionsDdl(table: string): string[] {
  return [-1, 0, 1].map((offset) => {
    const from = BASE_MS + offset * DAY_MS;
    return `CREATE TABLE ${table}_p${dayName(from)} PARTITION OF ${table}
      FOR VALUES FROM ('${new Date(from).toISOString()}') TO ('${new Date(from + DAY_MS).toISOString()}')`;
  });
}

// ---------------------------------------------------------------------------------------------
// Connections and measurement

type Job = (conn: Conn) => Promise<number>;

interface RunSpec {
  phase: string;
  variant: string;
  round: number;
  conns: number;
  rows: number;
  samples: number;
  /** Rows the run must report as written: all of them, or none for a retried batch. */
  expect: 'all' | 'none';
  jobs: Job[];
}

interface RunResult {
  phase: string;
  variant: string;
  round: number;
  conns: number;
  rows: number;
  samples: number;
  /** Rows the statements reported as written (0 for an all-duplicate batch). */
  affected: number;
  seconds: number;
  rowsPerSec: number;
  samplesPerSec: number;
  nodeCpuUsPerRow: number;
  /** CPU of the backends serving the run. */
  pgBackendCpuUsPerRow: number;
  /** CPU of checkpointer, background writer and WAL writer during the run. */
  pgBackgroundCpuUsPerRow: number;
  walBytesPerRow: number;
  /** CPU used by everything else on the machine during the run, in cores: the noise indicator. */
  otherLoadCores: number;
}

interface Ctx {
  scale: Scale;
  admin: Conn;
  workers: Conn[];
  backgroundPids: number[];
  runs: RunResult[];
}

async function walLsn(admin: Conn): Promise<string> {
  const { rows } = await admin.client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return rows[0]!.lsn;
}

async function measure(ctx: Ctx, spec: RunSpec): Promise<RunResult> {
  // Every run starts from a clean checkpoint, so none inherits another's dirty pages or half-done
  // checkpoint; full-page writes after the checkpoint are part of what each run pays.
  await ctx.admin.client.query('CHECKPOINT');
  const workers = ctx.workers.slice(0, spec.conns);
  const lsn0 = await walLsn(ctx.admin);
  const sumCpu = (pids: number[]) => pids.reduce((acc, pid) => acc + processCpuUs(pid), 0);
  const backend0 = sumCpu(workers.map((w) => w.pid));
  const background0 = sumCpu(ctx.backgroundPids);
  const node0 = process.cpuUsage();
  const busy0 = machineBusyUs();
  const t0 = performance.now();

  let next = 0;
  let affected = 0;
  await Promise.all(
    workers.map(async (w) => {
      while (next < spec.jobs.length) {
        const job = spec.jobs[next++]!;
        // Not `affected += await job(w)`: that reads `affected` before the await and loses the other worker's rows.
        const n = await job(w);
        affected += n;
      }
    }),
  );

  const seconds = (performance.now() - t0) / 1000;
  const busy = machineBusyUs() - busy0;
  const node = process.cpuUsage(node0);
  const backend = sumCpu(workers.map((w) => w.pid)) - backend0;
  const background = sumCpu(ctx.backgroundPids) - background0;
  if (affected !== (spec.expect === 'all' ? spec.rows : 0)) {
    throw new Error(
      `${spec.phase} | ${spec.variant}: wrote ${affected} of ${spec.rows} rows, expected ${spec.expect}`,
    );
  }
  const { rows } = await ctx.admin.client.query<{ bytes: string }>(
    'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::text AS bytes',
    [lsn0],
  );
  const result: RunResult = {
    phase: spec.phase,
    variant: spec.variant,
    round: spec.round,
    conns: spec.conns,
    rows: spec.rows,
    samples: spec.samples,
    affected,
    seconds,
    rowsPerSec: spec.rows / seconds,
    samplesPerSec: spec.samples / seconds,
    nodeCpuUsPerRow: (node.user + node.system) / spec.rows,
    pgBackendCpuUsPerRow: backend / spec.rows,
    pgBackgroundCpuUsPerRow: background / spec.rows,
    walBytesPerRow: Number(rows[0]!.bytes) / spec.rows,
    otherLoadCores: Math.max(0, busy - node.user - node.system - backend - background) / 1e6 / seconds,
  };
  ctx.runs.push(result);
  console.error(
    `  ${spec.phase} | ${spec.variant} | round ${spec.round}: ${fmtK(result.rowsPerSec)} rows/s ` +
      `(${seconds.toFixed(1)} s, ${affected} written, other load ${result.otherLoadCores.toFixed(2)} cores)`,
  );
  return result;
}

const sumRows = (bs: readonly { n: number }[]) => bs.reduce((a, b) => a + b.n, 0);
const sumSamples = (bs: readonly { samples: number }[]) => bs.reduce((a, b) => a + b.samples, 0);

async function copyIn(conn: Conn, sql: string, chunks: Iterable<string>): Promise<number> {
  const stream = conn.client.query(copyFrom(sql));
  await pipeline(Readable.from(chunks), stream);
  return stream.rowCount;
}

function* mapIter<T, U>(items: Iterable<T>, f: (t: T) => U): Generator<U> {
  for (const item of items) yield f(item);
}

/** Rotates the order of the variants each round, so none always runs first or on the fullest table. */
function rotated<T>(items: readonly T[], round: number): T[] {
  const k = (round - 1) % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

// ---------------------------------------------------------------------------------------------
// Sizes and read probes

interface SizeReport {
  table: string;
  rows: number;
  samples: number;
  heapBytes: number;
  indexBytes: number;
  totalBytes: number;
  bytesPerRow: number;
  bytesPerSample: number;
}

async function relationBytes(admin: Conn, table: string) {
  const { rows } = await admin.client.query<{ heap: string; index: string; total: string }>(
    `SELECT sum(pg_table_size(relid))::text AS heap, sum(pg_indexes_size(relid))::text AS index,
       sum(pg_total_relation_size(relid))::text AS total
     FROM pg_partition_tree($1) WHERE isleaf`,
    [table],
  );
  const r = rows[0]!;
  return { heapBytes: Number(r.heap), indexBytes: Number(r.index), totalBytes: Number(r.total) };
}

async function wideSize(admin: Conn, table: string): Promise<SizeReport> {
  const nonNulls = METRICS.map((m) => m.name).join(', ');
  const { rows } = await admin.client.query<{ rows: string; samples: string }>(
    `SELECT count(*)::text AS rows, sum(num_nonnulls(${nonNulls}))::text AS samples FROM ${table}`,
  );
  const bytes = await relationBytes(admin, table);
  const n = Number(rows[0]!.rows);
  const samples = Number(rows[0]!.samples);
  return {
    table,
    rows: n,
    samples,
    ...bytes,
    bytesPerRow: bytes.totalBytes / n,
    bytesPerSample: bytes.totalBytes / samples,
  };
}

async function narrowSize(admin: Conn, table: string): Promise<SizeReport> {
  const { rows } = await admin.client.query<{ rows: string; samples: string }>(
    `SELECT count(*)::text AS rows, count(*) FILTER (WHERE metric <> ${STATUS_METRIC})::text AS samples FROM ${table}`,
  );
  const bytes = await relationBytes(admin, table);
  const n = Number(rows[0]!.rows);
  const samples = Number(rows[0]!.samples);
  return {
    table,
    rows: n,
    samples,
    ...bytes,
    bytesPerRow: bytes.totalBytes / n,
    bytesPerSample: bytes.totalBytes / samples,
  };
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}

interface ExplainJson {
  Plan: PlanNode;
  'Execution Time': number;
}

interface ProbeResult {
  table: string;
  query: string;
  /** Median over the probed devices/sites. */
  ms: number;
  /** Shared-buffer pages touched (hit + read), median. */
  pages: number;
  plan: string;
}

function scanNodes(node: PlanNode): string[] {
  // Partition index names differ only by day; the suffix (pkey, ts_idx) says which index it is.
  const index = node['Index Name']?.replace(/^.*_p\d{8}_/, '');
  const own = /Scan/.test(node['Node Type']) ? [`${node['Node Type']}${index ? ` (${index})` : ''}`] : [];
  return [...own, ...(node.Plans ?? []).flatMap(scanNodes)];
}

async function explain(
  conn: Conn,
  sql: string,
  values: unknown[],
): Promise<{ ms: number; pages: number; plan: string }> {
  const { rows } = await conn.client.query<{ 'QUERY PLAN': ExplainJson[] }>(
    `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`,
    values,
  );
  const e = rows[0]!['QUERY PLAN'][0]!;
  const pages = (e.Plan['Shared Hit Blocks'] ?? 0) + (e.Plan['Shared Read Blocks'] ?? 0);
  return { ms: e['Execution Time'], pages, plan: [...new Set(scanNodes(e.Plan))].join(' + ') };
}

/** Reads the API will serve, over the last preloaded 10 minutes (1 minute for the fleet rollup). */
async function readProbes(ctx: Ctx, table: string, label: string): Promise<ProbeResult[]> {
  const { scale } = ctx;
  const end = BASE_MS + scale.preloadSteps * STEP_MS;
  const from = new Date(end - Math.min(60, scale.preloadSteps) * STEP_MS).toISOString();
  const to = new Date(end).toISOString();
  const perSite = scale.devices / scale.sites;
  const devices = Array.from({ length: scale.probeDevices }, (_, i) => 1 + ((i * 7919 + 17) % scale.devices));
  const conn = ctx.workers[0]!;
  const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const probe = async (query: string, sql: string, args: unknown[][]): Promise<ProbeResult> => {
    const res = [];
    for (const a of args) res.push(await explain(conn, sql, a));
    return {
      table: label,
      query,
      ms: median(res.map((r) => r.ms)),
      pages: median(res.map((r) => r.pages)),
      plan: res[0]!.plan,
    };
  };
  const fleetFrom = new Date(end - 6 * STEP_MS).toISOString();
  return [
    await probe(
      'one device, 10 min',
      `SELECT ts, power_w, hashrate_ths, temp_c FROM ${table}
       WHERE site_id = $1 AND device_id = $2 AND ts >= $3 AND ts < $4 ORDER BY ts`,
      devices.map((d) => [Math.floor((d - 1) / perSite) + 1, d, from, to]),
    ),
    await probe(
      'one site per device, 10 min',
      `SELECT device_id, avg(power_w), max(temp_c) FROM ${table}
       WHERE site_id = $1 AND ts >= $2 AND ts < $3 GROUP BY device_id`,
      devices.map((d) => [Math.floor((d - 1) / perSite) + 1, from, to]),
    ),
    await probe(
      'fleet per site, 1 min',
      `SELECT site_id, sum(power_w), avg(hashrate_ths) FROM ${table}
       WHERE ts >= $1 AND ts < $2 GROUP BY site_id`,
      [[fleetFrom, to]],
    ),
  ];
}

// ---------------------------------------------------------------------------------------------
// Phases

interface WideTable {
  name: string;
  key: KeyName;
  /** Next step not yet written. */
  nextStep: number;
}

async function createWide(ctx: Ctx, name: string, key: KeyName): Promise<WideTable> {
  const c = ctx.admin.client;
  await c.query(`CREATE TABLE ${name} (site_id integer NOT NULL, device_id integer NOT NULL,
    ts timestamptz NOT NULL, ${METRIC_DDL}, status device_status) PARTITION BY RANGE (ts)`);
  for (const ddl of partitionsDdl(name)) await c.query(ddl);
  return { name, key, nextStep: 0 };
}

/** COPY into the bare table, then build the key: a sorted index build is far faster than 20M inserts. */
async function preloadWide(ctx: Ctx, t: WideTable, steps: number): Promise<number> {
  const t0 = performance.now();
  const { scale } = ctx;
  function* chunks() {
    for (let s = 0; s < steps; s++) {
      for (let d = 1; d <= scale.devices; d += 10_000) {
        yield copyText(generateBatch(scale, s, d, Math.min(10_000, scale.devices - d + 1)));
      }
    }
  }
  await copyIn(ctx.admin, `COPY ${t.name} (${WIDE_COLUMNS}) FROM STDIN`, chunks());
  await ctx.admin.client.query(`ALTER TABLE ${t.name} ADD PRIMARY KEY (${WIDE_KEYS[t.key]})`);
  await ctx.admin.client.query(`VACUUM ANALYZE ${t.name}`);
  t.nextStep = steps;
  const seconds = (performance.now() - t0) / 1000;
  console.error(`  preloaded ${t.name}: ${steps * scale.devices} rows in ${seconds.toFixed(0)} s`);
  return seconds;
}

function takeSteps(t: WideTable, steps: number): number {
  const first = t.nextStep;
  t.nextStep += steps;
  return first;
}

/**
 * How the caller learns which rows were duplicates: not at all (rowCount), RETURNING with ts parsed
 * into Date (pg's default), RETURNING with ts left as text, or only the duplicates' positions.
 */
type DuplicateReport = 'count' | 'returning' | 'returning-ts-text' | 'positions';

interface UnnestOptions {
  ts: TsEncoding;
  report?: DuplicateReport;
  defaultSerialiser?: boolean;
}

const RAW_TEXT_TYPES = { getTypeParser: () => (value: string) => value };

function unnestJobs(t: WideTable, batches: Batch[], o: UnnestOptions): Job[] {
  const report = o.report ?? 'count';
  const text =
    report === 'positions'
      ? insertReportingDuplicatesSql(t.name)
      : insertSql(t.name, o.ts, report !== 'count');
  const name = `ins_${t.name}_${o.ts}_${report}_${o.defaultSerialiser ? 'pg' : 'lit'}`;
  const types = report === 'returning-ts-text' ? RAW_TEXT_TYPES : undefined;
  return batches.map((b) => async (w) => {
    const values = o.defaultSerialiser ? defaultSerialiserParams(b) : unnestParams(b, o.ts);
    const r = await w.client.query({ name, text, values, types });
    if (report === 'count') return r.rowCount ?? 0;
    return report === 'positions' ? b.n - r.rows.length : r.rows.length;
  });
}

function wideRun(
  phase: string,
  variant: string,
  round: number,
  conns: number,
  batches: Batch[],
  jobs: Job[],
  expect: 'all' | 'none' = 'all',
): RunSpec {
  return { phase, variant, round, conns, rows: sumRows(batches), samples: sumSamples(batches), expect, jobs };
}

interface IndexGrowth {
  key: KeyName;
  rowsInserted: number;
  /** Index bytes added per row inserted by the measured runs (the preload's index was built sorted). */
  indexBytesPerRow: number;
  heapBytesPerRow: number;
}

interface KeyPhase {
  tables: Record<KeyName, WideTable>;
  preloadSeconds: Record<KeyName, number>;
  growth: IndexGrowth[];
}

async function keyOrderPhase(ctx: Ctx): Promise<KeyPhase> {
  console.error('key order: preload');
  const tables = {} as Record<KeyName, WideTable>;
  const preloadSeconds = {} as Record<KeyName, number>;
  for (const key of KEY_NAMES) {
    tables[key] = await createWide(ctx, `readings_${key}`, key);
    preloadSeconds[key] = await preloadWide(ctx, tables[key], ctx.scale.preloadSteps);
  }
  const afterPreload = new Map<KeyName, { heapBytes: number; indexBytes: number }>();
  for (const key of KEY_NAMES) afterPreload.set(key, await relationBytes(ctx.admin, tables[key].name));
  console.error('key order: measure');
  for (let round = 1; round <= ctx.scale.rounds; round++) {
    for (const key of rotated(KEY_NAMES, round)) {
      const t = tables[key];
      const batches = makeBatches(ctx.scale, takeSteps(t, ctx.scale.keySteps), ctx.scale.keySteps, 5000, key);
      const variant = `${key.toUpperCase()} (${WIDE_KEYS[key]})`;
      await measure(
        ctx,
        wideRun('key order', variant, round, 2, batches, unnestJobs(t, batches, { ts: 'float8-ms' })),
      );
    }
  }
  const growth: IndexGrowth[] = [];
  const rowsInserted = ctx.scale.rounds * ctx.scale.keySteps * ctx.scale.devices;
  for (const key of KEY_NAMES) {
    const before = afterPreload.get(key)!;
    const after = await relationBytes(ctx.admin, tables[key].name);
    growth.push({
      key,
      rowsInserted,
      indexBytesPerRow: (after.indexBytes - before.indexBytes) / rowsInserted,
      heapBytesPerRow: (after.heapBytes - before.heapBytes) / rowsInserted,
    });
  }
  return { tables, preloadSeconds, growth };
}

interface PathVariant {
  name: string;
  conns: number;
  batch: number;
  jobs: (t: WideTable, batches: Batch[]) => Job[];
}

function writePathVariants(t: WideTable): PathVariant[] {
  const unnest = (batch: number, conns: number): PathVariant => ({
    name: `unnest ${batch / 1000}k, float8 ms, literals`,
    conns,
    batch,
    jobs: (tt, bs) => unnestJobs(tt, bs, { ts: 'float8-ms' }),
  });
  const staging = `staging_${t.name}`;
  return [
    {
      name: 'COPY one stream, no conflict handling',
      conns: 1,
      batch: 5000,
      jobs: (tt, bs) => [
        (w) => copyIn(w, `COPY ${tt.name} (${WIDE_COLUMNS}) FROM STDIN`, mapIter(bs, copyText)),
      ],
    },
    {
      name: 'COPY 5k to temp staging + INSERT OCDN',
      conns: 2,
      batch: 5000,
      jobs: (tt, bs) =>
        bs.map((b) => async (w) => {
          await w.client.query('BEGIN');
          await copyIn(w, `COPY ${staging} (${WIDE_COLUMNS}) FROM STDIN`, [copyText(b)]);
          const r = await w.client.query(
            `INSERT INTO ${tt.name} SELECT * FROM ${staging} ON CONFLICT DO NOTHING`,
          );
          await w.client.query('COMMIT');
          return r.rowCount ?? 0;
        }),
    },
    unnest(1000, 1),
    unnest(5000, 1),
    unnest(10_000, 1),
    unnest(1000, 2),
    unnest(5000, 2),
    unnest(10_000, 2),
    {
      name: "unnest 5k, float8 ms, pg's array serialiser",
      conns: 2,
      batch: 5000,
      jobs: (tt, bs) => unnestJobs(tt, bs, { ts: 'float8-ms', defaultSerialiser: true }),
    },
    {
      name: 'unnest 5k, bigint ms, literals',
      conns: 2,
      batch: 5000,
      jobs: (tt, bs) => unnestJobs(tt, bs, { ts: 'bigint-ms' }),
    },
    {
      name: 'unnest 5k, timestamptz text, literals',
      conns: 2,
      batch: 5000,
      jobs: (tt, bs) => unnestJobs(tt, bs, { ts: 'text' }),
    },
    {
      name: 'multi-row VALUES 1k, Date params',
      conns: 2,
      batch: 1000,
      jobs: (tt, bs) => {
        const text = valuesSql(tt.name, 1000);
        return bs.map((b) => async (w) => {
          const r = await w.client.query({ name: `values_${tt.name}`, text, values: valuesParams(b) });
          return r.rowCount ?? 0;
        });
      },
    },
  ];
}

async function writePathPhase(ctx: Ctx, t: WideTable): Promise<void> {
  console.error(`write paths on ${t.name}`);
  for (const w of ctx.workers) {
    await w.client.query(`CREATE TEMP TABLE staging_${t.name} (LIKE ${t.name}) ON COMMIT DELETE ROWS`);
  }
  const variants = writePathVariants(t);
  for (let round = 1; round <= ctx.scale.rounds; round++) {
    for (const v of rotated(variants, round)) {
      const steps = ctx.scale.pathSteps;
      const batches = makeBatches(ctx.scale, takeSteps(t, steps), steps, v.batch, t.key);
      const variant = `${v.name}, ${v.conns} conn${v.conns > 1 ? 's' : ''}`;
      await measure(ctx, wideRun('write path', variant, round, v.conns, batches, v.jobs(t, batches)));
    }
  }
}

interface LatestReport {
  table: string;
  fillfactor: number;
  statement: 'upsert' | 'update';
  /** HOT share of the updates made during the measured runs. */
  hotPct: number;
  bytesAfter: number;
}

interface LatestVariant {
  table: string;
  fillfactor: number;
  statement: 'upsert' | 'update';
}

async function latestPhase(ctx: Ctx, t: WideTable): Promise<LatestReport[]> {
  console.error(`latest state on ${t.name}`);
  const c = ctx.admin.client;
  const latest: LatestVariant[] = [
    { table: 'latest_ff100', fillfactor: 100, statement: 'upsert' },
    { table: 'latest_ff90', fillfactor: 90, statement: 'upsert' },
    { table: 'latest_ff70', fillfactor: 70, statement: 'upsert' },
    { table: 'latest_ff70_update', fillfactor: 70, statement: 'update' },
  ];
  // The first pass inserts every device; later passes are updates, which is the steady state.
  const warm = takeSteps(t, ctx.scale.latestWarmSteps);
  const warmBatches = makeBatches(ctx.scale, warm, ctx.scale.latestWarmSteps, 5000, t.key).map(
    latestPerDevice,
  );
  for (const l of latest) {
    await c.query(`CREATE TABLE ${l.table} (device_id integer PRIMARY KEY, site_id integer NOT NULL,
      ts timestamptz NOT NULL, received_at timestamptz NOT NULL, ${METRIC_DDL}, status device_status)
      WITH (fillfactor = ${l.fillfactor})`);
    await c.query(`CREATE INDEX ON ${l.table} (site_id)`);
    const text = upsertLatestSql(l.table);
    for (const b of warmBatches) {
      await ctx.workers[0]!.client.query({
        name: `warm_${l.table}`,
        text,
        values: unnestParams(b, 'float8-ms'),
      });
    }
    await c.query(`VACUUM ANALYZE ${l.table}`);
  }
  const stats = async () => {
    for (const w of ctx.workers) await w.client.query('SELECT pg_stat_force_next_flush()');
    const { rows } = await c.query<{ relname: string; upd: string; hot: string }>(
      `SELECT relname, n_tup_upd::text AS upd, n_tup_hot_upd::text AS hot FROM pg_stat_user_tables
       WHERE relname LIKE 'latest_ff%'`,
    );
    return new Map(rows.map((r) => [r.relname, { upd: Number(r.upd), hot: Number(r.hot) }]));
  };
  const before = await stats();

  const insertText = insertSql(t.name, 'float8-ms', false);
  const variants: (LatestVariant | null)[] = [null, ...latest];
  for (let round = 1; round <= ctx.scale.rounds; round++) {
    for (const l of rotated(variants, round)) {
      const steps = ctx.scale.pathSteps;
      const batches = makeBatches(ctx.scale, takeSteps(t, steps), steps, 5000, t.key);
      const latestText =
        l === null ? '' : (l.statement === 'update' ? updateLatestSql : upsertLatestSql)(l.table);
      const jobs: Job[] = batches.map((b) => async (w) => {
        await w.client.query('BEGIN');
        const r = await w.client.query({
          name: `ins_tx_${t.name}`,
          text: insertText,
          values: unnestParams(b, 'float8-ms'),
        });
        if (l !== null) {
          await w.client.query({
            name: `latest_${l.table}`,
            text: latestText,
            values: unnestParams(latestPerDevice(b), 'float8-ms'),
          });
        }
        await w.client.query('COMMIT');
        return r.rowCount ?? 0;
      });
      const variant =
        l === null
          ? 'readings only (unnest 5k, in a transaction)'
          : `readings + device_latest fillfactor ${l.fillfactor}, ${l.statement === 'update' ? 'UPDATE … FROM unnest' : 'upsert'}`;
      await measure(ctx, wideRun('latest state', variant, round, 2, batches, jobs));
    }
  }

  const after = await stats();
  const reports: LatestReport[] = [];
  for (const l of latest) {
    const b = before.get(l.table) ?? { upd: 0, hot: 0 };
    const a = after.get(l.table) ?? { upd: 0, hot: 0 };
    const { rows } = await c.query<{ bytes: string }>('SELECT pg_total_relation_size($1)::text AS bytes', [
      l.table,
    ]);
    reports.push({
      ...l,
      hotPct: a.upd > b.upd ? (100 * (a.hot - b.hot)) / (a.upd - b.upd) : 0,
      bytesAfter: Number(rows[0]!.bytes),
    });
    await c.query(`DROP TABLE ${l.table}`);
  }
  return reports;
}

async function duplicatesPhase(ctx: Ctx, t: WideTable): Promise<void> {
  console.error(`duplicates and RETURNING on ${t.name}`);
  const reports: [DuplicateReport, string][] = [
    ['count', 'unnest 5k, rowCount only'],
    ['returning', 'unnest 5k + RETURNING device_id, ts (ts parsed to Date)'],
    ['returning-ts-text', 'unnest 5k + RETURNING device_id, ts (ts left as text)'],
    ['positions', 'unnest 5k, CTE returning only the duplicates’ positions'],
  ];
  for (let round = 1; round <= ctx.scale.rounds; round++) {
    let lastFresh = -1;
    for (const [report, variant] of rotated(reports, round)) {
      const steps = ctx.scale.pathSteps;
      const first = takeSteps(t, steps);
      if (report === 'count') lastFresh = first;
      const batches = makeBatches(ctx.scale, first, steps, 5000, t.key);
      const jobs = unnestJobs(t, batches, { ts: 'float8-ms', report });
      await measure(ctx, wideRun('duplicates', variant, round, 2, batches, jobs));
    }
    // A retried batch: exactly the steps just stored.
    const batches = makeBatches(ctx.scale, lastFresh, ctx.scale.pathSteps, 5000, t.key);
    const jobs = unnestJobs(t, batches, { ts: 'float8-ms' });
    await measure(ctx, wideRun('duplicates', 'unnest 5k, 100 % duplicates', round, 2, batches, jobs, 'none'));
  }
}

interface NarrowPhase {
  size: SizeReport;
  preloadSeconds: number;
}

async function narrowPhase(ctx: Ctx, key: KeyName): Promise<NarrowPhase> {
  console.error('narrow shape');
  const { scale } = ctx;
  const table = `samples_${key}`;
  const c = ctx.admin.client;
  await c.query(`CREATE TABLE ${table} (site_id integer NOT NULL, device_id integer NOT NULL, metric smallint NOT NULL,
    ts timestamptz NOT NULL, value double precision NOT NULL) PARTITION BY RANGE (ts)`);
  for (const ddl of partitionsDdl(table)) await c.query(ddl);
  const t0 = performance.now();
  function* chunks() {
    for (let s = 0; s < scale.narrowPreloadSteps; s++) {
      for (let d = 1; d <= scale.devices; d += 5000) {
        yield narrowCopyText(toNarrow(generateBatch(scale, s, d, Math.min(5000, scale.devices - d + 1))));
      }
    }
  }
  await copyIn(ctx.admin, `COPY ${table} (site_id, device_id, metric, ts, value) FROM STDIN`, chunks());
  await c.query(`ALTER TABLE ${table} ADD PRIMARY KEY (${NARROW_KEYS[key]})`);
  await c.query(`VACUUM ANALYZE ${table}`);
  const preloadSeconds = (performance.now() - t0) / 1000;
  console.error(`  preloaded ${table} in ${preloadSeconds.toFixed(0)} s`);

  const text = narrowInsertSql(table);
  let step = scale.narrowPreloadSteps;
  for (let round = 1; round <= scale.rounds; round++) {
    // 1k readings per statement is ~5.8k narrow rows, about the statement size of the wide 5k batches.
    const batches = makeBatches(scale, step, scale.narrowSteps, 1000, key).map(toNarrow);
    step += scale.narrowSteps;
    const jobs: Job[] = batches.map((b) => async (w) => {
      const values = [
        numberLiteral(b.site),
        numberLiteral(b.device),
        numberLiteral(b.metric),
        numberLiteral(b.ts),
        numberLiteral(b.value),
      ];
      const r = await w.client.query({ name: `narrow_${table}`, text, values });
      return r.rowCount ?? 0;
    });
    const variant = `narrow (${NARROW_KEYS[key]}), unnest 1k readings (~5.8k rows)`;
    await measure(ctx, {
      phase: 'narrow',
      variant,
      round,
      conns: 2,
      expect: 'all',
      rows: sumRows(batches),
      samples: sumSamples(batches),
      jobs,
    });
  }
  const size = await narrowSize(ctx.admin, table);
  await c.query(`DROP TABLE ${table}`);
  return { size, preloadSeconds };
}

interface TsCheck {
  encoding: TsEncoding;
  values: number;
  mismatches: number;
}

/** Do epoch milliseconds survive each ts encoding exactly? Random instants from 1970 to 2100. */
async function checkTsExact(conn: Conn, n: number): Promise<TsCheck[]> {
  const ms = new Float64Array(n);
  for (let i = 0; i < n; i++) ms[i] = (mix(i, 77) * 1024 + (mix(i, 78) % 1024)) % 4_102_444_800_000;
  const back = 'extract(epoch FROM x) * 1000 <> m::numeric';
  const checks: [TsEncoding, string][] = [
    [
      'float8-ms',
      `SELECT count(*) FILTER (WHERE ${back}) AS bad FROM unnest($1::float8[]) m, to_timestamp(m / 1000.0) x`,
    ],
    [
      'bigint-ms',
      `SELECT count(*) FILTER (WHERE ${back}) AS bad
       FROM unnest($1::bigint[]) m, LATERAL (SELECT 'epoch'::timestamptz + m * interval '1 millisecond' AS x) l`,
    ],
    [
      'text',
      `SELECT count(*) FILTER (WHERE ${back}) AS bad FROM unnest($2::timestamptz[], $1::bigint[]) AS u(x, m)`,
    ],
  ];
  const out: TsCheck[] = [];
  for (const [encoding, sql] of checks) {
    const values = encoding === 'text' ? [numberLiteral(ms), tsTextLiteral(ms)] : [numberLiteral(ms)];
    const { rows } = await conn.client.query<{ bad: string }>(sql, values);
    out.push({ encoding, values: n, mismatches: Number(rows[0]!.bad) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Report

interface Summary {
  phase: string;
  variant: string;
  conns: number;
  runs: number;
  rowsPerSec: number;
  rowsPerSecMin: number;
  rowsPerSecMax: number;
  samplesPerSec: number;
  nodeCpuUsPerRow: number;
  pgBackendCpuUsPerRow: number;
  pgBackgroundCpuUsPerRow: number;
  walBytesPerRow: number;
  otherLoadCores: number;
  otherLoadCoresMax: number;
  /** Runs during which everything else on the machine used less than QUIET_LOAD_CORES. */
  quietRuns: number;
  quietRowsPerSec: number | null;
}

/** Above this much CPU used by other processes, a run's rate says more about them than about us. */
const QUIET_LOAD_CORES = 0.3;

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function summarise(runs: RunResult[]): Summary[] {
  const groups = new Map<string, RunResult[]>();
  for (const r of runs) {
    const k = `${r.phase}\u0000${r.variant}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    const m = (f: (r: RunResult) => number) => median(rs.map(f));
    const rates = rs.map((r) => r.rowsPerSec);
    const quiet = rs.filter((r) => r.otherLoadCores < QUIET_LOAD_CORES).map((r) => r.rowsPerSec);
    return {
      phase: rs[0]!.phase,
      variant: rs[0]!.variant,
      conns: rs[0]!.conns,
      runs: rs.length,
      rowsPerSec: median(rates),
      rowsPerSecMin: Math.min(...rates),
      rowsPerSecMax: Math.max(...rates),
      samplesPerSec: m((r) => r.samplesPerSec),
      nodeCpuUsPerRow: m((r) => r.nodeCpuUsPerRow),
      pgBackendCpuUsPerRow: m((r) => r.pgBackendCpuUsPerRow),
      pgBackgroundCpuUsPerRow: m((r) => r.pgBackgroundCpuUsPerRow),
      walBytesPerRow: m((r) => r.walBytesPerRow),
      otherLoadCores: m((r) => r.otherLoadCores),
      otherLoadCoresMax: Math.max(...rs.map((r) => r.otherLoadCores)),
      quietRuns: quiet.length,
      quietRowsPerSec: quiet.length ? median(quiet) : null,
    };
  });
}

/**
 * The key docs/storage.md recommends, and so the one the later phases measure. It trades some write
 * rate against the time-led key for per-device reads that touch ~100x fewer pages; the trade stops
 * making sense if it falls below half the fastest key's rate, which the report then flags.
 */
const RECOMMENDED_KEY: KeyName = 'b';

function recommendationHolds(summaries: Summary[]): boolean {
  const rate = (k: KeyName) =>
    summaries.find((s) => s.phase === 'key order' && s.variant.startsWith(k.toUpperCase()))?.rowsPerSec ?? 0;
  return rate(RECOMMENDED_KEY) >= 0.5 * Math.max(...KEY_NAMES.map(rate));
}

function fmtK(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(0)}k`;
  return x.toFixed(0);
}

function mdTable(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

interface Report {
  command: string;
  date: string;
  machine: { cores: number; cpu: string; memGiB: number; loadavgStart: number[]; loadavgEnd: number[] };
  node: string;
  postgres: Record<string, string>;
  scale: Scale;
  chosenKey: KeyName;
  chosenBy: 'recommended' | 'flag';
  /** False when the recommended key measured below half the fastest key's write rate. */
  recommendationHolds: boolean;
  wallSeconds: number;
  preloadSeconds: Record<string, number>;
  keyGrowth: IndexGrowth[];
  tsExactness: TsCheck[];
  summaries: Summary[];
  sizes: SizeReport[];
  incrementalBytesPerRow: { table: string; rows: number; heap: number; index: number; total: number } | null;
  probes: ProbeResult[];
  brinBytes: number | null;
  latest: LatestReport[];
  runs: RunResult[];
}

function markdown(r: Report): string {
  const s = (phase: string) => r.summaries.filter((x) => x.phase === phase);
  const rateRow = (x: Summary) => [
    x.variant,
    `${fmtK(x.rowsPerSec)} (${fmtK(x.rowsPerSecMin)}–${fmtK(x.rowsPerSecMax)})`,
    x.quietRowsPerSec === null ? '– (0)' : `${fmtK(x.quietRowsPerSec)} (${x.quietRuns})`,
    fmtK(x.samplesPerSec),
    x.nodeCpuUsPerRow.toFixed(2),
    x.pgBackendCpuUsPerRow.toFixed(2),
    x.walBytesPerRow.toFixed(0),
    `${x.otherLoadCores.toFixed(2)} (${x.otherLoadCoresMax.toFixed(2)})`,
  ];
  const rateHeader = [
    'variant',
    'rows/s median (min–max)',
    `quiet-run median (n), other load < ${QUIET_LOAD_CORES}`,
    'samples/s',
    'Node µs/row',
    'PG backend µs/row',
    'WAL B/row',
    'other load, cores (max)',
  ];
  const out = [
    `# storage-shapes (${r.date})`,
    '',
    `\`${r.command}\` — ${r.machine.cores} cores (${r.machine.cpu}), PostgreSQL ${r.postgres.server_version}, ` +
      `shared_buffers ${r.postgres.shared_buffers}, Node ${r.node}; ${r.scale.devices} devices / ${r.scale.sites} sites, ` +
      `${r.scale.preloadSteps * r.scale.devices} rows preloaded; ${r.scale.rounds} rounds; wall ${(r.wallSeconds / 60).toFixed(1)} min`,
    '',
    '## Key order (unnest 5k, 2 connections, ON CONFLICT DO NOTHING)',
    mdTable(rateHeader, s('key order').map(rateRow)),
    '',
    mdTable(
      ['key', 'rows inserted', 'index B per inserted row', 'heap B per inserted row'],
      r.keyGrowth.map((g) => [
        g.key.toUpperCase(),
        g.rowsInserted,
        g.indexBytesPerRow.toFixed(1),
        g.heapBytesPerRow.toFixed(1),
      ]),
    ),
    '',
    `Key used for the remaining phases: ${r.chosenKey.toUpperCase()} (${r.chosenBy}).` +
      (r.recommendationHolds
        ? ''
        : ` **Key ${RECOMMENDED_KEY.toUpperCase()} wrote below half the fastest key's rate.**`),
    '',
    '## Write paths',
    mdTable(rateHeader, s('write path').map(rateRow)),
    '',
    '## Latest-state table in the same transaction',
    mdTable(rateHeader, s('latest state').map(rateRow)),
    '',
    mdTable(
      ['table', 'HOT updates', 'size after'],
      r.latest.map((l) => [
        l.table,
        `${l.hotPct.toFixed(0)} %`,
        `${(l.bytesAfter / 2 ** 20).toFixed(1)} MiB`,
      ]),
    ),
    '',
    '## Duplicates and RETURNING',
    mdTable(rateHeader, s('duplicates').map(rateRow)),
    '',
    '## Narrow shape',
    mdTable(rateHeader, s('narrow').map(rateRow)),
    '',
    '## Bytes on disk (pg_total_relation_size over the partitions)',
    mdTable(
      ['table', 'rows', 'heap B/row', 'index B/row', 'B/row', 'B/sample'],
      r.sizes.map((z) => [
        z.table,
        z.rows,
        (z.heapBytes / z.rows).toFixed(1),
        (z.indexBytes / z.rows).toFixed(1),
        z.bytesPerRow.toFixed(1),
        z.bytesPerSample.toFixed(1),
      ]),
    ),
    '',
    r.incrementalBytesPerRow
      ? `Rows added by INSERT after the preload (index grown by inserts, not built sorted): ` +
        `${r.incrementalBytesPerRow.total.toFixed(1)} B/row (heap ${r.incrementalBytesPerRow.heap.toFixed(1)}, ` +
        `index ${r.incrementalBytesPerRow.index.toFixed(1)}) over ${r.incrementalBytesPerRow.rows} rows.`
      : '',
    '',
    '## Read probes (EXPLAIN ANALYZE, median over probes)',
    mdTable(
      ['table', 'query', 'ms', 'pages touched', 'plan'],
      r.probes.map((p) => [p.table, p.query, p.ms.toFixed(1), p.pages, p.plan]),
    ),
    r.brinBytes !== null ? `\nBRIN (ts) on the chosen table: ${(r.brinBytes / 1024).toFixed(0)} KiB.` : '',
    '',
    '## ts encodings round-trip',
    mdTable(
      ['encoding', 'values', 'mismatches'],
      r.tsExactness.map((t) => [t.encoding, t.values, t.mismatches]),
    ),
  ];
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

async function dropDatabase(): Promise<void> {
  const c = new Client({ ...PG, database: 'postgres' });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

async function main(): Promise<void> {
  const wall0 = performance.now();
  const quick = process.argv.includes('--quick');
  const keyFlag = process.argv.find((a) => a.startsWith('--key='))?.slice(6);
  if (keyFlag !== undefined && !KEY_NAMES.includes(keyFlag as KeyName))
    throw new Error(`--key must be a, b or c`);
  const scale = quick ? QUICK : FULL;
  const loadavgStart = os.loadavg();

  await dropDatabase();
  const root = new Client({ ...PG, database: 'postgres' });
  await root.connect();
  await root.query(`CREATE DATABASE ${DB_NAME}`);
  await root.end();

  const admin = await connect(DB_NAME);
  const workers = [await connect(DB_NAME), await connect(DB_NAME)];
  const conns = [admin, ...workers];
  try {
    await admin.client.query(
      `CREATE TYPE device_status AS ENUM (${STATUS_LABELS.map((l) => `'${l}'`).join(', ')})`,
    );
    // Session-only, for the untimed preload's index builds; the server's settings are not touched.
    await admin.client.query(`SET maintenance_work_mem = '1GB'`);
    const { rows: settingRows } = await admin.client.query<{ name: string; setting: string }>(
      `SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name IN ('server_version',
       'shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'synchronous_commit', 'fsync', 'full_page_writes',
       'wal_compression', 'autovacuum', 'work_mem', 'jit', 'wal_level')`,
    );
    const { rows: bg } = await admin.client.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE backend_type IN ('checkpointer', 'background writer', 'walwriter')`,
    );
    const ctx: Ctx = { scale, admin, workers, backgroundPids: bg.map((r) => r.pid), runs: [] };

    const tsExactness = await checkTsExact(workers[0]!, quick ? 10_000 : 200_000);
    const keys = await keyOrderPhase(ctx);
    const chosenKey = (keyFlag as KeyName | undefined) ?? RECOMMENDED_KEY;
    const holds = recommendationHolds(summarise(ctx.runs));
    if (!holds) console.error(`WARNING: key ${RECOMMENDED_KEY} wrote below half the fastest key's rate`);
    console.error(`key for the later phases: ${chosenKey}`);

    console.error('read probes and sizes');
    const probes: ProbeResult[] = [];
    const sizes: SizeReport[] = [];
    for (const key of KEY_NAMES) {
      probes.push(...(await readProbes(ctx, keys.tables[key].name, key.toUpperCase())));
      if (key !== chosenKey) {
        sizes.push(await wideSize(admin, keys.tables[key].name));
        await admin.client.query(`DROP TABLE ${keys.tables[key].name}`);
      }
    }
    const chosen = keys.tables[chosenKey];
    let brinBytes: number | null = null;
    if (chosenKey !== 'c') {
      // A time-led scan path for the rollup jobs: arrival order keeps the heap in ts order, so BRIN fits.
      await admin.client.query(`CREATE INDEX ${chosen.name}_ts_brin ON ${chosen.name} USING brin (ts)`);
      await admin.client.query(`ANALYZE ${chosen.name}`);
      const fleet = await readProbes(ctx, chosen.name, `${chosenKey.toUpperCase()} + BRIN(ts)`);
      probes.push(fleet[2]!);
      const { rows } = await admin.client.query<{ bytes: string }>(
        `SELECT sum(pg_relation_size(relid))::text AS bytes FROM pg_partition_tree('${chosen.name}_ts_brin')`,
      );
      brinBytes = Number(rows[0]!.bytes);
      // Dropped again so the write-path figures stay comparable with the key-order ones.
      await admin.client.query(`DROP INDEX ${chosen.name}_ts_brin`);
    }
    const before = await wideSize(admin, chosen.name);
    sizes.push({ ...before, table: `${chosen.name} (after the key-order runs)` });

    await writePathPhase(ctx, chosen);
    const latest = await latestPhase(ctx, chosen);
    await duplicatesPhase(ctx, chosen);

    const after = await wideSize(admin, chosen.name);
    sizes.unshift(after);
    const added = after.rows - before.rows;
    const incrementalBytesPerRow = {
      table: chosen.name,
      rows: added,
      heap: (after.heapBytes - before.heapBytes) / added,
      index: (after.indexBytes - before.indexBytes) / added,
      total: (after.totalBytes - before.totalBytes) / added,
    };
    await admin.client.query(`DROP TABLE ${chosen.name}`);

    const narrow = await narrowPhase(ctx, chosenKey);
    sizes.push(narrow.size);

    const cpus = os.cpus();
    const report: Report = {
      command: `node bench/storage-shapes.ts${quick ? ' --quick' : ''}${keyFlag ? ` --key=${keyFlag}` : ''}`,
      date: new Date().toISOString(),
      machine: {
        cores: cpus.length,
        cpu: cpus[0]?.model ?? 'unknown',
        memGiB: Math.round(os.totalmem() / 2 ** 30),
        loadavgStart,
        loadavgEnd: os.loadavg(),
      },
      node: process.versions.node,
      postgres: Object.fromEntries(settingRows.map((r) => [r.name, r.setting])),
      scale,
      chosenKey,
      chosenBy: keyFlag ? 'flag' : 'recommended',
      recommendationHolds: holds,
      wallSeconds: (performance.now() - wall0) / 1000,
      preloadSeconds: { ...keys.preloadSeconds, narrow: narrow.preloadSeconds },
      keyGrowth: keys.growth,
      tsExactness,
      summaries: summarise(ctx.runs),
      sizes,
      incrementalBytesPerRow,
      probes,
      brinBytes,
      latest,
      runs: ctx.runs,
    };
    const dir = new URL('./results/', import.meta.url);
    mkdirSync(dir, { recursive: true });
    const file = new URL(quick ? 'storage-shapes.quick.json' : 'storage-shapes.json', dir);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(markdown(report));
    console.error(`wrote ${file.pathname}`);
  } finally {
    await Promise.allSettled(conns.map((c) => c.client.end()));
    await dropDatabase();
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    dropDatabase().finally(() => process.exit(130));
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
