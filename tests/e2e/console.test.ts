/**
 * The web console end to end: Debian's Chromium, driven by playwright-core, against a real hashwatt
 * on Postgres that holds thirty days of simulated history pushed through ingest and rolled up by the
 * real job. What the page shows is held to what the API answers: the fleet's numbers (read back
 * from the page's text and compared to the API's within the display's rounding), each chart's
 * points (the very answer the page got, intercepted), the rollup tier a 30-day range reads, the
 * alerts. An operator acknowledges and silences an alert through the page, and the alerts API, the
 * silences API and /metrics say so; expiring and taking back undo it. Viewers see who acknowledged
 * and what is silenced, but no action; a revoked token returns to sign-in, 1,000 sites render and
 * keep their place across a refresh, and no page logs an error. Screenshots of every page go to
 * test-artifacts/console/ (gitignored).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadScenario, provisionSites } from '../../simulators/index.ts';
import { waitFor } from '../../src/alerting/testing.ts';
import type { RunningService } from '../../src/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import {
  ADMIN_TOKEN,
  adminRequest,
  asicReading,
  createSite,
  postReadings,
  startTestService,
} from '../support/service.ts';
import { pushHistory, siteHistory } from './support/console-history.ts';
import { readCounter } from './support/hashwatt-state.ts';

const ARTIFACTS = path.resolve(import.meta.dirname, '../../test-artifacts/console');
const CHROMIUM = '/usr/bin/chromium';
const DAY_MS = 86_400_000;

interface SiteView {
  id: number;
  name: string;
  kind: string;
  status: string;
  drawn_power_w: number;
  available_power_w: number;
  capacity_w: number;
  surplus_w: number;
  surplus_ratio: number;
  hashrate_ths: number;
  expected_hashrate_ths: number;
  hashing_ratio: number | null;
  gpu_utilisation_ratio: number | null;
  ai_power_w: number;
  mining_power_w: number;
  devices: Record<'up' | 'down' | 'stale' | 'curtailed' | 'total', number>;
  firing_alerts: { alertname: string }[];
}
interface Alert {
  id: number;
  alertname: string;
  severity: string;
  state: string;
  site: { id: number; name: string };
  summary: string | null;
  annotations: Record<string, string>;
  acknowledgement: { by: string; at: string; comment: string | null } | null;
  silenced_by: number[];
}
interface Silence {
  id: number;
  state: string;
  site: { id: number; name: string } | null;
  alertname: string | null;
  ends_at: string;
  expired_at: string | null;
  expired_by: string | null;
  comment: string;
  created_by: string;
}
interface Series {
  source: string;
  step_s: number;
  points: [number, number | null][];
}
interface Energy {
  buckets: { start: string; mining_kwh: number; ai_kwh: number; other_kwh: number }[];
}
interface ChartRecord {
  source: string | null;
  step_s: number | null;
  series: Record<string, [number, number][]>;
}

async function api<T>(service: RunningService, route: string, token = ADMIN_TOKEN): Promise<T> {
  const response = await fetch(`${service.url}${route}`, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`${route}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/**
 * The page's globals as the functions evaluated in it use them: this project's types have no DOM
 * (they are Node's), so what the page offers is declared here.
 */
interface PageGlobals {
  __console?: { charts: Record<string, ChartRecord>; fleetRenders: number; fleetRenderMs: number };
  scrollY: number;
  innerWidth: number;
  scrollTo(x: number, y: number): void;
  sessionStorage: { getItem(key: string): string | null };
  document: {
    documentElement: { scrollWidth: number };
    activeElement: { id: string; dataset: Record<string, string> } | null;
    querySelectorAll(selector: string): { length: number };
    querySelector(selector: string): { dataset: Record<string, string> } | null;
  };
}
type Dataset = { dataset: Record<string, string> };

// --- reading the page's numbers back --------------------------------------------------------

const POWER = { W: 1, kW: 1e3, MW: 1e6, GW: 1e9 };
const HASHRATE = { 'TH/s': 1, 'PH/s': 1e3, 'EH/s': 1e6 };

/**
 * What is wrong with `text` as `expected` shown in one of `units`, or undefined: the number must
 * be `expected` to three significant digits, in the unit that puts it between 1 and 1000.
 */
function quantityFault(text: string | undefined, units: Record<string, number>, expected: number) {
  const m = /^(-?[\d,]+(?:\.\d+)?) (\S+)$/.exec(text ?? '');
  const scale = m ? units[m[2]!] : undefined;
  if (!m || scale === undefined) return `"${text}" is not a quantity in ${Object.keys(units).join('/')}`;
  const mantissa = Number(m[1]!.replace(/,/g, ''));
  if (expected === 0) return mantissa === 0 ? undefined : `"${text}" for 0`;
  if (Math.abs(mantissa) < 1 && scale !== 1) return `"${text}": a larger unit than needed for ${expected}`;
  if (Math.abs(mantissa) >= 1000) return `"${text}": a smaller unit than needed for ${expected}`;
  const decimals = m[1]!.split('.')[1]?.length ?? 0;
  const tolerance = (0.5 * 10 ** -decimals + 1e-9) * scale;
  return Math.abs(mantissa * scale - expected) <= tolerance ? undefined : `"${text}" for ${expected}`;
}

/** A share shown as a percentage, to the digits shown. */
function ratioFault(text: string | undefined, expected: number | null) {
  if (expected === null) return text === '–' ? undefined : `"${text}" for no value`;
  const m = /^(-?[\d,]+(?:\.\d+)?)%$/.exec(text ?? '');
  if (!m) return `"${text}" is not a percentage`;
  const decimals = m[1]!.split('.')[1]?.length ?? 0;
  const shown = Number(m[1]!.replace(/,/g, '')) / 100;
  return Math.abs(shown - expected) <= 0.5 * 10 ** -(decimals + 2) + 1e-9
    ? undefined
    : `"${text}" for ${expected}`;
}

