import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../src/alerting/testing.ts';
import type { RunningService } from '../src/service.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import { ADMIN_TOKEN, type LogLine, startTestService } from './support/service.ts';

// The service's own edge, before any route: request ids it echoes and the /metrics bearer token.

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

describe('the request id', () => {
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

  it('echoes a client id that is short and header-safe, in the header and the error envelope', async () => {
    const response = await fetch(`${service.url}/api/v1/nowhere`, {
      headers: { 'x-request-id': 'agent-7.r:42' },
    });
    expect(response.status).toBe(404);
    expect(response.headers.get('x-request-id')).toBe('agent-7.r:42');
    const body = (await response.json()) as { error: { request_id: string } };
    expect(body.error.request_id).toBe('agent-7.r:42');
  });

  it('replaces an 8,000-character or unsafe id with its own instead of echoing it', async () => {
    for (const sent of ['x'.repeat(8_000), 'a b', 'id"<script>', 'x'.repeat(129)]) {
      const response = await fetch(`${service.url}/api/v1/nowhere`, { headers: { 'x-request-id': sent } });
      const echoed = response.headers.get('x-request-id') ?? '';
      expect(echoed).not.toBe(sent);
      expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
      const body = (await response.json()) as { error: { request_id: string } };
      expect(body.error.request_id).toBe(echoed);
    }
  });

  it('keeps /metrics open when HASHWATT_METRICS_TOKEN is unset (the Prometheus convention)', async () => {
    expect((await fetch(`${service.url}/metrics`)).status).toBe(200);
  });
});

describe('HASHWATT_METRICS_TOKEN', () => {
  let db: TestDatabase;
  let service: RunningService;

  beforeAll(async () => {
    db = await createTestDatabase('pglite');
    service = await startTestService(db, { env: { HASHWATT_METRICS_TOKEN: METRICS_TOKEN } });
  });
  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('refuses a scrape without the token or with another, with a Bearer challenge', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789', `Basic ${METRICS_TOKEN}`]) {
      const response = await fetch(`${service.url}/metrics`, {
        headers: authorization ? { authorization } : {},
      });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="hashwatt metrics"');
      const body = (await response.json()) as { error: { code: string } };
      expect(body.error.code).toBe('unauthorized');
    }
  });

  it('serves the exposition to a scrape with the token', async () => {
    const response = await fetch(`${service.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('hashwatt_ingest_requests_total');
  });

  it('leaves health checks open: a load balancer carries no token', async () => {
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
  });
});

describe('a client that abandons an admin upload', () => {
  let db: TestDatabase;
  let service: RunningService;
  const log: LogLine[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await startTestService(db, { log });
  });
  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('is logged as 499, never as a database outage or an unhandled error', async () => {
    const { port } = new URL(service.url);
    for (const end of ['reset', 'half-close'] as const) {
      const socket = net.connect(Number(port), '127.0.0.1');
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(
        `POST /api/v1/sites HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${ADMIN_TOKEN}\r\n` +
          'content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n8\r\n{"name":\r\n',
      );
      // The server has started on the body before the client leaves.
      await new Promise((r) => setImmediate(r));
      if (end === 'reset') socket.resetAndDestroy();
      else socket.end();
    }
    await waitFor(
      'both abandoned uploads to be logged',
      async () => log.filter((e) => e.msg === 'request' && e.path === '/api/v1/sites').length >= 2,
      10_000,
    );
    const requests = log.filter((e) => e.msg === 'request' && e.path === '/api/v1/sites');
    expect(requests.map((e) => e.status)).toEqual([499, 499]);
    expect(requests.map((e) => e.error)).toEqual(['client_closed_request', 'client_closed_request']);
    expect(log.filter((e) => e.msg === 'unhandled error')).toEqual([]);
  });
});
