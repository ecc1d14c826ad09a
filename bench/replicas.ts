// Scale-out: the ingest rate of 1, 2 and 3 hashwatt replicas on one Postgres, behind HAProxy, under
// the same offered load, with the CPU each configuration spends per reading.
//
//   node bench/replicas.ts [--quick]      → bench/results/replicas.json (quick: replicas.quick.json)
//
// One database of its own on the shared server (BENCH_DATABASE_URL, default 127.0.0.1:5432:
// `hashwatt_bench_replicas`, dropped at the end). HAProxy (Debian package) on loopback balances
// each request round robin (tests/reliability/support/haproxy.ts, the scale-out scenario's
// config); the simulator's open-loop `load` scenario (200 000 ASICs on four sites, as bench/ingest.ts
// offers it) sends through it at a rate past what one replica stores, so what is stored is what N
// replicas hold. Rounds interleave N (3, 2, 1, then 1, 2, 3, …): replica 0 runs throughout, the
// others are started when a round needs them and stopped when it needs fewer, so the machine's
// drift spreads over every N; medians per N. A replica started for a round ingests through the
// settle period before the window opens (its device cache fills).
//
// Figures of a window, from the replicas' own counters and /proc: readings/s stored (accepted +
// duplicate, summed over replicas), refused/s (429 + 503), ack latency p50/p99 (the replicas'
// request histograms merged), each replica's share of the readings, and CPU per reading: hashwatt
// (all replicas), HAProxy, and Postgres (every backend of the database, polled: the lease holder's
// fleet aggregate, with its parallel workers, and rollup job included). The machine has 2 cores
// shared with the load generator and Postgres, so more replicas cannot add cores: the numbers say
// what one more process costs and whether HAProxy spreads the load, not how a cluster of machines
// scales.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import pg from 'pg';
import { HAPROXY_BIN, Haproxy } from '../tests/reliability/support/haproxy.ts';
import { scrapeMetrics } from '../tests/reliability/support/replicas.ts';
import {
  ADMIN_TOKEN,
  type BenchService,
  FULL_PLAN,
  QUICK_PLAN,
  SAMPLES_PER_READING,
  type Scrape,
  sum,
  warmUp,
} from './ingest.ts';
import { machineBusyUs, processCpuUs } from './support/postgres-cpu.ts';
import { createDatabase, databaseUrl, dropDatabase, startServiceOn } from './support/service.ts';

const DATABASE = 'hashwatt_bench_replicas';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`${line}\n`);

type Transport = 'http' | 'ws';

export interface ReplicasPlan {
  /** Replica counts compared. */
  counts: number[];
  transports: Transport[];
  /** Rounds over every count; odd rounds run the counts in reverse. */
  rounds: number;
  /** Load before each window: a replica started for the round fills its device cache meanwhile. */
  settleS: number;
  windowS: number;
  /**
   * Offered readings/s per transport, the same for every count: past what one replica stores on
   * this machine (HTTP held ~120k/s with a few 429s in a probe, 2026-12-01), so the count's limit shows.
   */
  offeredPerS: Record<Transport, number>;
}

export const FULL_REPLICAS_PLAN: ReplicasPlan = {
  counts: [1, 2, 3],
  transports: ['http', 'ws'],
  rounds: 3,
  settleS: 10,
  windowS: 15,
  offeredPerS: { http: 160_000, ws: 250_000 },
};
export const QUICK_REPLICAS_PLAN: ReplicasPlan = {
  counts: [1, 2, 3],
  transports: ['http'],
  rounds: 1,
  settleS: 4,
  windowS: 6,
  offeredPerS: { http: 160_000, ws: 250_000 },
};

