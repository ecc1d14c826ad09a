// Soak: hashwatt as a child process under the demo's agents plus an open-loop load for a long time,
// watching for what only time shows — memory that creeps, ack latency that drifts, readings lost.
//
//   npm run soak -- --minutes 30 [--rate 2000] [--every 10] [--scale 1] [--flood-seconds 60]
//
// In the middle of the run one more site floods for --flood-seconds (0: none), ignoring every
// retry hint (tests/reliability/support/flood.ts). The summary gives the well-behaved agents' ack
// p99 with and without the flood and how often they were refused for overload: per-site admission
// aims at none, and a p99 within 2× (docs/reliability.md). Measured, not asserted.
//
// Needs Postgres at $SOAK_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres); it
// creates and drops its own database. Prints one line every --every seconds and writes
// bench/results/soak.json at the end (also on Ctrl-C). Exit status 1 when an acknowledged reading
// is missing or stored twice.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { type AgentRun, quantile, retryReasons, startAgents } from '../tests/reliability/support/agents.ts';
import {
  FloodBatches,
  type FloodStats,
  floodHttp,
  floodWebSocket,
} from '../tests/reliability/support/flood.ts';
import { stopAndReconcile, summaryLine } from '../tests/reliability/support/ledger.ts';
import { HashwattProcess, peakRssMb, REPO_ROOT, rssMb, sleep } from '../tests/reliability/support/process.ts';
import { createSite } from '../tests/support/service.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string', default: '2000' },
    every: { type: 'string', default: '10' },
    scale: { type: 'string', default: '1' },
    'flood-seconds': { type: 'string', default: '60' },
    out: { type: 'string', default: path.join(REPO_ROOT, 'bench/results/soak.json') },
  },
});
const MINUTES = Number(values.minutes);
const RATE = Number(values.rate);
const EVERY_S = Number(values.every);
const SCALE = Number(values.scale);
const FLOOD_S = Number(values['flood-seconds']);
if (!(FLOOD_S >= 0)) {
  process.stderr.write('soak: --flood-seconds must be 0 or more\n');
  process.exit(2);
}
for (const [name, v] of Object.entries({ minutes: MINUTES, rate: RATE, every: EVERY_S, scale: SCALE })) {
  if (!(v > 0)) {
    process.stderr.write(`soak: --${name} must be a positive number\n`);
    process.exit(2);
  }
}
const ADMIN_URL = process.env.SOAK_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB_NAME = 'hashwatt_soak';

