import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../src/config.ts';
import { READER_ROLE } from '../src/storage/reader-grants.ts';

// No Docker engine runs in CI, so the compose stack is checked statically: every file it mounts
// exists, every variable it passes is one hashwatt reads, and the hostnames, ports, paths and
// credentials in docker-compose.yml, the Dockerfile, prometheus/, grafana/ and deploy/ agree.

const ROOT = path.resolve(import.meta.dirname, '..');
// biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's ARG syntax, not a JS template
const NODE_IMAGE_ARG = '${NODE_IMAGE}';
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
const DATASOURCE_VARIABLE = '${datasource}';
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

type Dict = Record<string, unknown>;
interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
}

const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service>; volumes?: Dict };
const services = compose.services;
const dockerfile = read('Dockerfile');

function service(name: string): Service {
  const s = services[name];
  expect(s, `docker-compose.yml has no service "${name}"`).toBeDefined();
  return s!;
}

/** Compose's `${VAR:-default}` / `${VAR-default}` / `${VAR}` interpolation, with the variables unset. */
function interpolate(value: string): string {
  return value.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g,
    (_m, _name, fallback?: string) => fallback ?? '',
  );
}

function env(name: string): Record<string, string> {
  const raw = service(name).environment ?? {};
  expect(Array.isArray(raw), `services.${name}.environment must be a map (NAME: value)`).toBe(false);
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, interpolate(String(v))]));
}

interface Mount {
  source: string;
  target: string;
}

/** Bind mounts (./host:/container[:ro]) of a service; named volumes are left out. */
function bindMounts(name: string): Mount[] {
  return (service(name).volumes ?? [])
    .map((spec) => spec.split(':'))
    .filter(([source]) => source!.startsWith('.') || source!.startsWith('/'))
    .map(([source, target]) => ({ source: path.normalize(source!), target: target! }));
}

function mountOf(name: string, source: string): Mount {
  const mount = bindMounts(name).find((m) => m.source === path.normalize(source));
  expect(mount, `services.${name} must mount ${source}`).toBeDefined();
  return mount!;
}

/** Container ports a service publishes ("host:container" or "container"). */
function containerPorts(name: string): number[] {
  return (service(name).ports ?? []).map((p) => Number(String(p).split(':').at(-1)!.split('/')[0]));
}

