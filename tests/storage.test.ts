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
  readDeviceExtras,
  readDeviceReadings,
  updateDeviceLatest,
  writeReadings,
} from '../src/storage/readings.ts';
import { rollupStep } from '../src/storage/rollups.ts';
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
    ts_us: tsMs * 1000,
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
    expect([...first.duplicateSamples]).toEqual([0, 0, 0]);

    const retry = await writeReadings(storage.db, [...batch, reading(0, NOW + 10_000, 3600)]);
    // Each reading carries three samples (power, hashrate, status): all three were stored already.
    expect([...retry.duplicateSamples]).toEqual([3, 3, 3, 0]);
    expect(await countReadings(storage.db, siteId)).toBe(4);
  });

  it('counts a repeat inside one batch as a duplicate', async () => {
    const r = reading(1, NOW + 20_000, 3000);
    const result = await writeReadings(storage.db, [r, { ...r, power_w: 1 }]);
    expect([...result.duplicateSamples]).toEqual([0, 3]);
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
      const shift = (r: ReadingRecord) => ({ ...r, ts_us: r.ts_us + round * 2_000_000 });
      const results = await Promise.all([
        writeReadings(storage.db, keys.map(shift)),
        writeReadings(storage.db, [...keys].reverse().map(shift)),
      ]);
      // Every key was sent twice: one of the two writes stored each sample, the other found it.
      const repeated = [...results[0]!.duplicateSamples, ...results[1]!.duplicateSamples].reduce(
        (a, b) => a + b,
      );
      expect(repeated).toBe(keys.length * 3);
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

  it('drops whole expired partitions and their rows once they are rolled up, keeping the rest', async () => {
    const old = NOW - 3 * DAY;
    await writeReadings(storage.db, [reading(0, old, 100)]);
    const before = await countReadings(storage.db, siteId);
    // Not rolled up yet: the day is kept past its retention (raw data is rolled up first).
    expect(await dropExpiredPartitions(storage.db, NOW + DAY, 3)).toEqual([]);
    expect(await countReadings(storage.db, siteId)).toBe(before);
    while ((await rollupStep(storage.db, NOW + DAY, 10_000)).more);
    // A day later the oldest day (and only it) lies wholly outside a 3-day window.
    const dropped = await dropExpiredPartitions(storage.db, NOW + DAY, 3);
    expect(dropped).toEqual([partitionName(old)]);
    expect(await countReadings(storage.db, siteId)).toBe(before - 1);
    expect(await listPartitions(storage.db)).toContain(partitionName(NOW));
  });

  it('is idempotent per sample: a later request fills in the metrics a stored row lacks', async () => {
    const ts = NOW + 30_000;
    const base = {
      site_id: siteId,
      device_id: deviceIds[0]!,
      kind: 'asic' as const,
      ts_us: ts * 1000,
      received_ms: NOW,
    };
    // Prometheus-style: one device's metrics of one instant in two requests.
    const first = await writeReadings(storage.db, [{ ...base, power_w: 3500, temp_c: 60 }]);
    expect([...first.duplicateSamples]).toEqual([0]);
    const second = await writeReadings(storage.db, [
      // power_w repeats (same value), temp_c repeats (another value: the stored one is kept), fan_rpm is new.
      { ...base, power_w: 3500, temp_c: 61, fan_rpm: 5000 },
      // A second record of the same key in the same batch: its hashrate is new, its fan a repeat.
      { ...base, hashrate_ths: 200, fan_rpm: 4000 },
    ]);
    expect([...second.duplicateSamples]).toEqual([2, 1]);
    const [row] = await readDeviceReadings(storage.db, siteId, deviceIds[0]!, ts, ts + 1);
    expect(row).toMatchObject({ power_w: 3500, temp_c: 60, fan_rpm: 5000, hashrate_ths: 200 });
    // A pure resend of everything stores nothing and changes nothing.
    const resend = await writeReadings(storage.db, [
      { ...base, power_w: 3500, temp_c: 60, fan_rpm: 5000, hashrate_ths: 200 },
    ]);
    expect([...resend.duplicateSamples]).toEqual([4]);
    expect(await countReadings(storage.db, siteId)).toBeGreaterThan(0);
  });

  it('stores extra metrics per sample beside the core row, to the microsecond', async () => {
    const tsUs = (NOW + 40_000) * 1000 + 123; // a microsecond instant
    const base = {
      site_id: siteId,
      device_id: deviceIds[1]!,
      kind: 'asic' as const,
      ts_us: tsUs,
      received_ms: NOW,
    };
    const first = await writeReadings(storage.db, [
      { ...base, power_w: 3300, extras: { chip_temp_c_0: 71.25, fan_speed_rpm_3: 5400 } },
    ]);
    expect([...first.duplicateSamples]).toEqual([0]);
    // An extras-only record of the same instant: one repeat, one fill.
    const second = await writeReadings(storage.db, [
      { ...base, extras: { chip_temp_c_0: 99, hardware_errors_total: 12 } },
    ]);
    expect([...second.duplicateSamples]).toEqual([1]);
    const ms = Math.floor(tsUs / 1000);
    const extras = await readDeviceExtras(storage.db, siteId, deviceIds[1]!, ms, ms + 1);
    expect(extras).toEqual([
      { ts_us: tsUs, extras: { chip_temp_c_0: 71.25, fan_speed_rpm_3: 5400, hardware_errors_total: 12 } },
    ]);
    const { rows } = await sql<{ us: number }>`
      SELECT (extract(epoch FROM ts) * 1000000)::float8 AS us FROM readings
      WHERE site_id = ${siteId} AND device_id = ${deviceIds[1]!} AND ts >= ${new Date(ms)} AND ts < ${new Date(ms + 1)}`.execute(
      storage.db,
    );
    expect(rows.map((r) => r.us)).toEqual([tsUs]);
  });

  it('keeps its data across a restart on the same database', async () => {
    const before = await countReadings(storage.db, siteId);
    await storage.close();
    storage = await testDb.open();
    expect(await countReadings(storage.db, siteId)).toBe(before);
  });
});
