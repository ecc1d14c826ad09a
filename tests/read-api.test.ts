import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../src/alerting/testing.ts';
import type { AlertView } from '../src/alerting/view.ts';
import { CORE_METRICS } from '../src/catalog/index.ts';
import type { DeviceView, SiteStatusView } from '../src/read/index.ts';
import type { RunningService } from '../src/service.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import {
  ADMIN_TOKEN,
  adminRequest,
  asicReading,
  type CreatedSite,
  createSite,
  postReadings,
  startTestService,
} from './support/service.ts';

// The "now" read API through the real service: what it says about each site is what /metrics says
// (the same snapshot code), the device listing pages stably while devices arrive, and a site's own
// token reads its site and nothing else.

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (what prom-client renders). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key!] = raw!.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

const ts = Date.now() - 5_000;

// A mixed site with a meter that reports available power, GPUs and ASICs.
const METERED = [
  { device: 'main-meter', kind: 'meter', ts, power_w: 300_000, available_power_w: 400_000 },
  { device: 'gpu-01/0', kind: 'gpu', ts, power_w: 700, gpu_util_pct: 90, status: 'ok' },
  { device: 'gpu-01/1', kind: 'gpu', ts, power_w: 650, gpu_util_pct: 70, status: 'ok' },
  { device: 'gpu-01/2', kind: 'gpu', ts, power_w: 120, gpu_util_pct: 10, status: 'ok' },
  asicReading('row-1/s21-001', ts, { power_w: 3500, hashrate_ths: 210, expected_hashrate_ths: 200 }),
  asicReading('row-1/s21-002', ts, {
    power_w: 30,
    hashrate_ths: 0,
    expected_hashrate_ths: 200,
    status: 'curtailed',
  }),
];

// A mining site without a meter: drawn power is the sum of its devices'.
const METERLESS = [
  asicReading('hall-a/r01/s21-001', ts, { power_w: 3500, hashrate_ths: 200, temp_c: 61.5 }),
  asicReading('hall-a/r01/s21-002', ts, { power_w: 3400, hashrate_ths: 190 }),
  asicReading('hall-a/r01/s21-003', ts, { power_w: 40, hashrate_ths: 0, status: 'curtailed' }),
  asicReading('hall-a/r01/s21-004', ts, { power_w: 0, hashrate_ths: 0, status: 'error' }),
  // Online but not hashing: down.
  asicReading('hall-a/r01/s21-005', ts, { power_w: 3300, hashrate_ths: 0 }),
];

const PAGED_NAMES = Array.from({ length: 25 }, (_, i) => `dev-${String(10 + i).padStart(3, '0')}`);

interface Fleet {
  as_of: string;
  sites: SiteStatusView[];
}
interface DevicePage {
  site: { id: number; name: string };
  devices: DeviceView[];
  next_cursor: string | null;
}
interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

async function get<T>(base: string, path: string, token = ADMIN_TOKEN): Promise<{ status: number; body: T }> {
  const response = await fetch(base + path, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, body: (await response.json()) as T };
}

