// Ingest throughput: hashwatt over HTTP and WebSocket, driven by the simulator's open-loop `load`
// scenario, next to the raw write of the same rows into the same table in the same run (the
// machine is shared and noisy, so only same-run ratios mean much).
//
//   node bench/ingest.ts [--quick] [--rate N] [--measure S]
//
// Needs Postgres at $BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres); it
// creates and drops its own database. Writes bench/results/ingest.json and prints a table.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rate: { type: 'string' },
    measure: { type: 'string' },
    warmup: { type: 'string' },
  },
});
const QUICK = values.quick;
const RATE = Number(values.rate ?? (QUICK ? 100_000 : 200_000));
const MEASURE_S = Number(values.measure ?? (QUICK ? 10 : 30));
const WARMUP_S = Number(values.warmup ?? (QUICK ? 12 : 20));
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB_NAME = 'hashwatt_bench';
const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const SAMPLES_PER_READING = 5; // the load scenario's ASIC readings: power, hashrate, expected, temp, fan (+status)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function admin(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
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

async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

function sumMatching(m: Map<string, number>, prefix: string, ...contains: string[]): number {
  let n = 0;
  for (const [k, v] of m) if (k.startsWith(prefix) && contains.every((c) => k.includes(c))) n += v;
  return n;
}

/** p-quantile from the difference of two cumulative histogram scrapes. */
function quantile(
  before: Map<string, number>,
  after: Map<string, number>,
  name: string,
  transport: string,
  q: number,
) {
  const buckets: [number, number][] = [];
  for (const [k, v] of after) {
    if (!k.startsWith(`${name}_bucket{`) || !k.includes(`transport="${transport}"`)) continue;
    const le = /le="([^"]+)"/.exec(k)?.[1];
    if (!le) continue;
    buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), v - (before.get(k) ?? 0)]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return null;
  const bound = buckets.find(([, count]) => count >= q * total)?.[0];
  return bound === undefined || !Number.isFinite(bound) ? null : bound * 1000;
}

async function startService(): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['src/main.ts'], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: dbUrl(),
      HASHWATT_ADMIN_TOKEN: ADMIN_TOKEN,
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return { child, url };
    } catch {}
    await sleep(200);
  }
  throw new Error('hashwatt did not become ready');
}

interface TransportResult {
  readings_per_s: number;
  samples_per_s: number;
  refused_per_s: number;
  ack_p50_ms: number | null;
  ack_p99_ms: number | null;
  cpu_s_per_100k_samples: number;
  rss_mb: number;
}

async function measureTransport(
  url: string,
  pid: number,
  transport: 'http' | 'ws',
): Promise<TransportResult> {
  const load = spawn(
    process.execPath,
    [
      'simulators/cli.ts',
      '--scenario',
      'load',
      '--url',
      url,
      '--admin-token',
      ADMIN_TOKEN,
      '--transport',
      transport,
      '--rate',
      String(RATE),
      '--duration',
      String(WARMUP_S + MEASURE_S + 2),
      '--flush-ms',
      '1000',
      '--quiet',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  await sleep(WARMUP_S * 1000);
  const m0 = await scrape(url);
  const p0 = processStats(pid);
  let rss = p0.rssMb;
  const t0 = performance.now();
  for (let s = 0; s < MEASURE_S; s++) {
    await sleep(1000);
    rss = Math.max(rss, processStats(pid).rssMb);
  }
  const seconds = (performance.now() - t0) / 1000;
  const m1 = await scrape(url);
  const p1 = processStats(pid);
  await new Promise((r) => load.once('exit', r));

  const stored = (m: Map<string, number>) =>
    sumMatching(m, 'hashwatt_readings_ingested_total', `transport="${transport}"`, 'outcome="accepted"') +
    sumMatching(m, 'hashwatt_readings_ingested_total', `transport="${transport}"`, 'outcome="duplicate"');
  const samples = (m: Map<string, number>) =>
    sumMatching(m, 'hashwatt_samples_ingested_total', `transport="${transport}"`);
  const refused = (m: Map<string, number>) =>
    sumMatching(m, 'hashwatt_ingest_requests_total', `transport="${transport}"`, 'status="429"') +
    sumMatching(m, 'hashwatt_ingest_requests_total', `transport="${transport}"`, 'status="503"');
  const samplesPerS = (samples(m1) - samples(m0)) / seconds;
  return {
    readings_per_s: Math.round((stored(m1) - stored(m0)) / seconds),
    samples_per_s: Math.round(samplesPerS),
    refused_per_s: Math.round((refused(m1) - refused(m0)) / seconds),
    ack_p50_ms: quantile(m0, m1, 'hashwatt_ingest_request_duration_seconds', transport, 0.5),
    ack_p99_ms: quantile(m0, m1, 'hashwatt_ingest_request_duration_seconds', transport, 0.99),
    cpu_s_per_100k_samples:
      samplesPerS > 0 ? Number((((p1.cpuS - p0.cpuS) / seconds / samplesPerS) * 1e5).toFixed(3)) : 0,
    rss_mb: Math.round(rss),
  };
}

function literal(values: ArrayLike<number | string>): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) out += (i ? ',' : '') + values[i];
  return `${out}}`;
}

