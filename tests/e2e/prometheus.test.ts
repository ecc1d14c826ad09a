import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  type FleetHandle,
  nameplateItPowerW,
  parseScenario,
  provisionSites,
  startFleet,
} from '../../simulators/index.ts';
import type { RunningService } from '../../src/service.ts';
import { ADMIN_URL, createTestDatabase, type TestDatabase } from '../support/databases.ts';
import {
  ADMIN_TOKEN,
  adminRequest,
  asicReading,
  createSite,
  postReadings,
  startTestService,
} from '../support/service.ts';

// Operators watch Grafana, Grafana reads Prometheus, Prometheus scrapes hashwatt. This runs that chain
// for real, short of Grafana itself: a hashwatt on Postgres fed by the simulator's site agents, the
// real `prometheus` binary scraping it every second with prometheus/rules loaded, and then every
// PromQL expression of every dashboard in grafana/dashboards/ queried through Prometheus's HTTP API.
// Each must return data. The Postgres history panel's SQL runs as Grafana's read-only role, created by
// the compose stack's own init script (deploy/postgres/init/).

const ROOT = path.resolve(import.meta.dirname, '../..');
/** What $__rate_interval stands for here: ten 1 s scrapes (Grafana uses four scrapes at least). */
const RATE_INTERVAL = '10s';

interface Target {
  expr?: string;
  rawSql?: string;
}
interface Panel {
  type: string;
  title: string;
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  title: string;
  panels: Panel[];
  annotations?: { list: { name: string; expr?: string }[] };
  templating: { list: { name: string; type: string; definition?: string }[] };
}

const dashboards = readdirSync(path.join(ROOT, 'grafana/dashboards'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(path.join(ROOT, 'grafana/dashboards', f), 'utf8')) as Dashboard);

function panelsOf(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);
}

/** Every PromQL expression the dashboards run: panel targets and annotation queries. */
const queries: { where: string; expr: string }[] = dashboards.flatMap((d) => [
  ...panelsOf(d.panels).flatMap((p) =>
    (p.targets ?? []).filter((t) => t.expr).map((t) => ({ where: `${d.title} › ${p.title}`, expr: t.expr! })),
  ),
  ...(d.annotations?.list ?? [])
    .filter((a) => a.expr)
    .map((a) => ({ where: `${d.title} › annotation ${a.name}`, expr: a.expr! })),
]);
// Panels on raw readings. Rollup panels read closed hours, which this minutes-old fleet has none
// of: tests/grafana-rollup-sql.test.ts runs each of them on hours of known readings instead.
const sqlPanels = dashboards.flatMap((d) =>
  panelsOf(d.panels).flatMap((p) =>
    (p.targets ?? [])
      .filter((t) => t.rawSql && !/\brollup_/.test(t.rawSql))
      .map((t) => ({ where: `${d.title} › ${p.title}`, sql: t.rawSql! })),
  ),
);

// A small fleet that shows everything a dashboard can: a mining site (HTTP) without a meter, an AI
// site (WebSocket), and a mixed site (WebSocket) with a meter whose grid curtailment leaves some of
// its ASICs curtailed from the start.
const MIXED_DEVICES = { asic: { S21: 10 }, gpu_servers: 1, gpu_model: 'H100 SXM' } as const;
const scenario = parseScenario(
  {
    name: 'e2e',
    interval_s: 1,
    duration_s: 0,
    random_failures: false,
    sites: [
      {
        name: 'e2e-mining',
        kind: 'mining',
        capacity_kw: 150,
        transport: 'http',
        meter: false,
        devices: { asic: { S21: 20, 'S19 XP': 10 } },
      },
      {
        name: 'e2e-ai',
        kind: 'ai',
        capacity_kw: 40,
        transport: 'ws',
        devices: { gpu_servers: 2, gpu_model: 'H100 SXM' },
      },
      {
        name: 'e2e-mixed',
        kind: 'mixed',
        capacity_kw: Math.ceil(
          (nameplateItPowerW({ ...MIXED_DEVICES, asic: { ...MIXED_DEVICES.asic } }) * 1.1) / 1000,
        ),
        transport: 'ws',
        pue: 1.1,
        devices: MIXED_DEVICES,
      },
    ],
    faults: [{ type: 'curtailment', site: 'e2e-mixed', at_s: 0, available_ratio: 0.75 }],
  },
  'e2e scenario',
);
const SITE = 'e2e-mixed';
/** Reports once, then goes dark; its site_down_after_s of 2 s makes SiteDown fire within seconds. */
const DARK = 'e2e-dark';
const METRICS_TOKEN = 'e2e-metrics-token-0123456789';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

