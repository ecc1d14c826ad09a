import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_ROUTES } from '../src/http/api-doc.ts';
import type { RunningService } from '../src/service.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { startTestService } from './support/service.ts';

describe('the OpenAPI document', () => {
  let testDb: TestDatabase;
  let service: RunningService;

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    service = await startTestService(testDb);
  }, 60_000);

  afterAll(async () => {
    await service?.stop();
    await testDb?.dispose();
  });

  it('is valid OpenAPI 3.1', async () => {
    const response = await fetch(`${service.url}/openapi.json`);
    expect(response.status).toBe(200);
    const document = (await response.json()) as { openapi: string };
    const result = await new Validator().validate(document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.openapi).toBe('3.1.0');
  });

  it('lists every route the service serves, and none it does not', () => {
    // swagger-ui's static files are assets of /docs, not API routes.
    const served = new Set(
      service.app.routes
        .filter((r) => r.method !== 'ALL' && !r.path.startsWith('/docs/'))
        .map((r) => `${r.method} ${r.path}`),
    );
    const documented = new Set(API_ROUTES.map((r) => `${r.method.toUpperCase()} ${r.path}`));
    expect([...served].filter((r) => !documented.has(r)).sort()).toEqual([]);
    expect([...documented].filter((r) => !served.has(r)).sort()).toEqual([]);
  });

  it('describes requests with the schemas the routes validate with', async () => {
    const document = (await (await fetch(`${service.url}/openapi.json`)).json()) as {
      paths: Record<
        string,
        Record<
          string,
          {
            parameters: { name: string; in: string }[];
            requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> };
          }
        >
      >;
    };
    const createSite = document.paths['/api/v1/sites']!.post!;
    expect(Object.keys(createSite.requestBody!.content['application/json']!.schema.properties!)).toEqual(
      expect.arrayContaining(['name', 'kind', 'capacity_kw']),
    );
    const series = document.paths['/api/v1/sites/{id}/series']!.get!;
    expect(series.parameters.map((p) => `${p.in}:${p.name}`)).toEqual(
      expect.arrayContaining([
        'path:id',
        'query:metric',
        'query:from',
        'query:to',
        'query:step',
        'query:agg',
      ]),
    );
  });

  it('serves interactive docs from the package, nothing from the internet', async () => {
    const page = await (await fetch(`${service.url}/docs`)).text();
    expect(page).toContain('/docs/swagger-ui-bundle.js');
    expect(page).not.toMatch(/https?:\/\//);
    const bundle = await fetch(`${service.url}/docs/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
  });
});