export interface WindowResult {
  transport: Transport;
  replicas: number;
  round: number;
  offered_per_s: number;
  readings_per_s: number;
  refused_per_s: number;
  ack_p50_ms: number | null;
  ack_p99_ms: number | null;
  /** Each replica's share of the readings stored in the window. */
  shares: number[];
  hashwatt_cpu_us_per_reading: number | null;
  haproxy_cpu_us_per_reading: number | null;
  pg_cpu_us_per_reading: number | null;
  /** hashwatt's CPU as bench/ingest.ts reports it (all replicas together). */
  cpu_s_per_100k_samples: number | null;
  /** Busy cores of the whole machine over the window (2 = all of it). */
  machine_busy_cores: number;
  /** Of those, what processes other than the benchmark's used: the machine is shared. */
  other_load_cores: number;
}

export interface CountSummary {
  readings_per_s: number;
  refused_per_s: number;
  ack_p50_ms: number | null;
  ack_p99_ms: number | null;
  hashwatt_cpu_us_per_reading: number | null;
  haproxy_cpu_us_per_reading: number | null;
  pg_cpu_us_per_reading: number | null;
  total_cpu_us_per_reading: number | null;
  cpu_s_per_100k_samples: number | null;
  /** Median over windows of the largest replica share: 1/N when HAProxy spreads evenly. */
  max_share: number;
}

export interface ReplicasResult {
  date: string;
  quick: boolean;
  machine: { cores: number; node: string; postgres: string };
  plan: ReplicasPlan;
  /** Per transport, per replica count: medians over the rounds. */
  transports: Partial<Record<Transport, Record<string, CountSummary>>>;
  /** Per transport, readings/s of N replicas over 1 replica's (medians). */
  scaling: Partial<Record<Transport, Record<string, number>>>;
  windows: WindowResult[];
  duration_s: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const medianOrNull = (xs: (number | null)[]): number | null => {
  const present = xs.filter((x): x is number => x !== null);
  return present.length ? Math.round(median(present) * 100) / 100 : null;
};
const round2 = (n: number) => Math.round(n * 100) / 100;

/** The simulator's `load` scenario offering `rate` for `seconds` through `url`, as its own process. */
function offerLoad(url: string, transport: Transport, rate: number, seconds: number) {
  const load = spawn(
    process.execPath,
    [
      'simulators/cli.ts',
      ...['--scenario', 'load', '--url', url, '--admin-token', ADMIN_TOKEN, '--transport', transport],
      ...['--rate', String(Math.round(rate)), '--duration', String(seconds), '--flush-ms', '1000'],
      ...['--quiet', '--json'],
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return { pid: load.pid, done: new Promise<void>((resolve) => load.once('exit', () => resolve())) };
}

/**
 * A quantile of the replicas' request histograms merged (bucket counts summed) between two sets
 * of scrapes, interpolated within the bucket as histogram_quantile does.
 */
function mergedQuantileMs(
  before: readonly Scrape[],
  after: readonly Scrape[],
  transport: string,
  q: number,
): number | null {
  const name = 'hashwatt_ingest_request_duration_seconds_bucket{';
  const counts = new Map<number, number>();
  after.forEach((m1, i) => {
    for (const [k, v] of m1) {
      if (!k.startsWith(name) || !k.includes(`transport="${transport}"`)) continue;
      const le = /le="([^"]+)"/.exec(k)?.[1];
      if (!le) continue;
      const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
      counts.set(bound, (counts.get(bound) ?? 0) + v - (before[i]?.get(k) ?? 0));
    }
  });
  const buckets = [...counts].sort((a, b) => a[0] - b[0]);
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
      return Math.round((lowerBound + (bound - lowerBound) * share) * 10_000) / 10;
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return null;
}

/**
 * CPU (µs) of the database's backends over a window, Postgres running on this machine. Polled
 * every 100 ms, not only at the window's edges: the fleet aggregate runs parallel workers that
 * live for a fraction of a second (one set per replica, so they grow with N). A process is counted
 * from its CPU when first seen in the window (0 if born in it) to its last sighting; one that ends
 * between two polls loses at most its last 100 ms.
 */
class BackendCpu {
  readonly #monitor: pg.Client;
  readonly #first = new Map<number, number>();
  readonly #last = new Map<number, number>();
  #polling: Promise<void> | undefined;
  #stopped = false;

