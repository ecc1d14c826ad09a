import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../src/service.ts';
import { countReadings } from '../src/storage/readings.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import {
  adminRequest,
  asicReading,
  type CreatedSite,
  createSite,
  startTestService,
} from './support/service.ts';
import { StreamClient } from './support/stream.ts';

describe.each(BACKENDS)('WebSocket ingest on %s', (backend) => {
  let db: TestDatabase;
  let service: RunningService;
  let site: CreatedSite;
  const t0 = Date.now() - 120_000;

  beforeAll(async () => {
    db = await createTestDatabase(backend);
    service = await startTestService(db, { tuning: { heartbeatMs: 200 } });
    site = await createSite(service.url, 'stream-site');
  });

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('refuses the upgrade with 401 before it happens', async () => {
    await expect(StreamClient.connect(service.url, undefined)).rejects.toThrow('401');
    await expect(StreamClient.connect(service.url, 'hw_wrong')).rejects.toThrow('401');
  });

  it('acks every frame in order, each only once its readings are committed', async () => {
    const client = await StreamClient.connect(service.url, site.token);
    const frames = 30;
    const committedAtAck = new Map<number, number>();
    client.ws.on('message', (data) => {
      // Sample the database the moment each ack lands; queries may finish out of order, so key by seq.
      const { ack } = JSON.parse(String(data)) as { ack: number };
      void countReadings(service.storage.db, site.site.id).then((n) => committedAtAck.set(ack, n));
    });
    for (let seq = 0; seq < frames; seq++) {
      client.send({
        seq,
        readings: [asicReading('w1', t0 + seq * 1000), asicReading('w2', t0 + seq * 1000)],
      });
    }
    await client.until((m) => m.length === frames);
    expect(client.messages.map((m) => m.ack)).toEqual([...Array(frames).keys()]);
    expect(client.messages.every((m) => m.accepted === 2 && m.duplicates === 0)).toBe(true);
    await client.until(() => committedAtAck.size === frames);
    // Ack k can only be observed once frames 0..k (2 readings each) are in the table.
    for (const [k, n] of committedAtAck) expect(n).toBeGreaterThanOrEqual(2 * (k + 1));
    client.close();
  });

  it('counts a resent frame as duplicates', async () => {
    const client = await StreamClient.connect(service.url, site.token);
    const frame = { seq: 1, readings: [asicReading('w1', t0), asicReading('w9', t0)] };
    client.send(frame);
    await client.until((m) => m.length === 1);
    client.send({ ...frame, seq: 2 });
    await client.until((m) => m.length === 2);
    expect(client.messages[0]).toMatchObject({ ack: 1, accepted: 1, duplicates: 1 });
    expect(client.messages[1]).toMatchObject({ ack: 2, accepted: 0, duplicates: 2 });
    client.close();
  });

  it('stores a reading once when two frames carrying it are in flight together', async () => {
    const client = await StreamClient.connect(service.url, site.token);
    const readings = [asicReading('w10', t0), asicReading('w11', t0)];
    client.send({ seq: 1, readings });
    client.send({ seq: 2, readings });
    await client.until((m) => m.length === 2);
    // Either frame may win the race to commit; together they store each reading exactly once.
    expect(client.messages.map((m) => m.ack)).toEqual([1, 2]);
    expect(client.messages.reduce((sum, m) => sum + (m.accepted ?? 0), 0)).toBe(2);
    expect(client.messages.reduce((sum, m) => sum + (m.duplicates ?? 0), 0)).toBe(2);
    client.close();
  });

  it('answers a malformed frame with an error and keeps the connection open', async () => {
    const client = await StreamClient.connect(service.url, site.token);
    client.send('{not json');
    client.send({ seq: 5, readings: 'nope' });
    client.send({ seq: 6, readings: [asicReading('w3', t0, { power_w: -1 })] });
    await client.until((m) => m.length === 3);
    expect(client.messages[0]).toMatchObject({ seq: null, error: { code: 'invalid_json' } });
    expect(client.messages[1]).toMatchObject({ seq: 5, error: { code: 'invalid_body' } });
    expect(client.messages[2]).toMatchObject({
      ack: 6,
      accepted: 0,
      rejected: [{ index: 0, field: 'power_w' }],
    });
    expect(client.closeCode).toBeUndefined();
    client.close();
  });

  it('closes with 1009 on a frame over the size limit', async () => {
    const client = await StreamClient.connect(service.url, site.token);
    client.send(JSON.stringify({ seq: 1, readings: [], pad: 'x'.repeat(4 * 1024 * 1024) }));
    expect(await client.closed()).toBe(1009);
  });

  it('terminates a peer that stops answering pings', async () => {
    const client = await StreamClient.connect(service.url, site.token, { autoPong: false });
    expect(await client.closed(5_000)).toBe(1006);
  });

  it('closes a live stream whose token was rotated, at its next frame', async () => {
    const other = await createSite(service.url, 'rotating');
    const client = await StreamClient.connect(service.url, other.token);
    await adminRequest(service.url, 'POST', `/api/v1/sites/${other.site.id}/token`);
    client.send({ seq: 1, readings: [asicReading('x', t0)] });
    expect(await client.closed()).toBe(1008);
    expect(await countReadings(service.storage.db, other.site.id)).toBe(0);
  });
});
