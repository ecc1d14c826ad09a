import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../src/service.ts';
import { authenticateApiToken } from '../src/tokens/index.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import { adminRequest, createSite, startTestService } from './support/service.ts';

describe.each(BACKENDS)('named API tokens on %s', (backend) => {
  let testDb: TestDatabase;
  let service: RunningService;
  let siteId: number;

  beforeAll(async () => {
    testDb = await createTestDatabase(backend);
    service = await startTestService(testDb);
    siteId = (await createSite(service.url, `tokens-${backend}`)).site.id;
  }, 60_000);

  afterAll(async () => {
    await service?.stop();
    await testDb?.dispose();
  });

  it('creates a viewer token shown once, lists it without it, and revokes it for good', async () => {
    const created = await adminRequest(service.url, 'POST', '/api/v1/tokens', {
      name: 'grafana',
      role: 'viewer',
      sites: [siteId, siteId],
    });
    expect(created.status).toBe(201);
    const { token, api_token } = (await created.json()) as { token: string; api_token: { id: number } };
    expect(token).toMatch(/^hwr_[A-Za-z0-9_-]{43}$/);
    expect(api_token).toMatchObject({ name: 'grafana', role: 'viewer', sites: [siteId], last_used_at: null });

    const grant = await authenticateApiToken(service.storage, token);
    expect(grant).toMatchObject({ id: api_token.id, role: 'viewer' });
    expect([...(grant?.siteIds ?? [])]).toEqual([siteId]);
    expect(await authenticateApiToken(service.storage, `${token}x`)).toBeUndefined();

    // The use is recorded (off the request path): await it.
    let listed: { tokens: { id: number; last_used_at: string | null }[] } = { tokens: [] };
    for (let i = 0; i < 50; i++) {
      listed = (await (await adminRequest(service.url, 'GET', '/api/v1/tokens')).json()) as typeof listed;
      if (listed.tokens[0]?.last_used_at) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(listed.tokens).toHaveLength(1);
    expect(listed.tokens[0]!.last_used_at).not.toBeNull();
    expect(JSON.stringify(listed)).not.toContain(token);

    expect((await adminRequest(service.url, 'DELETE', `/api/v1/tokens/${api_token.id}`)).status).toBe(204);
    expect(await authenticateApiToken(service.storage, token)).toBeUndefined();
    expect((await adminRequest(service.url, 'DELETE', `/api/v1/tokens/${api_token.id}`)).status).toBe(404);
  });

  it('creates operator tokens, which authenticate as operators and administer nothing', async () => {
    const created = await adminRequest(service.url, 'POST', '/api/v1/tokens', {
      name: 'noc-bob',
      role: 'operator',
      sites: [siteId],
    });
    expect(created.status).toBe(201);
    const { token, api_token } = (await created.json()) as { token: string; api_token: { id: number } };
    expect(api_token).toMatchObject({ name: 'noc-bob', role: 'operator', sites: [siteId] });
    expect(await authenticateApiToken(service.storage, token)).toMatchObject({ role: 'operator' });
    const listed = (await (await adminRequest(service.url, 'GET', '/api/v1/tokens')).json()) as {
      tokens: { name: string; role: string }[];
    };
    expect(listed.tokens).toContainEqual(expect.objectContaining({ name: 'noc-bob', role: 'operator' }));
    // Reads its site; the admin routes stay the admin's.
    const auth = { authorization: `Bearer ${token}` };
    expect((await fetch(`${service.url}/api/v1/sites/${siteId}/status`, { headers: auth })).status).toBe(200);
    // The alerts of the sites it reads are a reader's, as for viewers.
    expect((await fetch(`${service.url}/api/v1/alerts`, { headers: auth })).status).toBe(200);
    for (const [method, path] of [
      ['GET', '/api/v1/tokens'],
      ['POST', '/api/v1/tokens'],
      ['GET', '/api/v1/sites'],
      ['PATCH', `/api/v1/sites/${siteId}`],
    ] as const) {
      const response = await fetch(service.url + path, {
        method,
        headers: { ...auth, 'content-type': 'application/json' },
        ...(method !== 'GET' && { body: '{}' }),
      });
      expect([method, path, response.status]).toEqual([method, path, 401]);
    }
  });

  it('keeps the name "admin" for the admin token', async () => {
    for (const name of ['admin', 'Admin', 'ADMIN']) {
      const response = await adminRequest(service.url, 'POST', '/api/v1/tokens', { name, role: 'operator' });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: 'invalid_body', field: 'name' } });
    }
  });

  it('refuses a taken name, an unknown site and unknown fields, naming them', async () => {
    await adminRequest(service.url, 'POST', '/api/v1/tokens', { name: 'ops', role: 'viewer' });
    const taken = await adminRequest(service.url, 'POST', '/api/v1/tokens', { name: 'ops', role: 'viewer' });
    expect(taken.status).toBe(409);
    expect(await taken.json()).toMatchObject({ error: { code: 'token_exists', field: 'name' } });
    const noSite = await adminRequest(service.url, 'POST', '/api/v1/tokens', {
      name: 'x',
      role: 'viewer',
      sites: [999_999],
    });
    expect(noSite.status).toBe(400);
    expect(await noSite.json()).toMatchObject({ error: { field: 'sites' } });
    const badRole = await adminRequest(service.url, 'POST', '/api/v1/tokens', { name: 'y', role: 'admin' });
    expect(badRole.status).toBe(400);
    expect(await badRole.json()).toMatchObject({ error: { field: 'role' } });
    const noAdmin = await fetch(`${service.url}/api/v1/tokens`);
    expect(noAdmin.status).toBe(401);
  });
});
