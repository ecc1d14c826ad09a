// Ingest throughput: hashwatt over HTTP and WebSocket, driven by the simulator's open-loop `load`
// scenario at rising rates until the service saturates, next to the raw write of the same rows into
// the same table in the same run (the machine is shared and noisy, so only same-run ratios mean much).
//
// Used by bench/index.ts (`npm run bench`); `node bench/ingest.ts [--quick]` runs this part alone.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { floatArray, int4Array, timestamptzArray } from '../src/storage/binary-arrays.ts';
import { startServiceOn } from './support/service.ts';

export const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB_NAME = 'hashwatt_bench';
export const ADMIN_TOKEN = 'bench-admin-token-0123456789';
/** Metric values per reading of the load scenario's ASICs: power, hashrate, expected, temp, fan, status. */
export const SAMPLES_PER_READING = 6;

/** How long each phase runs; --quick shrinks everything to a smoke check of under two minutes. */
export interface IngestPlan {
  warmupS: number;
  stepS: number;
  firstRate: number;
  growth: number;
  /** Probes between the best clean step and the first unclean one, halving the gap each time. */
  refineSteps: number;
  maxRate: number;
  sustainS: number;
  halfRateS: number;
  baselineS: number;
}

export const FULL_PLAN: IngestPlan = {
  warmupS: 15,
  stepS: 12,
  firstRate: 20_000,
  growth: 1.4,
  refineSteps: 2,
  maxRate: 400_000,
  sustainS: 60,
  halfRateS: 20,
  baselineS: 20,
};
/**
 * The quick plan keeps the full plan's shape (the same ramp up to saturation, a bisection probe, a
 * hold) with shorter windows, so its figures are usable, within about the run-to-run noise of the
 * full run's: a plan that stopped below saturation or counted a failed hold as 0 was not.
 */
export const QUICK_PLAN: IngestPlan = {
  warmupS: 6,
  stepS: 5,
  firstRate: 30_000,
  growth: 1.5,
  refineSteps: 1,
  maxRate: 400_000,
  sustainS: 10,
  halfRateS: 5,
  baselineS: 5,
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`${line}\n`);

async function admin(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  await c.query(text).finally(() => c.end());
}

function dbUrl(): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${DB_NAME}`;
  return u.toString();
}

/** CPU seconds (user + system) and RSS of a process, from /proc. */
function processStats(pid: number): { cpuS: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return { cpuS: ticks / 100, rssMb: rssKb / 1024 };
}

/** The service's /metrics as series text → value. */
export type Scrape = Map<string, number>;

async function scrape(url: string): Promise<Scrape> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Sum of the series whose text starts with `prefix` and contains every one of `contains`. */
export function sum(m: Scrape, prefix: string, ...contains: string[]): number {
  let n = 0;
  for (const [k, v] of m) if (k.startsWith(prefix) && contains.every((c) => k.includes(c))) n += v;
  return n;
}

/** A quantile of the server's request histogram between two scrapes, interpolated as histogram_quantile does. */
function quantileMs(before: Scrape, after: Scrape, transport: string, q: number): number | null {
  const name = 'hashwatt_ingest_request_duration_seconds_bucket{';
  const buckets: [number, number][] = [];
  for (const [k, v] of after) {
    if (!k.startsWith(name) || !k.includes(`transport="${transport}"`)) continue;
    const le = /le="([^"]+)"/.exec(k)?.[1];
    if (le) buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), v - (before.get(k) ?? 0)]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(bound)) return lowerBound * 1000;
      const inBucket = count - lowerCount;
      const share = inBucket > 0 ? (rank - lowerCount) / inBucket : 1;
      return Math.round((lowerBound + (bound - lowerBound) * share) * 1000 * 10) / 10;
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return null;
}

export interface BenchService {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** A fresh database and hashwatt as a child process on it (so its CPU and RSS are its own). */
export async function startBenchService(): Promise<BenchService> {
  await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${DB_NAME}`);
  return startServiceOn(DB_NAME, {});
}

/** Drops the benchmark's database. */
export async function dropBenchDatabase(): Promise<void> {
  await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
}

