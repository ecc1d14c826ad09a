// Soak: hashwatt as a child process under the demo's agents plus an open-loop load for a long time,
// watching for what only time shows — memory that creeps, ack latency that drifts, readings lost.
//
//   npm run soak -- --minutes 30 [--rate 2000] [--every 10] [--scale 1]
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
import { stopAndReconcile, summaryLine } from '../tests/reliability/support/ledger.ts';
import { HashwattProcess, REPO_ROOT, rssMb, sleep } from '../tests/reliability/support/process.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string', default: '2000' },
    every: { type: 'string', default: '10' },
    scale: { type: 'string', default: '1' },
    out: { type: 'string', default: path.join(REPO_ROOT, 'bench/results/soak.json') },
  },
});
const MINUTES = Number(values.minutes);
const RATE = Number(values.rate);
const EVERY_S = Number(values.every);
const SCALE = Number(values.scale);
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
  console.log('    t_s  rss_mb  heap_mb  acked/s  p50_ms  p99_ms  max_ms  buffered  dropped  failures');

  const samples: Sample[] = [];
  const started = performance.now();
  const endAt = started + MINUTES * 60_000;
  let lastAt = started;
  let lastAcked = 0;
  let seen = runs.map(() => 0);
  while (performance.now() < endAt && !stopRequested && hashwatt.running) {
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
      ].join(' '),
    );
  }
  const crashed = !hashwatt.running;

  const r = await stopAndReconcile('soak', runs, databaseUrl(), 30_000);
  console.log(summaryLine(r, `retries ${JSON.stringify(retryReasons(runs))}`));

  // Creep: the first minute against the last (the first includes warm-up, so it is the generous side).
  const perMinute = Math.max(1, Math.round(60 / EVERY_S));
  const rssOf = (s: Sample[]) => Math.max(...s.map((x) => x.rss_mb ?? 0));
  const allLatencies = runs.flatMap((x) => x.log.acks.map((a) => a.latencyMs));
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
    ack_p50_ms: round(quantile(allLatencies, 0.5)),
    ack_p99_ms: round(quantile(allLatencies, 0.99)),
    ack_max_ms: round(quantile(allLatencies, 1)),
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