  constructor(monitor: pg.Client) {
    this.#monitor = monitor;
  }

  async #poll(baseline: boolean): Promise<void> {
    const { rows } = await this.#monitor.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [DATABASE],
    );
    for (const { pid } of rows) {
      const us = processCpuUs(pid);
      if (us === 0) continue; // gone already
      if (!this.#first.has(pid)) this.#first.set(pid, baseline ? us : 0);
      this.#last.set(pid, us);
    }
  }

  async start(): Promise<void> {
    await this.#poll(true);
    this.#polling = (async () => {
      while (!this.#stopped) {
        await sleep(100);
        await this.#poll(false);
      }
    })();
  }

  /** Stops polling; the CPU the backends used since start(). */
  async stop(): Promise<number> {
    this.#stopped = true;
    await this.#polling;
    await this.#poll(false);
    let us = 0;
    for (const [pid, last] of this.#last) us += last - (this.#first.get(pid) ?? 0);
    return us;
  }
}

/** Replicas 0..n-1 running (started or stopped as needed), and HAProxy in front of exactly those. */
class Deployment {
  readonly replicas: BenchService[] = [];
  proxy: Haproxy | undefined;

  async scaleTo(n: number): Promise<void> {
    while (this.replicas.length > n) await this.replicas.pop()!.stop();
    const started = await Promise.all(
      Array.from({ length: n - this.replicas.length }, () =>
        startServiceOn(DATABASE, { LOG_LEVEL: 'error' }),
      ),
    );
    this.replicas.push(...started);
    await this.proxy?.stop();
    this.proxy = await Haproxy.start(
      this.replicas.map((r, i) => ({ name: `r${i}`, port: Number(new URL(r.url).port) })),
    );
  }

  async stop(): Promise<void> {
    await this.proxy?.stop();
    for (const r of this.replicas.splice(0)) await r.stop();
  }
}

async function measure(
  deployment: Deployment,
  monitor: pg.Client,
  transport: Transport,
  plan: ReplicasPlan,
  round: number,
): Promise<WindowResult> {
  const proxy = deployment.proxy!;
  const replicas = deployment.replicas;
  const rate = plan.offeredPerS[transport];
  const load = offerLoad(proxy.url, transport, rate, plan.settleS + plan.windowS + 1);
  await sleep(plan.settleS * 1000);
  const cpuOf = () => ({
    hashwatt: replicas.reduce((a, r) => a + processCpuUs(r.pid), 0),
    haproxy: proxy.pid === undefined ? 0 : processCpuUs(proxy.pid),
    simulator: load.pid === undefined ? 0 : processCpuUs(load.pid),
    self: process.cpuUsage().user + process.cpuUsage().system,
  });
  const busy0 = machineBusyUs();
  const cpu0 = cpuOf();
  const backends = new BackendCpu(monitor);
  await backends.start();
  const m0 = await Promise.all(replicas.map((r) => scrapeMetrics(r.url)));
  const t0 = performance.now();
  await sleep(plan.windowS * 1000);
  const m1 = await Promise.all(replicas.map((r) => scrapeMetrics(r.url)));
  const elapsedS = (performance.now() - t0) / 1000;
  const busy1 = machineBusyUs();
  const cpu1 = cpuOf();
  const pgUs = await backends.stop();
  await load.done;

  const t = `transport="${transport}"`;
  const stored = (m: Scrape) =>
    sum(m, 'hashwatt_readings_ingested_total', t, 'outcome="accepted"') +
    sum(m, 'hashwatt_readings_ingested_total', t, 'outcome="duplicate"');
  const refused = (m: Scrape) =>
    sum(m, 'hashwatt_ingest_requests_total', t, 'status="429"') +
    sum(m, 'hashwatt_ingest_requests_total', t, 'status="503"');
  const perReplica = m1.map((m, i) => stored(m) - stored(m0[i]!));
  const readings = perReplica.reduce((a, b) => a + b, 0);
  const refusals = m1.reduce((a, m, i) => a + refused(m) - refused(m0[i]!), 0);
  const perReading = (us: number) => (readings > 0 ? round2(us / readings) : null);
  const hashwattUs = cpu1.hashwatt - cpu0.hashwatt;
  const ours =
    hashwattUs +
    (cpu1.haproxy - cpu0.haproxy) +
    (cpu1.simulator - cpu0.simulator) +
    (cpu1.self - cpu0.self) +
    pgUs;
  return {
    transport,
    replicas: replicas.length,
    round,
    offered_per_s: rate,
    readings_per_s: Math.round(readings / elapsedS),
    refused_per_s: Math.round(refusals / elapsedS),
    ack_p50_ms: mergedQuantileMs(m0, m1, transport, 0.5),
    ack_p99_ms: mergedQuantileMs(m0, m1, transport, 0.99),
    shares: perReplica.map((n) => (readings > 0 ? round2(n / readings) : 0)),
    hashwatt_cpu_us_per_reading: perReading(hashwattUs),
    haproxy_cpu_us_per_reading: perReading(cpu1.haproxy - cpu0.haproxy),
    pg_cpu_us_per_reading: perReading(pgUs),
    cpu_s_per_100k_samples:
      readings > 0 ? Number(((hashwattUs / 1e6 / (readings * SAMPLES_PER_READING)) * 1e5).toFixed(3)) : null,
    machine_busy_cores: round2((busy1 - busy0) / 1e6 / elapsedS),
    other_load_cores: round2(Math.max(0, busy1 - busy0 - ours) / 1e6 / elapsedS),
  };
}

