// The web console's two load targets, in a real browser against a real service:
//
//   node bench/console.ts [--quick]
//
// (a) the fleet page with 1,000 sites: from navigation until all 1,000 rows are in the table and
//     the next frame has been produced, target 1 s;
// (b) a site's 30-day history: from navigation to `#/sites/ID?range=30d` until every chart of the
//     site (power, hashrate, GPU utilisation, energy) holds its 30-day points and the next frame
//     has been produced, target 1 s.
//
// Debian's Chromium (/usr/bin/chromium, headless) is driven by playwright-core; hashwatt runs in
// this process on a fresh Postgres database (tests/support/service.ts), as the e2e test's does.
// The 1,000 sites are real: created through the admin API and given one reading each (a meter
// and an ASIC) through ingest, so the fleet answer is the service's own, not a stub. The 30-day
// site is the demo scenario's mixed site, its history simulated (tests/e2e/support/console-history.ts:
// every 30 minutes for days 30 to 1, every minute for the last day), pushed through ingest and
// rolled up by the real job (`service.rollups.runUntilIdle()`), so the 30-day range reads the
// hour tier as it does in production.
//
// Each load is a full navigation (about:blank first) in one tab signed in once: the token stays
// in sessionStorage, and the assets are revalidated (ETag, 304) as the service asks. The moments
// are taken in the page against its own navigation start: an init script wraps the console's
// test hook (`window.__console`), so "rows present" is the end of the render that inserted them
// and "charts drawn" the update that gave the last chart its points; "painted" is the first
// animation frame after that, then a task (the frame that shows it). The first load of each page
// is also reported apart (the sign-in page fetched the scripts once before it); the median and
// p95 are over every load.
//
// Writes bench/results/console.json (console.quick.json with --quick). bench/index.ts does not
// run it (it needs Chromium).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { type Browser, chromium, type Page } from 'playwright-core';
import { loadScenario } from '../simulators/index.ts';
import type { RunningService } from '../src/service.ts';
import { pushHistory, siteHistory } from '../tests/e2e/support/console-history.ts';
import { createTestDatabase, type TestDatabase } from '../tests/support/databases.ts';
import {
  ADMIN_TOKEN,
  adminRequest,
  asicReading,
  createSite,
  postReadings,
  startTestService,
} from '../tests/support/service.ts';

const CHROMIUM = '/usr/bin/chromium';
const SITES = 1000;
const TARGET_MS = 1000;
const log = (line: string) => process.stderr.write(`${line}\n`);

/** Days of history of the site whose charts are measured. */
const HISTORY_DAYS = 30;
/** Loads of each page. */
const LOADS = { full: 20, quick: 5 };

interface Stats {
  loads: number;
  first_ms: number;
  median_ms: number;
  p95_ms: number;
  max_ms: number;
  all_ms: number[];
}

/** The p-quantile by the nearest rank (p95 of 20 loads is the 19th, of 5 the worst). */
function quantile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    loads: values.length,
    first_ms: round(values[0]!),
    median_ms: round(quantile(sorted, 0.5)),
    p95_ms: round(quantile(sorted, 0.95)),
    max_ms: round(sorted.at(-1)!),
    all_ms: values.map(round),
  };
}