/** The simulator's `load` scenario offering `rate` readings/s for `seconds`, as its own process. */
export function offerLoad(
  url: string,
  transport: 'http' | 'ws',
  rate: number,
  seconds: number,
): Promise<void> {
  const load = spawn(
    process.execPath,
    [
      'simulators/cli.ts',
      ...['--scenario', 'load', '--url', url, '--admin-token', ADMIN_TOKEN, '--transport', transport],
      ...[
        '--rate',
        String(Math.round(rate)),
        '--duration',
        String(seconds),
        '--flush-ms',
        '1000',
        '--quiet',
        '--json',
      ],
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return new Promise((resolve) => load.once('exit', () => resolve()));
}

export interface Window {
  offered_per_s: number;
  readings_per_s: number;
  samples_per_s: number;
  refused_per_s: number;
  ack_p50_ms: number | null;
  ack_p99_ms: number | null;
  cpu_s_per_100k_samples: number | null;
  rss_mb: number;
}

/** What a window measured, with the two scrapes around it for figures a caller adds. */
export interface MeasuredWindow {
  window: Window;
  before: Scrape;
  after: Scrape;
  elapsedS: number;
}

/**
 * Runs `offer(seconds)` (a load generator offering `rate` for that long) and measures the middle of
 * it from the service's own counters for `transport`: what it stored (accepted + duplicate), what
 * it refused (429/503), request latency, CPU and RSS. `around` runs at the window's edges, for a
 * generator that measures itself over the same seconds.
 */
export async function measureWindow(
  service: BenchService,
  transport: string,
  offer: (seconds: number) => Promise<void>,
  rate: number,
  seconds: number,
  around: { begin(): void; end(): void; settleS?: number } = { begin: () => {}, end: () => {} },
): Promise<MeasuredWindow> {
  // `around.settleS`: seconds of load before the window, for a caller that places it.
  const settleS = around.settleS ?? Math.min(3, Math.max(1, Math.floor(seconds / 4)));
  const done = offer(seconds + settleS);
  await sleep(settleS * 1000);
  const m0 = await scrape(service.url);
  const p0 = processStats(service.pid);
  around.begin();
  let rss = p0.rssMb;
  const t0 = performance.now();
  for (let s = 0; s < seconds; s++) {
    await sleep(1000);
    rss = Math.max(rss, processStats(service.pid).rssMb);
  }
  const elapsed = (performance.now() - t0) / 1000;
  around.end();
  const m1 = await scrape(service.url);
  const p1 = processStats(service.pid);
  await done;
  const t = `transport="${transport}"`;
  const stored = (m: Scrape) =>
    sum(m, 'hashwatt_readings_ingested_total', t, 'outcome="accepted"') +
    sum(m, 'hashwatt_readings_ingested_total', t, 'outcome="duplicate"');
  const refused = (m: Scrape) =>
    sum(m, 'hashwatt_ingest_requests_total', t, 'status="429"') +
    sum(m, 'hashwatt_ingest_requests_total', t, 'status="503"');
  const samplesPerS =
    (sum(m1, 'hashwatt_samples_ingested_total', t) - sum(m0, 'hashwatt_samples_ingested_total', t)) / elapsed;
  const window: Window = {
    offered_per_s: Math.round(rate),
    readings_per_s: Math.round((stored(m1) - stored(m0)) / elapsed),
    samples_per_s: Math.round(samplesPerS),
    refused_per_s: Math.round((refused(m1) - refused(m0)) / elapsed),
    ack_p50_ms: quantileMs(m0, m1, transport, 0.5),
    ack_p99_ms: quantileMs(m0, m1, transport, 0.99),
    cpu_s_per_100k_samples:
      samplesPerS > 0 ? Number((((p1.cpuS - p0.cpuS) / elapsed / samplesPerS) * 1e5).toFixed(3)) : null,
    rss_mb: Math.round(rss),
  };
  return { window, before: m0, after: m1, elapsedS: elapsed };
}

/** The simulator's load offering `rate` over `transport`, measured as {@link measureWindow} does. */
async function measureAt(
  service: BenchService,
  transport: 'http' | 'ws',
  rate: number,
  seconds: number,
): Promise<Window> {
  const offer = (s: number) => offerLoad(service.url, transport, rate, s);
  return (await measureWindow(service, transport, offer, rate, seconds)).window;
}

/** Clean: nothing refused and (almost) all that was offered stored. */
export const isClean = (w: Window) => w.refused_per_s === 0 && w.readings_per_s >= 0.95 * w.offered_per_s;

export interface TransportResult {
  /** Highest offered rate held for `sustain_s` with no refusals. */
  readings_per_s: number;
  samples_per_s: number;
  sustain_s: number;
  ack_p50_ms: number | null;
  ack_p99_ms: number | null;
  half_rate: number;
  cpu_s_per_100k_samples: number | null;
  /** Peak RSS over the whole ramp, overload steps (queues full, refusing) included. */
  rss_mb: number;
  /** Peak RSS of the window that held the rate (the goal's "at the held rate"); null when none held. */
  rss_held_mb: number | null;
  steps: Window[];
}

/** Rising open-loop rates until the service refuses or falls behind, then the best clean rate held for `sustainS`. */
export async function rampTransport(
  service: BenchService,
  transport: 'http' | 'ws',
  plan: IngestPlan,
): Promise<TransportResult> {
  const steps: Window[] = [];
  let best: Window | undefined;
  const step = async (rate: number) => {
    const w = await measureAt(service, transport, rate, plan.stepS);
    steps.push(w);
    log(
      `  ${transport} step ${w.offered_per_s}/s: stored ${w.readings_per_s}/s, refused ${w.refused_per_s}/s, p99 ${w.ack_p99_ms} ms`,
    );
    return w;
  };
  let unclean: number | undefined;
  for (let rate = plan.firstRate; rate <= plan.maxRate; rate *= plan.growth) {
    // A step is unclean only if it is twice: on a shared machine one window can catch another
    // process's burst, and a ramp that stopped there reported a fraction of the service's rate.
    let w = await step(rate);
    if (!isClean(w)) w = await step(rate);
    if (!isClean(w)) {
      unclean = rate;
      break;
    }
    best = w;
  }
  // The geometric ramp overshoots by up to one growth factor; narrow the gap by bisection.
  for (let i = 0; i < plan.refineSteps && best && unclean; i++) {
    const w = await step((best.offered_per_s + unclean) / 2);
    if (isClean(w)) best = w;
    else unclean = w.offered_per_s;
  }
  // Hold the best clean step's rate for the sustain window; if it cannot, back off and try again.
  let rate = best?.offered_per_s ?? plan.firstRate / plan.growth;
  let held: Window | undefined;
  for (let attempt = 0; attempt < 5 && !held; attempt++) {
    const w = await measureAt(service, transport, rate, plan.sustainS);
    steps.push(w);
    log(
      `  ${transport} sustain ${w.offered_per_s}/s for ${plan.sustainS}s: stored ${w.readings_per_s}/s, refused ${w.refused_per_s}/s`,
    );
    if (isClean(w)) held = w;
    else rate *= 0.9;
  }
  const sustained = held ?? steps.at(-1)!;
  const half = await measureAt(service, transport, sustained.offered_per_s / 2, plan.halfRateS);
  steps.push(half);
  log(
    `  ${transport} half rate ${half.offered_per_s}/s: p50 ${half.ack_p50_ms} ms, p99 ${half.ack_p99_ms} ms`,
  );
  return {
    readings_per_s: held ? sustained.readings_per_s : 0,
    samples_per_s: held ? sustained.samples_per_s : 0,
    sustain_s: plan.sustainS,
    ack_p50_ms: half.ack_p50_ms,
    ack_p99_ms: half.ack_p99_ms,
    half_rate: half.offered_per_s,
    cpu_s_per_100k_samples: sustained.cpu_s_per_100k_samples,
    rss_mb: Math.max(...steps.map((s) => s.rss_mb)),
    rss_held_mb: held ? held.rss_mb : null,
    steps,
  };
}

/** Registers the load scenario's 200 000 devices before anything is timed. */
export async function warmUp(service: BenchService, plan: IngestPlan): Promise<void> {
  await offerLoad(service.url, 'http', 40_000, plan.warmupS);
}

function literal(values: ArrayLike<number | string>): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) out += (i ? ',' : '') + values[i];
  return `${out}}`;
}

