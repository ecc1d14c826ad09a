import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../src/alerting/testing.ts';
import { ERROR_STATUS, HashwattError } from '../src/errors.ts';
import { GroupCommitWriter } from '../src/ingest/writer.ts';
import { silentLogger } from '../src/log.ts';
import type { Storage } from '../src/storage/database.ts';
import { countDevices, registerDevices } from '../src/storage/devices.ts';
import { ensurePartitions } from '../src/storage/partitions.ts';
import { columnsOf } from '../src/storage/reading-columns.ts';
import { countReadings, type ReadingRecord, writeReadings } from '../src/storage/readings.ts';
import { deleteSite, deleteSiteWith } from '../src/storage/sites.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';

const NOW = Date.now();

let sitesMade = 0;

async function addSite(storage: Storage, name: string): Promise<{ siteId: number; deviceId: number }> {
  const site = await storage.db
    .insertInto('sites')
    .values({
      name,
      kind: 'mining',
      capacity_w: 1e6,
      token_hash: Buffer.alloc(32, ++sitesMade),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const { devices } = await registerDevices(
    storage.db,
    site.id,
    [{ external_id: 'rig-1', kind: 'asic', model: null }],
    10,
  );
  return { siteId: site.id, deviceId: devices[0]!.id };
}

const record = (siteId: number, deviceId: number, tsMs: number): ReadingRecord => ({
  site_id: siteId,
  device_id: deviceId,
  kind: 'asic',
  ts_us: tsMs * 1000,
  received_ms: NOW,
  power_w: 3500,
});

describe.each(BACKENDS)('purging a site against its writers on %s', (backend) => {
  let testDb: TestDatabase;
  let storage: Storage;

  beforeAll(async () => {
    testDb = await createTestDatabase(backend);
    storage = await testDb.open();
    await ensurePartitions(storage.db, NOW, { retentionDays: 2, aheadDays: 1 });
  }, 60_000);

  afterAll(async () => {
    await storage?.close();
    await testDb?.dispose();
  });

  it('stores nothing for a site that is gone and commits the other sites of the same transaction', async () => {
    const gone = await addSite(storage, 'gone-1');
    const kept = await addSite(storage, 'kept-1');
    expect(await deleteSite(storage.db, gone.siteId)).toBe(true);

    const result = await writeReadings(storage.db, [
      record(gone.siteId, gone.deviceId, NOW),
      record(kept.siteId, kept.deviceId, NOW),
      record(gone.siteId, gone.deviceId, NOW + 1),
    ]);
    expect([...result.goneSites]).toEqual([gone.siteId]);
    expect(result.duplicateSamples[1]).toBe(0);
    expect(await countReadings(storage.db, gone.siteId)).toBe(0);
    expect(await countReadings(storage.db, kept.siteId)).toBe(1);
  });

  it('refuses the request of a purged site with 404 and commits the others of its group transaction', async () => {
    const gone = await addSite(storage, 'gone-4');
    const kept = await addSite(storage, 'kept-4');
    await deleteSite(storage.db, gone.siteId);
    const writer = new GroupCommitWriter({
      storage,
      logger: silentLogger,
      maxBatchReadings: 100,
      // Long enough that both requests below share one transaction.
      flushDelayMs: 60_000,
      queueDelayTargetMs: 1_000,
      maxQueuedReadings: 1_000,
      maxQueuedBytes: 1_000_000,
      ensurePartitions: async () => {},
    });
    const goneWrite = writer.write(
      writer.reserve(1, 10),
      columnsOf([record(gone.siteId, gone.deviceId, NOW + 5)]),
    );
    const keptWrite = writer.write(
      writer.reserve(99, 10),
      columnsOf(Array.from({ length: 99 }, (_, i) => record(kept.siteId, kept.deviceId, NOW + 10 + i))),
    );
    await expect(goneWrite).rejects.toMatchObject({ code: 'not_found' });
    expect(ERROR_STATUS.not_found).toBe(404);
    expect([...(await keptWrite)]).toEqual(new Array(99).fill(0));
    await writer.idle();
    expect(writer.depth).toEqual({ readings: 0, bytes: 0, transactions: 0 });
    expect(await countReadings(storage.db, gone.siteId)).toBe(0);
    expect(await countReadings(storage.db, kept.siteId)).toBe(99);
  });

  it('refuses to register devices for a site that is gone with not_found, not a database error', async () => {
    const gone = await addSite(storage, 'gone-2');
    await deleteSite(storage.db, gone.siteId);
    const attempt = registerDevices(
      storage.db,
      gone.siteId,
      [{ external_id: 'rig-2', kind: 'asic', model: null }],
      10,
    );
    await expect(attempt).rejects.toBeInstanceOf(HashwattError);
    await expect(attempt).rejects.toMatchObject({ code: 'not_found' });
    expect(await countDevices(storage.db, gone.siteId)).toBe(0);
  });

  it('answers false for a site already deleted', async () => {
    const gone = await addSite(storage, 'gone-3');
    expect(await deleteSite(storage.db, gone.siteId)).toBe(true);
    expect(await deleteSite(storage.db, gone.siteId)).toBe(false);
  });
});

/**
 * The lock ordering itself, which needs two sessions (PGlite has one). An uncommitted row with the
 * same key, inserted by a second session, holds the write transaction open after it has taken its
 * site lock; the purge must then wait for it rather than delete the readings first and leave the
 * write's rows behind when it commits.
 */
describe('purge waits for a write transaction in flight (postgres)', () => {
  let testDb: TestDatabase;
  let storage: Storage;
  let blocker: pg.Client;

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    storage = await testDb.open();
    await ensurePartitions(storage.db, NOW, { retentionDays: 2, aheadDays: 1 });
    blocker = new pg.Client({ connectionString: testDb.url });
    await blocker.connect();
  }, 60_000);

  afterAll(async () => {
    await blocker?.end();
    await storage?.close();
    await testDb?.dispose();
  });

  /** Sessions of this database waiting on a lock while running a statement that contains `text`. */
  const waitingOn = async (text: string) => {
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE ${`%${text}%`}`.execute(
      storage.db,
    );
    return rows[0]!.n > 0;
  };

  it('leaves no reading of the site once the purge returns', async () => {
    const { siteId, deviceId } = await addSite(storage, 'raced');
    const held = record(siteId, deviceId, NOW);
    await blocker.query('BEGIN');
    await blocker.query(
      `INSERT INTO readings (site_id, device_id, ts, power_w) VALUES ($1, $2, to_timestamp($3 / 1000.0), 1)`,
      [siteId, deviceId, held.ts_us / 1000],
    );
    // The write locks the site row, then waits on the blocker's uncommitted row with the same key.
    const write = writeReadings(storage.db, [held, record(siteId, deviceId, NOW + 1)]);
    await waitFor('the write to wait on the blocker', () => waitingOn('INSERT INTO "readings"'));

    let purged = false;
    const purge = deleteSite(storage.db, siteId).then((deleted) => {
      purged = true;
      return deleted;
    });
    await waitFor('the purge to wait on the write', () => waitingOn('for update'));
    expect(purged).toBe(false);

    await blocker.query('ROLLBACK');
    expect([...(await write).duplicateSamples]).toEqual([0, 0]);
    expect(await purge).toBe(true);
    expect(await countReadings(storage.db, siteId)).toBe(0);
    expect(await countDevices(storage.db, siteId)).toBe(0);
  });

  it('refuses a delete without purge once a write it waited on has committed data', async () => {
    // A new site with nothing stored yet: the check a delete without purge makes must see what a
    // write in flight commits, or the delete would erase readings that were just acknowledged.
    const site = await storage.db
      .insertInto('sites')
      .values({ name: 'fresh', kind: 'mining', capacity_w: 1e6, token_hash: Buffer.alloc(32, 0xee) })
      .returning('id')
      .executeTakeFirstOrThrow();
    // The blocker plays the first write: the site row key-shared, a device and a reading added.
    await blocker.query('BEGIN');
    await blocker.query('SELECT id FROM sites WHERE id = $1 FOR KEY SHARE', [site.id]);
    const { rows } = await blocker.query<{ id: number }>(
      `INSERT INTO devices (site_id, external_id, kind) VALUES ($1, 'rig-1', 'asic') RETURNING id`,
      [site.id],
    );
    await blocker.query(
      `INSERT INTO readings (site_id, device_id, ts, power_w) VALUES ($1, $2, to_timestamp($3 / 1000.0), 1)`,
      [site.id, rows[0]!.id, NOW],
    );
    const deletion = deleteSiteWith(storage.db, site.id, { onlyIfEmpty: true });
    await waitFor('the delete to wait on the write', () => waitingOn('for update'));
    await blocker.query('COMMIT');
    expect(await deletion).toBe('has_data');
    expect(await countReadings(storage.db, site.id)).toBe(1);
    expect(await countDevices(storage.db, site.id)).toBe(1);
  });

  it('makes a write that waited on the purge find the site gone', async () => {
    const { siteId, deviceId } = await addSite(storage, 'raced-2');
    // The blocker plays the purge's first step: the site row locked FOR UPDATE.
    await blocker.query('BEGIN');
    await blocker.query('SELECT id FROM sites WHERE id = $1 FOR UPDATE', [siteId]);
    const write = writeReadings(storage.db, [record(siteId, deviceId, NOW)]);
    await waitFor('the write to wait on the site lock', () => waitingOn('FOR KEY SHARE'));
    await blocker.query('DELETE FROM readings WHERE site_id = $1', [siteId]);
    await blocker.query('DELETE FROM sites WHERE id = $1', [siteId]);
    await blocker.query('COMMIT');
    const result = await write;
    expect([...result.goneSites]).toEqual([siteId]);
    expect(await countReadings(storage.db, siteId)).toBe(0);
  });
});
