import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { waitFor } from '../src/alerting/testing.ts';
import { type StreamOptions, StreamServer } from '../src/ingest/websocket.ts';
import { silentLogger } from '../src/log.ts';
import type { RunningService } from '../src/service.ts';
import { authenticateToken } from '../src/sites/service.ts';
import { countReadings } from '../src/storage/readings.ts';
import { BACKENDS, createTestDatabase, type TestDatabase } from './support/databases.ts';
import { testPipeline } from './support/pipeline.ts';
import {
  adminRequest,
  asicReading,
  type CreatedSite,
  createSite,
  startTestService,
} from './support/service.ts';
import { StreamClient } from './support/stream.ts';

/** The refused upgrade's status, X-Request-Id header and JSON body. */
async function refusedUpgrade(
  base: string,
  headers: Record<string, string>,
): Promise<{ status: number; requestId: string | undefined; body: { error: Record<string, unknown> } }> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/v1/stream`, { headers });
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    ws.once('unexpected-response', (_req, r) => resolve(r));
    ws.once('open', () => reject(new Error('upgrade was accepted')));
    ws.once('error', reject);
  });
  let text = '';
  for await (const chunk of res) text += String(chunk);
  const header = res.headers['x-request-id'];
  return {
    status: res.statusCode ?? 0,
    requestId: typeof header === 'string' ? header : undefined,
    body: JSON.parse(text),
  };
}

/** Polls `check` until it holds, failing after `timeoutMs`. */
async function waitUntil(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A StreamServer of its own in front of a real pipeline on the service's database, so a test can
 * set its bounds and read what they saw (the service does not expose its StreamServer).
 */
async function startStreamServer(service: RunningService, options: Partial<StreamOptions>) {
  const { storage } = service;
  const { pipeline } = testPipeline(
    storage,
    // With the fairness floor below: room for a whole window of 10,000-reading frames, each held
    // from admission to its (empty) commit.
    { maxBatchReadings: 20_000, queueDelayTargetMs: 500 },
    // Room for a whole window of the 10,000-reading frames these tests send: what they bound is
    // the replies, not the site's share of the write queue (admission.test.ts holds that).
    { floorReadings: 50_000 },
  );
  const streams = new StreamServer({
    pipeline,
    authenticate: (token) => authenticateToken(storage, token),
    logger: silentLogger,
    ...options,
  });
  const server = createServer((_req, res) => res.writeHead(404).end());
  streams.attach(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    streams,
    url: `ws://127.0.0.1:${port}${'/api/v1/stream'}`,
    async stop() {
      await Promise.all([streams.close(1_000), pipeline.close()]);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

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

  it('lets go of a rotated stream at once even with its window full (its socket paused)', async () => {
    const other = await createSite(service.url, 'rotating-busy');
    const client = await StreamClient.connect(service.url, other.token);
    const open = async () => {
      const text = await (await fetch(`${service.url}/metrics`)).text();
      return Number(/^hashwatt_websocket_connections (\S+)$/m.exec(text)?.[1]);
    };
    const before = await open();
    await adminRequest(service.url, 'POST', `/api/v1/sites/${other.site.id}/token`);
    // More frames than the window: the server pauses the socket while the first ones run.
    for (let seq = 1; seq <= 8; seq++) client.send({ seq, readings: [asicReading(`x-${seq}`, t0)] });
    expect(await client.closed()).toBe(1008);
    // The server reads the peer's answering close frame instead of waiting out ws's 30 s timeout.
    await waitFor('the server to close the connection', async () => (await open()) === before - 1, 10_000);
    expect(await countReadings(service.storage.db, other.site.id)).toBe(0);
  });

  it('names the request in the 401 body, honouring a safe X-Request-Id and replacing an unsafe one', async () => {
    const honoured = await refusedUpgrade(service.url, {
      authorization: 'Bearer hw_wrong',
      'x-request-id': 'agent-7:42',
    });
    expect(honoured.status).toBe(401);
    expect(honoured.body.error).toMatchObject({ code: 'unauthorized', request_id: 'agent-7:42' });
    expect(honoured.requestId).toBe('agent-7:42');
    const replaced = await refusedUpgrade(service.url, { 'x-request-id': 'x'.repeat(8_000) });
    expect(replaced.status).toBe(401);
    expect(replaced.body.error.request_id).toMatch(UUID);
    expect(replaced.requestId).toBe(replaced.body.error.request_id);
  });

  it("puts the connection's request id in every error frame", async () => {
    const frames = ['{not json', JSON.stringify({ seq: 5, readings: 'nope' })];
    const client = await StreamClient.connect(service.url, site.token);
    for (const f of frames) client.send(f);
    await client.until((m) => m.length === 2);
    const ids = client.messages.map((m) => (m.error as { request_id?: string }).request_id);
    expect(ids[0]).toMatch(UUID);
    expect(ids[1]).toBe(ids[0]);
    client.close();

    // StreamClient sets only the authorization header, so this agent is a bare ws client.
    const tagged = new WebSocket(`${service.url.replace(/^http/, 'ws')}/api/v1/stream`, {
      headers: { authorization: `Bearer ${site.token}`, 'x-request-id': 'stream-abc.1' },
    });
    const replies: { error?: { request_id?: string } }[] = [];
    let upgradeId: string | string[] | undefined;
    tagged.once('upgrade', (res) => {
      upgradeId = res.headers['x-request-id'];
    });
    await new Promise<void>((resolve, reject) => {
      tagged.once('open', () => resolve());
      tagged.once('error', reject);
    });
    const done = new Promise<void>((resolve) =>
      tagged.on('message', (data) => {
        replies.push(JSON.parse(String(data)));
        if (replies.length === frames.length) resolve();
      }),
    );
    for (const f of frames) tagged.send(f);
    await done;
    expect(upgradeId).toBe('stream-abc.1');
    expect(replies.map((r) => r.error?.request_id)).toEqual(['stream-abc.1', 'stream-abc.1']);
    tagged.close();
  });
});

