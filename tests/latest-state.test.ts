import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../src/alerting/testing.ts';
import type { RunningService } from '../src/service.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import {
  asicReading,
  type CreatedSite,
  createSite,
  postReadings,
  startTestService,
} from './support/service.ts';

// The latest state of every device is written behind the acknowledged readings (src/ingest/latest-state.ts):
// it must catch up on its own, survive a failed write, and be complete after a graceful stop.
describe.each(BACKENDS)('device latest state on %s', (backend) => {
  let db: TestDatabase;
  let service: RunningService;
  let site: CreatedSite;
  const t0 = Date.now() - 60_000;

  beforeAll(async () => {
    db = await createTestDatabase(backend);
    service = await startTestService(db, { tuning: { latestFlushMs: 100 } });
    site = await createSite(service.url, 'latest');
  });

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  const latestOf = async (device: string) => {
    const { rows } = await sql<{ ts: Date; power_w: number | null; received_at: Date }>`
      SELECT l.ts, l.power_w, l.received_at FROM device_latest l JOIN devices d ON d.id = l.device_id
      WHERE d.site_id = ${site.site.id} AND d.external_id = ${device}`.execute(service.storage.db);
    return rows[0];
  };
  /** The device's latest-state row once `ok` holds for it. */
  const latestWhen = (
    device: string,
    ok: (l: NonNullable<Awaited<ReturnType<typeof latestOf>>>) => boolean,
  ) =>
    waitFor(
      `${device} in device_latest`,
      async () => {
        const l = await latestOf(device);
        return l && ok(l) ? l : undefined;
      },
      5_000,
      50,
    );

  it('catches up with acknowledged readings by itself, newest reading winning', async () => {
    const before = Date.now();
    const response = await postReadings(service.url, site.token, [
      asicReading('l-1', t0 + 2_000, { power_w: 3_300 }),
      asicReading('l-1', t0 + 1_000, { power_w: 1 }),
    ]);
    expect(response.body.accepted).toBe(2);
    const latest = await latestWhen('l-1', (l) => l.power_w === 3_300);
    expect(latest.ts.getTime()).toBe(t0 + 2_000);
    expect(latest.received_at.getTime()).toBeGreaterThanOrEqual(before - 1);
    expect(service.latest.pendingDevices).toBe(0);
  });

  it('keeps what a failed write held and writes it once the table is back', async () => {
    await sql`ALTER TABLE device_latest RENAME TO device_latest_away`.execute(service.storage.db);
    try {
      const response = await postReadings(service.url, site.token, [
        asicReading('l-2', t0 + 5_000, { power_w: 2_222 }),
      ]);
      // The readings commit and are acknowledged: the latest state is derived, not the record.
      expect(response.status).toBe(200);
      expect(response.body.accepted).toBe(1);
      await service.latest.flush();
      expect(service.latest.pendingDevices).toBe(1);
      expect(service.latest.lagSeconds()).toBeGreaterThan(0);
    } finally {
      await sql`ALTER TABLE device_latest_away RENAME TO device_latest`.execute(service.storage.db);
    }
    const latest = await latestWhen('l-2', (l) => l.power_w === 2_222);
    expect(latest.ts.getTime()).toBe(t0 + 5_000);
    expect(service.latest.lagSeconds()).toBe(0);
  });

  it('drops the pending state of devices deleted meanwhile and writes the rest', async () => {
    const local = await createTestDatabase(backend);
    const other = await startTestService(local, { tuning: { latestFlushMs: 3_600_000 } });
    try {
      const kept = await createSite(other.url, 'kept');
      const gone = await createSite(other.url, 'gone');
      await postReadings(other.url, kept.token, [asicReading('k-1', t0)]);
      await postReadings(other.url, gone.token, [asicReading('g-1', t0), asicReading('g-2', t0)]);
      // Another replica deletes the site's devices: this one's pending rows now reference nothing.
      await sql`DELETE FROM devices WHERE site_id = ${gone.site.id}`.execute(other.storage.db);
      await other.latest.flush();
      expect(other.latest.pendingDevices).toBe(0);
      const { rows } = await sql<{ site_id: number }>`SELECT site_id FROM device_latest`.execute(
        other.storage.db,
      );
      expect(rows).toEqual([{ site_id: kept.site.id }]);
    } finally {
      await other.stop();
      await local.dispose();
    }
  });

  it('is written in full by a graceful stop', async () => {
    const local = await createTestDatabase(backend);
    // A flush interval far longer than the test: only the stop can write it.
    let other = await startTestService(local, { tuning: { latestFlushMs: 3_600_000 } });
    const s = await createSite(other.url, 'stopping');
    await postReadings(
      other.url,
      s.token,
      Array.from({ length: 50 }, (_, i) => asicReading(`s-${i}`, t0, { power_w: 100 + i })),
    );
    expect(other.latest.pendingDevices).toBe(50);
    await other.stop();
    other = await startTestService(local);
    try {
      const { rows } = await sql<{ n: number; total: number }>`
        SELECT count(*)::int AS n, sum(power_w)::float8 AS total FROM device_latest`.execute(
        other.storage.db,
      );
      expect(rows[0]).toEqual({ n: 50, total: 50 * 100 + (49 * 50) / 2 });
    } finally {
      await other.stop();
      await local.dispose();
    }
  });
});