function summarise(windows: WindowResult[]): CountSummary {
  const total = windows.map((w) =>
    w.hashwatt_cpu_us_per_reading === null || w.pg_cpu_us_per_reading === null
      ? null
      : w.hashwatt_cpu_us_per_reading + (w.haproxy_cpu_us_per_reading ?? 0) + w.pg_cpu_us_per_reading,
  );
  return {
    readings_per_s: Math.round(median(windows.map((w) => w.readings_per_s))),
    refused_per_s: Math.round(median(windows.map((w) => w.refused_per_s))),
    ack_p50_ms: medianOrNull(windows.map((w) => w.ack_p50_ms)),
    ack_p99_ms: medianOrNull(windows.map((w) => w.ack_p99_ms)),
    hashwatt_cpu_us_per_reading: medianOrNull(windows.map((w) => w.hashwatt_cpu_us_per_reading)),
    haproxy_cpu_us_per_reading: medianOrNull(windows.map((w) => w.haproxy_cpu_us_per_reading)),
    pg_cpu_us_per_reading: medianOrNull(windows.map((w) => w.pg_cpu_us_per_reading)),
    total_cpu_us_per_reading: medianOrNull(total),
    cpu_s_per_100k_samples: medianOrNull(windows.map((w) => w.cpu_s_per_100k_samples)),
    max_share: round2(median(windows.map((w) => Math.max(...w.shares)))),
  };
}