/** The `data-field` texts of a site's row. */
function rowFields(page: Page, siteId: number): Promise<Record<string, string>> {
  return page.$eval(`tr[data-site-id="${siteId}"]`, (tr) =>
    Object.fromEntries(
      [...tr.querySelectorAll('[data-field]')].map((e) => [
        (e as unknown as Dataset).dataset.field!,
        e.textContent!.trim(),
      ]),
    ),
  );
}

/** Every way a site's row disagrees with the API's view of the site. */
async function rowFaults(page: Page, s: SiteView): Promise<string[]> {
  const f = await rowFields(page, s.id);
  const faults = [
    f.name === s.name ? undefined : `name ${f.name}`,
    f.status === s.status ? undefined : `status ${f.status} for ${s.status}`,
    quantityFault(f.drawn_power_w, POWER, s.drawn_power_w),
    quantityFault(f.available_power_w, POWER, s.available_power_w),
    quantityFault(f.surplus_w, POWER, s.surplus_w),
    ratioFault(f.surplus_ratio, s.surplus_ratio),
    quantityFault(f.ai_power_w, POWER, s.ai_power_w),
    quantityFault(f.mining_power_w, POWER, s.mining_power_w),
    ratioFault(f.gpu_utilisation_ratio, s.gpu_utilisation_ratio),
    ...(['up', 'down', 'stale', 'curtailed', 'total'] as const).map((k) =>
      // A state no device is in has no chip.
      Number(f[`devices.${k}`]?.replace(/,/g, '') ?? 0) === s.devices[k]
        ? undefined
        : `devices.${k} ${f[`devices.${k}`]}`,
    ),
  ];
  if (s.expected_hashrate_ths > 0 || s.hashrate_ths > 0) {
    faults.push(
      quantityFault(f.hashrate_ths, HASHRATE, s.hashrate_ths),
      quantityFault(f.expected_hashrate_ths, HASHRATE, s.expected_hashrate_ths),
      ratioFault(f.hashing_ratio, s.hashing_ratio),
    );
  } else if (f.hashrate_ths !== undefined) faults.push('a hashrate for a site without ASICs');
  const shownAlerts = (f.firing_alerts ?? '').split(/\s+/).filter((a) => a !== '–' && a !== '');
  const alerts = s.firing_alerts.map((a) => a.alertname);
  if (shownAlerts.sort().join() !== alerts.sort().join()) faults.push(`alerts ${shownAlerts} for ${alerts}`);
  return faults.filter((x): x is string => x !== undefined).map((x) => `${s.name}: ${x}`);
}

// --- the browser ------------------------------------------------------------------------------

