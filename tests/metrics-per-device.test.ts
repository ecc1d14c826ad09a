import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../src/service.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { asicReading, createSite, postReadings, startTestService } from './support/service.ts';

describe('opt-in per-device metrics', () => {
  let db: TestDatabase;
  let service: RunningService;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await startTestService(db, { env: { HASHWATT_METRICS_PER_DEVICE_MAX: '3' } });
  });
  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('exports series per device for sites within the cap, and none for larger sites', async () => {
    const now = Date.now();
    const pilot = await createSite(service.url, 'pilot', 'ai');
    const hall = await createSite(service.url, 'hall');
    await postReadings(service.url, pilot.token, [
      { device: 'gpu-0', kind: 'gpu', ts: now, power_w: 700, gpu_util_pct: 95, temp_c: 61 },
      asicReading('asic-0', now, { status: 'curtailed', hashrate_ths: 0, power_w: 40 }),
    ]);
    await postReadings(
      service.url,
      hall.token,
      ['a', 'b', 'c', 'd'].map((d) => asicReading(d, now)),
    );
    // Per-device series read the latest state, which trails the acknowledged readings by up to a second.
    await service.latest.flush();
    const text = await (await fetch(`${service.url}/metrics`)).text();
    expect(text).toContain('hashwatt_device_power_watts{site="pilot",device="gpu-0",kind="gpu"} 700');
    expect(text).toContain(
      'hashwatt_device_gpu_utilisation_ratio{site="pilot",device="gpu-0",kind="gpu"} 0.95',
    );
    expect(text).toContain(
      'hashwatt_device_state{site="pilot",device="asic-0",kind="asic",state="curtailed"} 1',
    );
    expect(text).toContain('hashwatt_device_state{site="pilot",device="asic-0",kind="asic",state="down"} 0');
    expect(text).not.toMatch(/hashwatt_device_[a-z_]+\{site="hall"/);
  });
});
