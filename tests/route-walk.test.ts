/**
 * The hostile-value route walk: every route the app registers gets a table of hostile path, query
 * and body values, and every one must be answered below 500 with a well-formed error envelope.
 * The routes come from the app itself, so a route added without a table here fails this test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_STATUS, type ErrorCode } from '../src/errors.ts';
import type { RunningService } from '../src/service.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { sortedJson } from './support/json.ts';
import { ADMIN_TOKEN, asicReading, type LogLine, startTestService } from './support/service.ts';

type App = RunningService['app'];

/** One request of the walk. `path` is sent as written: its percent-escapes reach the router raw. */
interface Probe {
  method: string;
  path: string;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  /** Leave out the admin token (the route's auth is probed too). */
  anonymous?: boolean;
  /** What is wrong with an accepted answer beyond its status, or undefined. */
  check?: (probe: Probe, response: Response) => Promise<string | undefined>;
}

/** What a route's table is given: a site of its own (so a route that alters it spoils no other). */
interface WalkSite {
  id: number;
  token: string;
  /** A name no other site has, for bodies that create one. */
  freshName(): string;
}

// Values for a path segment, written as they go on the wire.
const HOSTILE_SEGMENTS = [
  '0',
  '-1',
  '2147483648',
  '9007199254740991',
  '99999999999999999999',
  '1.0',
  '0x1',
  '1e0',
  '%201',
  '1%20',
  '+1',
  '01',
  '%00',
  '1%00',
  'abc',
  'NaN',
  'Infinity',
  '%F0%9F%98%80',
  '%ED%A0%80',
  '%FF',
  '%',
  '%ZZ',
  '%2F',
  '..',
  "1'",
  '1;DROP%20TABLE%20sites',
  'x'.repeat(5000),
];

// Values for a query parameter, percent-encoded where they need it.
const HOSTILE_QUERY_VALUES = [
  '',
  '%00',
  'a%00b',
  '%ED%A0%80',
  '%FF',
  '%',
  '%ZZ',
  '%20',
  'x'.repeat(5000),
  '-1',
  '0',
  '1e2',
  '0x10',
  '99999999999999999999',
  '2147483648',
  'NaN',
  'Infinity',
  "'",
  'false',
  'firing',
];

// JSON values substituted for one body field at a time, as raw JSON text.
const deepArrays = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
const deepObjects = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
const HOSTILE_JSON = [
  'null',
  'true',
  '0',
  '-0',
  '-1',
  '1.5',
  '1e309',
  '-1e309',
  '1e-400',
  '9007199254740993',
  '2147483648',
  '""',
  '" "',
  '"\\u0000"',
  '"a\\u0000b"',
  '"\\ud800"',
  '"x\\udfff"',
  '"ñ😀"',
  '"\\n\\t"',
  '"<script>"',
  `"' OR 1=1 --"`,
  `"${'x'.repeat(100_000)}"`,
  '[]',
  '[null]',
  '{}',
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '{"\\u0000":1}',
  '{"\\ud800":1}',
  '{"big":1e309}',
  deepArrays,
  deepObjects,
];