interface QueryResult {
  status: string;
  error?: string;
  data: {
    resultType: string;
    result: { metric: Record<string, string>; value: [number, string] }[] | [number, string];
  };
}

describe('dashboards against a real Prometheus scraping a real hashwatt', () => {
  let db: TestDatabase;
  let service: RunningService;
  let fleet: FleetHandle | undefined;
  let prometheus: ChildProcess | undefined;
  let prometheusLog = '';
  let promUrl: string;
  let dir: string;
  let misbehaving: NodeJS.Timeout | undefined;
  const reader = `grafana_reader_e2e_${process.pid}`;

  async function query(expr: string): Promise<QueryResult> {
    const response = await fetch(`${promUrl}/api/v1/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ query: expr }),
    });
    return (await response.json()) as QueryResult;
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-e2e-prom-'));
    db = await createTestDatabase('postgres');
    // As in the compose stack: the init script runs on the empty database, before hashwatt migrates.
    const admin = new URL(ADMIN_URL);
    const init = spawnSync('bash', [path.join(ROOT, 'deploy/postgres/init/10-grafana-reader.sh')], {
      encoding: 'utf8',
      env: {
        ...process.env,
        PGHOST: admin.hostname,
        PGPORT: admin.port || '5432',
        POSTGRES_USER: decodeURIComponent(admin.username) || 'postgres',
        POSTGRES_DB: new URL(db.url!).pathname.slice(1),
        GRAFANA_DB_USER: reader,
        GRAFANA_DB_PASSWORD: 'e2e-reader-password',
      },
    });
    expect(init.status, `init script failed:\n${init.stdout}${init.stderr}`).toBe(0);

    // /metrics behind HASHWATT_METRICS_TOKEN, scraped with the token from a file as
    // prometheus/prometheus.yml shows: every check below then also proves the token path.
    service = await startTestService(db, {
      env: { HASHWATT_ALERT_INTERVAL_S: '1', HASHWATT_METRICS_TOKEN: METRICS_TOKEN },
    });
    const url = service.url;

    const tokens = await provisionSites({ url, adminToken: ADMIN_TOKEN, scenario });
    fleet = startFleet({ scenario, url, tokens, seed: 7 });

    const dark = await createSite(url, DARK, 'mining', 100);
    await postReadings(url, dark.token, [asicReading('s21-001', Date.now())]);
    const patched = await adminRequest(url, 'PATCH', `/api/v1/sites/${dark.site.id}`, {
      thresholds: { site_down_after_s: 2 },
    });
    expect(patched.status).toBe(200);

    // An agent with a revoked token and one with a broken clock: 401s and rejected readings, as in life.
    const drifting = await createSite(url, 'e2e-drifting', 'mining', 10);
    misbehaving = setInterval(() => {
      void postReadings(url, 'hw_not-a-valid-token', [asicReading('x', Date.now())]).catch(() => {});
      void postReadings(url, drifting.token, [
        asicReading('s19-001', Date.now()),
        asicReading('s19-002', Date.now() + 3_600_000),
      ]).catch(() => {});
    }, 500);

    // Prometheus with the repository's config, scraping this hashwatt every second, rules included,
    // no Alertmanager (the alerting engineer's e2e covers delivery).
    const config = parse(readFileSync(path.join(ROOT, 'prometheus/prometheus.yml'), 'utf8')) as {
      global: Record<string, string>;
      rule_files: string[];
      alerting?: unknown;
      scrape_configs: {
        job_name: string;
        static_configs: { targets: string[] }[];
        authorization?: { type: string; credentials_file: string };
      }[];
    };
    config.global = { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' };
    config.rule_files = config.rule_files.map((f) => path.join(ROOT, 'prometheus', f));
    delete config.alerting;
    const job = config.scrape_configs.find((j) => j.job_name === 'hashwatt');
    expect(job, 'prometheus/prometheus.yml has no hashwatt job').toBeDefined();
    job!.static_configs = [{ targets: [new URL(url).host] }];
    const tokenFile = path.join(dir, 'hashwatt-metrics-token');
    writeFileSync(tokenFile, METRICS_TOKEN);
    job!.authorization = { type: 'Bearer', credentials_file: tokenFile };
    config.scrape_configs = [job!];
    writeFileSync(path.join(dir, 'prometheus.yml'), stringify(config));

    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prometheus.stdout!.on('data', (chunk: Buffer) => {
      prometheusLog += chunk.toString();
    });
    prometheus.stderr!.on('data', (chunk: Buffer) => {
      prometheusLog += chunk.toString();
    });
    const exited = new Promise<never>((_, reject) => {
      prometheus!.once('error', (error) => reject(new Error(`prometheus did not start: ${error.message}`)));
      prometheus!.once('exit', (code) => reject(new Error(`prometheus exited (${code}):\n${prometheusLog}`)));
    });
    exited.catch(() => {});

    const ready = async () => (await fetch(`${promUrl}/-/ready`)).ok;
    await Promise.race([waitFor('Prometheus to be ready', ready, 15_000), exited]);
    // Enough scrapes for every rate window, the dark site's SiteDown firing in Prometheus and in
    // hashwatt's engine, and the curtailment under way.
    const has = async (expr: string) => {
      const r = await query(expr);
      return r.status === 'success' && Array.isArray(r.data.result) && r.data.result.length > 0;
    };
    await Promise.race([
      waitFor(
        'a dozen scrapes, SiteDown firing for the dark site in both engines, curtailed ASICs',
        async () =>
          (await has('count_over_time(up{job="hashwatt"}[1m]) >= 12')) &&
          (await has(`ALERTS{alertname="SiteDown",site="${DARK}",alertstate="firing"}`)) &&
          (await has(`hashwatt_alerts_firing{alertname="SiteDown",site="${DARK}"} == 1`)) &&
          (await has(`hashwatt_site_devices{site="${SITE}",state="curtailed"} > 0`)),
        45_000,
      ),
      exited,
    ]);
  }, 90_000);

  afterAll(async () => {
    if (misbehaving) clearInterval(misbehaving);
    await fleet?.stop({ flushMs: 500 });
    if (prometheus && prometheus.exitCode === null) {
      const exit = new Promise((resolve) => prometheus!.once('exit', resolve));
      prometheus.kill('SIGTERM');
      await Promise.race([exit, sleep(5_000)]);
      if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
    }
    await service?.stop();
    await db?.dispose();
    // The role outlives its database; remove it once the database (and its grants) are gone.
    const client = new pg.Client({ connectionString: ADMIN_URL });
    await client.connect();
    await client.query(`DROP ROLE IF EXISTS ${reader}`);
    await client.end();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('serves /metrics only with HASHWATT_METRICS_TOKEN, which Prometheus sends from its credentials_file', async () => {
    const without = await fetch(`${service.url}/metrics`);
    expect(without.status).toBe(401);
    expect(without.headers.get('www-authenticate')).toMatch(/^Bearer /);
    const wrong = await fetch(`${service.url}/metrics`, {
      headers: { authorization: 'Bearer not-the-token' },
    });
    expect(wrong.status).toBe(401);
    const up = await query('up{job="hashwatt"}');
    const series = up.data.result as { value: [number, string] }[];
    expect(series.map((r) => r.value[1])).toEqual(['1']);
  });

  it('finds every simulated site in the $site variable’s label_values(hashwatt_site_up, site)', async () => {
    const variable = dashboards
      .flatMap((d) => d.templating.list)
      .find((v) => v.name === 'site' && v.type === 'query');
    expect(variable?.definition).toBe('label_values(hashwatt_site_up, site)');
    const response = await fetch(`${promUrl}/api/v1/label/site/values?match[]=hashwatt_site_up`);
    const body = (await response.json()) as { data: string[] };
    for (const site of [...scenario.sites.map((s) => s.name), DARK]) expect(body.data).toContain(site);
  });

  it('has hashwatt’s built-in engine agree with Prometheus’s rules that the dark site is down', async () => {
    const firing = await query(
      `max by (alertname, site, severity) (hashwatt_alerts_firing{alertname="SiteDown",site="${DARK}"} == 1)` +
        ` and on (alertname, site, severity) ALERTS{alertstate="firing"}`,
    );
    expect(firing.status).toBe('success');
    expect(firing.data.result).toEqual([
      expect.objectContaining({ metric: { alertname: 'SiteDown', site: DARK, severity: 'critical' } }),
    ]);
  });

  it.each(queries.map((q) => [q.where, q.expr]))('%s: %s returns data', async (_where, expr) => {
    const concrete = expr.replaceAll('$__rate_interval', RATE_INTERVAL).replaceAll('$site', SITE);
    expect(concrete, 'a dashboard variable this test does not know').not.toMatch(/\$\{?\w/);
    const result = await query(concrete);
    expect(result.status, result.error).toBe('success');
    const values =
      result.data.resultType === 'scalar'
        ? [Number((result.data.result as [number, string])[1])]
        : (result.data.result as { value: [number, string] }[]).map((s) => Number(s.value[1]));
    expect(values.length, `no series for ${concrete}`).toBeGreaterThan(0);
    expect(
      values.some((v) => Number.isFinite(v)),
      `only NaN/Inf for ${concrete}: ${JSON.stringify(result.data.result)}`,
    ).toBe(true);
  });

  it.each(sqlPanels.map((p) => [p.where, p.sql]))(
    '%s runs as Grafana’s read-only role and returns rows',
    async (_where, sql) => {
      const to = new Date();
      const from = new Date(to.getTime() - 3_600_000);
      // Grafana's Postgres macros, expanded as its datasource does.
      const concrete = sql
        .replace(
          /\$__timeGroupAlias\(([^,]+),\s*'(\d+)h'\)/g,
          (_m, column: string, hours: string) =>
            `floor(extract(epoch from ${column}) / ${Number(hours) * 3600}) * ${Number(hours) * 3600} AS "time"`,
        )
        .replace(
          /\$__timeFilter\(([^)]+)\)/g,
          (_m, column: string) => `${column} BETWEEN '${from.toISOString()}' AND '${to.toISOString()}'`,
        )
        .replaceAll('$site', SITE);
      expect(concrete).not.toMatch(/\$\w/);
      const url = new URL(db.url!);
      url.username = reader;
      url.password = 'e2e-reader-password';
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      try {
        const { rows, fields } = await client.query(concrete);
        expect(rows.length, `no rows for ${concrete}`).toBeGreaterThan(0);
        expect(fields.map((f) => f.name)).toContain('time');
        expect(rows.some((r: Record<string, unknown>) => Number(r['drawn (meter)']) > 0)).toBe(true);
        // Read-only: the role cannot write even where it can read.
        await expect(client.query('DELETE FROM readings WHERE site_id = -1')).rejects.toThrow(
          /read-only|permission/,
        );
      } finally {
        await client.end();
      }
    },
  );
});
