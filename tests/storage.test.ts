import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Storage } from '../src/storage/database.ts';
import {
  dropExpiredPartitions,
  ensurePartitions,
  listPartitions,
  partitionName,
} from '../src/storage/partitions.ts';
import {
  countReadings,
  type ReadingRecord,
  readDeviceReadings,
  updateDeviceLatest,
  writeReadings,
} from '../src/storage/readings.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';

const DAY = 86_400_000;
// Just before a UTC midnight, so the tests cross a day boundary.
const NOW = Date.UTC(2026, 10, 24, 23, 59, 0);

describe.each(BACKENDS)('storage on %s', (backend) => {
  let testDb: TestDatabase;
  let storage: Storage;
  let siteId: number;
  let deviceIds: number[];

  beforeAll(async () => {
    testDb = await createTestDatabase(backend);
    storage = await testDb.open();
    await ensurePartitions(storage.db, NOW, { retentionDays: 3, aheadDays: 1 });
    const site = await storage.db
      .insertInto('sites')
      .values({
        name: 'alpha',
        kind: 'mining',
        capacity_w: 1e6,
        region: null,
        timezone: null,
        token_hash: Buffer.alloc(32, 1),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    siteId = site.id;
    const devices = await storage.db
      .insertInto('devices')
      .values(
        [0, 1, 2].map((i) => ({
          site_id: siteId,
          external_id: `s21-${i}`,
          kind: 'asic' as const,
          model: 'S21',
        })),
      )
      .returning('id')
      .execute();
    deviceIds = devices.map((d) => d.id);
  }, 60_000);

  afterAll(async () => {
    await storage?.close();
    await testDb?.dispose();
  });

  const reading = (device: number, tsMs: number, power: number): ReadingRecord => ({
    site_id: siteId,
    device_id: deviceIds[device]!,
    kind: 'asic',
    ts_ms: tsMs,
    received_ms: NOW,
    power_w: power,
    hashrate_ths: 200.5,
    status: 'ok',
  });

  it('creates daily partitions for the retention window and the day ahead', async () => {
    const names = await listPartitions(storage.db);
    expect(names).toContain(partitionName(NOW));
    expect(names).toContain(partitionName(NOW + DAY));
    expect(names).toContain(partitionName(NOW - 3 * DAY));
    expect(names).not.toContain(partitionName(NOW + 2 * DAY));
  });

  it('stores a batch and counts a re-sent batch as duplicates, storing it once', async () => {
    const batch = [reading(0, NOW, 3500), reading(1, NOW, 3400), reading(2, NOW + 123, 3300)];
    const first = await writeReadings(storage.db, batch);
    expect(first.inserted).toBe(3);
    expect(first.duplicate).toEqual([false, false, false]);

    const retry = await writeReadings(storage.db, [...batch, reading(0, NOW + 10_000, 3600)]);
    expect(retry.inserted).toBe(1);
    expect(retry.duplicate).toEqual([true, true, true, false]);
    expect(await countReadings(storage.db, siteId)).toBe(4);
  });

  it('counts a repeat inside one batch as a duplicate', async () => {
    const r = reading(1, NOW + 20_000, 3000);
    const result = await writeReadings(storage.db, [r, { ...r, power_w: 1 }]);
    expect(result.duplicate).toEqual([false, true]);
    const stored = await readDeviceReadings(storage.db, siteId, deviceIds[1]!, NOW + 20_000, NOW + 20_001);
    expect(stored.map((s) => s.power_w)).toEqual([3000]);
  });

  it('writes across a day boundary into the next day’s partition, to the millisecond', async () => {
    const after = NOW + 60_000 + 7; // 00:00:00.007 the next day
    await writeReadings(storage.db, [reading(2, after, 3210.5)]);
    const { rows } = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM ${sql.table(partitionName(after))}`.execute(storage.db);
    expect(rows[0]!.n).toBe(1);
    const [stored] = await readDeviceReadings(storage.db, siteId, deviceIds[2]!, after, after + 1);
    expect(stored!.ts.getTime()).toBe(after);
    expect(stored!.power_w).toBe(3210.5);
    expect(stored!.status).toBe('ok');
  });

  it('commits concurrent batches that overlap in opposite orders without deadlocking', async () => {
    // Two writers, each batch the other's keys reversed, twice over: unsorted, these wait on each other.
    // Big enough batches that the two transactions are in flight together.
    const steps = Array.from({ length: 1500 }, (_, i) => 100_000 + i);
    const keys = [0, 1, 2].flatMap((d) => steps.map((dt) => reading(d, NOW + dt, 1000)));
    for (let round = 0; round < 5; round++) {
      const shift = (r: ReadingRecord) => ({ ...r, ts_ms: r.ts_ms + round * 2_000 });
      const results = await Promise.all([
        writeReadings(storage.db, keys.map(shift)),
        writeReadings(storage.db, [...keys].reverse().map(shift)),
      ]);
      expect(results[0]!.inserted + results[1]!.inserted).toBe(keys.length);
    }
  });

  it('moves the latest state forward and never back to an older reading', async () => {
    const latestOf = async () =>
      storage.db
        .selectFrom('device_latest')
        .selectAll()
        .where('device_id', '=', deviceIds[0]!)
        .executeTakeFirstOrThrow();
    await updateDeviceLatest(storage.db, [{ ...reading(0, NOW, 1000), received_ms: NOW + 1 }]);
    await updateDeviceLatest(storage.db, [{ ...reading(0, NOW - 60_000, 1), received_ms: NOW + 2 }]);
    let latest = await latestOf();
    expect(latest.ts.getTime()).toBe(NOW);
    expect(latest.power_w).toBe(1000);
    expect(latest.received_at.getTime()).toBe(NOW + 1);
    // The same reading again (a retry) refreshes when it was last received.
    await updateDeviceLatest(storage.db, [{ ...reading(0, NOW, 1000), received_ms: NOW + 3 }]);
    latest = await latestOf();
    expect(latest.received_at.getTime()).toBe(NOW + 3);
  });

  it('drops whole expired partitions and their rows, keeping the rest', async () => {
    const old = NOW - 3 * DAY;
    await writeReadings(storage.db, [reading(0, old, 100)]);
    const before = await countReadings(storage.db, siteId);
    // A day later the oldest day (and only it) lies wholly outside a 3-day window.
    const dropped = await dropExpiredPartitions(storage.db, NOW + DAY, 3);
    expect(dropped).toEqual([partitionName(old)]);
    expect(await countReadings(storage.db, siteId)).toBe(before - 1);
    expect(await listPartitions(storage.db)).toContain(partitionName(NOW));
  });

  it('keeps its data across a restart on the same database', async () => {
    const before = await countReadings(storage.db, siteId);
    await storage.close();
    storage = await testDb.open();
    expect(await countReadings(storage.db, siteId)).toBe(before);
  });
});
