import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../src/service.ts';
import { countReadings } from '../src/storage/readings.ts';
import { createTestDatabase, type TestDatabase } from './support/databases.ts';
import {
  asicReading,
  type CreatedSite,
  createSite,
  postReadings,
  startTestService,
} from './support/service.ts';
import { StreamClient } from './support/stream.ts';
import { TcpProxy } from './support/tcp-proxy.ts';

async function eventually<T>(
  attempt: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await attempt();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('ingest while Postgres is unreachable', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let service: RunningService;
  let site: CreatedSite;
  const t0 = Date.now() - 60_000;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    proxy = new TcpProxy('127.0.0.1', 5432);
    const port = await proxy.listen();
    const url = new URL(db.url!);
    url.port = String(port);
    service = await startTestService(db, { databaseUrl: url.toString() });
    site = await createSite(service.url, 'flaky');
  });

  afterAll(async () => {
    await service?.stop();
    await proxy?.close();
    await db?.dispose();
  });

  it('answers 503 with Retry-After and acknowledges nothing, then resumes without a restart', async () => {
    const stream = await StreamClient.connect(service.url, site.token);
    expect((await postReadings(service.url, site.token, [asicReading('f1', t0)])).status).toBe(200);
    stream.send({ seq: 1, readings: [asicReading('f2', t0)] });
    await stream.until((m) => m.length === 1);
    expect(stream.messages[0]).toMatchObject({ ack: 1, accepted: 1 });

    proxy.cut();
    const refused = await postReadings(service.url, site.token, [asicReading('f1', t0 + 1000)]);
    expect(refused.status).toBe(503);
    expect(refused.body.error?.code).toBe('database_unavailable');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await fetch(`${service.url}/readyz`)).status).toBe(503);
    stream.send({ seq: 2, readings: [asicReading('f2', t0 + 1000)] });
    await stream.until((m) => m.length === 2);
    expect(stream.messages[1]).toMatchObject({ seq: 2, retry_after_ms: expect.any(Number) });
    expect(stream.messages[1]?.ack).toBeUndefined();

    proxy.restore();
    const resumed = await eventually(
      () => postReadings(service.url, site.token, [asicReading('f1', t0 + 1000)]),
      (r) => r.status === 200,
    );
    expect(resumed.body).toMatchObject({ accepted: 1 });
    stream.send({ seq: 2, readings: [asicReading('f2', t0 + 1000)] });
    await stream.until((m) => m.length === 3);
    expect(stream.messages[2]).toMatchObject({ ack: 2, accepted: 1 });
    expect(stream.closeCode).toBeUndefined();
    // Exactly the four acknowledged readings, nothing from the refused attempts twice.
    expect(await countReadings(service.storage.db, site.site.id)).toBe(4);
    stream.close();
  });
});

describe('ingest when the write queue is full', () => {
  let db: TestDatabase;
  let service: RunningService;
  let site: CreatedSite;
  const t0 = Date.now() - 60_000;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    // A queue of 10 readings and a slow flush: the second batch arrives while the first waits.
    service = await startTestService(db, {
      tuning: { maxQueuedReadings: 10, flushDelayMs: 500, maxBatchReadings: 1000 },
    });
    site = await createSite(service.url, 'busy');
  });

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('answers 429 / retry_after_ms and stores none of the refused batch', async () => {
    const first = postReadings(
      service.url,
      site.token,
      Array.from({ length: 10 }, (_, i) => asicReading(`q${i}`, t0)),
    );
    await new Promise((r) => setTimeout(r, 100));
    const second = await postReadings(service.url, site.token, [asicReading('late', t0)]);
    expect(second.status).toBe(429);
    expect(second.body.error?.code).toBe('overloaded');
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

    const stream = await StreamClient.connect(service.url, site.token);
    stream.send({ seq: 9, readings: [asicReading('late-ws', t0)] });
    await stream.until((m) => m.length === 1);
    expect(stream.messages[0]).toMatchObject({ seq: 9, retry_after_ms: expect.any(Number) });

    expect((await first).body.accepted).toBe(10);
    expect(await countReadings(service.storage.db, site.site.id)).toBe(10);
    stream.close();
  });
});

describe('graceful shutdown under load', () => {
  let db: TestDatabase;
  const t0 = Date.now() - 120_000;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
  });
  afterAll(async () => db?.dispose());

  it('stores every reading it acknowledged, over HTTP and WebSocket, then closes streams with 1001', async () => {
    const service = await startTestService(db);
    const site = await createSite(service.url, 'draining');
    const acked = new Set<string>();
    let stopping = false;

    const httpAgent = async (agent: number) => {
      for (let batch = 0; !stopping || batch < 2; batch++) {
        const readings = Array.from({ length: 50 }, (_, i) =>
          asicReading(`h${agent}-${i}`, t0 + batch * 1000),
        );
        try {
          const response = await postReadings(service.url, site.token, readings);
          if (response.status !== 200) return;
          for (const r of readings) acked.add(`${r.device}@${r.ts}`);
        } catch {
          return; // connection refused: the server is gone
        }
      }
    };
    const stream = await StreamClient.connect(service.url, site.token);
    const sent = new Map<number, { device: string; ts: number }[]>();
    let seq = 0;
    const streamAgent = setInterval(() => {
      if (stream.closeCode !== undefined) return;
      const readings = Array.from({ length: 20 }, (_, i) => asicReading(`w-${i}`, t0 + seq * 1000));
      sent.set(seq, readings);
      stream.send({ seq: seq++, readings });
    }, 5);

    const agents = [0, 1, 2, 3].map(httpAgent);
    await new Promise((r) => setTimeout(r, 400));
    stopping = true;
    await service.stop();
    clearInterval(streamAgent);
    await Promise.all(agents);
    expect(await stream.closed()).toBe(1001);
    for (const m of stream.messages) {
      if (m.ack !== undefined) for (const r of sent.get(m.ack)!) acked.add(`${r.device}@${r.ts}`);
    }

    const check = await db.open();
    const { rows } = await sql<{ key: string }>`
      SELECT d.external_id || '@' || (extract(epoch from r.ts) * 1000)::bigint AS key
      FROM readings r JOIN devices d ON d.id = r.device_id`.execute(check.db);
    await check.close();
    const stored = new Set(rows.map((r) => r.key));
    expect(acked.size).toBeGreaterThan(100);
    const lost = [...acked].filter((k) => !stored.has(k));
    expect(lost).toEqual([]);
    expect(rows.length).toBe(stored.size); // and nothing stored twice
  });
});

describe('an unexpected failure', () => {
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

  it('is a 500 in the envelope that leaks nothing of its cause', async () => {
    const site = await createSite(service.url, 'broken');
    await sql`ALTER TABLE readings RENAME TO readings_gone`.execute(service.storage.db);
    const response = await postReadings(service.url, site.token, [asicReading('b1', Date.now())]);
    expect(response.status).toBe(500);
    expect(response.body).toEqual({
      error: { code: 'internal', message: 'internal error', request_id: expect.any(String) },
    });
    expect(JSON.stringify(response.body)).not.toMatch(/readings|relation/);
    await sql`ALTER TABLE readings_gone RENAME TO readings`.execute(service.storage.db);
    expect(await countReadings(service.storage.db, site.site.id)).toBe(0);
  });
});