/** Runs `fn` over `items`, `width` at a time. */
async function inParallel<T>(items: T[], width: number, fn: (item: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

/**
 * What the page records, against its navigation start (performance.now()): installed before the
 * console's scripts run, it predefines `window.__console` (the console keeps an existing one) with
 * a `fleetRenders` setter and a `charts` proxy, so the moments are those of the console's own
 * renders, not of a poll. Runs in the page: no types of this project there.
 */
function instrumentPage(wanted: { rows: number; charts: string[]; stepS: number }) {
  const g = globalThis as unknown as Record<string, unknown> & {
    document: { querySelectorAll(s: string): { length: number } };
    requestAnimationFrame(cb: () => void): void;
    setTimeout(cb: () => void, ms: number): void;
    performance: { now(): number };
  };
  const marks: Record<string, number> = {};
  g.__benchMarks = marks;
  const painted = (name: string) => {
    marks[name] = g.performance.now();
    g.requestAnimationFrame(() => g.setTimeout(() => (marks[`${name}_painted`] = g.performance.now()), 0));
  };
  let renders = 0;
  const charts: Record<string, { step_s: number | null; series: Record<string, unknown[]> }> = {};
  const hook = {
    fleet: null,
    fleetRenderMs: 0,
    get fleetRenders() {
      return renders;
    },
    set fleetRenders(n: number) {
      renders = n;
      if (
        marks.rows === undefined &&
        g.document.querySelectorAll('tbody[data-rows] tr').length === wanted.rows
      )
        painted('rows');
    },
    charts: new Proxy(charts, {
      set(target, key: string, value) {
        target[key] = value;
        const done = wanted.charts.every((name) => {
          const c = target[name];
          return (
            c &&
            (c.step_s === wanted.stepS || c.step_s === null) &&
            Object.values(c.series).some((p) => p.length > 0)
          );
        });
        if (done && marks.charts === undefined) painted('charts');
        return true;
      },
    }),
  };
  g.__console = hook;
}

/** One full navigation to `url`, until `mark` and its painted moment are recorded; ms from navigation start. */
async function timedLoad(page: Page, url: string, mark: string): Promise<{ ms: number; scriptMs: number }> {
  await page.goto('about:blank');
  await page.goto(url);
  const handle = await page.waitForFunction(
    (m) => {
      const marks = (globalThis as unknown as { __benchMarks?: Record<string, number> }).__benchMarks;
      return marks?.[`${m}_painted`] !== undefined
        ? { ms: marks[`${m}_painted`], scriptMs: marks[m] }
        : false;
    },
    mark,
    { timeout: 30_000 },
  );
  return (await handle.jsonValue()) as { ms: number; scriptMs: number };
}

async function seedFleet(service: RunningService): Promise<{ historySiteId: number; seedS: number }> {
  const t0 = performance.now();
  // The site whose charts are measured: the demo's mixed site (ASICs, GPUs, a meter): every chart.
  const spec = loadScenario('demo', { scale: 0.02, random_failures: false }).sites.find(
    (s) => s.kind === 'mixed',
  )!;
  const history = await createSite(service.url, 'bench-0000-history', 'mixed', spec.capacity_kw);
  const nowMs = Date.now();
  const readings = siteHistory(spec, nowMs, { days: HISTORY_DAYS, seed: 1 });
  await pushHistory(service.url, history.token, readings);
  log(`  ${readings.length.toLocaleString('en-US')} readings of 30 days for the history site`);

  const kinds = ['mining', 'ai', 'mixed'] as const;
  const names = Array.from({ length: SITES - 1 }, (_, i) => `bench-${String(i + 1).padStart(4, '0')}`);
  await inParallel(names, 16, async (name, i) => {
    const capacityKw = 500 + ((i * 37) % 4500);
    const site = await createSite(service.url, name, kinds[i % 3], capacityKw);
    const ts = Date.now();
    const drawnW = capacityKw * 1000 * (0.6 + ((i * 13) % 35) / 100);
    const answer = await postReadings(service.url, site.token, [
      { device: 'main-meter', kind: 'meter', ts, power_w: drawnW, available_power_w: capacityKw * 1000 },
      asicReading('hall-a/asic-001', ts),
    ]);
    if (answer.status !== 200 || answer.body.accepted !== 2)
      throw new Error(`ingest for ${name}: ${answer.status} ${JSON.stringify(answer.body)}`);
  });
  await service.latest.flush();
  log('  rolling up');
  await service.rollups.runUntilIdle();
  return { historySiteId: history.site.id, seedS: (performance.now() - t0) / 1000 };
}

async function main() {
  const quick = process.argv.includes('--quick');
  const loads = quick ? LOADS.quick : LOADS.full;
  // Other work on the machine moves browser timings more than anything measured here: say how much.
  const loadavgAtStart = loadavg()[0]!;
  let db: TestDatabase | undefined;
  let service: RunningService | undefined;
  let browser: Browser | undefined;
  try {
    db = await createTestDatabase('postgres');
    service = await startTestService(db, {
      env: {
        // Thirty days of history are raw readings first (the default keeps 14).
        HASHWATT_RETENTION_RAW_DAYS: '35',
        // The 999 sites report once: they stay up (and their alerts quiet) for the whole run.
        HASHWATT_ALERT_THRESHOLDS: JSON.stringify({ site_down_after_s: 3600, device_stale_after_s: 3600 }),
      },
    });
    log(`console bench: seeding ${SITES.toLocaleString('en-US')} sites through the admin API and ingest`);
    const { historySiteId, seedS } = await seedFleet(service);
    // The fleet answer is a snapshot refreshed every second: wait until it holds every site.
    for (let i = 0; ; i++) {
      const fleet = await (await adminRequest(service.url, 'GET', '/api/v1/fleet')).json();
      if ((fleet as { sites: unknown[] }).sites.length === SITES) break;
      if (i > 100) throw new Error('the fleet answer never held every site');
      await new Promise((r) => setTimeout(r, 100));
    }
    const fleetAnswer = await adminRequest(service.url, 'GET', '/api/v1/fleet');
    const fleetBytes = (await fleetAnswer.arrayBuffer()).byteLength;

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      locale: 'en-US',
      timezoneId: 'UTC',
    });
    await context.addInitScript(instrumentPage, {
      rows: SITES,
      charts: ['site-power', 'site-hashrate', 'site-gpu', 'site-energy'],
      stepS: 3600,
    });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    await page.goto(`${service.url}/`);
    await page.fill('#signin-token', ADMIN_TOKEN);
    await page.click('button[type=submit]');
    await page.waitForSelector('[data-whoami]:not(:empty)');

    log(`  fleet page, ${loads} loads`);
    const fleet = [];
    for (let i = 0; i < loads; i++) fleet.push(await timedLoad(page, `${service.url}/#/`, 'rows'));
    const fleetRenderMs = await page.evaluate(
      () => (globalThis as unknown as { __console: { fleetRenderMs: number } }).__console.fleetRenderMs,
    );

    log(`  site page 30 d, ${loads} loads`);
    const site = [];
    const siteUrl = `${service.url}/#/sites/${historySiteId}?range=30d`;
    for (let i = 0; i < loads; i++) site.push(await timedLoad(page, siteUrl, 'charts'));
    const chartPoints = await page.evaluate(() =>
      Object.fromEntries(
        Object.entries(
          (
            globalThis as unknown as {
              __console: { charts: Record<string, { series: Record<string, unknown[]> }> };
            }
          ).__console.charts,
        ).map(([name, c]) => [name, Object.values(c.series).reduce((n, p) => n + p.length, 0)]),
      ),
    );
    const source = await page.getAttribute('[data-source-note]', 'data-source');
    if (problems.length > 0) throw new Error(`the page logged errors: ${problems.join('; ')}`);

    const fleetStats = stats(fleet.map((l) => l.ms));
    const siteStats = stats(site.map((l) => l.ms));
    const result = {
      date: new Date().toISOString(),
      quick,
      command: `node bench/console.ts${quick ? ' --quick' : ''}`,
      machine: {
        cpus: cpus().length,
        cpu_model: cpus()[0]?.model ?? null,
        loadavg_1m_at_start: Math.round(loadavgAtStart * 100) / 100,
        loadavg_1m_at_end: Math.round(loadavg()[0]! * 100) / 100,
        chromium: browser.version(),
        viewport: '1280x800',
      },
      setup: {
        sites: SITES,
        seeded:
          'real: 1,000 sites created through POST /api/v1/sites, one meter and one ASIC reading each through POST /api/v1/ingest (no page.route stub)',
        seed_s: Math.round(seedS * 10) / 10,
        fleet_answer_bytes: fleetBytes,
        history_site: {
          kind: 'mixed (the demo scenario at scale 0.02)',
          days: HISTORY_DAYS,
          rolled_up: 'service.rollups.runUntilIdle()',
          series_source: source,
          chart_points: chartPoints,
        },
      },
      measure:
        'ms from navigation start (performance.now() in the page) to the first frame after the render that completed the page; each load a full navigation, signed in once (sessionStorage)',
      fleet_1000_sites: {
        target_ms: TARGET_MS,
        ...fleetStats,
        meets_target: fleetStats.p95_ms <= TARGET_MS,
        rows_inserted_median_ms: stats(fleet.map((l) => l.scriptMs)).median_ms,
        last_render_script_ms: Math.round(fleetRenderMs * 10) / 10,
      },
      site_30d_charts: {
        target_ms: TARGET_MS,
        ...siteStats,
        meets_target: siteStats.p95_ms <= TARGET_MS,
        charts_updated_median_ms: stats(site.map((l) => l.scriptMs)).median_ms,
      },
    };
    mkdirSync('bench/results', { recursive: true });
    const file = `bench/results/console${quick ? '.quick' : ''}.json`;
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    log(
      `console: fleet of 1,000 sites median ${fleetStats.median_ms} ms, p95 ${fleetStats.p95_ms} ms (first ${fleetStats.first_ms} ms); ` +
        `30-day site charts median ${siteStats.median_ms} ms, p95 ${siteStats.p95_ms} ms (first ${siteStats.first_ms} ms); target ${TARGET_MS} ms → ${file}`,
    );
  } finally {
    await browser?.close();
    await service?.stop();
    await db?.dispose();
  }
}

await main();
