import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { createSite } from '../support/service.ts';
import { quantile, retryReasons, startAgents } from './support/agents.ts';
import { diagnose, expectNoCrash, expectNothingLost } from './support/checks.ts';
import type { FloodStats } from './support/flood.ts';
import type { FloodWorkerInput } from './support/flood-worker.ts';
import { readStored, stopAndReconcile, summaryLine } from './support/ledger.ts';
import { HashwattProcess, rssMb, sleep } from './support/process.ts';

const FLOOD_MS = 20_000;
/**
 * The bound the service must stay under while one agent offers far more than it can write. Measured
 * on 2 cores: ~130 MB idle, ~390 MB under a write load that saturates it without a single 429 (4
 * polite connections), ~400 MB under this flood whether it uses 4, 16 or 32 connections: the heap
 * follows the allocation rate of the write path, not the size of the flood.
 */
const MAX_RSS_MB = 512;
/** Nor may it creep: the second half of the flood may not exceed the first by more than this. */
const MAX_RSS_GROWTH_MB = 96;
/**
 * Ack latency (first send → ack, retries included) of the well-behaved agents is logged before and
 * during the flood, not asserted: this machine is shared, so a wall-clock bound would measure the
 * neighbours. What is asserted is the mechanism: per-site admission refuses the flooder's excess,
 * so the well-behaved sites are never refused for overload at all. (Before it, admission was one
 * queue for all sites: they got 429s too, p99 2.4–7.2 s during the flood.) The p99 against its
 * no-flood value is tracked by `npm run soak` (target within 2×).
 */