const DEVICES = 200_000;
const BATCH = 5_000;

/** Columns of `n` ASIC rows starting at row `start`, one reading per device per second from `base`. */
function rows(start: number, n: number, base: number) {
  const d = new Array<number>(n);
  const t = new Array<number>(n);
  const p = new Array<number>(n);
  const h = new Array<number>(n);
  const temp = new Array<number>(n);
  const fan = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const k = start + i;
    d[i] = 1_000_000 + (k % DEVICES);
    t[i] = base + Math.floor(k / DEVICES) * 1000;
    p[i] = 3500 + (k % 97);
    h[i] = 200 + (k % 13) / 10;
    temp[i] = 60 + (k % 10);
    fan[i] = 5000 + (k % 400);
  }
  return { d, t, p, h, temp, fan };
}

const COPY_COLUMNS =
  'site_id, device_id, ts, power_w, hashrate_ths, expected_hashrate_ths, temp_c, fan_rpm, status';
/** Rows per COPY into the staging table before they are merged into readings. */
const STAGE_ROWS = 50_000;

/** COPY text for `n` rows from row `start`. */
function copyText(siteId: number, start: number, n: number, base: number): string {
  const r = rows(start, n, base);
  let text = '';
  for (let i = 0; i < n; i++) {
    const ts = new Date(r.t[i]!).toISOString();
    text += `${siteId}\t${r.d[i]}\t${ts}\t${r.p[i]}\t${r.h[i]}\t200\t${r.temp[i]}\t${r.fan[i]}\tok\n`;
  }
  return text;
}

