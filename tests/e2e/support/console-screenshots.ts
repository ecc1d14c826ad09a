/**
 * The README's console screenshots, from a real hashwatt holding real (simulated) data:
 *
 *   node tests/e2e/support/console-screenshots.ts
 *
 * writes docs/images/console-fleet.png and docs/images/console-site.png at 1280 × 800. The sites
 * are those of the shipped demo, surplus and outage scenarios (simulators/scenarios), each with a
 * week of history pushed through ingest and rolled up by the real job (console-history.ts), then
 * their agents run live for a while, as `npm run demo`'s do; one site's agent never comes back,
 * so the fleet shows a site down and its alert. Nothing on the pages is stubbed. Postgres as the
 * e2e test uses it (tests/support/databases.ts).
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { loadScenario, provisionSites, type Scenario, startFleet } from '../../../simulators/index.ts';
import { createTestDatabase } from '../../support/databases.ts';
import { ADMIN_TOKEN, adminRequest, startTestService } from '../../support/service.ts';
import { pushHistory, siteHistory } from './console-history.ts';

const OUT = path.resolve(import.meta.dirname, '../../../docs/images');
const DAYS = 8;
/** How long the live agents report before the pictures: the sites are fresh, the alerts evaluated. */
const LIVE_S = 30;
/** The site whose agent stays away. */
const DARK = 'outage-ai-va';
/** The site whose page is pictured: every chart (power, hashrate, GPU, energy). */
const PICTURED = 'demo-mixed-nordics';

const log = (line: string) => process.stderr.write(`${line}\n`);

const db = await createTestDatabase('postgres');
const service = await startTestService(db, {
  env: {
    HASHWATT_RETENTION_RAW_DAYS: String(DAYS + 2),
    HASHWATT_ALERT_INTERVAL_S: '1',
  },
});
try {
  const scenarios = ['demo', 'surplus', 'outage'].map((name) =>
    loadScenario(name, { scale: 0.05, random_failures: false, duration_s: LIVE_S }),
  );
  const tokens: Record<string, string> = {};
  for (const scenario of scenarios)
    Object.assign(tokens, await provisionSites({ url: service.url, adminToken: ADMIN_TOKEN, scenario }));
  const sites = (
    (await (await adminRequest(service.url, 'GET', '/api/v1/sites')).json()) as {
      sites: { id: number; name: string }[];
    }
  ).sites;
  const idOf = (name: string) => sites.find((s) => s.name === name)!.id;
  // The dark site is down a minute after its last reading, not the default's.
  await adminRequest(service.url, 'PATCH', `/api/v1/sites/${idOf(DARK)}`, {
    thresholds: { site_down_after_s: 20 },
  });

  const nowMs = Date.now();
  let seed = 1;
  for (const scenario of scenarios) {
    await Promise.all(
      scenario.sites.map((spec) =>
        pushHistory(service.url, tokens[spec.name]!, siteHistory(spec, nowMs, { days: DAYS, seed: seed++ })),
      ),
    );
  }
  log(`history of ${DAYS} days pushed; rolling up`);
  await service.latest.flush();
  await service.rollups.runUntilIdle();

  log(`agents live for ${LIVE_S} s`);
  const live = scenarios.map((scenario) =>
    startFleet({
      scenario: { ...scenario, sites: scenario.sites.filter((s) => s.name !== DARK) } as Scenario,
      url: service.url,
      tokens,
      seed: 1,
      drainMs: 5000,
    }),
  );
  await Promise.all(live.map((f) => f.done));
  await Promise.all(live.map((f) => f.stop({ flushMs: 5000 })));
  await service.latest.flush();
  await service.rollups.runUntilIdle();

  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      locale: 'en-US',
      timezoneId: 'Europe/Berlin',
      colorScheme: 'light',
    });
    const page = await context.newPage();
    page.on('pageerror', (error) => {
      throw error;
    });
    await page.goto(`${service.url}/`);
    await page.fill('#signin-token', ADMIN_TOKEN);
    await page.click('button[type=submit]');
    await page.waitForSelector(`tr[data-site-id="${idOf(DARK)}"] [data-field="status"]:text("down")`, {
      timeout: 60_000,
    });
    await page.waitForSelector(`tr[data-site-id="${idOf(DARK)}"] [data-field="firing_alerts"] .chip`, {
      timeout: 60_000,
    });
    mkdirSync(OUT, { recursive: true });
    const fleetFile = path.join(OUT, 'console-fleet.png');
    await page.screenshot({ path: fleetFile });

    await page.goto(`${service.url}/#/sites/${idOf(PICTURED)}?range=24h`);
    await page.waitForFunction(() => {
      const charts = (
        globalThis as unknown as { __console?: { charts: Record<string, { step_s: number | null }> } }
      ).__console?.charts;
      return ['site-power', 'site-hashrate', 'site-gpu', 'site-energy'].every(
        (n) => charts?.[n] !== undefined,
      );
    });
    await page.waitForLoadState('networkidle');
    const siteFile = path.join(OUT, 'console-site.png');
    await page.screenshot({ path: siteFile });
    for (const file of [fleetFile, siteFile])
      log(`${path.relative(process.cwd(), file)}: ${Math.round(statSync(file).size / 1024)} KB`);
  } finally {
    await browser.close();
  }
} finally {
  await service.stop();
  await db.dispose();
}
