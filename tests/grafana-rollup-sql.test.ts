import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siteEnergy } from '../src/history/energy.ts';
import { siteSeries } from '../src/history/series.ts';
import type { Storage } from '../src/storage/database.ts';
import { ensurePartitions, startOfUtcDay } from '../src/storage/partitions.ts';
import { applyReaderGrants, READER_ROLE } from '../src/storage/reader-grants.ts';
import { type ReadingRecord, writeReadings } from '../src/storage/readings.ts';
import { rollupStep } from '../src/storage/rollups.ts';
import type { DeviceKind } from '../src/storage/schema.ts';
import { ADMIN_URL, createTestDatabase, type TestDatabase } from './support/databases.ts';
import { insertSite } from './support/sites.ts';

// Every Grafana panel that reads a rollup table is run here, against real Postgres, as the role
// Grafana's datasource logs in with, over rollups the job built from readings of known values:
// a panel whose SQL does not run, reads a column the role may not, or disagrees with the series
// and energy API fails this file. Grafana's macros and variables are expanded as Grafana does.

const ROOT = path.resolve(import.meta.dirname, '..');
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
const READING_INTERVAL_MS = 30_000;
const NOW = Date.now();
// Four whole hours across a UTC midnight (so per-day sums split them 2 + 2), all closed by NOW.
const MIDNIGHT = startOfUtcDay(NOW - 3 * HOUR_MS);
const DATA_FROM = MIDNIGHT - 2 * HOUR_MS;
const HOURS = 4;
const DATA_TO = DATA_FROM + HOURS * HOUR_MS;

// ------------------------------------------------------------------------------------------------
// The dashboards' rollup queries

interface Target {
  rawSql?: string;
  format?: string;
  refId: string;
}
interface Panel {
  type: string;
  title: string;
  description?: string;
  timeFrom?: string;
  datasource?: { uid: string };
  targets?: Target[];
  panels?: Panel[];
}

interface RollupQuery {
  file: string;
  panel: Panel;
  refId: string;
  rawSql: string;
}

const allPanels = (panels: Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);

const dashboardFiles = readdirSync(path.join(ROOT, 'grafana/dashboards')).filter((f) => f.endsWith('.json'));
const rollupQueries: RollupQuery[] = dashboardFiles.flatMap((file) => {
  const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'grafana/dashboards', file), 'utf8')) as {
    panels: Panel[];
  };
  return allPanels(dashboard.panels).flatMap((panel) =>
    (panel.targets ?? [])
      .filter((t) => t.rawSql !== undefined && /\brollup_\w+/.test(t.rawSql))
      .map((t) => ({ file, panel, refId: t.refId, rawSql: t.rawSql! })),
  );
});

function queryOf(file: string, title: string): RollupQuery {
  const found = rollupQueries.filter((q) => q.file === file && q.panel.title === title);
  expect(found.length, `${file} must have one rollup panel titled "${title}"`).toBe(1);
  return found[0]!;
}

// ------------------------------------------------------------------------------------------------
// Grafana's expansion of a query: template variables first (the frontend), then the Postgres
// datasource's macros (the backend, pkg/tsdb/grafana-postgresql-datasource/macros.go).

interface GrafanaContext {
  fromMs: number;
  toMs: number;
  /** Dashboard variables by name (single values). */
  variables: Readonly<Record<string, string>>;
  intervalMs?: number;
}

/** Go's time.RFC3339Nano in UTC, as the backend formats $__timeFilter's bounds (trailing zeros cut). */
const rfc3339Nano = (ms: number) => new Date(ms).toISOString().replace(/\.?0+Z$/, 'Z');