// Whole bodies.
const HOSTILE_BODIES: (string | Uint8Array)[] = [
  '',
  ' ',
  'null',
  '[]',
  '"x"',
  '1',
  '{',
  '{"a":',
  'NaN',
  '{"__proto__":1}',
  '{"__proto__":{"polluted":true}}',
  Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
  Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]),
  `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
  `{"pad":"${'x'.repeat(2 * 1024 * 1024)}"}`,
];

const UNKNOWN_PARAM = 'unexpected_param';

/** Every hostile value in the one path parameter `:name` of `template`. */
function pathProbes(
  method: string,
  template: string,
  name: string,
  extra: Omit<Probe, 'method' | 'path'> = {},
) {
  return HOSTILE_SEGMENTS.map((segment) => ({
    method,
    path: template.replace(`:${name}`, segment),
    ...extra,
  }));
}

/** Every hostile value in each named query parameter, an unknown one, repeats and a bare key. */
function queryProbes(
  method: string,
  path: string,
  names: string[],
  extra: Omit<Probe, 'method' | 'path'> = {},
) {
  const probes: Probe[] = [];
  for (const name of [...names, UNKNOWN_PARAM]) {
    for (const value of HOSTILE_QUERY_VALUES)
      probes.push({ method, path: `${path}?${name}=${value}`, ...extra });
    probes.push({ method, path: `${path}?${name}=1&${name}=2`, ...extra });
    probes.push({ method, path: `${path}?${name}`, ...extra });
  }
  return probes;
}

const SENTINEL = '\u0001hostile\u0001';

/** `base` as JSON text with the field at `field` (dotted; digits index arrays) replaced by raw JSON. */
function withRawField(base: unknown, field: string, raw: string): string {
  const copy = structuredClone(base) as Record<string, unknown>;
  const keys = field.split('.');
  let at: Record<string, unknown> = copy;
  for (const key of keys.slice(0, -1)) {
    at[key] ??= {};
    at = at[key] as Record<string, unknown>;
  }
  at[keys.at(-1)!] = SENTINEL;
  return JSON.stringify(copy).replace(JSON.stringify(SENTINEL), raw);
}

/** Every hostile whole body, then every hostile JSON value in each field of a valid body. */
function bodyProbes(
  method: string,
  path: string,
  base: () => unknown,
  fields: string[],
  headers: Record<string, string> = {},
) {
  const probes: Probe[] = HOSTILE_BODIES.map((body) => ({ method, path, body, headers }));
  for (const field of fields) {
    for (const raw of HOSTILE_JSON)
      probes.push({ method, path, body: withRawField(base(), field, raw), headers });
  }
  probes.push({ method, path, body: JSON.stringify(base()), headers: { 'content-type': 'text/plain' } });
  return probes;
}

/** An accepted site body must come back (from the row as stored) exactly as it was sent. */
async function storedAsSent(probe: Probe, response: Response): Promise<string | undefined> {
  if (response.status >= 300 || typeof probe.body !== 'string') return undefined;
  const sent = JSON.parse(probe.body) as Record<string, unknown>;
  const { site } = (await response.json()) as {
    site: Record<string, unknown> & { threshold_overrides: Record<string, unknown> };
  };
  for (const [field, value] of Object.entries(sent)) {
    if (field === 'thresholds') {
      for (const [name, threshold] of Object.entries(value as Record<string, unknown>)) {
        const stored = site.threshold_overrides[name];
        if (threshold === null ? stored !== undefined : stored !== threshold) {
          return `threshold ${name} sent ${JSON.stringify(threshold)}, stored ${JSON.stringify(stored)}`;
        }
      }
    } else if (sortedJson(site[field]) !== sortedJson(value)) {
      return `${field} sent ${sortedJson(value).slice(0, 200)}, stored ${sortedJson(site[field]).slice(0, 200)}`;
    }
  }
  return undefined;
}

const SITE_FIELDS = [
  'name',
  'kind',
  'capacity_kw',
  'region',
  'timezone',
  'metadata',
  'metadata.x',
  'metadata.x.y',
];
const PATCH_FIELDS = [
  ...SITE_FIELDS,
  'thresholds',
  'thresholds.site_down_after_s',
  'thresholds.surplus_min_ratio',
];
const ALERT_QUERY = ['state', 'limit'];

/**
 * The hostile table of every route, keyed `METHOD path` as the app registers it. A route missing
 * here fails the walk; so does an entry for a route the app no longer has.
 */
const TABLE: Record<string, (site: WalkSite) => Probe[]> = {
  'GET /healthz': () => queryProbes('GET', '/healthz', []),
  'GET /readyz': () => queryProbes('GET', '/readyz', []),
  'GET /metrics': () => [
    ...queryProbes('GET', '/metrics', []),
    { method: 'GET', path: '/metrics', headers: { authorization: 'Bearer \u00ff' } },
  ],
  'POST /api/v1/sites': (site) => [
    { method: 'POST', path: '/api/v1/sites', body: '{}', anonymous: true },
    ...bodyProbes(
      'POST',
      '/api/v1/sites',
      () => ({ name: site.freshName(), kind: 'mining', capacity_kw: 1 }),
      SITE_FIELDS,
    ).map((probe) => ({ ...probe, check: storedAsSent })),
    ...queryProbes('POST', '/api/v1/sites', [], { body: '{}' }),
  ],
  'GET /api/v1/sites': () => [
    { method: 'GET', path: '/api/v1/sites', anonymous: true },
    ...queryProbes('GET', '/api/v1/sites', []),
  ],
  'GET /api/v1/sites/:id': (site) => [
    { method: 'GET', path: `/api/v1/sites/${site.id}`, anonymous: true },
    ...pathProbes('GET', '/api/v1/sites/:id', 'id'),
    ...queryProbes('GET', `/api/v1/sites/${site.id}`, []),
  ],
  'PATCH /api/v1/sites/:id': (site) => [
    { method: 'PATCH', path: `/api/v1/sites/${site.id}`, body: '{}', anonymous: true },
    ...pathProbes('PATCH', '/api/v1/sites/:id', 'id', { body: '{"region":"walk"}' }),
    ...queryProbes('PATCH', `/api/v1/sites/${site.id}`, [], { body: '{}' }),
    ...bodyProbes('PATCH', `/api/v1/sites/${site.id}`, () => ({}), PATCH_FIELDS).map((probe) => ({
      ...probe,
      check: storedAsSent,
    })),
  ],
  'POST /api/v1/sites/:id/token': (site) => [
    { method: 'POST', path: `/api/v1/sites/${site.id}/token`, anonymous: true },
    ...pathProbes('POST', '/api/v1/sites/:id/token', 'id'),
    ...queryProbes('POST', `/api/v1/sites/${site.id}/token`, []),
    ...HOSTILE_BODIES.map((body) => ({ method: 'POST', path: `/api/v1/sites/${site.id}/token`, body })),
  ],
  'DELETE /api/v1/sites/:id': (site) => [
    { method: 'DELETE', path: `/api/v1/sites/${site.id}`, anonymous: true },
    ...pathProbes('DELETE', '/api/v1/sites/:id', 'id'),
    ...pathProbes('DELETE', '/api/v1/sites/:id?purge=true', 'id'),
    ...HOSTILE_BODIES.map((body) => ({ method: 'DELETE', path: `/api/v1/sites/${site.id}`, body })),
    // Last: `purge=true` among them may delete the route's own site, which is what it is for.
    ...queryProbes('DELETE', `/api/v1/sites/${site.id}`, ['purge']),
  ],
  'GET /api/v1/alerts': () => [
    { method: 'GET', path: '/api/v1/alerts', anonymous: true },
    ...queryProbes('GET', '/api/v1/alerts', [...ALERT_QUERY, 'site']),
  ],
  'GET /api/v1/sites/:id/alerts': (site) => [
    { method: 'GET', path: `/api/v1/sites/${site.id}/alerts`, anonymous: true },
    ...pathProbes('GET', '/api/v1/sites/:id/alerts', 'id'),
    ...queryProbes('GET', `/api/v1/sites/${site.id}/alerts`, ALERT_QUERY),
  ],
  // The ingest path has its own fuzz suite (tests/reliability/hostile-input.test.ts); a smaller set here.
  'POST /api/v1/ingest': (site) => {
    const auth = { authorization: `Bearer ${site.token}`, 'content-type': 'application/json' };
    return [
      { method: 'POST', path: '/api/v1/ingest', body: '{"readings":[]}', anonymous: true },
      {
        method: 'POST',
        path: '/api/v1/ingest',
        body: '{"readings":[]}',
        anonymous: true,
        headers: { authorization: 'Bearer hw_\u00ff', 'content-type': 'application/json' },
      },
      {
        method: 'POST',
        path: '/api/v1/ingest',
        body: 'not gzip',
        headers: { ...auth, 'content-encoding': 'gzip' },
      },
      ...bodyProbes(
        'POST',
        '/api/v1/ingest',
        () => ({ readings: [asicReading('walk', Date.now())] }),
        [
          'readings',
          'readings.0',
          'readings.0.device',
          'readings.0.ts',
          'readings.0.power_w',
          'readings.0.status',
        ],
        auth,
      ),
    ];
  },
};

/** Requests no registered route answers. */
const UNROUTED: Probe[] = [
  ...['/', '/api', '/api/v1', '/api/v1/nope', '/%00', '/%ED%A0%80', `/${'x'.repeat(5000)}`].map((path) => ({
    method: 'GET',
    path,
  })),
  { method: 'PUT', path: '/api/v1/sites', body: '{}' },
  { method: 'DELETE', path: '/api/v1/sites' },
  { method: 'POST', path: '/api/v1/alerts', body: '{}' },
  { method: 'GET', path: '/api/v1/ingest' },
  { method: 'PATCH', path: '/healthz', body: '{}' },
];

/** The app as src/service.ts composes it, on a real database, with its log captured. */

/** The routes the app registers, as `METHOD path`; `ALL` entries are middleware (`app.use`). */
function registeredRoutes(app: App): string[] {
  const keys = app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`);
  return [...new Set(keys)].sort();
}

