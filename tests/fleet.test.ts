import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyDevice, type DeviceObservation } from '../src/fleet/device-state.ts';
import { DEFAULT_THRESHOLDS, FleetReader } from '../src/fleet/index.ts';
import type { Storage } from '../src/storage/database.ts';
import type { DeviceKind, DeviceStatus } from '../src/storage/schema.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';

const NOW = Date.now();

// Every branch of the device rule, with power so the sums can be checked too.
const CASES: (DeviceObservation & { power_w: number; gpu_util_pct?: number; available_power_w?: number })[] =
  [];
for (const kind of ['asic', 'gpu', 'other', 'meter'] as DeviceKind[]) {
  for (const status of [null, 'ok', 'curtailed', 'idle', 'error', 'offline'] as (DeviceStatus | null)[]) {
    for (const hashrate_ths of [null, 0, 150]) {
      for (const age of [1_000, 120_000, 121_000]) {
        CASES.push({
          kind,
          status,
          hashrate_ths,
          receivedAtMs: NOW - age,
          power_w: 1000 + CASES.length,
          gpu_util_pct: (CASES.length * 7) % 101,
        });
      }
    }
  }
}

describe.each(BACKENDS)('fleet aggregate on %s', (backend) => {
  let db: TestDatabase;
  let storage: Storage;
  let siteId: number;

  beforeAll(async () => {
    db = await createTestDatabase(backend);
    storage = await db.open();
    const site = await storage.db
      .insertInto('sites')
      .values({
        name: 'f',
        kind: 'mixed',
        capacity_w: 5e6,
        region: null,
        timezone: null,
        token_hash: Buffer.alloc(32, 7),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    siteId = site.id;
    for (const [i, c] of CASES.entries()) {
      const device = await storage.db
        .insertInto('devices')
        .values({ site_id: siteId, external_id: `d${i}`, kind: c.kind, model: null })
        .returning('id')
        .executeTakeFirstOrThrow();
      await storage.db
        .insertInto('device_latest')
        .values({
          device_id: device.id,
          site_id: siteId,
          kind: c.kind,
          ts: new Date(c.receivedAtMs),
          received_at: new Date(c.receivedAtMs),
          status: c.status,
          hashrate_ths: c.hashrate_ths,
          expected_hashrate_ths: c.kind === 'asic' ? 150 : null,
          power_w: c.power_w,
          gpu_util_pct: c.kind === 'gpu' ? (c.gpu_util_pct ?? null) : null,
          available_power_w: c.kind === 'meter' ? 4e6 : null,
          temp_c: null,
          fan_rpm: null,
          gpu_mem_used_bytes: null,
        })
        .execute();
    }
  }, 120_000);

  afterAll(async () => {
    await storage?.close();
    await db?.dispose();
  });

  it('classifies every device exactly as the pure rule does', async () => {
    const { sites } = await new FleetReader(storage, DEFAULT_THRESHOLDS, { now: () => NOW }).read();
    const site = sites.find((s) => s.siteId === siteId)!;
    const expected = { up: 0, down: 0, stale: 0, curtailed: 0 };
    for (const c of CASES) if (c.kind !== 'meter') expected[classifyDevice(c, NOW, 120)]++;
    expect(site.devices).toEqual({
      ...expected,
      total: expected.up + expected.down + expected.stale + expected.curtailed,
    });
  });

  it('sums fresh device power by kind and falls back to devices when a meter is stale', async () => {
    const { sites } = await new FleetReader(storage, DEFAULT_THRESHOLDS, { now: () => NOW }).read();
    const site = sites.find((s) => s.siteId === siteId)!;
    const freshPower = (kind: DeviceKind) =>
      CASES.filter((c) => c.kind === kind && NOW - c.receivedAtMs <= 120_000).reduce(
        (sum, c) => sum + c.power_w,
        0,
      );
    expect(site.miningPowerW).toBe(freshPower('asic'));
    expect(site.aiPowerW).toBe(freshPower('gpu'));
    // Some of the site's meters are stale, so neither power nor available power comes from them.
    expect(site.drawnSource).toBe('devices');
    expect(site.drawnW).toBe(freshPower('asic') + freshPower('gpu') + freshPower('other'));
    expect(site.availableW).toBe(5e6);
  });

  it('uses a site’s own staleness threshold', async () => {
    await storage.db
      .updateTable('sites')
      .set({ thresholds: JSON.stringify({ device_stale_after_s: 600 }) })
      .where('id', '=', siteId)
      .execute();
    const { sites } = await new FleetReader(storage, DEFAULT_THRESHOLDS, { now: () => NOW }).read();
    expect(sites.find((s) => s.siteId === siteId)!.devices.stale).toBe(0);
  });
});
