// /metrics scrape time at fleet scale: 1 000 sites, 300 000 devices in the latest-state table.
//
//   node bench/scrape.ts [--sites N] [--devices N] [--runs N]
//
// Seeds its own database on $BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
// straight through SQL (ingesting 300k devices first would measure ingest, not the scrape), then
// times the fleet aggregate (what the background refresh costs) and full renders of the registry
// (what a scrape costs).
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { DEFAULT_THRESHOLDS, FleetReader } from '../src/fleet/index.ts';
import { silentLogger } from '../src/log.ts';
import { createMetrics } from '../src/metrics/index.ts';
import { readRoutes } from '../src/read/index.ts';

const READ_TOKEN = 'bench-admin-token';

import { openDatabase } from '../src/storage/database.ts';
import { migrateToLatest } from '../src/storage/migrate.ts';

export interface ScrapeResult {
  date: string;
  sites: number;
  devices: number;
  runs: number;
  fleet_aggregate: { p50_ms: number; p95_ms: number; max_ms: number };
  scrape: { p50_ms: number; p95_ms: number; max_ms: number };
  /** GET /api/v1/fleet as the admin, from the same snapshot (the read API). */
  fleet_api: { p50_ms: number; p95_ms: number; max_ms: number };
  exposition_bytes: number;
  series: number;
}

const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = 'hashwatt_bench_scrape';

async function admin(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  await c.query(text).finally(() => c.end());
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Seeds SITES sites and DEVICES devices, then times the fleet aggregate and the scrape render. */
export async function measureScrape(SITES = 1000, DEVICES = 300_000, RUNS = 20): Promise<ScrapeResult> {
  /** Times `run` RUNS times (after one warm-up) and returns p50/p95/max in ms. */
  const time = async (run: () => Promise<unknown>) => {
    await run();
    const ms: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      await run();
      ms.push(performance.now() - t);
    }
    ms.sort((a, b) => a - b);
    const round = (n: number) => Math.round(n * 10) / 10;
    return {
      p50_ms: round(percentile(ms, 0.5)),
      p95_ms: round(percentile(ms, 0.95)),
      max_ms: round(ms.at(-1)!),
    };
  };
  await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${DB}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${DB}`;
  const storage = await openDatabase({ databaseUrl: url.toString(), dataDir: '/tmp', logger: silentLogger });
  try {
    await migrateToLatest(storage.db);
    const seed = new pg.Client({ connectionString: url.toString() });
    await seed.connect();
    // Sites of mixed kinds; devices spread evenly: ASICs mostly, a GPU in ten, one meter per site.
    await seed.query(
      `INSERT INTO sites (name, kind, capacity_w, token_hash)
       SELECT 'site-' || i, (ARRAY['mining','ai','mixed'])[1 + i % 3]::site_kind, 5e6, sha256(i::text::bytea)
       FROM generate_series(1, $1) i`,
      [SITES],
    );
    await seed.query(
      `INSERT INTO devices (site_id, external_id, kind)
       SELECT 1 + i % $2, 'dev-' || i, CASE WHEN i < $2 THEN 'meter' WHEN i % 10 = 0 THEN 'gpu' ELSE 'asic' END::device_kind
       FROM generate_series(0, $1 - 1) i`,
      [DEVICES, SITES],
    );
    await seed.query(
      `INSERT INTO device_latest (device_id, site_id, kind, ts, received_at, power_w, hashrate_ths, expected_hashrate_ths,
         gpu_util_pct, available_power_w, status)
       SELECT id, site_id, kind, now() - (id % 200) * interval '1 second', now() - (id % 200) * interval '1 second',
         CASE kind WHEN 'meter' THEN 4e6 WHEN 'gpu' THEN 650 ELSE 3500 END,
         CASE WHEN kind = 'asic' THEN 200 - (id % 7) END, CASE WHEN kind = 'asic' THEN 200 END,
         CASE WHEN kind = 'gpu' THEN id % 100 END, CASE WHEN kind = 'meter' THEN 4.5e6 END,
         (ARRAY['ok','ok','ok','ok','ok','ok','ok','ok','curtailed','error'])[1 + id % 10]::device_status
       FROM devices`,
    );
    await seed.query('VACUUM ANALYZE device_latest');
    await seed.end();

    // The service refreshes the snapshot in the background (src/fleet/index.ts), so a scrape renders
    // from it; the aggregate's own cost is timed separately.
    const fleet = new FleetReader(storage, DEFAULT_THRESHOLDS, { maxAgeMs: 3_600_000 });
    const metrics = createMetrics({
      fleet,
      storage,
      writer: () => undefined,
      latest: () => undefined,
      streams: () => 0,
      ready: async () => true,
    });
    let snapshots = 0;
    const aggregate = await time(async () => {
      snapshots += (await fleet.refresh()).sites.length;
    });
    const scrape = await time(() => metrics.endpoint.render());
    const body = await metrics.endpoint.render();
    const read = readRoutes({
      storage,
      fleet,
      thresholdDefaults: DEFAULT_THRESHOLDS,
      adminToken: READ_TOKEN,
      authenticateSite: async () => undefined,
    });
    const fleetApi = await time(async () => {
      const response = await read.request('/fleet', { headers: { authorization: `Bearer ${READ_TOKEN}` } });
      const answer = (await response.json()) as { sites: unknown[] };
      if (response.status !== 200 || answer.sites.length !== SITES)
        throw new Error(`fleet API answered ${response.status}`);
    });
    const result: ScrapeResult = {
      date: new Date().toISOString(),
      sites: SITES,
      devices: DEVICES,
      runs: RUNS,
      fleet_aggregate: aggregate,
      scrape,
      fleet_api: fleetApi,
      exposition_bytes: Buffer.byteLength(body),
      series: body.split('\n').filter((l) => l && !l.startsWith('#')).length,
    };
    if (snapshots === 0) throw new Error('no sites in the snapshot');
    return result;
  } finally {
    await storage.close();
    await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { sites: { type: 'string' }, devices: { type: 'string' }, runs: { type: 'string' } },
  });
  const result = await measureScrape(
    Number(values.sites ?? 1000),
    Number(values.devices ?? 300_000),
    Number(values.runs ?? 20),
  );
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/scrape.json', `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
}
