import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { readingKey } from '../../simulators/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/databases.ts';
import { createSite } from '../support/service.ts';
import { expectNoCrash } from './support/checks.ts';
import { readStored } from './support/ledger.ts';
import { HashwattProcess } from './support/process.ts';

const DEVICES = 5_000;
const ROUNDS = 8;

/**
 * What a backlog looks like after an outage: agents resend big batches over the same devices at
 * once, in whatever order their buffers hold them. Group commit runs two transactions at a time on
 * Postgres; batches of 5,000 readings each fill one, so two such batches commit concurrently and
 * touch the same devices' rows (readings, latest state) in opposite orders.
 */
describe('reliability: concurrent transactions over the same devices', () => {
  let db: TestDatabase | undefined;
  let service: HashwattProcess | undefined;
  let token = '';

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    service = await HashwattProcess.start(db.url!);
    token = (await createSite(service.url, 'contention', 'mining', 100_000)).token;
  });

  afterAll(async () => {
    await service?.stop();
    await db?.dispose();
  });

  it('commits every batch whatever order its devices come in (no 5xx, no internal error)', async () => {
    const hashwatt = service!;
    const names = Array.from({ length: DEVICES }, (_, i) => `c-${String(i).padStart(5, '0')}`);
    const t0 = Date.now() - 3_600_000;
    const sent = new Set<string>();
    const acked = new Set<string>();
    const answers = new Map<string, number>();
    const count = (k: string) => answers.set(k, (answers.get(k) ?? 0) + 1);
    const batch = (order: string[], ts: number) => {
      const readings = order.map((device) => ({
        device,
        kind: 'asic',
        ts,
        power_w: 3_500,
        hashrate_ths: 200,
      }));
      for (const r of readings) sent.add(readingKey(r.device, r.ts));
      return readings;
    };
    const post = async (readings: { device: string; ts: number }[]) => {
      const res = await fetch(`${hashwatt.url}/api/v1/ingest`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ readings }),
      });
      count(`HTTP ${res.status}`);
      if (res.status === 200) for (const r of readings) acked.add(readingKey(r.device, r.ts));
      await res.arrayBuffer();
    };
    const ws = new WebSocket(`${hashwatt.url.replace(/^http/, 'ws')}/api/v1/stream`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const frames = new Map<number, { resolve: () => void; readings: { device: string; ts: number }[] }>();
    ws.on('message', (data) => {
      const reply = JSON.parse(String(data)) as { ack?: number; seq?: number; error?: { code: string } };
      const seq = reply.ack ?? reply.seq ?? -1;
      const frame = frames.get(seq);
      if (!frame) return;
      frames.delete(seq);
      count(reply.ack !== undefined ? 'WS ack' : `WS ${reply.error?.code ?? 'retry'}`);
      if (reply.ack !== undefined) for (const r of frame.readings) acked.add(readingKey(r.device, r.ts));
      frame.resolve();
    });
    let seq = 0;
    const stream = (readings: { device: string; ts: number }[]) =>
      new Promise<void>((resolve) => {
        frames.set(seq, { resolve, readings });
        ws.send(JSON.stringify({ seq: seq++, readings }));
      });

    // Devices registered first, so the rounds below only write readings.
    await post(batch(names, t0));
    const reversed = [...names].reverse();
    for (let round = 1; round <= ROUNDS; round++) {
      const ts = t0 + round * 1_000;
      // The same devices forwards and backwards, over both transports, at once.
      await Promise.all([post(batch(names, ts)), stream(batch(reversed, ts + 1))]);
      await Promise.all([stream(batch(names, ts + 2)), post(batch(reversed, ts + 3))]);
    }
    ws.close();

    const stored = (await readStored(db!.url!, ['contention'])).get('contention')!;
    const missing = [...acked].filter((k) => !stored.keys.has(k)).length;
    console.log(
      `reliability write-contention: generated ${sent.size} acknowledged ${acked.size} stored ${stored.rows} ` +
        `missing ${missing} | answers ${JSON.stringify(Object.fromEntries(answers))}, ` +
        `service errors ${hashwatt.errors.length}`,
    );
    const firstError = hashwatt.errors[0] ? JSON.parse(hashwatt.errors[0]) : undefined;
    expect(
      Object.fromEntries(answers),
      `first service error: ${firstError?.err?.code} ${firstError?.err?.message} ${firstError?.err?.where}`,
    ).toEqual({ 'HTTP 200': 1 + 2 * ROUNDS, 'WS ack': 2 * ROUNDS });
    expectNoCrash(hashwatt);
    expect(missing).toBe(0);
    expect(stored.rows).toBe(stored.keys.size);
    expect(stored.keys.size).toBe(sent.size);
  });
});
