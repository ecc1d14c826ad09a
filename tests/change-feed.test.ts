/**
 * Two replicas on one Postgres cache authentication; a token rotated through one stops working on
 * the other within a second, and the other's idle WebSocket of that site is closed. On PGlite the
 * same holds for a change made outside the HTTP API (as the CLI makes it).
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import type { RunningService } from '../src/service.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import { adminRequest, asicReading, createSite, postReadings, startTestService } from './support/service.ts';

function openStream(url: string, token: string): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/api/v1/stream`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const closed = new Promise<number>((done) => ws.once('close', (code) => done(code)));
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('error', reject);
  });
}

describe.each(BACKENDS)('cached authentication and the change feed on %s', (backend) => {
  let db: TestDatabase;
  const services: RunningService[] = [];

  beforeAll(async () => {
    db = await createTestDatabase(backend);
    services.push(await startTestService(db));
    if (backend === 'postgres') services.push(await startTestService(db));
  }, 60_000);

  afterAll(async () => {
    for (const s of services) await s.stop();
    await db?.dispose();
  });

  it('a rotated token stops everywhere within a second, idle streams included', async () => {
    const [a, b = a] = services as [RunningService, RunningService?];
    const site = await createSite(a.url, `feed-${backend}`);
    // Warm both replicas' caches with the token.
    for (const s of [a, b])
      expect((await postReadings(s.url, site.token, [asicReading('x', Date.now())])).status).toBe(200);
    const stream = await openStream(b.url, site.token);
    const started = Date.now();
    if (backend === 'postgres') {
      expect((await adminRequest(a.url, 'POST', `/api/v1/sites/${site.site.id}/token`)).status).toBe(200);
    } else {
      // As `hashwatt sites rotate-token` on the database would: no HTTP request to hear it from.
      await sql`UPDATE sites SET token_hash = decode(md5(random()::text), 'hex') WHERE id = ${site.site.id}`.execute(
        a.storage.db,
      );
    }
    expect(await stream.closed).toBe(1008);
    await vi.waitFor(
      async () =>
        expect((await postReadings(b.url, site.token, [asicReading('x', Date.now())])).status).toBe(401),
      { timeout: 2_000, interval: 20 },
    );
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