/** The names of ConfigSchema's keys: every environment variable hashwatt reads. */
function configVariables(): Set<string> {
  const source = read('src/config.ts');
  const block = /const ConfigSchema = z\.object\(\{\n([\s\S]*?)\n\}\);/.exec(source)?.[1];
  expect(block, 'src/config.ts: could not find `const ConfigSchema = z.object({ ... });`').toBeDefined();
  const names = new Set([...block!.matchAll(/^ {2}([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1]!));
  // Guards the parse itself: if these are missing the regex, not the compose file, is wrong.
  for (const known of ['PORT', 'DATABASE_URL', 'HASHWATT_ADMIN_TOKEN']) expect(names).toContain(known);
  return names;
}

const prometheusConfig = parse(read('prometheus/prometheus.yml')) as {
  global: { scrape_interval: string };
  rule_files: string[];
  alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
  scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
};

interface Datasource {
  name: string;
  uid: string;
  type: string;
  url: string;
  user?: string;
  editable?: boolean;
  jsonData?: Dict;
  secureJsonData?: Dict;
}
const datasources = (
  parse(read('grafana/provisioning/datasources/hashwatt.yaml')) as { datasources: Datasource[] }
).datasources;
const promDatasource = datasources.find((d) => d.type === 'prometheus')!;
const pgDatasource = datasources.find(
  (d) => d.type === 'grafana-postgresql-datasource' || d.type === 'postgres',
)!;

function hashwattPort(): number {
  return parseConfig(env('hashwatt')).port;
}

describe('docker-compose.yml', () => {
  it('mounts only host paths that exist', () => {
    for (const name of Object.keys(services)) {
      for (const { source } of bindMounts(name)) {
        expect(
          existsSync(path.join(ROOT, source)),
          `services.${name} mounts ${source}, which does not exist`,
        ).toBe(true);
      }
    }
  });

  it('pins every image to a version (a tag, never latest); built images come from the Dockerfile', () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.build !== undefined) {
        expect(s.build, `services.${name} builds from the repository root`).toBe('.');
        continue;
      }
      expect(s.image, `services.${name} has neither image nor build`).toBeDefined();
      const tag = /^[^:@]+(?::([^@]+))?(?:@sha256:[0-9a-f]{64})?$/.exec(s.image!)?.[1];
      expect(tag, `services.${name}: image ${s.image} has no tag`).toBeDefined();
      expect(tag, `services.${name}: image ${s.image} must name a version`).not.toBe('latest');
      expect(tag, `services.${name}: image ${s.image} must name a version`).toMatch(/\d+\.\d+/);
    }
  });

  it('passes hashwatt only variables src/config.ts reads, with values it accepts', () => {
    const known = configVariables();
    const vars = env('hashwatt');
    for (const name of Object.keys(vars)) {
      expect(
        known.has(name),
        `services.hashwatt.environment.${name} is not read by hashwatt (src/config.ts)`,
      ).toBe(true);
    }
    // Throws ConfigError naming the variable when a default value is not valid.
    const config = parseConfig(vars);
    expect(config.databaseUrl, 'hashwatt must use the compose Postgres, not embedded PGlite').toBeDefined();
    expect(config.adminToken, 'the simulator provisions sites through the admin API').toBeDefined();
  });

  it('points hashwatt at the postgres service with its database, user and password', () => {
    const pg = env('postgres');
    const url = new URL(env('hashwatt').DATABASE_URL!);
    expect(url.hostname, 'DATABASE_URL host must be the postgres service').toBe('postgres');
    expect(url.port || '5432').toBe('5432');
    expect(decodeURIComponent(url.username)).toBe(pg.POSTGRES_USER);
    expect(decodeURIComponent(url.password)).toBe(pg.POSTGRES_PASSWORD);
    expect(url.pathname).toBe(`/${pg.POSTGRES_DB}`);
    expect(service('hashwatt').depends_on?.postgres?.condition).toBe('service_healthy');
  });

  it('sends hashwatt’s and Prometheus’s alerts to the alertmanager service', () => {
    const port = 9093;
    expect(containerPorts('alertmanager'), 'the alertmanager service publishes 9093').toContain(port);
    expect(env('hashwatt').HASHWATT_ALERTMANAGER_URLS).toBe(`http://alertmanager:${port}`);
    const targets = prometheusConfig.alerting.alertmanagers.flatMap((a) =>
      a.static_configs.flatMap((c) => c.targets),
    );
    expect(targets, 'prometheus/prometheus.yml alerting targets').toEqual([`alertmanager:${port}`]);
  });

  it('has Prometheus scrape the hashwatt service on the port hashwatt listens on', () => {
    const job = prometheusConfig.scrape_configs.find((j) => j.job_name === 'hashwatt');
    expect(
      job,
      'prometheus/prometheus.yml needs a scrape job named hashwatt (rules and dashboards use it)',
    ).toBeDefined();
    const targets = job!.static_configs.flatMap((c) => c.targets);
    expect(targets).toEqual([`hashwatt:${hashwattPort()}`]);
    expect(containerPorts('hashwatt')).toContain(hashwattPort());
  });

  it('runs the demo simulator against the hashwatt service with its admin token', () => {
    const sim = service('simulator');
    expect(sim.image, 'the simulator runs from hashwatt’s image').toBe(service('hashwatt').image);
    const args = (sim.command ?? []).map(interpolate);
    const arg = (flag: string) => args[args.indexOf(flag) + 1];
    expect(args.slice(0, 2)).toEqual(['node', 'simulators/cli.ts']);
    expect(existsSync(path.join(ROOT, 'simulators/cli.ts'))).toBe(true);
    expect(arg('--scenario')).toBe('demo');
    expect(existsSync(path.join(ROOT, 'simulators/scenarios/demo.json'))).toBe(true);
    expect(arg('--url')).toBe(`http://hashwatt:${hashwattPort()}`);
    expect(arg('--admin-token')).toBe(env('hashwatt').HASHWATT_ADMIN_TOKEN);
    expect(sim.depends_on?.hashwatt?.condition).toBe('service_healthy');
  });

  it('mounts Prometheus’s config where --config.file reads it and its rules where rule_files finds them', () => {
    const prom = service('prometheus');
    const configFile = (prom.command ?? []).find((a) => a.startsWith('--config.file='))?.split('=')[1];
    const config = mountOf('prometheus', './prometheus/prometheus.yml');
    expect(configFile).toBe(config.target);
    for (const pattern of prometheusConfig.rule_files) {
      // rule_files are relative to the config file, on the host (promtool) and in the container.
      const hostDir = path.relative(ROOT, path.join(ROOT, 'prometheus', path.dirname(pattern)));
      const containerDir = path.posix.join(path.posix.dirname(config.target), path.posix.dirname(pattern));
      expect(mountOf('prometheus', `./${hostDir}`).target, `rule_files ${pattern}`).toBe(containerDir);
    }
  });

  it('mounts Alertmanager’s config where --config.file reads it', () => {
    const configFile = (service('alertmanager').command ?? [])
      .find((a) => a.startsWith('--config.file='))
      ?.split('=')[1];
    expect(mountOf('alertmanager', './prometheus/alertmanager.yml').target).toBe(configFile);
  });

  it('provisions Grafana from grafana/ with the dashboards where the file provider looks', () => {
    expect(mountOf('grafana', './grafana/provisioning').target).toBe('/etc/grafana/provisioning');
    const providers = (
      parse(read('grafana/provisioning/dashboards/hashwatt.yaml')) as {
        providers: { type: string; options: { path: string } }[];
      }
    ).providers;
    const dashboards = mountOf('grafana', './grafana/dashboards');
    expect(providers.map((p) => p.options.path)).toEqual([dashboards.target]);
    const home = env('grafana').GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    expect(path.posix.dirname(home)).toBe(dashboards.target);
    expect(existsSync(path.join(ROOT, 'grafana/dashboards', path.posix.basename(home)))).toBe(true);
  });

  it('gives Grafana the prometheus service, at the scrape interval', () => {
    expect(promDatasource.url).toBe('http://prometheus:9090');
    expect(containerPorts('prometheus')).toContain(9090);
    expect(promDatasource.jsonData?.timeInterval, 'timeInterval must equal the scrape interval').toBe(
      prometheusConfig.global.scrape_interval,
    );
    expect(service('grafana').depends_on?.prometheus?.condition).toBe('service_healthy');
  });

  it('gives Grafana the postgres service through the read-only role the init script creates', () => {
    const init = mountOf('postgres', './deploy/postgres/init');
    expect(init.target).toBe('/docker-entrypoint-initdb.d');
    const scripts = readdirSync(path.join(ROOT, 'deploy/postgres/init'));
    const script = scripts.map((f) => read(`deploy/postgres/init/${f}`)).join('\n');
    const reader = /GRAFANA_DB_USER:-([a-z_][a-z0-9_]*)/.exec(script)?.[1];
    expect(reader, 'deploy/postgres/init/ must create the reader role (GRAFANA_DB_USER:-name)').toBeDefined();
    // The login role is a member of the role hashwatt grants at start (src/storage/reader-grants.ts);
    // no blanket grant, which would let dashboards read token hashes.
    expect(script).toContain(`CREATE ROLE ${READER_ROLE} NOLOGIN`);
    expect(script).toMatch(new RegExp(`CREATE ROLE :"reader" .*IN ROLE ${READER_ROLE};`));
    expect(script).not.toMatch(/GRANT SELECT ON ALL TABLES|ALTER DEFAULT PRIVILEGES/);

    const pg = env('postgres');
    expect(pgDatasource.url).toBe('postgres:5432');
    expect(pgDatasource.user).toBe(reader);
    expect(pgDatasource.jsonData?.database).toBe(pg.POSTGRES_DB);
    expect(pgDatasource.editable).toBe(false);
    // The password reaches both containers from the same variable.
    const passwordRef = /^\$\{?([A-Z_][A-Z0-9_]*)\}?$/.exec(
      String(pgDatasource.secureJsonData?.password),
    )?.[1];
    expect(passwordRef, 'the datasource password must come from an environment variable').toBeDefined();
    expect(pg[passwordRef!], `postgres needs ${passwordRef} for the init script`).toBeDefined();
    expect(env('grafana')[passwordRef!]).toBe(pg[passwordRef!]);
    expect(service('grafana').depends_on?.postgres?.condition).toBe('service_healthy');
  });

  it('has a healthcheck on every service another one waits on with service_healthy', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [dependency, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(
          services[dependency],
          `services.${name} depends on unknown service ${dependency}`,
        ).toBeDefined();
        if (condition !== 'service_healthy') continue;
        const target = services[dependency]!;
        const fromDockerfile = target.build !== undefined && /^HEALTHCHECK /m.test(dockerfile);
        expect(
          (target.healthcheck?.test && !target.healthcheck.disable) || fromDockerfile,
          `services.${name} waits for ${dependency} to be healthy, which has no healthcheck`,
        ).toBeTruthy();
      }
    }
  });

  it('declares every named volume it uses', () => {
    const declared = new Set(Object.keys(compose.volumes ?? {}));
    for (const [name, s] of Object.entries(services)) {
      for (const spec of s.volumes ?? []) {
        const source = spec.split(':')[0]!;
        if (source.startsWith('.') || source.startsWith('/')) continue;
        expect(declared.has(source), `services.${name} uses undeclared volume ${source}`).toBe(true);
      }
    }
  });
});