/** Streams COPY text in BATCH-row chunks of rows [start, start + n) into `target`. */
async function copyRows(
  client: pg.PoolClient,
  target: string,
  siteId: number,
  start: number,
  n: number,
  base: number,
) {
  const chunks = function* () {
    for (let k = 0; k < n; k += BATCH) yield copyText(siteId, start + k, Math.min(BATCH, n - k), base);
  };
  await pipeline(
    Readable.from(chunks()),
    client.query(copyFrom(`COPY ${target} (${COPY_COLUMNS}) FROM STDIN`)),
  );
}

/**
 * The limit: the same kind of rows written straight into the same table with the same key and
 * de-duplication, no service in the way, as the faster of (a) INSERT … SELECT FROM unnest() in 5k
 * batches over 2 connections and (b) one COPY stream, which cannot skip duplicates itself, so it
 * fills a staging table that `INSERT … SELECT … ON CONFLICT DO NOTHING` merges every 50k rows.
 * (c) A bare COPY of fresh keys (no de-duplication: a retry would fail the whole stream) is
 * reported for reference only.
 */
export async function measureBaseline(seconds: number): Promise<{
  readings_per_s: number;
  unnest_readings_per_s: number;
  unnest_binary_readings_per_s: number;
  copy_readings_per_s: number;
  copy_without_dedup_readings_per_s: number;
}> {
  const pool = new pg.Pool({ connectionString: dbUrl(), max: 2 });
  try {
    const { rows: site } = await pool.query<{ id: number }>(
      `INSERT INTO sites (name, kind, capacity_w, token_hash) VALUES ('baseline', 'mining', 1e9, '\\x00') RETURNING id`,
    );
    const siteId = site[0]!.id;
    /** Rows/s of `sql` in BATCH-row statements over both connections for `seconds`, keys from `base`. */
    const unnestRate = async (
      sql: string,
      base: number,
      params: (r: ReturnType<typeof rows>) => unknown[],
    ) => {
      let next = 0;
      let written = 0;
      const started = performance.now();
      const deadline = started + seconds * 1000;
      const worker = async () => {
        while (performance.now() < deadline) {
          const r = rows(next, BATCH, base);
          next += BATCH;
          await pool.query(sql, params(r));
          written += BATCH;
        }
      };
      await Promise.all([worker(), worker()]);
      return written / ((performance.now() - started) / 1000);
    };
    const columns = `INSERT INTO readings (site_id, device_id, ts, power_w, hashrate_ths, expected_hashrate_ths, temp_c, fan_rpm, status)`;
    // Keys in the past, apart from the service's (which are near now) and from each other.
    const unnest = await unnestRate(
      `${columns}
      SELECT s, d, to_timestamp(t / 1000.0), p, h, e, tc, f, st FROM unnest($1::int[], $2::int[], $3::float8[], $4::float8[],
        $5::float8[], $6::float8[], $7::real[], $8::real[], $9::device_status[]) AS u(s, d, t, p, h, e, tc, f, st)
      ON CONFLICT DO NOTHING`,
      Date.now() - 6 * 3_600_000,
      (r) => [
        literal(new Array(BATCH).fill(siteId)),
        literal(r.d),
        literal(r.t),
        literal(r.p),
        literal(r.h),
        literal(new Array(BATCH).fill(200)),
        literal(r.temp),
        literal(r.fan),
        literal(new Array(BATCH).fill('ok')),
      ],
    );
    // The same statement with the numbers as binary arrays (what hashwatt sends since
    // src/storage/binary-arrays.ts): Postgres reads each value's bytes instead of parsing its text.
    const unnestBinary = await unnestRate(
      `${columns}
      SELECT s, d, t, p, h, e, tc, f, st FROM unnest($1::int[], $2::int[], $3::timestamptz[], $4::float8[],
        $5::float8[], $6::float8[], $7::real[], $8::real[], $9::device_status[]) AS u(s, d, t, p, h, e, tc, f, st)
      ON CONFLICT DO NOTHING`,
      Date.now() - 9 * 3_600_000,
      (r) => [
        int4Array(new Array(BATCH).fill(siteId)),
        int4Array(r.d),
        timestamptzArray(r.t.map((ms) => ms * 1000)),
        floatArray(r.p),
        floatArray(r.h),
        floatArray(new Array(BATCH).fill(200)),
        floatArray(r.temp, 'float4'),
        floatArray(r.fan, 'float4'),
        literal(new Array(BATCH).fill('ok')),
      ],
    );

    const client = await pool.connect();
    try {
      await client.query('CREATE TEMP TABLE readings_stage (LIKE readings)');
      const stagedBase = Date.now() - 12 * 3_600_000;
      let staged = 0;
      let t0 = performance.now();
      for (const end = t0 + seconds * 1000; performance.now() < end; staged += STAGE_ROWS) {
        await copyRows(client, 'readings_stage', siteId, staged, STAGE_ROWS, stagedBase);
        await client.query(
          `INSERT INTO readings (${COPY_COLUMNS}) SELECT ${COPY_COLUMNS} FROM readings_stage ON CONFLICT DO NOTHING`,
        );
        await client.query('TRUNCATE readings_stage');
      }
      const copy = staged / ((performance.now() - t0) / 1000);

      const bareBase = Date.now() - 18 * 3_600_000;
      let copied = 0;
      t0 = performance.now();
      for (const end = t0 + seconds * 1000; performance.now() < end; copied += STAGE_ROWS) {
        await copyRows(client, 'readings', siteId, copied, STAGE_ROWS, bareBase);
      }
      const bare = copied / ((performance.now() - t0) / 1000);
      return {
        readings_per_s: Math.round(Math.max(unnest, unnestBinary, copy)),
        unnest_readings_per_s: Math.round(unnest),
        unnest_binary_readings_per_s: Math.round(unnestBinary),
        copy_readings_per_s: Math.round(copy),
        copy_without_dedup_readings_per_s: Math.round(bare),
      };
    } finally {
      client.release();
    }
  } finally {
    await pool.end();
  }
}