describe.each(BACKENDS)('read API on %s', (backend) => {
  let db: TestDatabase;
  let service: RunningService;
  const sites: Record<'metered' | 'meterless' | 'over' | 'dark' | 'stale' | 'paged', CreatedSite> =
    {} as never;

  const fleet = async (token = ADMIN_TOKEN) => {
    const { status, body } = await get<Fleet>(service.url, '/api/v1/fleet', token);
    expect(status, JSON.stringify(body)).toBe(200);
    return body;
  };
  const siteOf = (f: Fleet, site: CreatedSite) => f.sites.find((s) => s.id === site.site.id);
  const devices = async (site: CreatedSite, query = '', token = ADMIN_TOKEN) => {
    const { status, body } = await get<DevicePage>(
      service.url,
      `/api/v1/sites/${site.site.id}/devices${query}`,
      token,
    );
    expect(status, JSON.stringify(body)).toBe(200);
    return body;
  };
  const names = (page: DevicePage) => page.devices.map((d) => d.name);

  async function post(site: CreatedSite, readings: unknown[]) {
    const response = await postReadings(service.url, site.token, readings);
    expect(response.body, JSON.stringify(response.body)).toMatchObject({
      accepted: readings.length,
      rejected: [],
    });
    // Readings reach device_latest behind the commit; catch it up so the listing sees them.
    await service.latest.flush();
  }

  async function patchThresholds(site: CreatedSite, thresholds: Record<string, number>) {
    const response = await adminRequest(service.url, 'PATCH', `/api/v1/sites/${site.site.id}`, {
      thresholds,
    });
    expect(response.status).toBe(200);
  }

  beforeAll(async () => {
    db = await createTestDatabase(backend);
    service = await startTestService(db, { env: { HASHWATT_ALERT_INTERVAL_S: '1' } });
    sites.metered = await createSite(service.url, 'read-metered', 'mixed', 500);
    sites.meterless = await createSite(service.url, 'read-meterless', 'mining', 1000);
    // 1 kW of capacity under a 3.5 kW miner: PowerOverAvailable fires after a second.
    sites.over = await createSite(service.url, 'read-over', 'mining', 1);
    sites.dark = await createSite(service.url, 'read-dark', 'ai', 100);
    sites.stale = await createSite(service.url, 'read-stale', 'mining', 100);
    sites.paged = await createSite(service.url, 'read-paged', 'mining', 1000);
    await patchThresholds(sites.over, { over_available_for_s: 1 });
    await patchThresholds(sites.stale, { device_stale_after_s: 1 });
    await post(sites.metered, METERED);
    await post(sites.meterless, METERLESS);
    await post(sites.over, [asicReading('s21', Date.now())]);
    await post(sites.stale, [
      asicReading('quiet', Date.now()),
      asicReading('resting', Date.now(), { status: 'curtailed' }),
    ]);
    await post(
      sites.paged,
      PAGED_NAMES.map((name, i) => asicReading(name, ts, { power_w: 3000 + i })),
    );
    // Settled: every device counted, the quiet miner stale past its site's 1 s, the alert firing,
    // in the read API and in /metrics alike.
    const settled = (devicesOf: (name: string) => number | undefined, staleOf: number | undefined) =>
      devicesOf('read-metered') === 5 &&
      devicesOf('read-meterless') === 5 &&
      devicesOf('read-paged') === 25 &&
      staleOf === 1;
    await waitFor(
      'the read API to show every site settled',
      async () => {
        const f = await fleet();
        const byName = (name: string) => f.sites.find((s) => s.name === name)?.devices.total;
        const over = siteOf(f, sites.over);
        return (
          settled(byName, siteOf(f, sites.stale)?.devices.stale) &&
          over?.firing_alerts.some((a) => a.alertname === 'PowerOverAvailable')
        );
      },
      20_000,
    );
    await waitFor(
      '/metrics to show every site settled',
      async () => {
        const samples = parseExposition(await (await fetch(`${service.url}/metrics`)).text());
        const devicesOf = (site: string, state?: string) =>
          samples
            .filter(
              (s) =>
                s.name === 'hashwatt_site_devices' &&
                s.labels.site === site &&
                (state === undefined || s.labels.state === state),
            )
            .reduce((sum, s) => sum + s.value, 0);
        return settled(devicesOf, devicesOf('read-stale', 'stale'));
      },
      20_000,
    );
  }, 90_000);

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('reports for every site exactly what /metrics reports', async () => {
    const [api, text] = await Promise.all([fleet(), fetch(`${service.url}/metrics`).then((r) => r.text())]);
    const samples = parseExposition(text);
    const value = (name: string, labels: Record<string, string>) => {
      const found = samples.filter(
        (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      );
      expect(found.length, `${name}${JSON.stringify(labels)}`).toBeLessThanOrEqual(1);
      return found[0]?.value ?? null;
    };
    expect(api.sites.map((s) => s.name).sort()).toEqual(
      Object.values(sites)
        .map((s) => s.site.name)
        .sort(),
    );
    for (const s of api.sites) {
      const m = (name: string, labels: Record<string, string> = {}) =>
        value(name, { site: s.name, kind: s.kind, ...labels });
      const where = `site ${s.name}`;
      expect(m('hashwatt_site_power_drawn_watts'), where).toBe(s.drawn_power_w);
      expect(m('hashwatt_site_power_drawn_source', { source: s.drawn_power_source }), where).toBe(1);
      expect(m('hashwatt_site_power_capacity_watts'), where).toBe(s.capacity_w);
      expect(m('hashwatt_site_power_available_watts'), where).toBe(s.available_power_w);
      expect(m('hashwatt_site_power_surplus_watts'), where).toBe(s.surplus_w);
      expect(m('hashwatt_site_power_surplus_ratio'), where).toBe(s.surplus_ratio);
      expect(m('hashwatt_site_hashrate_hashes_per_second'), where).toBe(s.hashrate_ths * 1e12);
      expect(m('hashwatt_site_expected_hashrate_hashes_per_second'), where).toBe(
        s.expected_hashrate_ths * 1e12,
      );
      expect(m('hashwatt_site_hashing_ratio'), where).toBe(s.hashing_ratio);
      expect(m('hashwatt_site_efficiency_joules_per_terahash'), where).toBe(s.efficiency_j_per_th);
      expect(m('hashwatt_site_gpu_utilisation_ratio'), where).toBe(s.gpu_utilisation_ratio);
      expect(m('hashwatt_site_gpus', { state: 'busy' }), where).toBe(s.gpus.busy);
      expect(m('hashwatt_site_gpus', { state: 'idle' }), where).toBe(s.gpus.idle);
      for (const state of ['up', 'down', 'stale', 'curtailed'] as const) {
        expect(m('hashwatt_site_devices', { state }), `${where} ${state}`).toBe(s.devices[state]);
      }
      expect(m('hashwatt_site_devices_down_ratio'), where).toBe(s.devices_down_ratio);
      expect(m('hashwatt_site_workload_power_watts', { workload: 'ai' }), where).toBe(s.ai_power_w);
      expect(m('hashwatt_site_workload_power_watts', { workload: 'mining' }), where).toBe(s.mining_power_w);
      expect(m('hashwatt_site_ai_power_ratio'), where).toBe(s.ai_power_ratio);
      expect(m('hashwatt_site_up'), where).toBe(s.status === 'up' ? 1 : 0);
      const lastS = m('hashwatt_site_last_reading_timestamp_seconds')!;
      if (s.last_reading_at === null) expect(lastS, where).toBe(0);
      // RFC 3339 with milliseconds; the gauge keeps the database's microseconds.
      else expect(Math.abs(Date.parse(s.last_reading_at) / 1000 - lastS), where).toBeLessThan(0.001);
      const firing = samples
        .filter((x) => x.name === 'hashwatt_alerts_firing' && x.labels.site === s.name && x.value === 1)
        .map((x) => x.labels.alertname)
        .sort();
      expect(s.firing_alerts.map((a) => a.alertname).sort(), where).toEqual(firing);
    }
  });

  it('draws a metered site’s power from its meter and a meterless one’s from its devices', async () => {
    const f = await fleet();
    expect(siteOf(f, sites.metered)).toMatchObject({
      kind: 'mixed',
      status: 'up',
      drawn_power_w: 300_000,
      drawn_power_source: 'meter',
      available_power_w: 400_000,
      available_power_source: 'meter',
      capacity_w: 500_000,
      surplus_w: 100_000,
      surplus_ratio: 0.25,
      ai_power_w: 700 + 650 + 120,
      mining_power_w: 3500 + 30,
      gpus: { fresh: 3, busy: 2, idle: 1 },
      devices: { up: 4, down: 0, stale: 0, curtailed: 1, total: 5 },
    });
    const sum = METERLESS.reduce((total, r) => total + r.power_w, 0);
    const meterless = siteOf(f, sites.meterless)!;
    expect(meterless).toMatchObject({
      drawn_power_w: sum,
      drawn_power_source: 'devices',
      available_power_w: 1_000_000,
      available_power_source: 'capacity',
      surplus_w: 1_000_000 - sum,
      hashrate_ths: 390,
      expected_hashrate_ths: 800,
      devices: { up: 2, down: 2, stale: 0, curtailed: 1, total: 5 },
      firing_alerts: [],
    });
    expect(meterless.efficiency_j_per_th).toBeCloseTo((3500 + 3400) / 390, 9);
    expect(siteOf(f, sites.dark)).toMatchObject({ status: 'unknown', last_reading_at: null });
    expect(Date.parse(meterless.last_reading_at!)).toBeGreaterThan(ts);
    expect(f.as_of).toBe(new Date(Date.parse(f.as_of)).toISOString());
  });

  it('shows the firing alerts of a site as the alerts API does', async () => {
    const over = siteOf(await fleet(), sites.over)!;
    const { body } = await get<{ alerts: AlertView[] }>(
      service.url,
      `/api/v1/sites/${sites.over.site.id}/alerts?state=firing`,
    );
    expect(over.firing_alerts).toEqual(body.alerts);
    expect(over.firing_alerts[0]).toMatchObject({ alertname: 'PowerOverAvailable', state: 'firing' });
  });

  it('answers a site’s status with the very object the fleet lists', async () => {
    for (const site of Object.values(sites)) {
      const { status, body } = await get<{ as_of: string; site: SiteStatusView }>(
        service.url,
        `/api/v1/sites/${site.site.id}/status`,
      );
      expect(status).toBe(200);
      expect(body.site).toEqual(siteOf(await fleet(), site));
    }
  });

  it('lists a site’s devices with their state and latest metrics', async () => {
    const page = await devices(sites.meterless);
    expect(page.site).toEqual({ id: sites.meterless.site.id, name: 'read-meterless' });
    expect(page.next_cursor).toBeNull();
    expect(page.devices.map((d) => [d.name, d.state])).toEqual([
      ['hall-a/r01/s21-001', 'up'],
      ['hall-a/r01/s21-002', 'up'],
      ['hall-a/r01/s21-003', 'curtailed'],
      ['hall-a/r01/s21-004', 'down'],
      ['hall-a/r01/s21-005', 'down'],
    ]);
    const first = page.devices[0]!;
    expect(first).toMatchObject({
      kind: 'asic',
      model: null,
      status: 'ok',
      measured_at: new Date(ts).toISOString(),
    });
    expect(Number.isInteger(first.id)).toBe(true);
    expect(Date.parse(first.last_reading_at)).toBeGreaterThanOrEqual(ts);
    expect(Object.keys(first.metrics)).toEqual(CORE_METRICS.map((m) => m.name));
    expect(first.metrics).toMatchObject({
      power_w: 3500,
      hashrate_ths: 200,
      temp_c: 61.5,
      gpu_util_pct: null,
    });
  });

  it('filters devices by state, kind and name, alone and together', async () => {
    expect(names(await devices(sites.meterless, '?state=down'))).toEqual([
      'hall-a/r01/s21-004',
      'hall-a/r01/s21-005',
    ]);
    expect(names(await devices(sites.meterless, '?state=curtailed'))).toEqual(['hall-a/r01/s21-003']);
    expect(names(await devices(sites.meterless, '?state=stale'))).toEqual([]);
    // A site's own staleness threshold; a curtailed device stays excused however quiet.
    const stale = await devices(sites.stale, '?state=stale');
    expect(stale.devices.map((d) => [d.name, d.state])).toEqual([['quiet', 'stale']]);
    expect(names(await devices(sites.stale, '?state=curtailed'))).toEqual(['resting']);
    expect(names(await devices(sites.metered, '?kind=gpu'))).toEqual(['gpu-01/0', 'gpu-01/1', 'gpu-01/2']);
    expect(names(await devices(sites.metered, '?kind=meter'))).toEqual(['main-meter']);
    expect(names(await devices(sites.metered, '?q=GPU-01'))).toEqual(['gpu-01/0', 'gpu-01/1', 'gpu-01/2']);
    expect(names(await devices(sites.metered, '?q=%2F1'))).toEqual(['gpu-01/1']);
    expect(names(await devices(sites.metered, '?q=row-1%2F'))).toEqual(['row-1/s21-001', 'row-1/s21-002']);
    expect(names(await devices(sites.metered, '?kind=asic&state=curtailed'))).toEqual(['row-1/s21-002']);
    expect(names(await devices(sites.metered, '?kind=gpu&q=s21'))).toEqual([]);
    // The filter (the SQL rule) selects exactly the devices the view (the TypeScript rule) puts in
    // that state, and the listing's states add up to the fleet's counts (the meter is no compute device).
    const f = await fleet();
    for (const site of [sites.metered, sites.meterless, sites.stale]) {
      const all = (await devices(site)).devices;
      const counts = { up: 0, down: 0, stale: 0, curtailed: 0 };
      for (const state of ['up', 'down', 'stale', 'curtailed'] as const) {
        expect(names(await devices(site, `?state=${state}`))).toEqual(
          all.filter((d) => d.state === state).map((d) => d.name),
        );
      }
      for (const d of all) if (d.kind !== 'meter') counts[d.state]++;
      expect(counts).toEqual({ ...siteOf(f, site)!.devices, total: undefined });
    }
  });

  it('pages devices by cursor, stably while devices arrive between pages', async () => {
    const first = await devices(sites.paged, '?limit=10');
    expect(names(first)).toEqual(PAGED_NAMES.slice(0, 10));
    expect(first.next_cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    // A device before the cursor, one after it, and a new reading of a device already listed.
    await post(sites.paged, [
      asicReading('dev-000', Date.now()),
      asicReading('dev-999', Date.now()),
      asicReading('dev-012', Date.now(), { power_w: 1 }),
      asicReading('dev-020', Date.now(), { power_w: 2 }),
    ]);
    const seen = [...names(first)];
    let cursor = first.next_cursor;
    let pages = 1;
    while (cursor !== null) {
      const page = await devices(sites.paged, `?limit=10&cursor=${cursor}`);
      seen.push(...names(page));
      cursor = page.next_cursor;
      pages++;
    }
    // Nothing listed twice, nothing skipped; what arrived after the cursor is on a later page.
    expect(seen).toEqual([...PAGED_NAMES, 'dev-999']);
    expect(pages).toBe(3);
    expect(names(await devices(sites.paged, '?limit=1000'))).toEqual(['dev-000', ...PAGED_NAMES, 'dev-999']);
    // The default page is 100; a page exactly the size of what is left has no next one.
    expect((await devices(sites.paged)).devices).toHaveLength(27);
    expect((await devices(sites.paged, '?limit=27')).next_cursor).toBeNull();
    expect((await devices(sites.paged, '?limit=26')).next_cursor).not.toBeNull();
    // A cursor works with the filters it was not made with: it only says where to continue.
    const cursorAfter = (await devices(sites.paged, '?limit=1')).next_cursor!;
    expect(names(await devices(sites.paged, `?q=dev-01&cursor=${cursorAfter}`))).toEqual(
      PAGED_NAMES.filter((n) => n.startsWith('dev-01')),
    );
  });

  it('lets a site token read its own site only, and tells it nothing of the others', async () => {
    const own = sites.meterless;
    const other = sites.metered;
    const f = await fleet(own.token);
    expect(f.sites.map((s) => s.id)).toEqual([own.site.id]);
    expect(f.sites[0]).toEqual(siteOf(await fleet(), own));
    expect((await get(service.url, `/api/v1/sites/${own.site.id}/status`, own.token)).status).toBe(200);
    expect(names(await devices(own, '?state=curtailed', own.token))).toEqual(['hall-a/r01/s21-003']);
    const missing = 2_000_000_000;
    for (const path of ['status', 'devices', 'devices?limit=1']) {
      const crossed = await get<ErrorBody>(service.url, `/api/v1/sites/${other.site.id}/${path}`, own.token);
      expect(crossed.status).toBe(404);
      expect(crossed.body.error).toMatchObject({
        code: 'not_found',
        message: `no site with id ${other.site.id}`,
      });
      expect(JSON.stringify(crossed.body)).not.toContain('read-metered');
      const absent = await get<ErrorBody>(service.url, `/api/v1/sites/${missing}/${path}`, own.token);
      expect(absent.status).toBe(404);
      expect(absent.body.error.message).toBe(`no site with id ${missing}`);
      // The admin gets the same answer for a site that does not exist.
      const admin = await get<ErrorBody>(service.url, `/api/v1/sites/${missing}/${path}`);
      expect(admin.status).toBe(404);
      expect(admin.body.error.message).toBe(`no site with id ${missing}`);
    }
    // The admin API stays the admin's, on the same paths; the site's alerts are its own to read.
    for (const path of ['/api/v1/sites', `/api/v1/sites/${own.site.id}`]) {
      expect((await get(service.url, path, own.token)).status, path).toBe(401);
    }
    expect((await get(service.url, `/api/v1/sites/${own.site.id}/alerts`, own.token)).status).toBe(200);
    expect((await get(service.url, `/api/v1/sites/${other.site.id}/alerts`, own.token)).status).toBe(404);
    expect((await get(service.url, `/api/v1/sites/${own.site.id}/unmapped`, own.token)).status).toBe(401);
    for (const path of [
      '/api/v1/fleet',
      `/api/v1/sites/${own.site.id}/status`,
      `/api/v1/sites/${own.site.id}/devices`,
    ]) {
      expect((await fetch(service.url + path)).status, path).toBe(401);
      expect((await get(service.url, path, 'hw_not-a-token')).status, path).toBe(401);
    }
  });

  it('refuses bad query parameters with a 400 naming the field', async () => {
    const id = sites.paged.site.id;
    const bad: [string, string][] = [
      [`/api/v1/sites/${id}/devices?limit=0`, 'limit'],
      [`/api/v1/sites/${id}/devices?limit=1001`, 'limit'],
      [`/api/v1/sites/${id}/devices?limit=ten`, 'limit'],
      [`/api/v1/sites/${id}/devices?limit=010`, 'limit'],
      [`/api/v1/sites/${id}/devices?limit=`, 'limit'],
      [`/api/v1/sites/${id}/devices?state=broken`, 'state'],
      [`/api/v1/sites/${id}/devices?kind=robot`, 'kind'],
      [`/api/v1/sites/${id}/devices?q=a%00b`, 'q'],
      [`/api/v1/sites/${id}/devices?q=${'x'.repeat(129)}`, 'q'],
      [`/api/v1/sites/${id}/devices?cursor=!!!`, 'cursor'],
      [`/api/v1/sites/${id}/devices?cursor=`, 'cursor'],
      [`/api/v1/sites/${id}/devices?cursor=${Buffer.from('{"after":1}').toString('base64url')}`, 'cursor'],
      [`/api/v1/sites/${id}/devices?page=2`, 'page'],
      [`/api/v1/sites/${id}/status?verbose=1`, 'verbose'],
      ['/api/v1/fleet?site=1', 'site'],
    ];
    for (const [path, field] of bad) {
      const { status, body } = await get<ErrorBody>(service.url, path);
      expect(status, path).toBe(400);
      expect(body.error, path).toMatchObject({ code: 'invalid_query', field });
    }
    // A path id that names nothing is a 404, as everywhere in the API.
    for (const segment of ['abc', '0', '01', '2147483648']) {
      const { status, body } = await get<ErrorBody>(service.url, `/api/v1/sites/${segment}/status`);
      expect(status, segment).toBe(404);
      expect(body.error.code).toBe('not_found');
    }
  });
});