describe('reliability: one agent floods, the others keep their share', () => {
  let db: TestDatabase | undefined;
  let service: HashwattProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await HashwattProcess.start(db.url!);
  });

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it("refuses the flooder's excess with 429 and a retry hint, stays under its memory bound, never refuses the others", async () => {
    const hashwatt = service!;
    const { token } = await createSite(hashwatt.url, 'flood', 'mining', 100_000);

    // The well-behaved agents: the demo's three sites, HTTP and WebSocket.
    const steady = await startAgents({ url: hashwatt.url });
    // Event-loop delay, from prom-client's default metrics: each scrape reports the delay since the
    // previous one. Measured, not asserted: it tells whether steady acks wait on the service's CPU.
    const loopDelay = async () => {
      const text = await (await fetch(`${hashwatt.url}/metrics`)).text();
      const read = (name: string) =>
        Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN) * 1000;
      return { p99: read('nodejs_eventloop_lag_p99_seconds'), max: read('nodejs_eventloop_lag_max_seconds') };
    };
    await loopDelay();
    await sleep(5_000);
    const baseline = steady.log.acks.map((a) => a.latencyMs);
    const loopBefore = await loopDelay();
    const loopDuring: { p99: number; max: number }[] = [];
    const loopSampler = setInterval(() => {
      void loopDelay()
        .then((d) => loopDuring.push(d))
        .catch(() => {});
    }, 1_000);

    const rss: { atMs: number; mb: number }[] = [];
    const sampler = setInterval(
      () => rss.push({ atMs: performance.now(), mb: rssMb(hashwatt.pid!) ?? 0 }),
      100,
    );
    const floodStart = performance.now();
    const t0 = Date.now() - 20 * 60_000;
    const input: FloodWorkerInput = { url: hashwatt.url, token, floodMs: FLOOD_MS, t0 };
    const worker = new Worker(new URL('./support/flood-worker.ts', import.meta.url), { workerData: input });
    const { http: httpFlood, ws: wsFlood } = await new Promise<{
      http: FloodStats;
      ws: FloodStats & { frames: number; answered: number };
    }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`flood worker exited (${code}) before it reported`)));
    });
    await worker.terminate();
    const floodEnd = performance.now();
    clearInterval(sampler);
    clearInterval(loopSampler);
    const loopP99During = quantile(
      loopDuring.map((d) => d.p99),
      0.5,
    );
    const loopMaxDuring = Math.max(0, ...loopDuring.map((d) => d.max));
    const half = floodStart + FLOOD_MS / 2;
    const maxOf = (samples: typeof rss) => Math.max(0, ...samples.map((x) => x.mb));
    const maxRss = maxOf(rss);
    const rssGrowth = maxOf(rss.filter((x) => x.atMs >= half)) - maxOf(rss.filter((x) => x.atMs < half));

    const duringFlood = steady.log.acks.filter((a) => a.atMs >= floodStart && a.atMs <= floodEnd);
    const latencies = duringFlood.map((a) => a.latencyMs);
    const p50 = quantile(latencies, 0.5);
    const p99 = quantile(latencies, 0.99);
    const baselineP99 = quantile(baseline, 0.99);
    // HTTP answers "HTTP 429 overloaded", the stream "service: overloaded".
    const steadyOverloaded = steady.log.retriesMatching('overloaded') + steady.log.retriesMatching('429');

    const r = await stopAndReconcile('flood (steady agents)', [steady], db!.url!);
    const floodStored = (await readStored(db!.url!, ['flood'])).get('flood')!;
    const acked = new Set([...httpFlood.acked, ...wsFlood.acked]);
    const inDoubt = new Set([...httpFlood.inDoubt, ...wsFlood.inDoubt]);
    const lostFlood = [...acked].filter((k) => !floodStored.keys.has(k)).length;
    const unexplained = [...floodStored.keys].filter((k) => !acked.has(k) && !inDoubt.has(k)).length;
    const floodGenerated = httpFlood.generated + wsFlood.generated;

    const ms = (v: number | null) => `${v?.toFixed(0)} ms`;
    console.log(
      summaryLine(
        r,
        `steady ack latency p50 ${ms(quantile(baseline, 0.5))} p99 ${ms(baselineP99)} before the flood, ` +
          `p50 ${ms(p50)} p99 ${ms(p99)} during it (${latencies.length} batches, p99 ` +
          `${p99 !== null && baselineP99 ? (p99 / baselineP99).toFixed(1) : '-'}× the no-flood p99), ` +
          `refused for overload ${steadyOverloaded}, ` +
          `event-loop delay p99 ${ms(loopBefore.p99)} before, median of per-second p99 ${ms(loopP99During)} ` +
          `and max ${ms(loopMaxDuring)} during, ` +
          `retries ${JSON.stringify(retryReasons([steady]))}`,
      ),
    );
    console.log(
      `reliability flood: generated ${floodGenerated} acknowledged ${acked.size} stored ${floodStored.rows} ` +
        `dropped ${floodGenerated - acked.size - inDoubt.size} in-doubt ${inDoubt.size} | ` +
        `max RSS ${maxRss.toFixed(0)} MB (growth over the flood ${rssGrowth.toFixed(0)} MB), ` +
        `HTTP 429 ${httpFlood.refused} (with Retry-After ${httpFlood.refusedWithHint}) other ${JSON.stringify(Object.fromEntries(httpFlood.other))}, ` +
        `WS frames ${wsFlood.frames} answered ${wsFlood.answered} retry_after_ms ${wsFlood.refused} other ${JSON.stringify(Object.fromEntries(wsFlood.other))}`,
    );

    expect(hashwatt.running).toBe(true);
    expect((await fetch(`${hashwatt.url}/healthz`)).status).toBe(200);
    expect(maxRss).toBeLessThan(MAX_RSS_MB);
    expect(rssGrowth).toBeLessThan(MAX_RSS_GROWTH_MB);
    // The excess was refused, and every refusal said when to come back.
    expect(httpFlood.refused).toBeGreaterThan(0);
    expect(httpFlood.refusedWithHint).toBe(httpFlood.refused);
    expect(wsFlood.refusedWithHint).toBe(wsFlood.refused);
    expect(httpFlood.other.size + wsFlood.other.size).toBe(0);
    // The flooder's acknowledged readings are stored exactly once; nothing stored that it did not send.
    expect(lostFlood).toBe(0);
    expect(floodStored.rows).toBe(floodStored.keys.size);
    expect(unexplained).toBe(0);
    // The others were served throughout, never refused for overload, and lost nothing.
    expect(latencies.length).toBeGreaterThan(20);
    expect(steadyOverloaded, JSON.stringify(retryReasons([steady]))).toBe(0);
    expectNoCrash(hashwatt);
    expectNothingLost(r, diagnose([steady], hashwatt));
  });
});
