import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonBatch } from '../src/ingest/batch.ts';
import { heldBytes } from '../src/ingest/pipeline.ts';
import type { RunningService } from '../src/service.ts';
import { allocColumns, setExtras } from '../src/storage/reading-columns.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { testPipeline } from './support/pipeline.ts';
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
    const { pipeline, writer } = testPipeline(service.storage);
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