/** Console messages and page errors per page; a page may expect the 401 its revoked token gets. */
const problems: string[] = [];
function watch(page: Page, label: string, expect401 = () => false) {
  page.on('console', (message) => {
    if (message.type() !== 'error' && message.type() !== 'warning') return;
    if (expect401() && /status of 401/.test(message.text())) return;
    problems.push(`${label}: ${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`${label}: page error: ${error.message}`));
}

/** The answers the page got from series and energy routes, by path, metric and step. */
function recordAnswers(page: Page) {
  const answers = new Map<string, unknown>();
  page.on('response', async (response) => {
    const url = new URL(response.url());
    if (!/\/(series|energy)$/.test(url.pathname) || !response.ok()) return;
    const key = `${url.pathname}|${url.searchParams.get('metric') ?? url.searchParams.get('bucket')}|${url.searchParams.get('step') ?? ''}`;
    answers.set(key, await response.json());
  });
  return answers;
}

async function signIn(page: Page, url: string, token: string) {
  await page.goto(`${url}/`);
  await page.fill('#signin-token', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-whoami]:not(:empty)');
}

const chartOf = (page: Page, name: string) =>
  page.evaluate((n) => (globalThis as unknown as PageGlobals).__console?.charts[n], name);

const shot = (page: Page, name: string) =>
  page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

describe('the web console', () => {
  let testDb: TestDatabase;
  let service: RunningService;
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  let sites: SiteView[];
  let darkSiteId: number;
  let pagerSiteId: number;
  let viewerToken: string;
  let viewerTokenId: number;
  let operatorToken: string;
  /** The operator's tab: it acts on the dark site's SiteDown, and later undoes what it did. */
  let operator: Page;
  /** Every URL the browser asked for, to hold the token out of URLs. */
  const requested: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    testDb = await createTestDatabase('postgres');
    service = await startTestService(testDb, {
      env: {
        // Thirty days of history must be accepted as raw readings (the default keeps 14).
        HASHWATT_RETENTION_RAW_DAYS: '35',
        HASHWATT_ALERT_INTERVAL_S: '1',
        // Sites stay up and devices fresh for the whole test once seeded; surplus alerts fire at once.
        HASHWATT_ALERT_THRESHOLDS: JSON.stringify({
          site_down_after_s: 900,
          device_stale_after_s: 900,
          surplus_for_s: 1,
        }),
      },
      tuning: { rollups: { budgetReadings: 5000 }, fleetRefreshMs: 500 },
    });
    const scenario = loadScenario('demo', { scale: 0.01, random_failures: false });
    const tokens = await provisionSites({ url: service.url, adminToken: ADMIN_TOKEN, scenario });
    // A fourth site that reports its history and then goes dark: SiteDown, after 5 s of silence.
    const darkSpec = { ...scenario.sites[0]!, name: 'dark-hall-ks' };
    const dark = await createSite(service.url, darkSpec.name, 'mining', darkSpec.capacity_kw);
    darkSiteId = dark.site.id;
    const patched = await adminRequest(service.url, 'PATCH', `/api/v1/sites/${darkSiteId}`, {
      thresholds: { site_down_after_s: 5 },
    });
    expect(patched.status).toBe(200);
    const nowMs = Date.now();
    await pushHistory(service.url, dark.token, siteHistory(darkSpec, nowMs, { days: 30, seed: 4 }));
    await Promise.all(
      scenario.sites.map((spec, i) =>
        pushHistory(service.url, tokens[spec.name]!, siteHistory(spec, nowMs, { days: 30, seed: i + 1 })),
      ),
    );
    // A hall of 30 ASICs reporting only now: more devices than one page of the device table.
    const pager = await createSite(service.url, 'pager-hall', 'mining', 200);
    pagerSiteId = pager.site.id;
    const now = await postReadings(
      service.url,
      pager.token,
      Array.from({ length: 30 }, (_, i) =>
        asicReading(`row-1/asic-${String(i + 1).padStart(2, '0')}`, Date.now()),
      ),
    );
    expect(now.body.accepted).toBe(30);
    // The mixed site's surplus alert stays pending (its `for` is an hour): the alerts page lists both states.
    const mixed = await adminRequest(service.url, 'GET', '/api/v1/sites');
    const mixedId = ((await mixed.json()) as { sites: { id: number; name: string }[] }).sites.find(
      (x) => x.name === 'demo-mixed-nordics',
    )!.id;
    const pending = await adminRequest(service.url, 'PATCH', `/api/v1/sites/${mixedId}`, {
      thresholds: { surplus_min_ratio: 0.01, surplus_for_s: 3600 },
    });
    expect(pending.status).toBe(200);
    await service.latest.flush();
    await service.rollups.runUntilIdle();

    const created = await adminRequest(service.url, 'POST', '/api/v1/tokens', {
      name: 'wall screen',
      role: 'viewer',
    });
    const viewer = (await created.json()) as { token: string; api_token: { id: number } };
    viewerToken = viewer.token;
    viewerTokenId = viewer.api_token.id;
    const operatorCreated = await adminRequest(service.url, 'POST', '/api/v1/tokens', {
      name: 'night shift',
      role: 'operator',
    });
    expect(operatorCreated.status).toBe(201);
    operatorToken = ((await operatorCreated.json()) as { token: string }).token;

    // The dark site is down and its alert fires before any page opens.
    await waitFor(
      'SiteDown firing for the dark site',
      async () =>
        (await api<{ alerts: Alert[] }>(service, '/api/v1/alerts?state=firing')).alerts.some(
          (a) => a.alertname === 'SiteDown' && a.site.id === darkSiteId,
        ),
      20_000,
      250,
    );
    sites = (await api<{ sites: SiteView[] }>(service, '/api/v1/fleet')).sites;
    expect(sites).toHaveLength(5);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    admin = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      locale: 'en-US',
      timezoneId: 'Europe/Berlin',
    });
    page = await admin.newPage();
    watch(page, 'admin');
    page.on('request', (request) => requested.push(request.url()));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await testDb?.dispose();
  });

  it('signs in with a token kept in the tab only, and shows every site with the API’s numbers', async () => {
    await signIn(page, service.url, ADMIN_TOKEN);
    expect(await page.textContent('[data-whoami]')).toBe('admin');
    await page.waitForSelector(`tr[data-site-id="${darkSiteId}"]`);
    expect(await page.locator('tbody[data-rows] tr').count()).toBe(5);
    // Fleet figures move only with alerts here: compare each row with a fresh answer until they agree.
    await expect
      .poll(
        async () => {
          const fleet = (await api<{ sites: SiteView[] }>(service, '/api/v1/fleet')).sites;
          return (await Promise.all(fleet.map((s) => rowFaults(page, s)))).flat();
        },
        { timeout: 15_000, interval: 500 },
      )
      .toEqual([]);
    expect((await rowFields(page, darkSiteId)).status).toBe('down');
    // The totals are the API's sums.
    const totalDrawn = sites.reduce((n, s) => n + s.drawn_power_w, 0);
    expect(
      quantityFault((await page.textContent('[data-total="drawn_power_w"]'))?.trim(), POWER, totalDrawn),
    ).toBeUndefined();
    expect(
      await page.evaluate(() =>
        (globalThis as unknown as PageGlobals).sessionStorage.getItem('hashwatt.console.token'),
      ),
    ).toBe(ADMIN_TOKEN);
    await shot(page, 'fleet');
  });

  it('sorts and filters from the keyboard, and keeps both across a refresh', async () => {
    await page.focus('button[data-sort="drawn"]');
    await page.keyboard.press('Enter');
    expect(await page.getAttribute('th[data-col="drawn"]', 'aria-sort')).toBe('descending');
    const order = async () =>
      page.$$eval('tbody[data-rows] tr', (trs) => trs.map((tr) => Number((tr as Dataset).dataset.siteId)));
    const byDrawn = [...sites].sort(
      (a, b) => b.drawn_power_w - a.drawn_power_w || a.name.localeCompare(b.name),
    );
    expect(await order()).toEqual(byDrawn.map((s) => s.id));
    await page.fill('input[data-filter="q"]', 'demo-');
    await page.selectOption('select[data-filter="status"]', 'up');
    const expected = byDrawn.filter((s) => s.name.includes('demo-') && s.status === 'up').map((s) => s.id);
    expect(await order()).toEqual(expected);
    const renders = await page.evaluate(() => (globalThis as unknown as PageGlobals).__console!.fleetRenders);
    await page.waitForFunction(
      (n) => (globalThis as unknown as PageGlobals).__console!.fleetRenders > n,
      renders,
      { timeout: 15_000 },
    );
    expect(await order()).toEqual(expected);
    expect(await page.inputValue('input[data-filter="q"]')).toBe('demo-');
    await page.fill('input[data-filter="q"]', '');
    await page.selectOption('select[data-filter="status"]', '');
    expect(await page.locator('tbody[data-rows] tr').count()).toBe(5);
  });

  it('draws a site’s history with the API’s points, reading the hour rollups for 30 days', async () => {
    const answers = recordAnswers(page);
    const mining = sites.find((s) => s.name === 'demo-mining-tx')!;
    await page.click(`tr[data-site-id="${mining.id}"] a`);
    await page.waitForSelector('[data-chart="site-power"]');
    const base = `/api/v1/sites/${mining.id}/series`;

    // 24 h, the default: one-minute steps from the site-minute rollup.
    await expect.poll(async () => (await chartOf(page, 'site-power'))?.step_s, { timeout: 15_000 }).toBe(60);
    for (const [chart, metrics] of [
      ['site-power', ['power_w', 'available_power_w']],
      ['site-hashrate', ['hashrate_ths', 'expected_hashrate_ths']],
    ] as const) {
      for (const metric of metrics) {
        await expect.poll(() => answers.has(`${base}|${metric}|60`)).toBe(true);
        const answer = answers.get(`${base}|${metric}|60`) as Series;
        expect(answer.source).toBe('1m');
        const points = answer.points.filter(([, v]) => v !== null);
        expect(points.length).toBeGreaterThan(1000);
        expect((await chartOf(page, chart))!.series[metric]).toEqual(points);
      }
    }
    expect(await page.getAttribute('[data-source-note]', 'data-source')).toBe('1m');
    await shot(page, 'site-24h');

    // 30 d: hour steps, read from the hour rollup, reaching back to the start of the history.
    await page.click('button[data-range="30d"]');
    expect(await page.getAttribute('button[data-range="30d"]', 'aria-pressed')).toBe('true');
    // The link says the range, so a reload or a shared link opens the same view.
    expect(page.url()).toMatch(new RegExp(`#/sites/${mining.id}\\?range=30d$`));
    await expect
      .poll(async () => (await chartOf(page, 'site-power'))?.step_s, { timeout: 15_000 })
      .toBe(3600);
    await expect.poll(() => answers.has(`${base}|power_w|3600`)).toBe(true);
    const month = answers.get(`${base}|power_w|3600`) as Series;
    expect(month.source).toBe('1h');
    const monthPoints = month.points.filter(([, v]) => v !== null);
    expect(monthPoints.length).toBeGreaterThan(28 * 24);
    expect(monthPoints[0]![0]).toBeLessThan(Date.now() - 29 * DAY_MS);
    const chart = (await chartOf(page, 'site-power'))!;
    expect(chart.source).toBe('1h');
    expect(chart.series.power_w).toEqual(monthPoints);
    expect(await page.textContent('[data-source-note]')).toContain('from 1-hour rollups');
    // Energy per day: the chart's bars are the answer's buckets.
    await expect.poll(() => answers.has(`/api/v1/sites/${mining.id}/energy|day|`)).toBe(true);
    const energy = answers.get(`/api/v1/sites/${mining.id}/energy|day|`) as Energy;
    expect(energy.buckets.length).toBeGreaterThanOrEqual(30);
    await expect
      .poll(async () => (await chartOf(page, 'site-energy'))?.series.mining_kwh)
      .toEqual(energy.buckets.map((b) => [Date.parse(b.start), b.mining_kwh]));
    await shot(page, 'site-30d');

    // One device's own charts: its hour rollup, the very points the API gave.
    const firstDevice = page.locator('[data-device-rows] tr').first();
    const deviceId = Number(await firstDevice.getAttribute('data-device-id'));
    await firstDevice.locator('a').click();
    await page.waitForSelector('[data-device-detail]:not([hidden])');
    expect(page.url()).toMatch(new RegExp(`#/sites/${mining.id}/devices/${deviceId}$`));
    const deviceKey = `/api/v1/sites/${mining.id}/devices/${deviceId}/series|power_w|3600`;
    await expect.poll(() => answers.has(deviceKey), { timeout: 15_000 }).toBe(true);
    const deviceAnswer = answers.get(deviceKey) as Series;
    expect(deviceAnswer.source).toBe('1h');
    await expect
      .poll(async () => (await chartOf(page, 'device-power'))?.series.power_w)
      .toEqual(deviceAnswer.points.filter(([, v]) => v !== null));
    expect(await page.locator('[data-chart="device-hashrate"]').count()).toBe(1);
    await shot(page, 'device');

    // The state and kind filters are the API's.
    await page.selectOption('[data-device-kind]', 'meter');
    await expect.poll(() => page.locator('[data-device-rows] tr').count()).toBe(1);
    expect(await page.isDisabled('[data-page-next]')).toBe(true);
  });

  it('pages a site’s devices with the API’s cursor, and searches them', async () => {
    await page.goto(`${service.url}/#/sites/${pagerSiteId}`);
    const names = () =>
      page.$$eval('[data-device-rows] th', (ths) => ths.map((th) => th.textContent!.trim()));
    await expect.poll(async () => (await names()).length, { timeout: 10_000 }).toBe(25);
    expect((await names())[0]).toBe('row-1/asic-01');
    expect(await page.isDisabled('[data-page-prev]')).toBe(true);
    await page.click('[data-page-next]');
    await expect.poll(names).toEqual(['26', '27', '28', '29', '30'].map((n) => `row-1/asic-${n}`));
    expect(await page.textContent('[data-page-label]')).toBe('page 2');
    expect(await page.isDisabled('[data-page-next]')).toBe(true);
    await page.click('[data-page-prev]');
    await expect.poll(async () => (await names()).length).toBe(25);
    await page.fill('[data-device-q]', 'asic-1');
    await expect
      .poll(names)
      .toEqual(['10', '11', '12', '13', '14', '15', '16', '17', '18', '19'].map((n) => `row-1/asic-${n}`));
    await shot(page, 'devices-search');
  });

  it('shows a site’s alert history, with the actions, to the admin', async () => {
    await page.goto(`${service.url}/#/sites/${darkSiteId}`);
    await page.waitForSelector('[data-alert-rows] tr[data-alertname="SiteDown"]');
    expect(await page.textContent('[data-site-status]')).toBe('down');
    expect(await page.locator('[data-alert-rows] [data-alert-actions] button').count()).toBeGreaterThan(0);
    expect(await page.locator('button[data-action="new-silence"]').textContent()).toBe('Silence this site…');
  });

  it('lists firing and pending alerts with their annotations and the admin’s actions, and the resolved', async () => {
    await page.goto(`${service.url}/#/alerts`);
    await page.waitForSelector('.alerts-table tbody tr');
    await expect
      .poll(
        async () => {
          const [firing, pending] = await Promise.all(
            ['firing', 'pending'].map(
              async (state) =>
                (await api<{ alerts: Alert[] }>(service, `/api/v1/alerts?state=${state}`)).alerts,
            ),
          );
          const shown = await page.$$eval('.alerts-table tbody tr', (trs) =>
            trs.map((tr) => Number((tr as Dataset).dataset.alertId)).sort((a, b) => a - b),
          );
          return { shown, api: [...firing!, ...pending!].map((a) => a.id).sort((a, b) => a - b) };
        },
        { timeout: 20_000, interval: 500 },
      )
      .toSatisfy(
        ({ shown, api }: { shown: number[]; api: number[] }) =>
          shown.join() === api.join() && shown.length > 0,
      );
    await page.waitForSelector('tr[data-alertname="PowerSurplus"] .state-alert-pending');
    const siteDown = (await api<{ alerts: Alert[] }>(service, '/api/v1/alerts?state=firing')).alerts.find(
      (a) => a.alertname === 'SiteDown',
    )!;
    const row = page.locator(`tr[data-alert-id="${siteDown.id}"]`);
    expect(await row.textContent()).toContain(siteDown.summary!);
    expect(await row.textContent()).toContain('dark-hall-ks');
    expect(await row.locator('.handling-cell').textContent()).toBe('not acknowledged');
    const extra = Object.keys(siteDown.annotations).filter((k) => k !== 'summary' && k !== 'description');
    if (extra.length > 0) {
      await row.locator('details summary').click();
      for (const key of extra) expect(await row.locator('dl.annotations').textContent()).toContain(key);
    }
    expect(await page.locator('.alerts-table thead th', { hasText: 'Actions' }).count()).toBe(1);
    expect(await page.locator('[data-alert-actions]').count()).toBe(
      await page.locator('.alerts-table tbody tr').count(),
    );
    // A firing alert is acknowledged or silenced; a pending one can only be silenced.
    expect(await row.locator('button').allTextContents()).toEqual(['Acknowledge…', 'Silence…']);
    expect(
      await page
        .locator('.alerts-table tbody tr[data-state="pending"]')
        .first()
        .locator('button')
        .allTextContents(),
    ).toEqual(['Silence…']);
    await shot(page, 'alerts');

    // The history: what the API lists as resolved, or the empty state when nothing has resolved.
    await page.click('nav.tabs a[data-view="resolved"]');
    await page.waitForSelector('nav.tabs a[data-view="resolved"][aria-current="page"]');
    expect(page.url()).toMatch(/#\/alerts\/resolved$/);
    expect(await page.textContent('h1')).toBe('Resolved alerts');
    await expect
      .poll(
        async () => {
          const resolved = (
            await api<{ alerts: Alert[] }>(service, '/api/v1/alerts?state=resolved&limit=200')
          ).alerts;
          const empty = await page.isVisible('.alerts-table + [data-empty]');
          const shown = await page.$$eval('.alerts-table tbody tr', (trs) =>
            trs.map((tr) => Number((tr as Dataset).dataset.alertId)).sort((a, b) => a - b),
          );
          return {
            ok:
              shown.join() ===
              resolved
                .map((a) => a.id)
                .sort((a, b) => a - b)
                .join(),
            empty,
            shown,
          };
        },
        { timeout: 15_000, interval: 300 },
      )
      .toSatisfy(
        ({ ok, empty, shown }: { ok: boolean; empty: boolean; shown: number[] }) =>
          // The history as the API lists it, or the empty state when nothing has resolved yet.
          ok && empty === (shown.length === 0),
      );
    expect(await page.locator('.alerts-table tbody button').count()).toBe(0);
  });

  it('acknowledges and silences an alert from the keyboard as an operator: the API and /metrics say so', async () => {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      locale: 'en-US',
      timezoneId: 'Europe/Berlin',
    });
    operator = await context.newPage();
    watch(operator, 'operator');
    await signIn(operator, service.url, operatorToken);
    expect(await operator.textContent('[data-whoami]')).toBe('operator “night shift” · all sites');
    await operator.goto(`${service.url}/#/alerts`);
    const firing = (await api<{ alerts: Alert[] }>(service, '/api/v1/alerts?state=firing')).alerts;
    const alert = firing.find((a) => a.alertname === 'SiteDown' && a.site.id === darkSiteId)!;
    expect(alert.acknowledgement).toBeNull();
    expect(alert.silenced_by).toEqual([]);
    const labels = { alertname: 'SiteDown', site: 'dark-hall-ks', severity: 'critical' };
    expect(await readCounter(service.url, 'hashwatt_alert_silences_active')).toBe(0);
    expect(await readCounter(service.url, 'hashwatt_alerts_silenced', labels)).toBe(0);
    const row = operator.locator(`tr[data-alert-id="${alert.id}"]`);
    const focused = () =>
      operator.evaluate(() => {
        const active = (globalThis as unknown as PageGlobals).document.activeElement;
        return active && { id: active.id, action: active.dataset.action, alert: active.dataset.alertId };
      });

    // Acknowledge: Enter on the button, type, Ctrl+Enter sends; focus comes back to the row.
    await operator.focus(`tr[data-alert-id="${alert.id}"] button[data-action="ack"]`);
    await operator.keyboard.press('Enter');
    await operator.waitForSelector('[data-ack-dialog][open]');
    expect((await focused())?.id).toBe('ack-comment');
    expect(await operator.textContent('[data-ack-target]')).toContain('SiteDown at dark-hall-ks');
    await operator.keyboard.type('on it: truck rolling to the uplink');
    await operator.keyboard.press('Control+Enter');
    await row.locator('[data-ack]').waitFor();
    expect(await operator.isVisible('[data-ack-dialog]')).toBe(false);
    expect(await focused()).toEqual({ id: '', action: 'unack', alert: String(alert.id) });
    expect(await row.locator('[data-ack-by]').textContent()).toBe('night shift');
    expect(await row.locator('[data-ack-comment]').textContent()).toBe('on it: truck rolling to the uplink');
    const acknowledged = (await api<{ alerts: Alert[] }>(service, '/api/v1/alerts?state=firing')).alerts.find(
      (a) => a.id === alert.id,
    )!;
    expect(acknowledged.acknowledgement).toMatchObject({
      by: 'night shift',
      comment: 'on it: truck rolling to the uplink',
    });
    expect(Math.abs(Date.parse(acknowledged.acknowledgement!.at) - Date.now())).toBeLessThan(60_000);

    // Escape closes a form without acting, and focus returns to the button that opened it.
    await operator.focus(`tr[data-alert-id="${alert.id}"] button[data-action="silence"]`);
    await operator.keyboard.press('Enter');
    await operator.waitForSelector('[data-silence-dialog][open]');
    await operator.keyboard.press('Escape');
    await operator.waitForSelector('[data-silence-dialog]', { state: 'hidden' });
    expect(await focused()).toEqual({ id: '', action: 'silence', alert: String(alert.id) });

    // Silence: the form comes with the alert's site and name; one hour, and why.
    await operator.keyboard.press('Enter');
    await operator.waitForSelector('[data-silence-dialog][open]');
    expect(await operator.inputValue('#silence-site')).toBe(String(darkSiteId));
    expect(await operator.inputValue('#silence-alertname')).toBe('SiteDown');
    // An operator of every site may silence every site too.
    expect(await operator.locator('#silence-site option').allTextContents()).toEqual([
      'dark-hall-ks',
      'every site',
    ]);
    await operator.check('input[name="silence-duration"][value="1h"]');
    // No comment: the form says why it does not send, and sends nothing.
    await operator.click('[data-silence-form] button[type=submit]');
    expect(await operator.textContent('#silence-error')).toContain('comment');
    await operator.fill('#silence-comment', 'uplink swap, ticket 1432');
    const sentAt = Date.now();
    await operator.click('[data-silence-form] button[type=submit]');
    await row.locator('[data-silenced]').waitFor();
    expect(await operator.textContent('[data-action-status]')).toContain('until');

    const silences = (await api<{ silences: Silence[] }>(service, '/api/v1/silences')).silences;
    expect(silences).toHaveLength(1);
    const silence = silences[0]!;
    expect(silence).toMatchObject({
      state: 'active',
      site: { id: darkSiteId, name: 'dark-hall-ks' },
      alertname: 'SiteDown',
      comment: 'uplink swap, ticket 1432',
      created_by: 'night shift',
      expired_at: null,
    });
    expect(Math.abs(Date.parse(silence.ends_at) - (sentAt + 3_600_000))).toBeLessThan(60_000);
    const held = (await api<{ alerts: Alert[] }>(service, '/api/v1/alerts?state=firing')).alerts.find(
      (a) => a.id === alert.id,
    )!;
    expect(held.silenced_by).toEqual([silence.id]);
    expect(await row.locator('[data-silenced]').getAttribute('data-silenced')).toBe(String(silence.id));
    await expect.poll(() => readCounter(service.url, 'hashwatt_alert_silences_active')).toBe(1);
    await expect.poll(() => readCounter(service.url, 'hashwatt_alerts_silenced', labels)).toBe(1);
    // Only that alert: the other firing alerts page as before.
    expect(await readCounter(service.url, 'hashwatt_alerts_silenced')).toBe(1);
    // The handling filter finds it, and leaves it out of what needs attention.
    await operator.selectOption('[data-filter-handling]', 'silenced');
    expect(await operator.$$eval('.alerts-table tbody tr', (trs) => trs.length)).toBe(1);
    await operator.selectOption('[data-filter-handling]', 'attention');
    expect(await row.count()).toBe(0);
    await operator.selectOption('[data-filter-handling]', '');
    await shot(operator, 'alerts-acknowledged-silenced');

    await operator.click('nav.tabs a[data-view="silences"]');
    const silenceRow = operator.locator(`tr[data-silence-id="${silence.id}"]`);
    await silenceRow.waitFor();
    expect(await silenceRow.locator('[data-field="comment"]').textContent()).toBe('uplink swap, ticket 1432');
    expect(await silenceRow.textContent()).toContain('night shift');
    expect(await silenceRow.locator('button[data-action="expire"]').count()).toBe(1);
    await shot(operator, 'silences');
  });

  it('shows a viewer who acknowledged and what is silenced, but no action; a revoked token signs out', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
    const viewer = await context.newPage();
    let revoked = false;
    watch(viewer, 'viewer', () => revoked);
    const asked: string[] = [];
    viewer.on('request', (request) => asked.push(`${request.method()} ${new URL(request.url()).pathname}`));
    await signIn(viewer, service.url, viewerToken);
    expect(await viewer.textContent('[data-whoami]')).toBe('viewer “wall screen” · all sites');
    await viewer.waitForSelector(`tr[data-site-id="${darkSiteId}"]`);
    expect(await viewer.locator('tbody[data-rows] tr').count()).toBe(5);

    await viewer.goto(`${service.url}/#/alerts`);
    const siteDown = viewer.locator('.alerts-table tbody tr[data-alertname="SiteDown"]');
    await siteDown.locator('[data-silenced]').waitFor();
    expect(await siteDown.locator('[data-ack-by]').textContent()).toBe('night shift');
    expect(await viewer.locator('.alerts-table thead th', { hasText: 'Actions' }).count()).toBe(0);
    expect(await viewer.locator('[data-alert-actions]').count()).toBe(0);
    expect(await viewer.locator('button[data-action]').count()).toBe(0);
    await shot(viewer, 'alerts-viewer');

    await viewer.click('nav.tabs a[data-view="silences"]');
    await viewer.waitForSelector('.silences-table tbody tr[data-silence-id]');
    expect(await viewer.locator('button[data-action]').count()).toBe(0);
    expect(await viewer.locator('.silences-table thead th', { hasText: 'Actions' }).count()).toBe(0);
    await shot(viewer, 'silences-viewer');

    await viewer.goto(`${service.url}/#/sites/${darkSiteId}`);
    await viewer.waitForSelector('[data-alert-rows] tr[data-alertname="SiteDown"] [data-silenced]');
    expect(await viewer.locator('[data-alert-actions]').count()).toBe(0);
    expect(await viewer.locator('button[data-action]').count()).toBe(0);
    // Every token reads the alerts of its sites now; a viewer asks for them, and changes nothing.
    expect(asked).toContain('GET /api/v1/alerts');
    expect(asked).toContain(`GET /api/v1/sites/${darkSiteId}/alerts`);
    expect(asked.filter((r) => !r.startsWith('GET '))).toEqual([]);
    await shot(viewer, 'site-viewer');

    revoked = true;
    expect((await adminRequest(service.url, 'DELETE', `/api/v1/tokens/${viewerTokenId}`)).status).toBe(204);
    await viewer.waitForSelector('#signin-token', { timeout: 15_000 });
    expect(await viewer.textContent('[data-signin-error]')).toContain('no longer accepts this token');
    expect(
      await viewer.evaluate(() =>
        (globalThis as unknown as PageGlobals).sessionStorage.getItem('hashwatt.console.token'),
      ),
    ).toBeNull();
    expect(await viewer.isVisible('.topbar')).toBe(false);
    await shot(viewer, 'signin-after-revoke');
    await context.close();
  });

  it('expires the silence and takes the acknowledgement back: the API and /metrics follow', async () => {
    const silence = (await api<{ silences: Silence[] }>(service, '/api/v1/silences')).silences[0]!;
    const silenceRow = operator.locator(`tr[data-silence-id="${silence.id}"]`);
    await silenceRow.locator('button[data-action="expire"]').click();
    // The active list no longer holds it; the expired one does, with who ended it.
    await silenceRow.waitFor({ state: 'detached' });
    const expired = (await api<{ silences: Silence[] }>(service, '/api/v1/silences?state=expired')).silences;
    expect(expired.find((s) => s.id === silence.id)).toMatchObject({
      state: 'expired',
      expired_by: 'night shift',
    });
    expect((await api<{ silences: Silence[] }>(service, '/api/v1/silences')).silences).toEqual([]);
    await operator.selectOption('[data-silence-state]', 'expired');
    await silenceRow.waitFor();
    expect(await silenceRow.textContent()).toContain('expired early by night shift');
    expect(await silenceRow.locator('button').count()).toBe(0);
    await expect.poll(() => readCounter(service.url, 'hashwatt_alert_silences_active')).toBe(0);
    await expect.poll(() => readCounter(service.url, 'hashwatt_alerts_silenced')).toBe(0);

    await operator.click('nav.tabs a[data-view="open"]');
    const alert = (await api<{ alerts: Alert[] }>(service, '/api/v1/alerts?state=firing')).alerts.find(
      (a) => a.alertname === 'SiteDown' && a.site.id === darkSiteId,
    )!;
    expect(alert.silenced_by).toEqual([]);
    const row = operator.locator(`tr[data-alert-id="${alert.id}"]`);
    await row.locator('[data-ack]').waitFor();
    expect(await row.locator('[data-silenced]').count()).toBe(0);
    await row.locator('button[data-action="unack"]').click();
    await row.locator('button[data-action="ack"]').waitFor();
    expect(await row.locator('[data-ack]').count()).toBe(0);
    const after = (await api<{ alerts: Alert[] }>(service, '/api/v1/alerts?state=firing')).alerts.find(
      (a) => a.id === alert.id,
    )!;
    expect(after.acknowledgement).toBeNull();
    await operator.context().close();
  });

  it('fits 1280 × 800 and a phone (tables become cards); nothing scrolls sideways', async () => {
    for (const hash of ['#/', `#/sites/${sites[0]!.id}`, '#/alerts', '#/alerts/silences']) {
      await page.goto(`${service.url}/${hash}`);
      await page.waitForSelector('h1');
      await page.waitForLoadState('networkidle');
      expect(
        await page.evaluate(() => {
          const g = globalThis as unknown as PageGlobals;
          return g.document.documentElement.scrollWidth <= g.innerWidth;
        }),
        `${hash} at 1280`,
      ).toBe(true);
      for (const table of await page.locator('main table').all()) {
        const box = await table.boundingBox();
        if (box) expect(box.x + box.width, `a table of ${hash} at 1280`).toBeLessThanOrEqual(1280);
      }
    }
    await page.setViewportSize({ width: 390, height: 844 });
    for (const hash of ['#/', `#/sites/${sites[0]!.id}`, '#/alerts', '#/alerts/silences']) {
      await page.goto(`${service.url}/${hash}`);
      await page.waitForSelector('h1');
      await page.waitForLoadState('networkidle');
      expect(
        await page.evaluate(() => {
          const g = globalThis as unknown as PageGlobals;
          return g.document.documentElement.scrollWidth <= g.innerWidth;
        }),
        hash,
      ).toBe(true);
    }
    await page.goto(`${service.url}/#/`);
    await page.waitForSelector('tbody[data-rows] tr');
    // The header row is left to screen readers; each card labels its own lines.
    expect((await page.locator('.fleet-table thead').boundingBox())!.height).toBeLessThanOrEqual(1);
    expect(
      await page.$eval(
        'tbody[data-rows] td',
        (td) =>
          (
            globalThis as unknown as { getComputedStyle(e: unknown, pseudo: string): { content: string } }
          ).getComputedStyle(td, '::before').content,
      ),
    ).toBe('"Status"');
    await shot(page, 'fleet-phone');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('keeps the token out of every URL it asked for', () => {
    expect(requested.length).toBeGreaterThan(20);
    expect(requested.filter((url) => url.includes(ADMIN_TOKEN))).toEqual([]);
  });

  it('renders 1,000 sites and keeps scroll, filter and rows in place across a refresh', async () => {
    const big = await admin.newPage();
    watch(big, 'thousand');
    const template = sites.find((s) => s.kind === 'mixed')!;
    let answers = 0;
    await big.route('**/api/v1/fleet', (route) => {
      answers++;
      const synthetic = Array.from({ length: 1000 }, (_, i) => ({
        ...template,
        id: i + 1,
        name: `site-${String(i).padStart(4, '0')}`,
        // Each answer differs, so a refresh really rewrites rows.
        drawn_power_w: template.drawn_power_w + i + answers,
        status: i % 50 === 0 ? 'down' : 'up',
        firing_alerts: [],
      }));
      return route.fulfill({ json: { as_of: new Date().toISOString(), sites: synthetic } });
    });
    await signIn(big, service.url, ADMIN_TOKEN);
    await big.waitForFunction(
      () =>
        (globalThis as unknown as PageGlobals).document.querySelectorAll('tbody[data-rows] tr').length ===
        1000,
    );
    await big.evaluate(() => (globalThis as unknown as PageGlobals).scrollTo(0, 6000));
    const scrolled = await big.evaluate(() => (globalThis as unknown as PageGlobals).scrollY);
    expect(scrolled).toBeGreaterThan(1000);
    await big.evaluate(() => {
      (globalThis as unknown as PageGlobals).document.querySelector(
        'tr[data-site-id="500"]',
      )!.dataset.marker = 'kept';
    });
    const before = await big.textContent('tr[data-site-id="500"] [data-field="drawn_power_w"]');
    const renders = await big.evaluate(() => (globalThis as unknown as PageGlobals).__console!.fleetRenders);
    await big.waitForFunction(
      (n) => (globalThis as unknown as PageGlobals).__console!.fleetRenders > n,
      renders,
      { timeout: 15_000 },
    );
    expect(await big.evaluate(() => (globalThis as unknown as PageGlobals).scrollY)).toBe(scrolled);
    // The same row element, updated in place.
    expect(await big.getAttribute('tr[data-site-id="500"]', 'data-marker')).toBe('kept');
    expect(await big.locator('tbody[data-rows] tr').count()).toBe(1000);
    expect(answers).toBeGreaterThan(1);
    // For the report, not asserted (no wall-clock bounds on a shared machine).
    const renderMs = await big.evaluate(
      () => (globalThis as unknown as PageGlobals).__console!.fleetRenderMs,
    );
    console.info(`console: 1,000 fleet rows redrawn in ${renderMs.toFixed(1)} ms`);
    expect(typeof before).toBe('string');
    // The viewport only: a full-page shot of 1,000 rows is a 100,000-pixel image.
    await big.screenshot({ path: path.join(ARTIFACTS, 'fleet-1000.png') });
    await big.evaluate(() => (globalThis as unknown as PageGlobals).scrollTo(0, 0));
    await big.fill('input[data-filter="q"]', 'site-0042');
    expect(await big.locator('tbody[data-rows] tr').count()).toBe(1);
    await big.fill('input[data-filter="q"]', '');
    await big.selectOption('select[data-filter="status"]', 'down');
    expect(await big.locator('tbody[data-rows] tr').count()).toBe(20);
    await big.close();
  });

  it('logged no console error or warning and threw no page error', () => {
    expect(problems).toEqual([]);
  });
});
