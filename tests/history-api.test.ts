import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../src/service.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import { adminRequest, createSite, postReadings, startTestService } from './support/service.ts';

const MIN = 60_000;
const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;

describe.each(BACKENDS)('history API and who may read it on %s', (backend) => {
  let testDb: TestDatabase;
  let service: RunningService;
  let a: { id: number; token: string };
  let b: { id: number; token: string };
  let viewer: string;

  beforeAll(async () => {
    testDb = await createTestDatabase(backend);
    service = await startTestService(testDb);
    const siteA = await createSite(service.url, `hist-a-${backend}`, 'mining', 100);
    const siteB = await createSite(service.url, `hist-b-${backend}`, 'mining', 100);
    a = { id: siteA.site.id, token: siteA.token };
    b = { id: siteB.site.id, token: siteB.token };
    const readings = [0, 1, 2].map((m) => ({
      device: 'hall-1/s21-001',
      kind: 'asic',
      ts: T0 + m * MIN + 5_000,
      power_w: 3500 + m,
    }));
    expect((await postReadings(service.url, a.token, readings)).status).toBe(200);
    expect((await postReadings(service.url, b.token, readings)).status).toBe(200);
    const created = await adminRequest(service.url, 'POST', '/api/v1/tokens', {
      name: `dash-${backend}`,
      role: 'viewer',
      sites: [a.id],
    });
    viewer = ((await created.json()) as { token: string }).token;
  }, 60_000);

  afterAll(async () => {
    await service?.stop();
    await testDb?.dispose();
  });

  const get = (path: string, token: string) =>
    fetch(`${service.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const range = `from=${T0}&to=${T0 + 3 * MIN}&step=60`;

  it('answers a site series and a device series by its URL-encoded name', async () => {
    const site = await get(`/api/v1/sites/${a.id}/series?metric=power_w&${range}`, viewer);
    expect(site.status).toBe(200);
    expect(await site.json()).toMatchObject({
      metric: 'power_w',
      unit: 'W',
      step_s: 60,
      source: '1m',
      points: [
        [T0, 3500],
        [T0 + MIN, 3501],
        [T0 + 2 * MIN, 3502],
      ],
      power_source: ['devices', 'devices', 'devices'],
    });
    const device = await get(
      `/api/v1/sites/${a.id}/devices/${encodeURIComponent('hall-1/s21-001')}/series?metric=power_w&${range}&agg=max`,
      a.token,
    );
    expect(device.status).toBe(200);
    expect(await device.json()).toMatchObject({
      device: { name: 'hall-1/s21-001' },
      points: [
        [T0, 3500],
        [T0 + MIN, 3501],
        [T0 + 2 * MIN, 3502],
      ],
    });
    const energy = await get(
      `/api/v1/sites/${a.id}/energy?from=${T0}&to=${T0 + 3_600_000}&bucket=hour`,
      viewer,
    );
    expect(energy.status).toBe(200);
    const { buckets } = (await energy.json()) as { buckets: { kwh: number; coverage_ratio: number }[] };
    expect(buckets[0]!.kwh).toBeCloseTo(((3500 + 3501 + 3502) * 60) / 3_600_000, 9);
    expect(buckets[0]!.coverage_ratio).toBeCloseTo(3 / 60, 12);
  });

  it('gives another site’s data to nobody but the admin: 404, word for word a missing site', async () => {
    const missing = await get(`/api/v1/sites/999999/series?metric=power_w&${range}`, viewer);
    expect(missing.status).toBe(404);
    const missingBody = (await missing.json()) as { error: { message: string } };
    for (const [token, site] of [
      [viewer, b.id],
      [a.token, b.id],
    ] as const) {
      for (const path of [`/series?metric=power_w&${range}`, `/energy?from=${T0}`, `/status`, `/devices`]) {
        const response = await get(`/api/v1/sites/${site}${path}`, token);
        expect(response.status, path).toBe(404);
        expect(((await response.json()) as { error: { message: string } }).error.message).toBe(
          missingBody.error.message.replace('999999', String(site)),
        );
      }
    }
    // The fleet is a snapshot at most a second old: await the one that has both sites.
    let ids: number[] = [];
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
      const all = (await (await get('/api/v1/fleet', 'test-admin-token-0123456789')).json()) as {
        sites: { id: number }[];
      };
      if (all.sites.some((s) => s.id === b.id)) {
        ids = ((await (await get('/api/v1/fleet', viewer)).json()) as { sites: { id: number }[] }).sites.map(
          (s) => s.id,
        );
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(ids).toEqual([a.id]);
    expect(
      (await get(`/api/v1/sites/${b.id}/series?metric=power_w&${range}`, 'test-admin-token-0123456789'))
        .status,
    ).toBe(200);
    // A viewer reads; it administers nothing.
    expect((await get('/api/v1/sites', viewer)).status).toBe(401);
  });

  it('refuses an energy range of too many buckets before building any', async () => {
    const response = await get(`/api/v1/sites/${a.id}/energy?from=0&to=8640000000000000&bucket=hour`, viewer);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { field: string } }).error.field).toBe('from');
  });

  it('refuses bad queries with 400 naming the parameter', async () => {
    for (const [query, field] of [
      ['metric=volts', 'metric'],
      [`metric=power_w&from=${T0}&to=${T0 + 86_400_000 * 2}&step=1`, 'step'],
      ['metric=power_w&agg=median', 'agg'],
      ['metric=power_w&from=yesterday', 'from'],
      ['metric=power_w&color=red', 'color'],
      ['metric=power_w&from=2026-12-01T00:00:00', 'from'],
    ]) {
      const response = await get(`/api/v1/sites/${a.id}/series?${query}`, viewer);
      expect(response.status, query).toBe(400);
      expect(((await response.json()) as { error: { field: string } }).error.field, query).toBe(field);
    }
  });
});
