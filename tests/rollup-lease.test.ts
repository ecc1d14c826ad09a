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
