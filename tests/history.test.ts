import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siteEnergy } from '../src/history/energy.ts';
import { deviceSeries, siteSeries } from '../src/history/series.ts';
import type { Storage } from '../src/storage/database.ts';
import { ensurePartitions } from '../src/storage/partitions.ts';
import { type ReadingRecord, writeReadings } from '../src/storage/readings.ts';
import type { DeviceKind } from '../src/storage/schema.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import { insertSite } from './support/sites.ts';

const MIN = 60_000;
// A whole hour, recent enough to be inside retention.
const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000;
const NOW = T0 + 2 * 3_600_000;

describe.each(BACKENDS)('site and device series on %s', (backend) => {
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

  async function site(name: string, devices: [string, DeviceKind][], capacityW = 1e6) {
    const s = await insertSite(storage, name, devices, { capacityW });
    return { site: { id: s.id, capacity_w: s.capacity_w }, byName: s.ids, record: s.record };
  }

  const query = (metric: string, extra: Record<string, unknown> = {}) => ({
    metric,
    from: T0,
    to: T0 + 5 * MIN,
    step: 60,
    agg: 'avg' as const,
    ...extra,
  });

  it('a site with a meter: the meter while it reports, the devices once it goes silent, PDUs never', async () => {
    const s = await site('metered', [
      ['meter', 'meter'],
      ['a1', 'asic'],
      ['a2', 'asic'],
      ['g1', 'gpu'],
      ['pdu', 'pdu'],
    ]);
    const rows: ReadingRecord[] = [];
    for (let m = 0; m < 4; m++) {
      for (const sec of [0, 20, 40]) {
        const t = T0 + m * MIN + sec * 1000;
        // The meter reports for the first two minutes only.
        if (m < 2)
          rows.push(s.record('meter', t, { power_w: 10_000 + m * 100 + sec, available_power_w: 12_000 }));
        rows.push(s.record('a1', t, { power_w: 3000 + sec, hashrate_ths: 200, temp_c: 60 + m }));
        rows.push(s.record('a2', t, { power_w: 3100, hashrate_ths: 190, temp_c: 70 }));
        rows.push(s.record('g1', t, { power_w: 700, gpu_util_pct: 90 }));
        rows.push(s.record('pdu', t, { power_w: 99_999 }));
      }
    }
    await writeReadings(storage.db, rows);
    const power = await siteSeries(storage, s.site, query('power_w'), NOW);
    // Minutes 0–1: the meter's mean over the minute. Minutes 2–3: the devices' per-device means, summed.
    const meterMean = (m: number) => 10_000 + m * 100 + 20;
    const devices = 3020 + 3100 + 700;
    expect(power.points).toEqual([
      [T0, meterMean(0)],
      [T0 + MIN, meterMean(1)],
      [T0 + 2 * MIN, devices],
      [T0 + 3 * MIN, devices],
      [T0 + 4 * MIN, null],
    ]);
    expect(power.power_source).toEqual(['meter', 'meter', 'devices', 'devices', null]);
    const available = await siteSeries(storage, s.site, query('available_power_w'), NOW);
    expect(available.points.map((p) => p[1])).toEqual([12_000, 12_000, 1e6, 1e6, null]);
    expect(available.power_source).toEqual(['meter', 'meter', 'capacity', 'capacity', null]);
    const surplus = await siteSeries(storage, s.site, query('surplus_w'), NOW);
    expect(surplus.points[0]![1]).toBe(12_000 - meterMean(0));
    // Hashrate is summed over ASICs, temperature averaged: per device first, then across devices.
    const hashrate = await siteSeries(storage, s.site, query('hashrate_ths'), NOW);
    expect(hashrate.points.slice(0, 4).map((p) => p[1])).toEqual([390, 390, 390, 390]);
    const temp = await siteSeries(storage, s.site, query('temp_c', { agg: 'max' }), NOW);
    expect(temp.points.slice(0, 4).map((p) => p[1])).toEqual([65, 65.5, 66, 66.5]);
    const last = await siteSeries(storage, s.site, query('power_w', { agg: 'last' }), NOW);
    expect(last.points[2]![1]).toBe(3040 + 3100 + 700);
  });

  it('a site without meters sums its devices; a device series by id or name, extras included', async () => {
    const s = await site('unmetered', [
      ['hall/a1', 'asic'],
      ['hall/a2', 'asic'],
    ]);
    await writeReadings(storage.db, [
      s.record('hall/a1', T0 + 10_000, { power_w: 3000, extras: { chip_temp_c_1: 80 } }),
      s.record('hall/a1', T0 + 50_000, { power_w: 3200, extras: { chip_temp_c_1: 82 } }),
      s.record('hall/a2', T0 + 30_000, { power_w: 2000 }),
      s.record('hall/a2', T0 + 2 * MIN, { power_w: 2100 }),
    ]);
    const power = await siteSeries(storage, s.site, query('power_w'), NOW);
    expect(power.points.map((p) => p[1])).toEqual([3100 + 2000, null, 2100, null, null]);
    const byName = await deviceSeries(
      storage,
      s.site.id,
      'hall/a1',
      query('chip_temp_c', { index: '1', agg: 'max' }),
      NOW,
    );
    expect(byName.points[0]).toEqual([T0, 82]);
    expect(byName.device.name).toBe('hall/a1');
    const byId = await deviceSeries(
      storage,
      s.site.id,
      String(s.byName.get('hall/a2')),
      query('power_w'),
      NOW,
    );
    expect(byId.points.map((p) => p[1])).toEqual([2000, null, 2100, null, null]);
  });

  it('energy of a known load is its integral, with irregular reporting and a gap', async () => {
    const s = await site('energy', [['a1', 'asic']]);
    const rows: ReadingRecord[] = [];
    // 3.6 kW, reported at irregular moments, every minute of the hour but minutes 20–29.
    for (let m = 0; m < 60; m++) {
      if (m >= 20 && m < 30) continue;
      for (const sec of m % 2 === 0 ? [3, 41] : [17])
        rows.push(s.record('a1', T0 + m * MIN + sec * 1000, { power_w: 3600 }));
    }
    await writeReadings(storage.db, rows);
    const { buckets } = await siteEnergy(
      storage,
      { ...s.site, timezone: null, tariffPerMwh: 80 },
      { from: new Date(T0).toISOString(), to: new Date(T0 + 3_600_000).toISOString(), bucket: 'hour' },
      NOW,
    );
    expect(buckets).toHaveLength(1);
    expect(buckets[0]!.kwh).toBeCloseTo(3.6 * (50 / 60), 9);
    expect(buckets[0]!.mining_kwh).toBeCloseTo(3.6 * (50 / 60), 9);
    expect(buckets[0]!.coverage_ratio).toBeCloseTo(50 / 60, 12);
    expect(buckets[0]!.cost).toBeCloseTo((3.6 * (50 / 60) * 80) / 1000, 9);
  });

  it('refuses an unknown metric and more than 10 000 points with 400s naming what to change', async () => {
    const s = await site('refusals', [['x', 'asic']]);
    await expect(siteSeries(storage, s.site, query('volts'), NOW)).rejects.toMatchObject({
      code: 'invalid_query',
      details: { field: 'metric' },
    });
    await expect(
      siteSeries(storage, s.site, query('power_w', { from: T0 - 86_400_000, step: 1 }), NOW),
    ).rejects.toMatchObject({
      code: 'invalid_query',
      details: { field: 'step' },
    });
    await expect(deviceSeries(storage, s.site.id, 'nope', query('power_w'), NOW)).rejects.toMatchObject({
      code: 'not_found',
    });
  });
});
