/**
 * The frozen migrations' rollup columns are the ones the code derives from the catalog, and the
 * upgrade to staged device-minutes (migrations/2026-12-02T04-00-rollup-device-minutes.ts) leaves
 * no hour to be built from a partial staging.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { FileMigrationProvider, Migrator } from 'kysely/migration';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/log.ts';
import {
  columnType,
  DEVICE_COLUMNS,
  SITE_COLUMNS,
  SITE_HOUR_ENERGY,
  SITE_MINUTE_PRICE,
  STAGED_COLUMNS,
} from '../src/rollups/columns.ts';
import { openDatabase, type Storage } from '../src/storage/database.ts';
import { ensurePartitions } from '../src/storage/partitions.ts';
import { rollupStep } from '../src/storage/rollups.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';

const HOUR = 3_600_000;

describe.each(BACKENDS)('rollup schema on %s', (backend) => {
  let testDb: TestDatabase;
  let storage: Storage;
  beforeAll(async () => {
    testDb = await createTestDatabase(backend);
    storage = await testDb.open();
  }, 60_000);
  afterAll(async () => {
    await storage?.close();
    await testDb?.dispose();
  });

  const columnsOf = async (table: string) =>
    (
      await sql<{ name: string; type: string }>`
        SELECT column_name AS name, data_type AS type FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = ${table} ORDER BY ordinal_position`.execute(storage.db)
    ).rows;

  it.each([
    ['rollup_site_1m', ['site_id', 'bucket'], [...SITE_COLUMNS, SITE_MINUTE_PRICE]],
    ['rollup_site_1h', ['site_id', 'bucket'], [...SITE_COLUMNS, ...SITE_HOUR_ENERGY]],
    ['rollup_device_1h', ['site_id', 'device_id', 'bucket'], DEVICE_COLUMNS],
    ['rollup_device_1m_staged', ['site_id', 'device_id', 'bucket'], STAGED_COLUMNS],
  ])('%s has the catalog’s columns with their types', async (table, key, values) => {
    const columns = await columnsOf(table);
    expect(columns.map((c) => c.name)).toEqual([...key, ...values]);
    for (const c of columns.slice(key.length))
      expect(`${c.name} ${c.type}`).toBe(
        `${c.name} ${c.name === SITE_MINUTE_PRICE ? 'double precision' : columnType(c.name)}`,
      );
  });
});

describe.each(BACKENDS)('the upgrade to staged device-minutes on %s', (backend) => {
  let testDb: TestDatabase;
  // An hour the job had half built before the upgrade: its minutes 0-29 rolled up (no staged rows
  // then), the hour waiting on rollup_dirty_hour, minutes 30-59 still on the log.
  const hour = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
  beforeAll(async () => {
    testDb = await createTestDatabase(backend);
  }, 60_000);
  afterAll(async () => {
    await testDb?.dispose();
  });

  it('marks the hours waiting at the upgrade again, so they are built whole', async () => {
    const before = await openDatabase({
      databaseUrl: testDb.url,
      dataDir: testDb.dataDir,
      logger: silentLogger,
    });
    const migrator = new Migrator({
      db: before.db,
      provider: new FileMigrationProvider({
        fs,
        path,
        migrationFolder: path.resolve(import.meta.dirname, '../migrations'),
      }),
    });
    const { error } = await migrator.migrateTo('2026-12-02T03-00-fleet-snapshot');
    expect(error).toBeUndefined();
    await ensurePartitions(before.db, Date.now(), { retentionDays: 2, aheadDays: 1 });
    await sql`
      INSERT INTO sites (name, kind, capacity_w, token_hash) VALUES ('upgraded', 'mining', 1e6, ${Buffer.alloc(32)})`.execute(
      before.db,
    );
    await sql`
      INSERT INTO devices (site_id, external_id, kind) SELECT id, 'a1', 'asic' FROM sites`.execute(before.db);
    // One reading a minute, power 1000 + minute.
    await sql`
      INSERT INTO readings (site_id, device_id, ts, power_w, status)
      SELECT d.site_id, d.id, ${new Date(hour)}::timestamptz + m * interval '1 minute' + interval '7 seconds', 1000 + m, 'ok'
      FROM devices d, generate_series(0, 59) m`.execute(before.db);
    await sql`DELETE FROM rollup_dirty`.execute(before.db);
    await sql`
      INSERT INTO rollup_dirty (site_id, from_ts, to_ts, readings)
      SELECT id, ${new Date(hour + 30 * 60_000)}, ${new Date(hour + HOUR)}, 30 FROM sites`.execute(before.db);
    await sql`INSERT INTO rollup_dirty_hour (site_id, bucket) SELECT id, ${new Date(hour)} FROM sites`.execute(
      before.db,
    );
    await before.close();

    const storage = await testDb.open();
    try {
      const { rows: marks } = await sql<{ f: Date; t: Date; n: number }>`
        SELECT from_ts AS f, to_ts AS t, readings AS n FROM rollup_dirty ORDER BY from_ts`.execute(
        storage.db,
      );
      expect(marks.map((m) => [new Date(m.f).getTime(), new Date(m.t).getTime(), m.n])).toEqual([
        [hour, hour + HOUR, 60],
        [hour + 30 * 60_000, hour + HOUR, 30],
      ]);
      while ((await rollupStep(storage.db, hour + 2 * HOUR, 250_000)).more);
      const { rows } = await sql<{ n: number; sum: number; min: number; max: number; last: number }>`
        SELECT power_w_n AS n, power_w_sum AS sum, power_w_min AS min, power_w_max AS max, power_w_last AS last
        FROM rollup_device_1h`.execute(storage.db);
      // All 60 minutes, not only the 30 staged after the upgrade.
      expect(rows).toEqual([{ n: 60, sum: 60 * 1000 + (59 * 60) / 2, min: 1000, max: 1059, last: 1059 }]);
      const { rows: left } = await sql<{ n: number }>`
        SELECT (SELECT count(*) FROM rollup_device_1m_staged)::int + (SELECT count(*) FROM rollup_dirty)::int
          + (SELECT count(*) FROM rollup_dirty_hour)::int AS n`.execute(storage.db);
      expect(left[0]!.n).toBe(0);
    } finally {
      await storage.close();
    }
  }, 60_000);
});
