import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../src/service.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import {
  ADMIN_TOKEN,
  adminRequest,
  asicReading,
  createSite,
  postReadings,
  startTestService,
} from './support/service.ts';

const run = promisify(execFile);

describe('sites admin API', () => {
  let db: TestDatabase;
  let service: RunningService;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await startTestService(db);
  });
  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  interface Body {
    token: string;
    site: Record<string, unknown> & {
      id: number;
      capacity_w: number;
      thresholds: Record<string, number>;
      threshold_overrides: Record<string, number>;
    };
    error: { code: string; field?: string };
  }
  const json = async (r: Response) => (await r.json()) as Body;

  it('creates a site with its token shown once, and never shows the token again', async () => {
    const response = await adminRequest(service.url, 'POST', '/api/v1/sites', {
      name: 'North Hall',
      kind: 'mixed',
      capacity_kw: 20_000,
      region: 'NO-3',
      timezone: 'Europe/Oslo',
      metadata: { operator: 'acme' },
    });
    expect(response.status).toBe(201);
    const body = await json(response);
    expect(body.token).toMatch(/^hw_[A-Za-z0-9_-]{43}$/);
    expect(body.site).toMatchObject({ name: 'North Hall', kind: 'mixed', capacity_w: 20e6, region: 'NO-3' });
    const shown = JSON.stringify(
      await json(await adminRequest(service.url, 'GET', `/api/v1/sites/${body.site.id}`)),
    );
    const listed = JSON.stringify(await json(await adminRequest(service.url, 'GET', '/api/v1/sites')));
    for (const text of [shown, listed]) {
      expect(text).not.toContain(body.token);
      expect(text).not.toContain('token_hash');
    }
  });

  it('answers 409 to a second site of the same name', async () => {
    const response = await adminRequest(service.url, 'POST', '/api/v1/sites', {
      name: 'North Hall',
      kind: 'ai',
      capacity_kw: 1,
    });
    expect(response.status).toBe(409);
    expect((await json(response)).error).toMatchObject({ code: 'site_exists', field: 'name' });
  });

  it.each([
    [{ name: 'x', kind: 'farm', capacity_kw: 1 }, 'kind'],
    [{ name: 'x', kind: 'ai', capacity_kw: -1 }, 'capacity_kw'],
    [{ name: 'x', kind: 'ai' }, 'capacity_kw'],
    [{ name: 'x', kind: 'ai', capacity_kw: 1, colour: 'red' }, 'colour'],
    [{ name: '', kind: 'ai', capacity_kw: 1 }, 'name'],
  ])('answers 400 naming the field for %j', async (body, field) => {
    const response = await adminRequest(service.url, 'POST', '/api/v1/sites', body);
    expect(response.status).toBe(400);
    expect((await json(response)).error).toMatchObject({ code: 'invalid_body', field });
  });

  it('updates capacity and thresholds partially; null resets a threshold to the default', async () => {
    const { site } = await createSite(service.url, 'patchy');
    let response = await adminRequest(service.url, 'PATCH', `/api/v1/sites/${site.id}`, {
      capacity_kw: 2500,
      thresholds: { site_down_after_s: 30, surplus_min_w: 100_000 },
    });
    expect(response.status).toBe(200);
    let body = await json(response);
    expect(body.site.capacity_w).toBe(2.5e6);
    expect(body.site.thresholds).toMatchObject({
      site_down_after_s: 30,
      surplus_min_w: 100_000,
      surplus_for_s: 600,
    });
    expect(body.site.threshold_overrides).toEqual({ site_down_after_s: 30, surplus_min_w: 100_000 });

    response = await adminRequest(service.url, 'PATCH', `/api/v1/sites/${site.id}`, {
      thresholds: { site_down_after_s: null },
    });
    body = await json(response);
    expect(body.site.thresholds.site_down_after_s).toBe(60);
    expect(body.site.threshold_overrides).toEqual({ surplus_min_w: 100_000 });
  });

  it('answers 400 naming an invalid threshold', async () => {
    const { site } = await createSite(service.url, 'strict');
    const response = await adminRequest(service.url, 'PATCH', `/api/v1/sites/${site.id}`, {
      thresholds: { hashing_ratio_min: 3 },
    });
    expect(response.status).toBe(400);
    expect((await json(response)).error.field).toBe('thresholds.hashing_ratio_min');
  });

  it('refuses to delete a site holding data unless purged, then removes all of it', async () => {
    const { site, token } = await createSite(service.url, 'doomed');
    await postReadings(service.url, token, [asicReading('d1', Date.now())]);
    let response = await adminRequest(service.url, 'DELETE', `/api/v1/sites/${site.id}`);
    expect(response.status).toBe(409);
    expect((await json(response)).error.code).toBe('site_has_data');
    response = await adminRequest(service.url, 'DELETE', `/api/v1/sites/${site.id}?purge=true`);
    expect(response.status).toBe(204);
    expect((await adminRequest(service.url, 'GET', `/api/v1/sites/${site.id}`)).status).toBe(404);
    expect((await postReadings(service.url, token, [asicReading('d1', Date.now())])).status).toBe(401);
    const left = await service.storage.db
      .selectFrom('readings')
      .select('ts')
      .where('site_id', '=', site.id)
      .execute();
    expect(left).toEqual([]);
  });

  it('keeps the admin API closed to a wrong token', async () => {
    const response = await fetch(`${service.url}/api/v1/sites`, {
      headers: { authorization: 'Bearer nope' },
    });
    expect(response.status).toBe(401);
  });

  it('serves the same API through the hashwatt CLI', async () => {
    const env = { ...process.env, HASHWATT_URL: service.url, HASHWATT_ADMIN_TOKEN: ADMIN_TOKEN };
    const created = await run(
      process.execPath,
      ['bin/hashwatt.js', 'sites', 'create', '--name', 'cli-site', '--kind', 'ai', '--capacity-kw', '750'],
      { env },
    );
    const token = created.stdout.trim().split('\n').at(-1)!;
    expect(token).toMatch(/^hw_/);
    expect(
      (await postReadings(service.url, token, [{ device: 'g', kind: 'gpu', ts: Date.now(), power_w: 700 }]))
        .status,
    ).toBe(200);
    const listed = await run(process.execPath, ['bin/hashwatt.js', 'sites', 'list'], { env });
    expect(listed.stdout).toContain('cli-site');
    const failed = await run(process.execPath, ['bin/hashwatt.js', 'sites', 'show', '99999'], { env }).catch(
      (e) => e,
    );
    expect(failed.code).toBe(2);
    expect(failed.stderr).toContain('404 not_found');
  });
});
