/** The frozen migration's rollup columns are the ones the code derives from the catalog. */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  columnType,
  DEVICE_COLUMNS,
  SITE_COLUMNS,
  SITE_HOUR_ENERGY,
  SITE_MINUTE_PRICE,
} from '../src/rollups/columns.ts';
import type { Storage } from '../src/storage/database.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';

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
  ])('%s has the catalog’s columns with their types', async (table, key, values) => {
    const columns = await columnsOf(table);
    expect(columns.map((c) => c.name)).toEqual([...key, ...values]);
    for (const c of columns.slice(key.length))
      expect(`${c.name} ${c.type}`).toBe(
        `${c.name} ${c.name === SITE_MINUTE_PRICE ? 'double precision' : columnType(c.name)}`,
      );
  });
});
