/**
 * Retention per tier, on both backends: each table drops exactly its partitions wholly past its
 * tier's days, and no partition is dropped while the rollup job still has to build from it.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Storage } from '../src/storage/database.ts';
import {
  dropExpiredPartitions,
  ensurePartitions,
  listPartitions,
  partitionDay,
  partitionName,
} from '../src/storage/partitions.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 1, 12, 0);
const TABLES = ['readings', 'readings_extra', 'rollup_site_1m', 'rollup_site_1h', 'rollup_device_1h'];

describe.each(BACKENDS)('retention tiers on %s', (backend) => {
  let testDb: TestDatabase;
  let storage: Storage;

  beforeAll(async () => {
    testDb = await createTestDatabase(backend);
    storage = await testDb.open();
    // Partitions as a service would have made them on three days: 120, 40 and 0 days ago.
    for (const ago of [120, 40, 0])
      await ensurePartitions(storage.db, NOW - ago * DAY, { retentionDays: 2, aheadDays: 1 });
  }, 60_000);

  afterAll(async () => {
    await storage?.close();
    await testDb?.dispose();
  });

  const all = async () =>
    Object.fromEntries(await Promise.all(TABLES.map(async (t) => [t, await listPartitions(storage.db, t)])));

  it('creates daily partitions for raw and site minutes, monthly ones for the hourly tiers', async () => {
    const parts = await all();
    expect(parts.readings).toContain(partitionName(NOW, 'readings'));
    expect(parts.rollup_site_1m).toContain(partitionName(NOW - 40 * DAY, 'rollup_site_1m'));
    expect(parts.rollup_site_1h).toContain('rollup_site_1h_p20261201');
    expect(parts.rollup_device_1h).toContain('rollup_device_1h_p20260801');
    expect(parts.rollup_site_1h.every((n: string) => n.endsWith('01'))).toBe(true);
  });

  it('keeps everything before a pending mark, then drops exactly what each tier has outlived', async () => {
    const before = await all();
    // A bucket 120 days old still waits for the job: nothing from its day on may go.
    await sql`INSERT INTO rollup_dirty (site_id, from_ts, to_ts) VALUES (1, ${new Date(NOW - 119 * DAY)}, ${new Date(NOW - 119 * DAY + 60_000)})`.execute(
      storage.db,
    );
    const retention = { raw: 14, site1m: 60, hourly: 80 };
    await dropExpiredPartitions(storage.db, NOW, retention);
    const guarded = await all();
    const oldest = NOW - 119 * DAY;
    for (const t of TABLES) {
      for (const name of before[t]) {
        const day = partitionDay(name)!;
        if (day >= Math.floor(oldest / DAY) * DAY)
          expect(guarded[t], `${name} is kept for the job`).toContain(name);
      }
    }
    await sql`DELETE FROM rollup_dirty`.execute(storage.db);

    const dropped = await dropExpiredPartitions(storage.db, NOW, retention);
    const after = await all();
    const end = (name: string, monthly: boolean) => {
      const start = partitionDay(name)!;
      if (!monthly) return start + DAY;
      const d = new Date(start);
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    };
    const days: Record<string, number> = {
      readings: retention.raw,
      readings_extra: retention.raw,
      rollup_site_1m: retention.site1m,
      rollup_site_1h: retention.hourly,
      rollup_device_1h: retention.hourly,
    };
    for (const t of TABLES) {
      const monthly = t === 'rollup_site_1h' || t === 'rollup_device_1h';
      const keep = guarded[t].filter((n: string) => end(n, monthly) > NOW - days[t]! * DAY);
      expect(after[t], t).toEqual(keep);
      // Each tier had something to drop and something to keep: the cut is really tested.
      expect(keep.length, t).toBeLessThan(guarded[t].length);
      expect(keep.length, t).toBeGreaterThan(0);
    }
    expect(dropped).toEqual(guarded.readings.filter((n: string) => !after.readings.includes(n)));
  });
});