/**
 * The limit: the same kind of rows written straight into the same table with the same key and
 * de-duplication, no service in the way: INSERT … SELECT FROM unnest() in 5k batches over 2 connections.
 */
async function measureBaseline(seconds: number): Promise<{ readings_per_s: number }> {
  const pool = new pg.Pool({ connectionString: dbUrl(), max: 2 });
  const { rows } = await pool.query<{ id: number }>(
    `INSERT INTO sites (name, kind, capacity_w, token_hash) VALUES ('baseline', 'mining', 1e9, '\\x00') RETURNING id`,
  );
  const siteId = rows[0]!.id;
  const DEVICES = 200_000;
  const BATCH = 5_000;
  const sql = `INSERT INTO readings (site_id, device_id, ts, power_w, hashrate_ths, expected_hashrate_ths, temp_c, fan_rpm, status)
    SELECT s, d, to_timestamp(t / 1000.0), p, h, e, tc, f, st FROM unnest($1::int[], $2::int[], $3::float8[], $4::float8[],
      $5::float8[], $6::float8[], $7::real[], $8::real[], $9::device_status[]) AS u(s, d, t, p, h, e, tc, f, st)
    ON CONFLICT DO NOTHING`;
  const base = Date.now() - 3_600_000;
  let next = 0;
  let written = 0;
  const deadline = performance.now() + seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const start = next;
      next += BATCH;
      const d = new Array<number>(BATCH);
      const t = new Array<number>(BATCH);
      const p = new Array<number>(BATCH);
      const h = new Array<number>(BATCH);
      const temp = new Array<number>(BATCH);
      const fan = new Array<number>(BATCH);
      for (let i = 0; i < BATCH; i++) {
        const n = start + i;
        d[i] = 1_000_000 + (n % DEVICES);
        t[i] = base + Math.floor(n / DEVICES) * 1000;
        p[i] = 3500 + (n % 97);
        h[i] = 200 + (n % 13) / 10;
        temp[i] = 60 + (n % 10);
        fan[i] = 5000 + (n % 400);
      }
      await pool.query(sql, [
        literal(new Array(BATCH).fill(siteId)),
        literal(d),
        literal(t),
        literal(p),
        literal(h),
        literal(new Array(BATCH).fill(200)),
        literal(temp),
        literal(fan),
        literal(new Array(BATCH).fill('ok')),
      ]);
      written += BATCH;
    }
  };
  const t0 = performance.now();
  await Promise.all([worker(), worker()]);
  const elapsed = (performance.now() - t0) / 1000;
  await pool.end();
  return { readings_per_s: Math.round(written / elapsed) };
}

async function main(): Promise<void> {
  await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${DB_NAME}`);
  const pgVersion = await (async () => {
    const c = new pg.Client({ connectionString: ADMIN_URL });
    await c.connect();
    const { rows } = await c.query<{ v: string; sb: string }>(
      `SELECT version() AS v, current_setting('shared_buffers') AS sb`,
    );
    await c.end();
    return `${rows[0]!.v.split(' ').slice(0, 2).join(' ')} (shared_buffers ${rows[0]!.sb})`;
  })();
  const { child, url } = await startService();
  try {
    console.error(
      `hashwatt at ${url}; offering ${RATE} readings/s, warm-up ${WARMUP_S}s, measuring ${MEASURE_S}s per transport`,
    );
    const http = await measureTransport(url, child.pid!, 'http');
    console.error(`http: ${JSON.stringify(http)}`);
    const ws = await measureTransport(url, child.pid!, 'ws');
    console.error(`ws: ${JSON.stringify(ws)}`);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    const baseline = await measureBaseline(MEASURE_S);
    console.error(`baseline: ${JSON.stringify(baseline)}`);
    const best = Math.max(http.readings_per_s, ws.readings_per_s);
    const result = {
      date: new Date().toISOString(),
      quick: QUICK,
      offered_readings_per_s: RATE,
      measure_s: MEASURE_S,
      machine: { cores: os.cpus().length, node: process.version, postgres: pgVersion },
      ingest: {
        http,
        ws,
        baseline,
        ratio_to_baseline: Number((best / baseline.readings_per_s).toFixed(3)),
      },
      service: { rss_mb: Math.max(http.rss_mb, ws.rss_mb) },
      samples_per_reading: SAMPLES_PER_READING,
    };
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/ingest.json', `${JSON.stringify(result, null, 2)}\n`);
    const row = (
      name: string,
      r: { readings_per_s: number; samples_per_s?: number; ack_p99_ms?: number | null },
    ) =>
      `| ${name} | ${r.readings_per_s.toLocaleString('en-US')} | ${(r.samples_per_s ?? r.readings_per_s * SAMPLES_PER_READING).toLocaleString('en-US')} | ${r.ack_p99_ms ?? '–'} |`;
    console.log(
      [
        `| path (${result.machine.cores} cores, ${pgVersion}) | readings/s | samples/s | p99 ack ms |`,
        '|---|---|---|---|',
        row('hashwatt HTTP', http),
        row('hashwatt WebSocket', ws),
        row('raw unnest 5k x 2 conns, same table/key/dedup', baseline),
        '',
        `ratio to baseline: ${result.ingest.ratio_to_baseline}; service RSS ${result.service.rss_mb} MB`,
      ].join('\n'),
    );
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  }
}

await main();
