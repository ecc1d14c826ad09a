// Service memory under load: peak RSS and what it is made of, for A/B runs of memory settings.
//
//   node bench/memory.ts [--transport ws|http] [--rate 150000] [--seconds 20]
//
// hashwatt as a child process on a fresh database with the load scenario's 200,000 devices
// registered (as bench/ingest.ts), then the simulator's load at `rate` readings/s; every second
// the service's RSS (/proc) and, at the peak, V8's heap spaces and external memory (/metrics).
// Environment reaches the service: HASHWATT_HEAP_GROWING_PERCENT, MALLOC_* and
// BENCH_SERVICE_NODE_FLAGS (replaces src/node-flags.ts's flags) make the A/B rows of
// docs/performance.md, "Memory".
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { dropBenchDatabase, FULL_PLAN, offerLoad, startBenchService, sum, warmUp } from './ingest.ts';

const { values } = parseArgs({
  options: { transport: { type: 'string' }, rate: { type: 'string' }, seconds: { type: 'string' } },
});
const transport = values.transport === 'http' ? 'http' : 'ws';
const rate = Number(values.rate ?? 150_000);
const seconds = Number(values.seconds ?? 20);

const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function metrics(url: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await (await fetch(`${url}/metrics`)).text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const service = await startBenchService();
try {
  await warmUp(service, FULL_PLAN);
  const idleMb = rssMb(service.pid);
  const before = await metrics(service.url);
  const load = offerLoad(service.url, transport, rate, seconds);
  let peakMb = 0;
  let atPeak = before;
  let running = true;
  void load.then(() => {
    running = false;
  });
  while (running) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = rssMb(service.pid);
    if (now > peakMb) {
      peakMb = now;
      atPeak = await metrics(service.url);
    }
  }
  const after = await metrics(service.url);
  const stored = (m: Map<string, number>) =>
    sum(m, 'hashwatt_readings_ingested_total', `transport="${transport}"`);
  const mb = (bytes: number | undefined) => Math.round((bytes ?? 0) / 2 ** 20);
  const spaces: Record<string, number> = {};
  for (const [k, v] of atPeak) {
    const space = /^nodejs_heap_space_size_total_bytes\{space="([^"]+)"\}$/.exec(k)?.[1];
    if (space && v > 0) spaces[space] = mb(v);
  }
  console.log(
    JSON.stringify(
      {
        transport,
        offered_per_s: rate,
        stored_per_s: Math.round((stored(after) - stored(before)) / seconds),
        idle_rss_mb: Math.round(idleMb),
        peak_rss_mb: Math.round(peakMb),
        at_peak: {
          heap_total_mb: mb(atPeak.get('nodejs_heap_size_total_bytes')),
          heap_used_mb: mb(atPeak.get('nodejs_heap_size_used_bytes')),
          external_mb: mb(atPeak.get('nodejs_external_memory_bytes')),
          heap_spaces_mb: spaces,
        },
        flags: process.env.BENCH_SERVICE_NODE_FLAGS ?? 'src/node-flags.ts',
      },
      null,
      2,
    ),
  );
} finally {
  await service.stop();
  await dropBenchDatabase();
}
