import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { HashwattError } from '../errors.ts';
import { errorResponse } from '../http/errors.ts';
import type { ApiTokenGrant } from '../tokens/index.ts';
import { consoleRoutes } from './routes.ts';

const ADMIN_TOKEN = 'console-admin-token-0123456789';
const GRANTS: Record<string, ApiTokenGrant> = {
  hwr_viewer: { id: 1, name: 'wall screen', role: 'viewer', siteIds: new Set([3, 1]) },
  hwr_operator: { id: 2, name: 'night shift', role: 'operator', siteIds: undefined },
};

/** The console's router behind the same error mapping the service's app uses. */
function consoleApp() {
  return new Hono()
    .onError((error, c) => errorResponse(c, error))
    .notFound((c) => errorResponse(c, new HashwattError('not_found', 'no route')))
    .route(
      '/',
      consoleRoutes({
        adminToken: ADMIN_TOKEN,
        authenticateSite: async (token) => (token === 'hw_site' ? { id: 7, name: 'alpha' } : undefined),
        authenticateViewer: async (token) => GRANTS[token],
      }),
    );
}

const get = (path: string, headers: Record<string, string> = {}) =>
  consoleApp().request(`http://console.test${path}`, { headers });

describe('the console page', () => {
  it('is served at / with a policy that allows nothing but this origin', async () => {
    const response = await get('/');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    const page = await response.text();
    expect(page).toContain('<script type="module" src="/console/assets/app.js">');
    // Nothing from the internet, and no inline script the policy would refuse.
    expect(page).not.toMatch(/https?:\/\//);
    expect(page).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(page).not.toMatch(/\sstyle=/);
  });

  it('serves every asset the page and its modules load, uPlot from its package', async () => {
    const page = await (await get('/')).text();
    const wanted = new Set([...page.matchAll(/\/console\/assets\/([\w.-]+)/g)].map((m) => m[1]!));
    const seen = new Set<string>();
    // Follow the module graph: a module importing a file the service does not serve fails here.
    while (wanted.size > 0) {
      const [name] = wanted;
      wanted.delete(name!);
      seen.add(name!);
      const response = await get(`/console/assets/${name}`);
      expect(response.status, name).toBe(200);
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      if (!name!.endsWith('.js')) continue;
      expect(response.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      const source = await response.text();
      for (const m of source.matchAll(/\bfrom\s+'\.\/([\w.-]+)'/g)) if (!seen.has(m[1]!)) wanted.add(m[1]!);
    }
    expect([...seen]).toEqual(
      expect.arrayContaining([
        'app.js',
        'fleet.js',
        'site.js',
        'alerts.js',
        'charts.js',
        'uPlot.esm.js',
        'uPlot.min.css',
        'console.css',
      ]),
    );
    const uplot = await (await get('/console/assets/uPlot.esm.js')).text();
    expect(uplot).toContain('export { uPlot as default }');
  });

  it('answers an unchanged file 304 to a browser that has it', async () => {
    const first = await get('/console/assets/app.js');
    const etag = first.headers.get('etag');
    expect(etag).toMatch(/^"[\w-]{22}"$/);
    expect(first.headers.get('cache-control')).toBe('no-cache');
    const again = await get('/console/assets/app.js', { 'if-none-match': etag! });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    expect((await get('/console/assets/app.js', { 'if-none-match': '"stale"' })).status).toBe(200);
  });

  it('serves nothing beyond its assets: no type shims, config, sources or paths out', async () => {
    const typeOnly = readdirSync(path.join(import.meta.dirname, 'browser')).filter(
      (f) => f.endsWith('.d.ts') || f.endsWith('.json'),
    );
    expect(typeOnly.length).toBeGreaterThan(0);
    for (const name of [
      ...typeOnly,
      'index.html',
      '..%2Froutes.ts',
      '..%2F..%2F..%2Fpackage.json',
      '%2e%2e',
      'nope.js',
      '%00',
      '%FF',
    ]) {
      const response = await get(`/console/assets/${name}`);
      expect(response.status, name).toBe(404);
      const body = (await response.json()) as { error: { code: string } };
      expect(body.error.code).toBe('not_found');
    }
  });
});

describe('GET /console/session', () => {
  const session = async (token?: string, query = '') => {
    const response = await get(`/console/session${query}`, token ? { authorization: `Bearer ${token}` } : {});
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  it('names the role of each kind of token, and the sites it may read', async () => {
    expect(await session(ADMIN_TOKEN)).toEqual({
      status: 200,
      body: { role: 'admin', token_name: null, site_ids: null },
    });
    expect(await session('hwr_viewer')).toEqual({
      status: 200,
      body: { role: 'viewer', token_name: 'wall screen', site_ids: [1, 3] },
    });
    expect(await session('hwr_operator')).toEqual({
      status: 200,
      body: { role: 'operator', token_name: 'night shift', site_ids: null },
    });
    expect(await session('hw_site')).toEqual({
      status: 200,
      body: { role: 'site', token_name: null, site_ids: [7] },
    });
  });

  it('is 401 without a token or with one it does not know, and 400 for a query', async () => {
    expect((await session()).status).toBe(401);
    expect((await session('hwr_revoked')).status).toBe(401);
    const bad = await session(ADMIN_TOKEN, '?role=admin');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { code: 'invalid_query', field: 'role' } });
  });

  it('is never cached', async () => {
    const response = await get('/console/session', { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(response.headers.get('cache-control')).toBe('no-store');
  });
});