async function send(app: App, probe: Probe): Promise<Response> {
  const headers: Record<string, string> = {
    ...(!probe.anonymous && { authorization: `Bearer ${ADMIN_TOKEN}` }),
    ...(probe.body !== undefined && { 'content-type': 'application/json' }),
    ...probe.headers,
  };
  return app.request(`http://walk.test${probe.path}`, {
    method: probe.method,
    headers,
    ...(probe.body !== undefined && { body: probe.body }),
  });
}

/** What is wrong with an answer, or undefined: a 5xx, or a 4xx that is not the envelope. */
async function faultOf(response: Response): Promise<string | undefined> {
  if (response.status >= 500) return `status ${response.status}: ${await response.text()}`;
  if (response.status < 400) return undefined;
  const text = await response.text();
  let body: { error?: { code?: unknown; message?: unknown; field?: unknown; request_id?: unknown } };
  try {
    body = JSON.parse(text);
  } catch {
    return `status ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`;
  }
  const error = body.error;
  if (typeof error?.code !== 'string' || !(error.code in ERROR_STATUS)) return `no known error code: ${text}`;
  if (ERROR_STATUS[error.code as ErrorCode] !== response.status) return `code/status mismatch: ${text}`;
  if (typeof error.message !== 'string' || error.message === '') return `no message: ${text}`;
  if (typeof error.request_id !== 'string') return `no request_id: ${text}`;
  if (error.field !== undefined && typeof error.field !== 'string') return `field not a string: ${text}`;
  return undefined;
}