export async function measureReplicas(plan: ReplicasPlan, quick: boolean): Promise<ReplicasResult> {
  const started = Date.now();
  await createDatabase(DATABASE);
  const monitor = new pg.Client({ connectionString: databaseUrl(DATABASE) });
  // The final DROP DATABASE … FORCE ends this session; that must not crash the run.
  monitor.on('error', () => {});
  await monitor.connect();
  const deployment = new Deployment();
  const windows: WindowResult[] = [];
  try {
    const postgres = (await monitor.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v.split(
      ' on ',
    )[0]!;
    // Every replica up once for the warm-up: the load scenario's 200 000 devices registered.
    await deployment.scaleTo(Math.max(...plan.counts));
    log(
      `replicas: warming up (the load scenario's devices) through HAProxy with ${deployment.replicas.length} replicas`,
    );
    const throughProxy: BenchService = { url: deployment.proxy!.url, pid: 0, stop: async () => {} };
    await warmUp(throughProxy, quick ? QUICK_PLAN : FULL_PLAN);
    for (let round = 0; round < plan.rounds; round++) {
      // Descending first: the warm-up left every replica running.
      const counts = round % 2 === 0 ? [...plan.counts].reverse() : plan.counts;
      for (const n of counts) {
        await deployment.scaleTo(n);
        for (const transport of plan.transports) {
          const w = await measure(deployment, monitor, transport, plan, round);
          windows.push(w);
          log(
            `  round ${round + 1} ${transport} × ${n}: stored ${w.readings_per_s}/s of ${w.offered_per_s}/s, refused ${w.refused_per_s}/s, ` +
              `p99 ${w.ack_p99_ms} ms, shares ${w.shares.join('/')}, CPU µs/reading hashwatt ${w.hashwatt_cpu_us_per_reading} ` +
              `haproxy ${w.haproxy_cpu_us_per_reading} pg ${w.pg_cpu_us_per_reading}; machine ${w.machine_busy_cores} cores (other ${w.other_load_cores})`,
          );
        }
      }
    }
    const transports: ReplicasResult['transports'] = {};
    const scaling: ReplicasResult['scaling'] = {};
    for (const transport of plan.transports) {
      const byCount: Record<string, CountSummary> = {};
      for (const n of plan.counts)
        byCount[n] = summarise(windows.filter((w) => w.transport === transport && w.replicas === n));
      transports[transport] = byCount;
      const one = byCount[plan.counts[0]!]!.readings_per_s;
      scaling[transport] = Object.fromEntries(
        plan.counts.map((n) => [
          n,
          one > 0 ? Math.round((byCount[n]!.readings_per_s / one) * 1000) / 1000 : 0,
        ]),
      );
    }
    return {
      date: new Date().toISOString(),
      quick,
      machine: { cores: os.cpus().length, node: process.version, postgres },
      plan,
      transports,
      scaling,
      windows,
      duration_s: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    await deployment.stop();
    await monitor.end().catch(() => {});
    await dropDatabase(DATABASE);
  }
}

/** A markdown table of the medians. */
export function formatReplicas(r: ReplicasResult): string[] {
  const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
  const lines = [
    `| transport, offered/s | replicas | readings/s stored (median of ${r.plan.rounds}) | × 1 replica | refused/s | ack p50 / p99 | CPU µs per reading: hashwatt + HAProxy + Postgres = total | largest replica share |`,
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const [transport, byCount] of Object.entries(r.transports)) {
    for (const [n, s] of Object.entries(byCount)) {
      lines.push(
        `| ${transport}, ${n0(r.plan.offeredPerS[transport as Transport])} | ${n} | ${n0(s.readings_per_s)} | ${r.scaling[transport as Transport]?.[n]} | ${n0(s.refused_per_s)} | ${s.ack_p50_ms ?? '–'} / ${s.ack_p99_ms ?? '–'} ms | ${s.hashwatt_cpu_us_per_reading} + ${s.haproxy_cpu_us_per_reading} + ${s.pg_cpu_us_per_reading} = ${s.total_cpu_us_per_reading} | ${s.max_share} |`,
      );
    }
  }
  return lines;
}

if (import.meta.main) {
  const quick = process.argv.includes('--quick');
  // Fails early and plainly when the machine has no HAProxy (Debian package haproxy).
  accessSync(HAPROXY_BIN, constants.X_OK);
  const plan = structuredClone(quick ? QUICK_REPLICAS_PLAN : FULL_REPLICAS_PLAN);
  // --http-rate N / --ws-rate N: another offered load (the defaults saturate one replica here).
  for (const transport of ['http', 'ws'] as const) {
    const at = process.argv.indexOf(`--${transport}-rate`);
    if (at > 0) plan.offeredPerS[transport] = Number(process.argv[at + 1]);
  }
  const result = await measureReplicas(plan, quick);
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/replicas${quick ? '.quick' : ''}.json`;
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(formatReplicas(result).join('\n'));
  log(`wrote ${file} in ${result.duration_s} s`);
}
