/**
 * The rollup job runs on one replica at a time: two jobs on one Postgres database, each with its
 * own lease (the advisory lock), and only the holder builds; when it stops, the other takes over.
 */
import { sql } from 'kysely';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AdvisoryLockLease } from '../src/alerting/leader.ts';
import { silentLogger } from '../src/log.ts';
import { ROLLUP_LOCK, RollupJob } from '../src/rollups/job.ts';
import type { Storage } from '../src/storage/database.ts';
import { ensurePartitions } from '../src/storage/partitions.ts';
import { writeReadings } from '../src/storage/readings.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { insertSite } from './support/sites.ts';

const HOUR = 3_600_000;
const T0 = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;

describe('the rollup lease on postgres', () => {
  let testDb: TestDatabase;
  let storages: Storage[] = [];
  const jobs: { job: RollupJob; registry: Registry }[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    storages = [await testDb.open(), await testDb.open()];
    await ensurePartitions(storages[0]!.db, Date.now(), { retentionDays: 2, aheadDays: 1 });
    for (const storage of storages) {
      const registry = new Registry();
      const job = new RollupJob({
        storage,
        logger: silentLogger,
        registry,
        lease: new AdvisoryLockLease(testDb.url!, silentLogger, ROLLUP_LOCK, 'rollups'),
        intervalMs: 50,
        graceMs: 0,
      });
      jobs.push({ job, registry });
    }
  }, 60_000);

  afterAll(async () => {
    for (const { job } of jobs) await job.stop();
    for (const storage of storages) await storage.close();
    await testDb?.dispose();
  });

  const built = async (registry: Registry) => {
    const metric = await registry.getSingleMetric('hashwatt_rollup_buckets_built_total')?.get();
    return (metric?.values ?? []).filter((v) => v.labels.tier === '1m').reduce((a, v) => a + v.value, 0);
  };
  const pending = async () =>
    (await sql<{ n: number }>`SELECT count(*)::int AS n FROM rollup_dirty`.execute(storages[0]!.db)).rows[0]!
      .n;

  it('builds on the holder only, and on the other once the holder stops', async () => {
    const site = await insertSite(storages[0]!, 'leased', [['a1', 'asic']]);
    const write = (hour: number) =>
      writeReadings(
        storages[0]!.db,
        Array.from({ length: 30 }, (_, m) =>
          site.record('a1', T0 + hour * HOUR + m * 60_000, { power_w: 3000 + m }),
        ),
      );
    await write(0);
    for (const { job } of jobs) job.start();
    const total = async () => (await built(jobs[0]!.registry)) + (await built(jobs[1]!.registry));
    await vi.waitFor(async () => expect(await total()).toBe(30), { timeout: 20_000, interval: 50 });
    expect(await pending()).toBe(0);
    const first = await Promise.all(jobs.map(({ registry }) => built(registry)));
    // Exactly one replica built the 30 minutes.
    expect(first.sort((a, b) => a - b)).toEqual([0, 30]);
    const holder = jobs[(await built(jobs[0]!.registry)) === 30 ? 0 : 1]!;
    const other = jobs.find((j) => j !== holder)!;
    await holder.job.stop();
    await write(1);
    await vi.waitFor(async () => expect(await built(other.registry)).toBe(30), {
      timeout: 20_000,
      interval: 50,
    });
    expect(await pending()).toBe(0);
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM rollup_site_1h WHERE site_id = ${site.id}`.execute(storages[0]!.db);
    expect(rows[0]!.n).toBe(2);
  }, 60_000);
});

describe('the rollup job under saturated ingest', () => {
  let testDb: TestDatabase;
  let storage: Storage;
  const held = { check: async () => true, fence: undefined, release: async () => {} };

  beforeAll(async () => {
    testDb = await createTestDatabase('pglite');
    storage = await testDb.open();
    await ensurePartitions(storage.db, Date.now(), { retentionDays: 2, aheadDays: 1 });
  }, 60_000);

  afterAll(async () => {
    await storage?.close();
    await testDb?.dispose();
  });

  const pendingMinutes = async () =>
    (await sql<{ n: number }>`SELECT count(*)::int AS n FROM rollup_dirty`.execute(storage.db)).rows[0]!.n;
  const builtMinutes = async (siteId: number) =>
    (
      await sql<{
        n: number;
      }>`SELECT count(*)::int AS n FROM rollup_site_1m WHERE site_id = ${siteId}`.execute(storage.db)
    ).rows[0]!.n;

  // A job that sees ingest saturated and may build one reading's worth per paced transaction; it
  // runs once (a second after start), as the interval is an hour.
  const saturatedJob = (budgetReadings?: number) =>
    new RollupJob({
      storage,
      logger: silentLogger,
      lease: held,
      intervalMs: 3_600_000,
      graceMs: 0,
      ingestBusy: () => true,
      busyBudgetReadings: 1,
      ...(budgetReadings !== undefined && { budgetReadings }),
    });

  it('keeps the last minutes current, and builds only a backlog paced', async () => {
    const site = await insertSite(storage, 'saturated', [['a1', 'asic']]);
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    // A backlog: ten minutes from half an hour ago, each its own transaction's worth.
    await writeReadings(
      storage.db,
      Array.from({ length: 10 }, (_, m) =>
        site.record('a1', minute - (30 - m) * 60_000, { power_w: 100 + m }),
      ),
    );
    const job = saturatedJob();
    job.start();
    try {
      // The first run builds one transaction of the backlog and rests: the rest waits.
      await vi.waitFor(async () => expect(await builtMinutes(site.id)).toBeGreaterThan(0), {
        timeout: 10_000,
        interval: 20,
      });
      expect(await builtMinutes(site.id)).toBeLessThan(10);
      expect(await pendingMinutes()).toBeGreaterThan(0);
    } finally {
      await job.stop();
    }
    // Current work only: the previous two minutes, built in one run whatever ingest is doing.
    // Their minute is taken again now: the backlog part took seconds, and had a minute boundary
    // passed since `minute`, the older of the two would be past the backlog age (3 minutes).
    await sql`DELETE FROM rollup_dirty`.execute(storage.db);
    const nowMinute = Math.floor(Date.now() / 60_000) * 60_000;
    await writeReadings(storage.db, [
      site.record('a1', nowMinute - 120_000, { power_w: 1 }),
      site.record('a1', nowMinute - 60_000, { power_w: 2 }),
    ]);
    const before = await builtMinutes(site.id);
    const current = saturatedJob();
    current.start();
    try {
      await vi.waitFor(async () => expect(await pendingMinutes()).toBe(0), { timeout: 10_000, interval: 20 });
      expect(await builtMinutes(site.id)).toBe(before + 2);
    } finally {
      await current.stop();
    }
  }, 60_000);

  it('builds current work of many transactions to the end in one run under saturated ingest', async () => {
    const sites = [
      await insertSite(storage, 'current-a', [['a1', 'asic']]),
      await insertSite(storage, 'current-b', [['b1', 'asic']]),
    ];
    await sql`DELETE FROM rollup_dirty`.execute(storage.db);
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    await writeReadings(
      storage.db,
      sites.flatMap((site, i) => [
        site.record(i === 0 ? 'a1' : 'b1', minute - 120_000, { power_w: 1 }),
        site.record(i === 0 ? 'a1' : 'b1', minute - 60_000, { power_w: 2 }),
      ]),
    );
    // One reading per transaction: four site-minutes are four transactions, all due now.
    const job = saturatedJob(1);
    job.start();
    try {
      await vi.waitFor(async () => expect(await pendingMinutes()).toBe(0), { timeout: 10_000, interval: 20 });
      for (const site of sites) expect(await builtMinutes(site.id)).toBe(2);
    } finally {
      await job.stop();
    }
  }, 60_000);
});
