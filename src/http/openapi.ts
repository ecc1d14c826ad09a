/**
 * The OpenAPI 3.1 document, built from the zod schemas the routes validate with (zod 4's own JSON
 * Schema output, as the input side: what a client sends), and `GET /docs` served from the
 * swagger-ui-dist package, never from a CDN.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Hono } from 'hono';
import { z } from 'zod';

export type HttpMethod = 'get' | 'post' | 'patch' | 'delete';

/** Who may call a route (docs/read-api.md). */
export type RouteAuth = 'none' | 'admin' | 'site' | 'reader' | 'metrics';

export interface BodyDoc {
  contentType: string;
  /** The JSON body's schema; for binary or text protocols, their description. */
  schema?: z.ZodType;
  description?: string;
}

export interface ResponseDoc {
  description: string;
  contentType?: string;
  schema?: z.ZodType;
}

export interface RouteDoc {
  method: HttpMethod;
  /** Hono's form: `/api/v1/sites/:id`. */
  path: string;
  summary: string;
  tag: string;
  auth: RouteAuth;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: BodyDoc[];
  responses: Record<string, ResponseDoc>;
}

/** JSON Schema of what a client sends: transforms and defaults seen from the input side. */
function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return rest;
}

function parameters(where: 'path' | 'query', schema: z.ZodObject | undefined) {
  if (!schema) return [];
  const js = jsonSchema(schema) as {
    properties?: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  return Object.entries(js.properties ?? {}).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || (js.required ?? []).includes(name),
    ...(typeof s.description === 'string' && { description: s.description }),
    schema: s,
  }));
}

const SECURITY: Record<RouteAuth, Record<string, string[]>[] | undefined> = {
  none: [],
  admin: [{ admin: [] }],
  site: [{ siteToken: [] }],
  reader: [{ admin: [] }, { siteToken: [] }, { viewerToken: [] }],
  metrics: [{}, { metricsToken: [] }],
};

/** The whole document for a list of routes. */
export function openApiDocument(routes: readonly RouteDoc[], version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const key = r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    paths[key] ??= {};
    paths[key][r.method] = {
      summary: r.summary,
      tags: [r.tag],
      operationId: `${r.method}${key.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase())}`,
      security: SECURITY[r.auth],
      parameters: [...parameters('path', r.params), ...parameters('query', r.query)],
      ...(r.body && {
        requestBody: {
          required: true,
          content: Object.fromEntries(
            r.body.map((b) => [
              b.contentType,
              {
                schema: b.schema
                  ? jsonSchema(b.schema)
                  : { type: 'string', format: 'binary', description: b.description },
              },
            ]),
          ),
        },
      }),
      responses: Object.fromEntries(
        Object.entries(r.responses).map(([status, res]) => [
          status,
          {
            description: res.description,
            ...((res.schema || res.contentType) && {
              content: {
                [res.contentType ?? 'application/json']: { schema: res.schema ? jsonSchema(res.schema) : {} },
              },
            }),
          },
        ]),
      ),
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'hashwatt',
      version,
      description:
        'Telemetry ingest and monitoring for crypto-mining and AI data centers. Errors of hashwatt’s own routes are `{ "error": { code, message, field?, request_id } }`; the push receivers answer in their protocol’s format.',
    },
    components: {
      securitySchemes: {
        admin: { type: 'http', scheme: 'bearer', description: 'HASHWATT_ADMIN_TOKEN' },
        siteToken: { type: 'http', scheme: 'bearer', description: 'a site’s ingest token (hw_…)' },
        viewerToken: {
          type: 'http',
          scheme: 'bearer',
          description:
            'a named viewer or operator token (hwr_…): reads its sites; an operator also acknowledges and silences',
        },
        metricsToken: { type: 'http', scheme: 'bearer', description: 'HASHWATT_METRICS_TOKEN, when set' },
      },
    },
    paths,
  };
}

const require = createRequire(import.meta.url);
/** The package's version: the document's `info.version`. */
export const SERVICE_VERSION: string = (require('../../package.json') as { version: string }).version;
const SWAGGER_DIR = path.dirname(require.resolve('swagger-ui-dist/package.json'));
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
};

/** The page: swagger-ui from the package, pointed at this service's document. */
const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>hashwatt API</title><link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui' });</script>
</body></html>`;

/** `GET /openapi.json`, `GET /docs` and its assets. */
export function openApiRoutes(document: unknown) {
  const body = JSON.stringify(document);
  const app = new Hono()
    .get('/openapi.json', (c) => c.body(body, 200, { 'content-type': 'application/json' }))
    .get('/docs', (c) => c.html(DOCS_PAGE));
  for (const [file, type] of Object.entries(ASSETS)) {
    // Read on first request: most processes never serve the docs.
    let content: Buffer | undefined;
    app.get(`/docs/${file}`, (c) => {
      content ??= readFileSync(path.join(SWAGGER_DIR, file));
      return c.body(new Uint8Array(content), 200, {
        'content-type': type,
        'cache-control': 'public, max-age=86400',
      });
    });
  }
  return app;
}
