import http from 'node:http';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../src/service.ts';
import { refusalError } from '../src/storage/errors.ts';
import { updateSite } from '../src/storage/sites.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { sortedJson } from './support/json.ts';
import {
  ADMIN_TOKEN,
  adminRequest,
  type CreatedSite,
  createSite,
  startTestService,
} from './support/service.ts';

interface ErrorBody {
  error: { code: string; message: string; field?: string; request_id: string };
}
interface SiteBody {
  site: { id: number; name: string; region: string | null; metadata: Record<string, unknown> };
}

/** An admin request with a body sent as raw text or bytes, so hostile JSON reaches the server unaltered. */
function rawRequest(
  base: string,
  method: string,
  path: string,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...headers },
    body,
  });
}

async function expectError(response: Response, status: number, code: string, field?: string) {
  const text = await response.text();
  expect([response.status, text]).toEqual([status, expect.any(String)]);
  const body = JSON.parse(text) as ErrorBody;
  expect(body.error).toMatchObject({ code, message: expect.any(String), request_id: expect.any(String) });
  if (field !== undefined) expect(body.error.field).toBe(field);
  return body;
}

describe('admin API edge: every bad input is a clear 4xx, and accepted data is stored as sent', () => {
  let db: TestDatabase;
  let service: RunningService;
  let site: CreatedSite;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await startTestService(db);
    site = await createSite(service.url, 'edge-site');
  });
  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  describe('site ids in paths', () => {
    const ids = () => {
      const id = site.site.id;
      return [
        '2147483648',
        '9007199254740991',
        '99999999999999999999',
        '0',
        '-1',
        `${id}.0`,
        `0x${id.toString(16)}`,
        `${id}e0`,
        `%20${id}`,
        `${id}%20`,
        `+${id}`,
        `0${id}`,
        `${id}%00`,
      ];
    };
    const routes: [string, (id: string) => string, unknown?][] = [
      ['GET', (id) => `/api/v1/sites/${id}`],
      ['PATCH', (id) => `/api/v1/sites/${id}`, { region: 'patched' }],
      ['POST', (id) => `/api/v1/sites/${id}/token`],
      ['GET', (id) => `/api/v1/sites/${id}/alerts`],
      ['DELETE', (id) => `/api/v1/sites/${id}?purge=true`],
    ];

    it('answers 404 naming the id to an id beyond int4 or not written canonically, on every route', async () => {
      for (const [method, path, body] of routes) {
        for (const id of ids()) {
          const response = await adminRequest(service.url, method, path(id), body);
          const error = await expectError(response, 404, 'not_found', 'id');
          expect(error.error.message).toContain('an id is a decimal integer from 1 to 2147483647');
        }
      }
      // None of them reached the site: it is still there, unpatched, with its first token.
      const shown = (await (
        await adminRequest(service.url, 'GET', `/api/v1/sites/${site.site.id}`)
      ).json()) as SiteBody;
      expect(shown.site.region).toBeNull();
    });

    it('still serves a canonical id', async () => {
      const response = await adminRequest(service.url, 'GET', `/api/v1/sites/${site.site.id}`);
      expect(response.status).toBe(200);
    });
  });

  describe('strings and metadata that Postgres cannot store as sent', () => {
    const create = (name: string, extra: string) =>
      rawRequest(
        service.url,
        'POST',
        '/api/v1/sites',
        `{"name":"${name}","kind":"ai","capacity_kw":1,${extra}}`,
      );

    it.each([
      ['"region":"NO\\u00003"', 'region'],
      ['"timezone":"Europe/Oslo\\u0000"', 'timezone'],
      ['"metadata":{"a":"x\\u0000y"}', 'metadata.a'],
      ['"metadata":{"k\\u0000":1}', 'metadata.k\u0000'],
      ['"region":"\\ud800"', 'region'],
      ['"timezone":"x\\udfff"', 'timezone'],
      ['"metadata":{"s":["ok","\\ud83d"]}', 'metadata.s.1'],
      ['"metadata":{"big":1e309}', 'metadata.big'],
      ['"metadata":{"small":-1e309}', 'metadata.small'],
      ['"metadata":[]', 'metadata'],
      ['"metadata":null', 'metadata'],
      ['"capacity_kw":1e309', 'capacity_kw'],
      // Numbers a double would alter on the way to jsonb: refused, not stored as another number.
      ['"metadata":{"serial":12345678901234567890}', 'metadata.serial'],
      ['"metadata":{"rack":{"id":9007199254740993}}', 'metadata.rack.id'],
      ['"metadata":{"tiny":1e-400}', 'metadata.tiny'],
      // The same key holding a fine 0 elsewhere: the field named is the one that holds the bad number.
      ['"metadata":{"a":{"x":0},"b":{"x":1e-400}}', 'metadata.b.x'],
    ])('refuses %s with 400 naming the field', async (extra, field) => {
      await expectError(await create(`str-${field.length}`, extra), 400, 'invalid_body', field);
      // The same value in a patch is refused the same way.
      await expectError(
        await rawRequest(service.url, 'PATCH', `/api/v1/sites/${site.site.id}`, `{${extra}}`),
        400,
        'invalid_body',
        field,
      );
    });

    it('refuses metadata nested 10,000 deep with a 400 naming the bound', async () => {
      const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
      const body = await expectError(await create('deep', `"metadata":${deep}`), 400, 'invalid_body');
      expect(body.error.field).toMatch(/^metadata(\.a)+$/);
      expect(body.error.message).toMatch(/nested deeper than 16 levels/);
    });

    it('refuses metadata over 64 KiB', async () => {
      const body = await expectError(
        await create('fat', `"metadata":{"s":"${'x'.repeat(70_000)}"}`),
        400,
        'invalid_body',
        'metadata',
      );
      expect(body.error.message).toMatch(/larger than 65536 bytes/);
    });

    it('stores __proto__ and constructor keys, nesting and numbers exactly as sent', async () => {
      const metadata =
        '{"__proto__":{"polluted":true},"constructor":{"prototype":1},"n":[1e308,-0.5,12345.678],"deep":{"b":{"c":{"d":"é😀"}}}}';
      const response = await create('proto', `"metadata":${metadata}`);
      expect(response.status).toBe(201);
      // jsonb keeps every key and value but not the order of keys, so compare key-sorted forms.
      const expected = sortedJson(JSON.parse(metadata));
      const created = JSON.parse(await response.text()) as SiteBody;
      expect(sortedJson(created.site.metadata)).toBe(expected);
      const shown = JSON.parse(
        await (await adminRequest(service.url, 'GET', `/api/v1/sites/${created.site.id}`)).text(),
      ) as SiteBody;
      expect(sortedJson(shown.site.metadata)).toBe(expected);
      expect(Object.hasOwn(shown.site.metadata, '__proto__')).toBe(true);
      // Nothing leaked onto Object.prototype on the way.
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();

      const patched = await rawRequest(
        service.url,
        'PATCH',
        `/api/v1/sites/${created.site.id}`,
        '{"metadata":{"__proto__":{"x":2}}}',
      );
      expect(patched.status).toBe(200);
      const after = JSON.parse(await patched.text()) as SiteBody;
      expect(JSON.stringify(after.site.metadata)).toBe('{"__proto__":{"x":2}}');
    });

    it('refuses a body that is not valid UTF-8 instead of storing U+FFFD', async () => {
      const bytes = Buffer.concat([
        Buffer.from('{"name":"utf","kind":"ai","capacity_kw":1,"region":"'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('"}'),
      ]);
      await expectError(
        await rawRequest(service.url, 'POST', '/api/v1/sites', bytes),
        400,
        'invalid_encoding',
      );
      const listed = (await (await adminRequest(service.url, 'GET', '/api/v1/sites')).json()) as {
        sites: { name: string }[];
      };
      expect(listed.sites.map((s) => s.name)).not.toContain('utf');
    });

    it('answers 400 to NUL or a lone surrogate in the site filter of the alerts list', async () => {
      for (const value of ['%00', 'edge-site%00', '%ED%A0%80', 'a%0Ab']) {
        const response = await adminRequest(service.url, 'GET', `/api/v1/alerts?site=${value}`);
        await expectError(response, 400, 'invalid_query', 'site');
      }
    });
  });

  describe('conflicts and query parameters', () => {
    it('answers 409 site_exists to a rename onto a taken name', async () => {
      const other = await createSite(service.url, 'rename-me');
      const response = await adminRequest(service.url, 'PATCH', `/api/v1/sites/${other.site.id}`, {
        name: 'edge-site',
      });
      await expectError(response, 409, 'site_exists', 'name');
    });

    it.each([
      ['DELETE', '?purge=yes', 'purge'],
      ['DELETE', '?purge=1', 'purge'],
      ['DELETE', '?force=true', 'force'],
      ['GET', '?x=1', 'x'],
    ])('answers 400 to %s %s naming the parameter', async (method, query, field) => {
      const response = await adminRequest(service.url, method, `/api/v1/sites/${site.site.id}${query}`);
      await expectError(response, 400, 'invalid_query', field);
    });

    it.each([
      ['limit=1e2', 'limit'],
      ['limit=0x10', 'limit'],
      ['limit=%2010', 'limit'],
      ['limit=99999999999999999999', 'limit'],
      ['state=%00', 'state'],
    ])('answers 400 to alerts?%s', async (query, field) => {
      await expectError(
        await adminRequest(service.url, 'GET', `/api/v1/alerts?${query}`),
        400,
        'invalid_query',
        field,
      );
    });
  });

  describe('body limit', () => {
    const MIB = 1024 * 1024;
    const padded = (bytes: number) => {
      const head = '{"name":"padded","kind":"ai","capacity_kw":1}';
      return head + ' '.repeat(bytes - head.length);
    };

    it('answers 413 in the envelope to a body over 1 MiB with a Content-Length', async () => {
      for (const [method, path] of [
        ['POST', '/api/v1/sites'],
        ['PATCH', `/api/v1/sites/${site.site.id}`],
      ] as const) {
        const response = await rawRequest(service.url, method, path, padded(MIB + 1));
        // The unread rest of the body ends the connection, so the client's next request gets a new one.
        expect(response.headers.get('connection')).toBe('close');
        await expectError(response, 413, 'payload_too_large');
      }
    });

    it('counts a streamed body with no Content-Length, answering before the sender is done', async () => {
      // Chunked, as an agent streaming its upload would send it; 64 MiB on offer, written only as the
      // server takes it, and stopped as soon as it answers.
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const request = http.request(`${service.url}/api/v1/sites`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        });
        let answered = false;
        request.on('response', (response) => {
          answered = true;
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (part: string) => {
            text += part;
          });
          response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
        });
        request.on('error', (error) => {
          if (!answered) reject(error);
        });
        const write = () => {
          while (!answered && sent < 64 * MIB) {
            sent += chunk.byteLength;
            if (!request.write(chunk)) return void request.once('drain', write);
          }
          request.end();
        };
        write();
      });
      expect(status).toBe(413);
      expect((JSON.parse(text) as ErrorBody).error).toMatchObject({ code: 'payload_too_large' });
      expect(sent).toBeLessThan(64 * MIB);
    });

    it('accepts a body of just under 1 MiB', async () => {
      const response = await rawRequest(service.url, 'POST', '/api/v1/sites', padded(MIB - 16));
      expect(response.status).toBe(201);
    });
  });

  describe('database refusals map to a 4xx in one place (the net behind edge validation)', () => {
    const refusalOf = async (query: Promise<unknown>) => refusalError(await query.catch((e: unknown) => e));

    it.each([
      ['NUL in text', sql`SELECT ${'a\u0000b'}::text`],
      ['NUL in jsonb', sql`SELECT ${'{"a":"\\u0000"}'}::jsonb`],
      ['a lone surrogate in jsonb', sql`SELECT ${'{"a":"\\ud800"}'}::jsonb`],
      ['an int4 past its range', sql`SELECT ${'2147483648'}::integer`],
      ['a numeric past its range', sql`SELECT ${'1e400'}::float8`],
      ['jsonb nested past the stack', sql`SELECT ${`${'['.repeat(100_000)}${']'.repeat(100_000)}`}::jsonb`],
    ])('%s is invalid_value', async (_, statement) => {
      const error = await refusalOf(statement.execute(service.storage.db));
      expect(error).toMatchObject({ code: 'invalid_value' });
    });

    it('a unique violation of the site name is site_exists', async () => {
      const other = await createSite(service.url, 'direct-rename');
      const error = await refusalOf(updateSite(service.storage.db, other.site.id, { name: 'edge-site' }));
      expect(error).toMatchObject({ code: 'site_exists', details: { field: 'name' } });
    });

    it('leaves faults that are not bad input alone', async () => {
      expect(await refusalOf(sql`SELECT * FROM no_such_table`.execute(service.storage.db))).toBeUndefined();
    });
  });
});
