import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonBatch } from '../src/ingest/batch.ts';
import { DeviceDirectory } from '../src/ingest/device-directory.ts';
import { LatestStateWriter } from '../src/ingest/latest-state.ts';
import { heldBytes, IngestPipeline } from '../src/ingest/pipeline.ts';
import { GroupCommitWriter } from '../src/ingest/writer.ts';
import { silentLogger } from '../src/log.ts';
import type { RunningService } from '../src/service.ts';
import { allocColumns, setExtras } from '../src/storage/reading-columns.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { asicReading, createSite, startTestService } from './support/service.ts';

// The write queue charges a request what it holds until its commit, its readings' columns, and
// never its body: charged by the body, remote_write (labels on every sample) was refused for its
// site's share at a fraction of the rate the writer drains.
describe('the write queue charge of a request', () => {
  let db: TestDatabase;
  let service: RunningService;

  beforeAll(async () => {
    db = await createTestDatabase('pglite');
    service = await startTestService(db);
  }, 60_000);

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('is 96 B a reading from entry, whatever the body, and is given back whole after the commit', async () => {
    const { site } = await createSite(service.url, 'charge-site');
    const { storage } = service;
    const writer = new GroupCommitWriter({
      storage,
      logger: silentLogger,
      maxBatchReadings: 5_000,
      flushDelayMs: 5,
      queueDelayTargetMs: 1_000,
      maxQueuedReadings: 100_000,
      maxQueuedBytes: 48 * 1024 * 1024,
      ensurePartitions: async () => {},
    });
    const latest = new LatestStateWriter({ storage, logger: silentLogger, flushMs: 1_000 });
    const pipeline = new IngestPipeline({
      directory: new DeviceDirectory(storage.db, 1_000),
      writer,
      latest,
      retentionDays: 30,
    });
    try {
      const ts = Date.now() - 1_000;
      // A verbose body: each reading carries a long model name the columns do not hold per reading.
      const readings = Array.from({ length: 50 }, (_, i) =>
        asicReading(`m${i}`, ts, { model: 'x'.repeat(60) }),
      );
      const ingesting = pipeline.ingest(site, jsonBatch(readings), 'http');
      expect(writer.depth).toMatchObject({ readings: 50, bytes: 50 * 96 });
      const result = await ingesting;
      expect(result).toMatchObject({ accepted: 50, rejected: [] });
      expect(writer.depth).toMatchObject({ readings: 0, bytes: 0 });
    } finally {
      await pipeline.close();
    }
  });

  it('counts the extras object of each reading that carries one', () => {
    const columns = allocColumns(3);
    setExtras(columns, 1, { fan_speed_rpm_0: 4200 });
    expect(heldBytes(allocColumns(3))).toBe(3 * 96);
    expect(heldBytes(columns)).toBe(3 * 96 + 416);
  });
});