describe('hostile-value walk of every registered route', () => {
  let db: TestDatabase;
  let service: RunningService;
  let composed: { app: App };
  const log: LogLine[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    // The app exactly as the service wires it, with its log kept for the unhandled-error check.
    service = await startTestService(db, { log });
    composed = { app: service.app };
  });
  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('has a hostile table for every route the app registers, and none for a route it does not', () => {
    const routes = registeredRoutes(composed.app);
    expect(
      routes.filter((route) => !(route in TABLE)),
      'routes with no hostile table',
    ).toEqual([]);
    expect(
      Object.keys(TABLE).filter((route) => !routes.includes(route)),
      'tables of no route',
    ).toEqual([]);
  });

  it('answers every hostile request below 500 with a well-formed error envelope', async () => {
    const { app } = composed;
    let names = 0;
    let sent = 0;
    const faults: string[] = [];
    for (const [index, route] of registeredRoutes(app).entries()) {
      const build = TABLE[route];
      if (!build) continue;
      const created = await app.request('http://walk.test/api/v1/sites', {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `walk-route-${index}`, kind: 'mixed', capacity_kw: 10 }),
      });
      expect(created.status).toBe(201);
      const { site, token } = (await created.json()) as { site: { id: number }; token: string };
      const walkSite: WalkSite = { id: site.id, token, freshName: () => `walk-${index}-${names++}` };
      for (const probe of build(walkSite)) {
        const response = await send(app, probe);
        const fault = (await faultOf(response.clone())) ?? (await probe.check?.(probe, response));
        sent += 1;
        if (fault)
          faults.push(
            `${probe.method} ${probe.path.slice(0, 120)} ${String(probe.body ?? '').slice(0, 80)} → ${fault}`,
          );
      }
    }
    // Paths and methods no route has: the not-found answer is an envelope too.
    for (const probe of UNROUTED) {
      const fault = await faultOf(await send(app, probe));
      sent += 1;
      if (fault) faults.push(`${probe.method} ${probe.path.slice(0, 120)} → ${fault}`);
    }
    expect(faults).toEqual([]);
    expect(log.filter((line) => line.msg === 'unhandled error')).toEqual([]);
    // Nothing reached Object.prototype through a `__proto__` or `constructor` key.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(sent).toBeGreaterThan(1000);
  });
});