async function admin(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

function databaseUrl(): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${DB_NAME}`;
  return u.toString();
}

/** Prometheus text → value of the first series named `name`. */
async function scrapeGauge(url: string, name: string): Promise<number | null> {
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : null;
  } catch {
    return null;
  }
}

interface Sample {
  t_s: number;
  rss_mb: number | null;
  heap_used_mb: number | null;
  acked_per_s: number;
  ack_p50_ms: number | null;
  ack_p99_ms: number | null;
  ack_max_ms: number | null;
  buffered: number;
  dropped: number;
  failures: number;
  /** Whether the flood ran during this sample's interval. */
  flood: boolean;
}

interface Flood {
  startMs: number;
  endMs: number | undefined;
  stats: Promise<FloodStats[]>;
}

const round = (v: number | null) => (v === null ? null : Math.round(v));
const pad = (v: number | string | null, n: number) => String(v ?? '-').padStart(n);

await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
await admin(`CREATE DATABASE ${DB_NAME}`);
let service: HashwattProcess | undefined;
let runs: AgentRun[] = [];
let stopRequested = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stopRequested = true;
  });
}

try {
  service = await HashwattProcess.start(databaseUrl(), {}, { ownProcessGroup: true });
  const child = service;
  // Whatever happens to this process, hashwatt (in its own process group) must not outlive it.
  process.on('exit', () => {
    if (child.pid) process.kill(child.pid, 'SIGKILL');
  });
  const hashwatt = service;
  runs = [
    // The demo's three sites at their real cadence (a reading per device every 10 s)...
    await startAgents({ url: hashwatt.url, scenario: 'demo', overrides: { scale: SCALE } }),
    // ...plus an open-loop load on one HTTP and one WebSocket site.
    await startAgents({
      url: hashwatt.url,
      scenario: 'load',
      overrides: { scale: 0.02, rate_per_s: RATE, sites: ['load-1', 'load-2'] },
    }),
  ];
  console.log(
    `soak: ${MINUTES} min, load ${RATE}/s + demo (scale ${SCALE}), hashwatt pid ${hashwatt.pid} on ${hashwatt.url}`,
  );
  const floodAtMs = Math.max(0, (MINUTES * 60 - FLOOD_S) / 2) * 1000;
  const floodToken =
    FLOOD_S > 0 ? (await createSite(hashwatt.url, 'soak-flood', 'mining', 100_000)).token : '';
  let flood: Flood | undefined;
  console.log(
    `    t_s  rss_mb  heap_mb  acked/s  p50_ms  p99_ms  max_ms  buffered  dropped  failures${FLOOD_S > 0 ? '  flood' : ''}`,
  );

  const samples: Sample[] = [];
  const started = performance.now();
  const endAt = started + MINUTES * 60_000;
  let lastAt = started;
  let lastAcked = 0;
  let seen = runs.map(() => 0);
  const startFlood = (): Flood => {
    const t0 = Date.now() - 20 * 60_000;
    const until = sleep(FLOOD_S * 1000);
    const f: Flood = {
      startMs: performance.now(),
      endMs: undefined,
      stats: Promise.all([
        floodHttp({
          url: hashwatt.url,
          token: floodToken,
          concurrency: 16,
          batches: new FloodBatches('soak-flood-http', 2_000, 5_000, t0),
          until,
        }),
        floodWebSocket({
          url: hashwatt.url,
          token: floodToken,
          batches: new FloodBatches('soak-flood-ws', 1_000, 2_000, t0),
          until,
          maxBufferedBytes: 16 * 1024 * 1024,
        }),
      ]),
    };
    void until.then(() => {
      f.endMs = performance.now();
    });
    return f;
  };
  while (performance.now() < endAt && !stopRequested && hashwatt.running) {
    if (!flood && FLOOD_S > 0 && performance.now() - started >= floodAtMs) flood = startFlood();
    const floodDuring = flood !== undefined && (flood.endMs === undefined || flood.endMs > lastAt);
    // In short steps, so a stop request does not wait out a whole interval.
    const lineAt = Math.min(performance.now() + EVERY_S * 1000, endAt);
    while (performance.now() < lineAt && !stopRequested)
      await sleep(Math.min(250, lineAt - performance.now()));
    const now = performance.now();
    const fresh = runs.flatMap((r, i) => r.log.acks.slice(seen[i]));
    seen = runs.map((r) => r.log.acks.length);
    const latencies = fresh.map((a) => a.latencyMs);
    let acked = 0;
    let buffered = 0;
    let dropped = 0;
    let failures = 0;
    for (const r of runs) {
      const t = r.fleet.counters().total;
      acked += t.acknowledged;
      buffered += t.buffered;
      dropped += t.dropped;
      failures += t.failures;
    }
    const heap = await scrapeGauge(hashwatt.url, 'nodejs_heap_size_used_bytes');
    const sample: Sample = {
      t_s: Math.round((now - started) / 1000),
      rss_mb: round(hashwatt.pid ? (rssMb(hashwatt.pid) ?? null) : null),
      heap_used_mb: heap === null ? null : Math.round(heap / 1024 / 1024),
      acked_per_s: Math.round(((acked - lastAcked) * 1000) / (now - lastAt)),
      ack_p50_ms: round(quantile(latencies, 0.5)),
      ack_p99_ms: round(quantile(latencies, 0.99)),
      ack_max_ms: round(quantile(latencies, 1)),
      buffered,
      dropped,
      failures,
      flood: floodDuring,
    };
    samples.push(sample);
    lastAt = now;
    lastAcked = acked;
    console.log(
      [
        pad(sample.t_s, 7),
        pad(sample.rss_mb, 7),
        pad(sample.heap_used_mb, 8),
        pad(sample.acked_per_s, 8),
        pad(sample.ack_p50_ms, 7),
        pad(sample.ack_p99_ms, 7),
        pad(sample.ack_max_ms, 7),
        pad(sample.buffered, 9),
        pad(sample.dropped, 8),
        pad(sample.failures, 9),
        ...(FLOOD_S > 0 ? [pad(sample.flood ? 'yes' : '', 6)] : []),
      ].join(' '),
    );
  }
  const crashed = !hashwatt.running;
  const peakRss = hashwatt.pid ? (peakRssMb(hashwatt.pid) ?? null) : null;
  const floodStats = flood ? await flood.stats : [];
  if (flood && flood.endMs === undefined) flood.endMs = performance.now();

  const r = await stopAndReconcile('soak', runs, databaseUrl(), 30_000);
  console.log(summaryLine(r, `retries ${JSON.stringify(retryReasons(runs))}`));

  // Creep: the first minute against the last (the first includes warm-up, so it is the generous side).
  const perMinute = Math.max(1, Math.round(60 / EVERY_S));
  const rssOf = (s: Sample[]) => Math.max(...s.map((x) => x.rss_mb ?? 0));
  const allLatencies = runs.flatMap((x) => x.log.acks.map((a) => a.latencyMs));
  // The well-behaved agents' acks during the flood against the rest of the run (warm-up minute and
  // the few seconds the flood's backlog takes to drain left out of the no-flood side).
  const acks = runs.flatMap((x) => x.log.acks);
  const inFlood = (at: number) => flood !== undefined && at >= flood.startMs && at <= flood.endMs!;
  const afterFlood = (at: number) => flood !== undefined && at > flood.endMs! && at <= flood.endMs! + 5_000;
  const floodP99 = flood
    ? quantile(
        acks.filter((a) => inFlood(a.atMs)).map((a) => a.latencyMs),
        0.99,
      )
    : null;
  const calmP99 = quantile(
    acks
      .filter((a) => a.atMs >= started + 60_000 && !inFlood(a.atMs) && !afterFlood(a.atMs))
      .map((a) => a.latencyMs),
    0.99,
  );
  const refusedForOverload = runs.reduce(
    (n, x) => n + x.log.retriesMatching('overloaded') + x.log.retriesMatching('429'),
    0,
  );
  const summary = {
    minutes_run: Math.round((performance.now() - started) / 600) / 100,
    crashed,
    generated: r.generated,
    acknowledged: r.acknowledged,
    stored: r.stored,
    dropped: r.dropped,
    rejected: r.rejected,
    missing: r.missing,
    stored_twice: r.storedTwice,
    rss_mb_first_minute_max: samples.length ? rssOf(samples.slice(0, perMinute)) : null,
    rss_mb_last_minute_max: samples.length ? rssOf(samples.slice(-perMinute)) : null,
    rss_mb_max: samples.length ? rssOf(samples) : null,
    rss_mb_peak: round(peakRss),
    ack_p50_ms: round(quantile(allLatencies, 0.5)),
    ack_p99_ms: round(quantile(allLatencies, 0.99)),
    ack_max_ms: round(quantile(allLatencies, 1)),
    flood_seconds: flood ? Math.round((flood.endMs! - flood.startMs) / 1000) : 0,
    steady_ack_p99_ms_without_flood: round(calmP99),
    steady_ack_p99_ms_during_flood: round(floodP99),
    steady_p99_flood_ratio: floodP99 !== null && calmP99 ? Math.round((floodP99 / calmP99) * 10) / 10 : null,
    steady_refused_for_overload: refusedForOverload,
    flood_acknowledged: floodStats.reduce((n, f) => n + f.acknowledged, 0),
    flood_refused: floodStats.reduce((n, f) => n + f.refused, 0),
  };
  console.log(`soak summary: ${JSON.stringify(summary)}`);
  mkdirSync(path.dirname(values.out), { recursive: true });
  writeFileSync(
    values.out,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        minutes: MINUTES,
        load_rate_per_s: RATE,
        demo_scale: SCALE,
        sample_every_s: EVERY_S,
        machine: { cores: os.availableParallelism(), node: process.version },
        summary,
        samples,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`soak: wrote ${path.relative(process.cwd(), values.out) || values.out}`);
  process.exitCode = crashed || r.missing > 0 || r.storedTwice > 0 ? 1 : 0;
} finally {
  await Promise.all(runs.map((r) => r.fleet.stop({ flushMs: 0 })));
  await service?.stop();
  await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
}