/** Grafana's interval strings ('5m', '1h', '1d', …) in seconds. */
function intervalSeconds(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(text.trim().replace(/^['"]|['"]$/g, ''));
  if (!m) throw new Error(`unsupported interval ${text}`);
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 }[
    m[2] as 'ms' | 's' | 'm' | 'h' | 'd' | 'w'
  ];
  return Number(m[1]) * unit;
}

function formatInterval(ms: number): string {
  for (const [unit, size] of [
    ['d', DAY_MS],
    ['h', HOUR_MS],
    ['m', MINUTE_MS],
    ['s', 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

function expandGrafana(rawSql: string, ctx: GrafanaContext): string {
  const intervalMs = ctx.intervalMs ?? HOUR_MS;
  const builtins: Record<string, string> = {
    __interval: formatInterval(intervalMs),
    __interval_ms: String(intervalMs),
    __from: String(ctx.fromMs),
    __to: String(ctx.toMs),
    __range_s: String(Math.round((ctx.toMs - ctx.fromMs) / 1000)),
  };
  // SQL datasources interpolate a single-valued variable unquoted with its quotes doubled
  // (the panel writes '$site'); multi-valued ones would be quoted, none is used here.
  const value = (name: string, whole: string): string => {
    const v = ctx.variables[name] ?? builtins[name];
    if (v === undefined) return whole;
    return v.replace(/'/g, "''");
  };
  let text = rawSql.replace(
    /\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)/g,
    (whole, braced?: string, bracketed?: string, bare?: string) =>
      value((braced ?? bracketed ?? bare)!, whole),
  );
  text = text.replace(/\$__(\w+)\(([^)]*)\)/g, (_whole, name: string, argText: string) => {
    const args = argText.split(',').map((a) => a.trim());
    const group = () => {
      const seconds = intervalSeconds(args[1] ?? '');
      return `floor(extract(epoch from ${args[0]})/${seconds})*${seconds}`;
    };
    switch (name) {
      case 'timeFilter':
        return `${args[0]} BETWEEN '${rfc3339Nano(ctx.fromMs)}' AND '${rfc3339Nano(ctx.toMs)}'`;
      case 'timeFrom':
        return `'${rfc3339Nano(ctx.fromMs)}'`;
      case 'timeTo':
        return `'${rfc3339Nano(ctx.toMs)}'`;
      case 'timeGroup':
        return group();
      case 'timeGroupAlias':
        return `${group()} AS "time"`;
      case 'time':
        return `${args[0]} AS "time"`;
      default:
        throw new Error(`the test's Grafana expander does not know $__${name}(): add it`);
    }
  });
  const left = /\$\{?\w+|\[\[\w+\]\]/.exec(text);
  if (left) throw new Error(`unexpanded Grafana variable or macro ${left[0]} in:\n${text}`);
  return text;
}

/** A panel's relative time override ('30d') as a range ending now. */
function panelRange(panel: Panel): { fromMs: number; toMs: number } {
  const m = /^(\d+)d$/.exec(panel.timeFrom ?? '');
  if (!m) throw new Error(`panel "${panel.title}": timeFrom ${panel.timeFrom} is not whole days`);
  return { fromMs: NOW - Number(m[1]) * DAY_MS, toMs: NOW };
}

// ------------------------------------------------------------------------------------------------

type Row = Record<string, unknown>;

/** A result row's time (a timestamptz, or epoch seconds from $__timeGroup) in epoch ms. */
function timeMs(row: Row): number {
  const t = row.time;
  if (t instanceof Date) return t.getTime();
  return Number(t) * 1000;
}

const num = (v: unknown): number => Number(v);

describe('Grafana rollup panels: their SQL over rollups built from known readings', () => {
  let testDb: TestDatabase;
  let storage: Storage;
  let reader: pg.Client;
  const sites = new Map<string, { id: number; capacity_w: number }>();
  const METERED = 'north-hall';
  const UNMETERED = "o'neill-yard";

  async function addSite(name: string, capacityW: number, devices: [string, DeviceKind][]) {
    const site = await insertSite(storage, name, devices, { capacityW });
    sites.set(name, { id: site.id, capacity_w: site.capacity_w });
    return site.record;
  }

  // The metered site: two meters, two ASICs, two GPUs and a PDU (whose power is never counted).
  // The meters read 6 000 W + 100 W × hour and 4 000 W, and say 7 000 + 5 000 W are available.
  // The second is silent for hour 1 and both for hour 2: the devices' 7 100 W is drawn then. Both
  // are silent for the first half of hour 3, which is still a meter hour (both reported in it);
  // the second carries no available power in it, so the site's capacity is what is available.
  const meterW = (hour: number) => 6000 + 100 * hour + 4000;
  const METERED_DEVICES_W = 3000 + 3100 + 700 + 300;
  const meterReports = (meter: 'm1' | 'm2', hour: number, minute: number) =>
    hour !== 2 && !(hour === 1 && meter === 'm2') && !(hour === 3 && minute < 30);
  // The unmetered site: two ASICs, 4 500 W between them, capacity 50 000 W.
  const UNMETERED_W = 2000 + 2500;

  beforeAll(async () => {
    // Roles belong to the cluster: created idempotently, as deploy/postgres/init/ does.
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(
      `DO $$ BEGIN CREATE ROLE ${READER_ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
    );
    await admin.end();
    testDb = await createTestDatabase('postgres');
    storage = await testDb.open();
    await ensurePartitions(storage.db, NOW, { retentionDays: 3, aheadDays: 1 });

    const metered = await addSite(METERED, 20_000, [
      ['m1', 'meter'],
      ['m2', 'meter'],
      ['a1', 'asic'],
      ['a2', 'asic'],
      ['g1', 'gpu'],
      ['g2', 'gpu'],
      ['pdu', 'pdu'],
    ]);
    const unmetered = await addSite(UNMETERED, 50_000, [
      ['a1', 'asic'],
      ['a2', 'asic'],
    ]);
    const records: ReadingRecord[] = [];
    for (let t = DATA_FROM; t < DATA_TO; t += READING_INTERVAL_MS) {
      const hour = Math.floor((t - DATA_FROM) / HOUR_MS);
      const minute = Math.floor(((t - DATA_FROM) % HOUR_MS) / MINUTE_MS);
      if (meterReports('m1', hour, minute))
        records.push(metered('m1', t, { power_w: 6000 + 100 * hour, available_power_w: 7000 }));
      if (meterReports('m2', hour, minute))
        records.push(metered('m2', t, { power_w: 4000, ...(hour === 3 ? {} : { available_power_w: 5000 }) }));
      records.push(
        metered('a1', t, { power_w: 3000, hashrate_ths: 200, expected_hashrate_ths: 210 }),
        metered('a2', t, { power_w: 3100, hashrate_ths: 190, expected_hashrate_ths: 210 }),
        metered('g1', t, { power_w: 700, gpu_util_pct: 90 }),
        metered('g2', t, { power_w: 300, gpu_util_pct: 50 }),
        metered('pdu', t, { power_w: 99_999 }),
        unmetered('a1', t, { power_w: 2000, hashrate_ths: 100, expected_hashrate_ths: 110 }),
        unmetered('a2', t, { power_w: 2500, hashrate_ths: 120, expected_hashrate_ths: 110 }),
      );
    }
    await writeReadings(storage.db, records);

    // The job to completion, with every minute and hour of the data closed.
    let steps = 0;
    while ((await rollupStep(storage.db, DATA_TO + 2 * MINUTE_MS, 120)).more)
      if (++steps > 100) throw new Error('the rollup job did not finish');

    expect(await applyReaderGrants(storage.db)).toBe(true);
    reader = new pg.Client({ connectionString: testDb.url });
    await reader.connect();
    // As Grafana's login role runs: only the reader's grants, read-only, cut off when slow.
    await reader.query(`SET ROLE ${READER_ROLE}`);
    await reader.query('SET default_transaction_read_only = on');
    await reader.query("SET statement_timeout = '30s'");
  }, 120_000);

  afterAll(async () => {
    await reader?.end();
    await storage?.close();
    await testDb?.dispose();
  });

  /** Runs a dashboard query as Grafana would over its panel's 30 days, for a site (site.json). */
  async function run(q: RollupQuery, site?: string, range = panelRange(q.panel)): Promise<Row[]> {
    const text = expandGrafana(q.rawSql, { ...range, variables: site === undefined ? {} : { site } });
    const { rows } = await reader.query<Row>(text);
    return rows;
  }

  const hourStarts = Array.from({ length: HOURS }, (_, h) => DATA_FROM + h * HOUR_MS);

  async function series(site: string, metric: string) {
    const view = await siteSeries(
      storage,
      sites.get(site)!,
      { metric, from: DATA_FROM, to: DATA_TO, step: 3600, agg: 'avg' },
      NOW,
    );
    expect(view.source).toBe('1h');
    return view;
  }

  const byTime = (rows: Row[], column: string) => rows.map((r) => [timeMs(r), num(r[column])]);

  it('finds the rollup panels, each over 30 days of the Postgres datasource with a description', () => {
    const titles = rollupQueries.map((q) => `${q.file}: ${q.panel.title}`);
    expect(titles).toEqual(
      expect.arrayContaining([
        'site.json: Drawn vs available, 30 days (hourly)',
        'site.json: Surplus, 30 days (hourly)',
        'site.json: Power source, 30 days (hourly)',
        'site.json: Energy per day, 30 days',
        'site.json: Hashrate vs expected, 30 days (hourly)',
        'site.json: GPU utilisation, 30 days (hourly)',
        'fleet-overview.json: Power drawn by site, 30 days (hourly)',
        'fleet-overview.json: Energy per day by site, 30 days',
      ]),
    );
    for (const q of rollupQueries) {
      const where = `${q.file}: panel "${q.panel.title}"`;
      expect(q.panel.datasource?.uid, where).toBe('hashwatt-postgres');
      expect(q.panel.timeFrom, `${where} must not follow a short dashboard range`).toBe('30d');
      expect(q.panel.description?.length, `${where} needs a description`).toBeGreaterThan(40);
      expect(q.rawSql, `${where} must filter its buckets by the panel's range`).toMatch(
        /\$__timeFilter\(\s*(?:\w+\.)?bucket\s*\)/,
      );
    }
  });

  it.each(rollupQueries.map((q) => [`${q.file}: ${q.panel.title} (${q.refId})`, q] as const))(
    '%s runs as the reader role and answers for the metered site',
    async (_name, q) => {
      const site = q.file === 'site.json' ? METERED : undefined;
      const rows = await run(q, site);
      // The metered site has every metric a panel reads, in every hour.
      expect(rows.length).toBeGreaterThan(0);
      if (site !== undefined) await run(q, UNMETERED);
    },
  );

  it('drawn and available: the series API’s hourly numbers and the readings’ own', async () => {
    const q = queryOf('site.json', 'Drawn vs available, 30 days (hourly)');
    const expected = {
      [METERED]: {
        drawn: [meterW(0), METERED_DEVICES_W, METERED_DEVICES_W, meterW(3)],
        available: [12_000, 20_000, 20_000, 20_000],
      },
      [UNMETERED]: {
        drawn: [UNMETERED_W, UNMETERED_W, UNMETERED_W, UNMETERED_W],
        available: [50_000, 50_000, 50_000, 50_000],
      },
    };
    for (const [site, want] of Object.entries(expected)) {
      const rows = await run(q, site);
      expect(byTime(rows, 'drawn'), site).toEqual(hourStarts.map((t, h) => [t, want.drawn[h]]));
      expect(byTime(rows, 'available'), site).toEqual(hourStarts.map((t, h) => [t, want.available[h]]));
      const drawn = await series(site, 'power_w');
      const available = await series(site, 'available_power_w');
      expect(byTime(rows, 'drawn')).toEqual(drawn.points.filter((p) => p[1] !== null));
      expect(byTime(rows, 'available')).toEqual(available.points.filter((p) => p[1] !== null));
    }
  });

  it('surplus and the power source: the series API’s', async () => {
    const surplusQ = queryOf('site.json', 'Surplus, 30 days (hourly)');
    const sourceQ = queryOf('site.json', 'Power source, 30 days (hourly)');
    for (const site of [METERED, UNMETERED]) {
      const surplus = await series(site, 'surplus_w');
      expect(byTime(await run(surplusQ, site), 'surplus'), site).toEqual(
        surplus.points.filter((p) => p[1] !== null),
      );
      const drawn = await series(site, 'power_w');
      const available = await series(site, 'available_power_w');
      const rows = await run(sourceQ, site);
      expect(
        rows.map((r) => [timeMs(r), r['drawn from'], r['available from']]),
        site,
      ).toEqual(hourStarts.map((t, h) => [t, drawn.power_source![h], available.power_source![h]]));
    }
    // The meters were trusted in hour 3 (both reported in it), not in hour 1 (one did not).
    const rows = await run(sourceQ, METERED);
    expect(rows.map((r) => r['drawn from'])).toEqual(['meter', 'devices', 'devices', 'meter']);
    expect(rows.map((r) => r['available from'])).toEqual(['meter', 'capacity', 'capacity', 'capacity']);
  });

  it('energy per day: the constant loads written, per UTC day, equal to the energy API for a UTC site', async () => {
    const q = queryOf('site.json', 'Energy per day, 30 days');
    // kWh of an hour at a constant W is W / 1000. Hour 3: half at the devices', half at the meters'.
    const kwh = {
      [METERED]: [
        (meterW(0) + METERED_DEVICES_W) / 1000,
        (METERED_DEVICES_W + (METERED_DEVICES_W + meterW(3)) / 2) / 1000,
      ],
      [UNMETERED]: [(2 * UNMETERED_W) / 1000, (2 * UNMETERED_W) / 1000],
    };
    for (const [site, want] of Object.entries(kwh)) {
      const rows = await run(q, site);
      expect(rows.map(timeMs), site).toEqual([MIDNIGHT - DAY_MS, MIDNIGHT]);
      for (const [i, r] of rows.entries()) expect(num(r.energy), `${site} day ${i}`).toBeCloseTo(want[i]!, 9);
      const api = await siteEnergy(
        storage,
        { ...sites.get(site)!, timezone: null, tariffPerMwh: null },
        {
          // The two days the data spans, and no more: before 03:00 UTC those are the two days before
          // today, and a range up to NOW would add today's (empty) bucket.
          from: new Date(MIDNIGHT - DAY_MS).toISOString(),
          to: new Date(Math.min(NOW, MIDNIGHT + DAY_MS)).toISOString(),
          bucket: 'day',
        },
        NOW,
      );
      expect(api.timezone).toBe('UTC');
      expect(api.buckets.map((b) => Date.parse(b.start))).toEqual([MIDNIGHT - DAY_MS, MIDNIGHT]);
      for (const [i, r] of rows.entries())
        expect(num(r.energy), `${site} day ${i} as the API`).toBeCloseTo(api.buckets[i]!.kwh, 6);
    }
  });

  it('hashrate vs expected and GPU utilisation: the series API’s', async () => {
    const hashrateQ = queryOf('site.json', 'Hashrate vs expected, 30 days (hourly)');
    const rows = await run(hashrateQ, METERED);
    expect(byTime(rows, 'hashrate')).toEqual(hourStarts.map((t) => [t, 390e12]));
    expect(byTime(rows, 'expected')).toEqual(hourStarts.map((t) => [t, 420e12]));
    for (const site of [METERED, UNMETERED]) {
      const hashrate = await series(site, 'hashrate_ths');
      const expected = await series(site, 'expected_hashrate_ths');
      const siteRows = await run(hashrateQ, site);
      expect(byTime(siteRows, 'hashrate'), site).toEqual(hashrate.points.map(([t, v]) => [t, v! * 1e12]));
      expect(byTime(siteRows, 'expected'), site).toEqual(expected.points.map(([t, v]) => [t, v! * 1e12]));
    }
    const gpuQ = queryOf('site.json', 'GPU utilisation, 30 days (hourly)');
    const gpu = await series(METERED, 'gpu_util_pct');
    expect(byTime(await run(gpuQ, METERED), 'utilisation')).toEqual(gpu.points);
    expect(gpu.points.map((p) => p[1])).toEqual([70, 70, 70, 70]);
    // No GPU at the unmetered site: no hours, not zeros.
    expect(await run(gpuQ, UNMETERED)).toEqual([]);
  });

  it('honours the time range: buckets before its start are left out', async () => {
    const q = queryOf('site.json', 'Drawn vs available, 30 days (hourly)');
    const rows = await run(q, METERED, { fromMs: MIDNIGHT, toMs: NOW });
    expect(rows.map(timeMs)).toEqual([MIDNIGHT, MIDNIGHT + HOUR_MS]);
    expect(await run(q, 'no-such-site')).toEqual([]);
  });

  it('the raw-readings history panel sums the meters’ hourly means', async () => {
    const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'grafana/dashboards/site.json'), 'utf8')) as {
      panels: Panel[];
    };
    const panel = allPanels(dashboard.panels).find(
      (p) => p.title === 'Meter power, hourly mean (raw readings)',
    );
    const target = panel?.targets?.[0];
    expect(target?.rawSql, 'site.json: the raw meter panel').toBeDefined();
    const q: RollupQuery = {
      file: 'site.json',
      panel: panel!,
      refId: target!.refId,
      rawSql: target!.rawSql!,
    };
    const rows = await run(q, METERED, { fromMs: NOW - 2 * DAY_MS, toMs: NOW });
    // Hour 1: only the first meter reported; hour 2: none; hour 3: the second without available.
    expect(rows.map((r) => [timeMs(r), num(r['drawn (meter)']), num(r['available (meter)'])])).toEqual([
      [hourStarts[0], meterW(0), 12_000],
      [hourStarts[1], 6100, 7000],
      [hourStarts[3], meterW(3), 7000],
    ]);
  });

  it('fleet: drawn power and energy per day per site, named by site', async () => {
    const drawnQ = queryOf('fleet-overview.json', 'Power drawn by site, 30 days (hourly)');
    const rows = await run(drawnQ);
    for (const site of [METERED, UNMETERED]) {
      const drawn = await series(site, 'power_w');
      const own = rows.filter((r) => r.metric === site);
      expect(byTime(own, 'drawn'), site).toEqual(drawn.points.filter((p) => p[1] !== null));
    }
    expect(new Set(rows.map((r) => r.metric))).toEqual(new Set([METERED, UNMETERED]));
    // Sorted by time, as Grafana's long-to-wide conversion needs.
    const times = rows.map(timeMs);
    expect(times).toEqual([...times].sort((a, b) => a - b));

    const energyQ = queryOf('fleet-overview.json', 'Energy per day by site, 30 days');
    const siteEnergyQ = queryOf('site.json', 'Energy per day, 30 days');
    const fleet = await run(energyQ);
    for (const site of [METERED, UNMETERED]) {
      const own = fleet.filter((r) => r.metric === site).map((r) => [timeMs(r), num(r.energy)]);
      expect(own, site).toEqual((await run(siteEnergyQ, site)).map((r) => [timeMs(r), num(r.energy)]));
    }
  });
});