describe('Dockerfile', () => {
  const nodeImage = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];

  it('builds on a pinned Node of the .nvmrc line, in more than one stage', () => {
    expect(nodeImage, 'Dockerfile: ARG NODE_IMAGE=node:<version>-<variant>').toBeDefined();
    const version = /^node:(\d+)\.(\d+)\.(\d+)-(?:[a-z]+-)?(?:slim|alpine[\d.]*)$/.exec(nodeImage!);
    expect(version, `${nodeImage} must pin a full Node version on a slim or alpine variant`).not.toBeNull();
    expect(version![1]).toBe(read('.nvmrc').trim());
    const stages = [...dockerfile.matchAll(/^FROM (\S+)(?: AS (\S+))?$/gm)];
    expect(
      stages.length,
      'multi-stage: dependencies in one stage, runtime in another',
    ).toBeGreaterThanOrEqual(2);
    for (const [, image] of stages) expect(image).toBe(NODE_IMAGE_ARG);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
  });

  it('ships what src/main.ts needs at run time and runs it as a non-root user', () => {
    for (const dir of ['src', 'migrations', 'simulators', 'bin']) {
      expect(dockerfile, `COPY ${dir}`).toMatch(new RegExp(`^COPY ${dir} \\./${dir}$`, 'm'));
      expect(existsSync(path.join(ROOT, dir))).toBe(true);
    }
    expect(dockerfile).toMatch(/^COPY --from=deps \/app\/node_modules \.\/node_modules$/m);
    const user = /^USER (\S+)$/m.exec(dockerfile)?.[1];
    expect(user, 'Dockerfile must switch to a non-root USER').toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(dockerfile).toMatch(/^CMD \["node", (?:"--[^"]+", )*"src\/main\.ts"\]$/m);
    const ignored = read('.dockerignore').split('\n');
    for (const needed of ['src', 'migrations', 'simulators', 'bin', 'package.json', 'package-lock.json']) {
      expect(ignored, `.dockerignore must not exclude ${needed}`).not.toContain(needed);
    }
  });

  it('exposes and health-checks the port hashwatt listens on', () => {
    const port = hashwattPort();
    expect(/^EXPOSE (\d+)$/m.exec(dockerfile)?.[1]).toBe(String(port));
    const defaultPort = /^ENV [\s\S]*?PORT=(\d+)/m.exec(dockerfile)?.[1];
    expect(defaultPort).toBe(String(port));
    const healthcheck = /^HEALTHCHECK [\s\S]*?CMD (.*)$/m.exec(dockerfile)?.[1];
    expect(healthcheck, 'Dockerfile: HEALTHCHECK ... CMD').toBeDefined();
    expect(healthcheck).toContain('/healthz');
    expect(healthcheck).toContain(`|| ${port}`);
    expect(healthcheck, 'slim images have no curl or wget').toMatch(/^\["node", "-e"/);
  });
});

interface Panel {
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: { expr?: string; rawSql?: string; datasource?: { uid: string } }[];
  fieldConfig?: { defaults?: { unit?: string } };
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  id: unknown;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
}

const dashboardFiles = readdirSync(path.join(ROOT, 'grafana/dashboards')).filter((f) => f.endsWith('.json'));

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

describe.each(dashboardFiles)('grafana/dashboards/%s', (file) => {
  const dashboard = JSON.parse(read(`grafana/dashboards/${file}`)) as Dashboard;
  const panels = allPanels(dashboard.panels).filter((p) => p.type !== 'row');
  const uids = new Set(datasources.map((d) => d.uid));

  it('has a fixed uid, no id and a current schema version', () => {
    expect(dashboard.uid).toMatch(/^hashwatt-[a-z-]+$/);
    expect(dashboard.id).toBeNull();
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
  });

  it('has a datasource variable and queries Prometheus through it, or a provisioned datasource', () => {
    const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
    expect(variable?.type).toBe('datasource');
    expect(variable?.query).toBe('prometheus');
    for (const panel of panels) {
      for (const ds of [panel.datasource, ...(panel.targets ?? []).map((t) => t.datasource)]) {
        expect(ds, `panel "${panel.title}" has no datasource`).toBeDefined();
        if (ds!.uid !== DATASOURCE_VARIABLE) {
          expect(
            uids.has(ds!.uid),
            `panel "${panel.title}": datasource uid ${ds!.uid} is not provisioned`,
          ).toBe(true);
        }
      }
    }
  });

  it('sets a unit on every panel', () => {
    for (const panel of panels) {
      expect(panel.fieldConfig?.defaults?.unit, `panel "${panel.title}" has no unit`).toBeTruthy();
    }
  });

  it('uses $__rate_interval in every rate, irate and increase', () => {
    for (const panel of panels) {
      for (const { expr } of panel.targets ?? []) {
        if (!expr) continue;
        for (const [call] of expr.matchAll(/\b(?:rate|irate|increase)\([^()]*(?:\([^()]*\)[^()]*)*\)/g)) {
          expect(call, `panel "${panel.title}"`).toContain('[$__rate_interval]');
        }
      }
    }
  });

  it('gives every panel a query', () => {
    for (const panel of panels) {
      const queries = (panel.targets ?? []).map((t) => t.expr ?? t.rawSql).filter(Boolean);
      expect(queries.length, `panel "${panel.title}" has no query`).toBeGreaterThan(0);
    }
  });
});