// Postgres only: the pool (and its wait queue) is what this bounds; PGlite has one connection and no pool.
describe('WebSocket ingest bounds on postgres', () => {
  let db: TestDatabase;
  let service: RunningService;
  const t0 = Date.now() - 120_000;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await startTestService(db, { tuning: { heartbeatMs: 200 } });
  });

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it("keeps the pool's wait queue bounded when 20 connections ignore their window, and stores what it acks once", async () => {
    const sites = await Promise.all([0, 1, 2, 3].map((i) => createSite(service.url, `blast-${i}`)));
    const connections = 20;
    const framesPerConnection = 300;
    const clients = await Promise.all(
      Array.from({ length: connections }, (_, i) => StreamClient.connect(service.url, sites[i % 4]!.token)),
    );
    let maxWaiting = 0;
    let samples = 0;
    const sampler = setInterval(() => {
      samples++;
      maxWaiting = Math.max(maxWaiting, service.storage.poolStats()?.waiting ?? 0);
    }, 1);
    // Every frame at once, without waiting for a single ack: far past the 4-frame window.
    clients.forEach((client, c) => {
      for (let seq = 0; seq < framesPerConnection; seq++) {
        const ts = t0 + seq * 1000;
        client.send({ seq, readings: [asicReading(`c${c}-a`, ts), asicReading(`c${c}-b`, ts)] });
      }
    });
    await Promise.all(clients.map((client) => client.until((m) => m.length === framesPerConnection, 60_000)));
    clearInterval(sampler);

    expect(samples).toBeGreaterThan(10);
    // The pool has 10 connections; what waits for one is bounded by the lookup limits, not by the frames sent.
    expect(maxWaiting).toBeLessThanOrEqual(20);
    const ackedBySite = new Map<number, number>();
    clients.forEach((client, c) => {
      const seqs = client.messages.map((m) => m.ack ?? m.seq);
      expect(new Set(seqs).size).toBe(framesPerConnection);
      for (const m of client.messages) {
        // Anything not acked was refused whole with a hint, before any of it was stored.
        if (m.ack === undefined) expect(m.retry_after_ms).toBeGreaterThan(0);
        else expect(m).toMatchObject({ accepted: 2, duplicates: 0 });
      }
      const id = sites[c % 4]!.site.id;
      ackedBySite.set(
        id,
        (ackedBySite.get(id) ?? 0) + 2 * client.messages.filter((m) => m.ack !== undefined).length,
      );
      client.close();
    });
    for (const [id, acked] of ackedBySite) {
      expect(acked).toBeGreaterThan(0);
      expect(await countReadings(service.storage.db, id)).toBe(acked);
    }
  }, 90_000);

  // 10,000 empty readings: a 30 KB frame whose reply lists 10,000 rejections (about 800 KB).
  const heavyAckFrame = (seq: number) => JSON.stringify({ seq, readings: Array(10_000).fill({}) });

  it.each([
    ['stops reading a client that takes none of its replies, then closes it (1008)', {}, /heartbeats/],
    [
      'closes at once (1008) a client whose replies pass the hard bound',
      { maxBufferedReplyBytes: 1024 * 1024, maxBufferedReplyBytesHard: 2 * 1024 * 1024 },
      /bytes of replies unread/,
    ],
  ])(
    '%s, holding at most the hard bound plus one reply',
    async (_, bounds: Partial<StreamOptions>, why: RegExp) => {
      const site = await createSite(service.url, `unread-${bounds.maxBufferedReplyBytes ?? 'default'}`);
      // A floor read rate no paused client reaches, so the dead-peer close comes within the test;
      // the default (8 KiB/s) gives a slow reader minutes for a large backlog.
      const stream = await startStreamServer(service, {
        heartbeatMs: 100,
        minReplyReadBytesPerS: 1024 * 1024 * 1024,
        ...bounds,
      });
      try {
        const ws = new WebSocket(stream.url, { headers: { authorization: `Bearer ${site.token}` } });
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        // The client sends and never reads: its socket is paused, so every ack backs up at the server.
        const socket = (ws as unknown as { _socket: Socket })._socket;
        socket.pause();
        const frames = 120;
        for (let seq = 0; seq < frames; seq++) ws.send(heavyAckFrame(seq));
        await waitUntil(
          'the server to close the connection',
          () => stream.streams.sendStats.closedForUnreadReplies === 1,
        );

        const replyBytes: number[] = [];
        ws.on('message', (data: Buffer) => replyBytes.push(data.length));
        const closed = new Promise<{ code: number; reason: string }>((resolve) =>
          ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
        );
        socket.resume();
        const { code, reason } = await closed;
        expect(code).toBe(1008);
        expect(reason).toMatch(why);
        // Acks stopped once past the bound: what reached the client is what the kernel and the
        // server's bounded buffer held, far from all 120 replies (96 MB).
        expect(replyBytes.length).toBeGreaterThan(0);
        expect(replyBytes.length).toBeLessThan(frames / 2);
        const hard = bounds.maxBufferedReplyBytesHard ?? 16 * 1024 * 1024;
        const { peakBufferedBytes } = stream.streams.sendStats;
        expect(peakBufferedBytes).toBeGreaterThan(bounds.maxBufferedReplyBytes ?? 4 * 1024 * 1024);
        expect(peakBufferedBytes).toBeLessThanOrEqual(hard + Math.max(...replyBytes));
        await waitUntil('the connection to be gone', () => stream.streams.connections === 0);
      } finally {
        await stream.stop();
      }
    },
    60_000,
  );

  it('starts frames again once a client that stopped reading takes its backlog, acking every frame in order', async () => {
    const site = await createSite(service.url, 'slow-reader');
    // Heartbeats far apart: the stall bound must not end this connection while the client is away.
    const stream = await startStreamServer(service, { heartbeatMs: 60_000 });
    try {
      const ws = new WebSocket(stream.url, { headers: { authorization: `Bearer ${site.token}` } });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const acks: number[] = [];
      ws.on('message', (data: Buffer) => acks.push((JSON.parse(String(data)) as { ack: number }).ack));
      const socket = (ws as unknown as { _socket: Socket })._socket;
      socket.pause();
      const frames = 40;
      for (let seq = 0; seq < frames; seq++) ws.send(heavyAckFrame(seq));
      await waitUntil(
        'replies to back up',
        () => stream.streams.sendStats.peakBufferedBytes > 4 * 1024 * 1024,
      );
      socket.resume();
      await waitUntil('every ack', () => acks.length === frames);
      expect(acks).toEqual([...Array(frames).keys()]);
      expect(ws.readyState).toBe(WebSocket.OPEN);
      expect(stream.streams.sendStats.closedForUnreadReplies).toBe(0);
      ws.close();
    } finally {
      await stream.stop();
    }
  }, 60_000);
});