/**
 * `--serve`: the benchmark's service, warmed up with the load scenario's devices, left running for
 * experiments by hand (the simulator against it, `top`, `--cpu-prof`, heap snapshots; environment
 * variables such as HASHWATT_HEAP_GROWING_PERCENT reach the service). Ctrl-C stops it and drops
 * its database.
 */
async function serve(): Promise<void> {
  const service = await startBenchService();
  const stop = async () => {
    await service.stop();
    await dropBenchDatabase();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await warmUp(service, FULL_PLAN);
  log(
    `hashwatt (pid ${service.pid}) ready at ${service.url} with the load scenario's devices; admin token ${ADMIN_TOKEN}`,
  );
  log(
    `  e.g. node simulators/cli.ts --scenario load --url ${service.url} --admin-token ${ADMIN_TOKEN} --transport http --rate 100000 --duration 20 --flush-ms 1000 --quiet --json`,
  );
}

if (import.meta.main && process.argv.includes('--serve')) await serve();
else if (import.meta.main) {
  const plan = process.argv.includes('--quick') ? QUICK_PLAN : FULL_PLAN;
  const service = await startBenchService();
  try {
    await warmUp(service, plan);
    const http = await rampTransport(service, 'http', plan);
    const ws = await rampTransport(service, 'ws', plan);
    await service.stop();
    const baseline = await measureBaseline(plan.baselineS);
    console.log(JSON.stringify({ http, ws, baseline }, null, 2));
  } finally {
    await service.stop();
    await dropBenchDatabase();
  }
}
